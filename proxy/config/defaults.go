package config

import (
	"os"
	"path/filepath"
	"time"
)

// The defaults of the config's settings, each named after its key: a
// setting left out (or zero) in the file takes the value here when the
// config is loaded (applyDefaults). Defaults that depend on other settings
// or on the machine (tls.storage, tls.redirect_http, origins.via_name, the
// ACME directory) are described at their fields. The tls section's
// certificate keys take certmgr's defaults (certmgr.Config.ApplyDefaults),
// as the origin sections take origin's.
const (
	DefaultRetryAfter             = 30 * time.Second       // pages.retry_after
	DefaultLanguage               = "en"                   // pages.default_language
	DefaultReadHeaderTimeout      = 10 * time.Second       // timeouts.read_header
	DefaultIdleTimeout            = 120 * time.Second      // timeouts.idle
	DefaultDialTimeout            = 5 * time.Second        // timeouts.dial
	DefaultResponseHeaderTimeout  = 60 * time.Second       // timeouts.response_header
	DefaultGrace                  = 30 * time.Second       // timeouts.grace
	DefaultWriteIdleTimeout       = 30 * time.Second       // timeouts.write_idle
	DefaultBodyReadTimeout        = 30 * time.Second       // timeouts.body_read
	DefaultDrain                  = 5 * time.Second        // timeouts.drain
	DefaultMaxStreamsPerConn      = 100                    // limits.max_streams_per_conn
	DefaultMaxConnsPerClient      = 256                    // limits.max_conns_per_client
	DefaultMaxRequestsPerClient   = 128                    // limits.max_requests_per_client
	DefaultFailTimeout            = 10 * time.Second       // origins.fail_timeout
	DefaultBodyIdleTimeout        = 60 * time.Second       // origins.body_idle_timeout
	DefaultMaxResponseHeaderBytes = 64 << 10               // origins.max_response_header_bytes
	DefaultOriginClient           = "edgeblock"            // origins.client
	DefaultOriginMaxConns         = 256                    // origins.max_conns
	DefaultViaName                = "edgeblock"            // origins.via_name when the host name is not a token
	DefaultDebounce               = 100 * time.Millisecond // blocklist.debounce
	DefaultPollInterval           = 30 * time.Second       // blocklist.poll_interval
	DefaultMaxDrop                = 0.5                    // blocklist.max_drop
	DefaultAdminListen            = "127.0.0.1:9090"       // listen.admin
	DefaultMaxHeaderBytes         = 64 << 10               // max_header_bytes
	DefaultDNSKeyAlg              = "hmac-sha256"          // tls.dns.key_alg
	DefaultDNSPropagationTimeout  = 2 * time.Minute        // tls.dns.propagation_timeout
	DefaultLogFormat              = "json"                 // log.format
	DefaultLogLevel               = "info"                 // log.level
)

// applyDefaults fills in the defaults of the settings left out and
// resolves relative paths against the config file's directory. It returns
// the fleet section's defaults error, which validation reports.
func (c *Config) applyDefaults() (fleetErr error) {
	dir := filepath.Dir(c.Path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	rel(&c.Blocklist.File)
	rel(&c.Geo.Database)
	rel(&c.Pages.Template)
	for k, f := range c.Pages.Templates {
		rel(&f)
		c.Pages.Templates[k] = f
	}
	rel(&c.Pages.LanguagesDir)
	if c.Pages.RetryAfter == nil {
		d := DefaultRetryAfter
		c.Pages.RetryAfter = &d
	}
	if c.Pages.DefaultLanguage == "" {
		c.Pages.DefaultLanguage = DefaultLanguage
	}
	rel(&c.TLS.CARoot)
	rel(&c.TLS.Storage)
	rel(&c.Admin.TokensFile)
	rel(&c.Admin.ClientCA)
	rel(&c.Admin.TLSCert)
	rel(&c.Admin.TLSKey)
	relTLS := func(t *OriginTLSConfig) {
		if t != nil {
			rel(&t.CAFile)
			rel(&t.ClientCert)
			rel(&t.ClientKey)
		}
	}
	relTLS(c.Origins.Balance.OriginTLS)
	for i := range c.Routes {
		relTLS(c.Routes[i].Balance.OriginTLS)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Timeouts.ReadHeader, DefaultReadHeaderTimeout)
	def(&c.Timeouts.Idle, DefaultIdleTimeout)
	def(&c.Timeouts.Dial, DefaultDialTimeout)
	def(&c.Timeouts.ResponseHeader, DefaultResponseHeaderTimeout)
	def(&c.Timeouts.Grace, DefaultGrace)
	def(&c.Timeouts.WriteIdle, DefaultWriteIdleTimeout)
	def(&c.Timeouts.BodyRead, DefaultBodyReadTimeout)
	if c.Timeouts.Drain == nil {
		d := DefaultDrain
		c.Timeouts.Drain = &d
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defInt(&c.Limits.MaxStreamsPerConn, DefaultMaxStreamsPerConn)
	defInt(&c.Limits.MaxConnsPerClient, DefaultMaxConnsPerClient)
	defInt(&c.Limits.MaxRequestsPerClient, DefaultMaxRequestsPerClient)
	defInt(&c.Limits.QUICPendingHandshakes, DefaultQUICPendingHandshakes)
	def(&c.Origins.FailTimeout, DefaultFailTimeout)
	def(&c.Origins.BodyIdleTimeout, DefaultBodyIdleTimeout)
	if c.Origins.MaxResponseHeaderBytes == 0 {
		c.Origins.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	if c.Origins.Client == "" {
		c.Origins.Client = DefaultOriginClient
	}
	if c.Origins.MaxConns == 0 {
		c.Origins.MaxConns = DefaultOriginMaxConns
	}
	if c.Origins.Upgrades == nil {
		c.Origins.Upgrades = []string{"websocket"}
	}
	if c.Origins.ViaName == "" {
		c.Origins.ViaName = hostnameOr(DefaultViaName, os.Hostname)
	}
	if c.Blocklist.Source == "" {
		c.Blocklist.Source = SourceFile
	}
	if f := c.Fleet; f != nil {
		rel(&f.Redis.PasswordFile)
		rel(&f.Redis.SentinelPasswordFile)
		rel(&f.Redis.TLS.CAFile)
		rel(&f.Redis.TLS.CertFile)
		rel(&f.Redis.TLS.KeyFile)
		fleetErr = f.ApplyDefaults()
	}
	def(&c.Blocklist.Debounce, DefaultDebounce)
	def(&c.Blocklist.PollInterval, DefaultPollInterval)
	if c.Blocklist.MaxDrop == 0 {
		c.Blocklist.MaxDrop = DefaultMaxDrop
	}
	if c.Blocklist.Watch == nil {
		on := true
		c.Blocklist.Watch = &on
	}
	if c.Listen.Admin == "" {
		c.Listen.Admin = DefaultAdminListen
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	c.TLS.Config.ApplyDefaults()
	if c.TLS.CA == "" {
		c.TLS.CA = LetsEncryptProduction
		if c.TLS.Staging {
			c.TLS.CA = LetsEncryptStaging
		}
	}
	if c.TLS.Storage == "" {
		c.TLS.Storage = defaultStorage()
	}
	if c.TLS.RedirectHTTP == nil {
		on := c.TLS.Mode != "off" && c.Listen.HTTPS != ""
		c.TLS.RedirectHTTP = &on
	}
	dnsDefaults := func(d *DNSConfig) {
		if d == nil {
			return
		}
		rel(&d.KeySecretFile)
		if d.KeyAlg == "" {
			d.KeyAlg = DefaultDNSKeyAlg
		}
		def(&d.PropagationTimeout, DefaultDNSPropagationTimeout)
	}
	dnsDefaults(c.TLS.DNS)
	for i := range c.Routes {
		dnsDefaults(c.Routes[i].TLS.DNS)
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Access == nil {
		on := true
		c.Log.Access = &on
	}
	if c.Log.AccessSample == 0 {
		c.Log.AccessSample = 1
	}
	return fleetErr
}

// The ACME directories of Let's Encrypt.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

func defaultStorage() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "edgeblock")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "edgeblock")
	}
	return "edgeblock-data"
}

// hostnameOr returns the machine's host name, or def.
func hostnameOr(def string, hostname func() (string, error)) string {
	if h, err := hostname(); err == nil && h != "" && IsToken(h) {
		return h
	}
	return def
}

// DefaultQUICPendingHandshakes is the default of limits.quic_pending_handshakes:
// about 150 MiB of handshake state at most (about 150 KiB each, heap and
// goroutine stacks, measured in deploy/bench/README.md), far above what
// real visitors keep under way (new connections per second × the round
// trip time: 1000/s at 100 ms is 100).
const DefaultQUICPendingHandshakes = 1000
