package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/origin"
	"github.com/edgeblock/edgeblock/proxy/problem"
	"golang.org/x/net/http/httpguts"
)

func (c *Config) validate(v *validator) {
	if c.Listen.HTTP == "" && c.Listen.HTTPS == "" {
		v.addf([]any{"listen"}, "no public listener: set http, https or both")
	}
	for _, l := range []struct {
		name, addr string
	}{{"http", c.Listen.HTTP}, {"https", c.Listen.HTTPS}, {"admin", c.Listen.Admin}, {"quic", c.Listen.QUIC}} {
		if l.addr == "" || (l.name == "admin" && l.addr == "off") {
			continue
		}
		if _, port, err := net.SplitHostPort(l.addr); err != nil {
			v.addf([]any{"listen", l.name}, "%q is not host:port", l.addr)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			v.addf([]any{"listen", l.name}, "%q has a bad port", l.addr)
		}
	}
	c.validateQUIC(v)
	v.addProblems([]any{"tls"}, c.TLS.Config.Validate())
	if (c.TLS.Mode == "internal" || c.TLS.Mode == "acme") && c.Listen.HTTPS == "" {
		v.addf([]any{"tls", "mode"}, "mode %s needs listen.https", c.TLS.Mode)
	}
	if c.TLS.Mode == "off" && c.Listen.HTTPS != "" {
		c.Warnings = append(c.Warnings, v.format([]any{"listen", "https"}, "set, but tls.mode is off: the HTTPS listener is not started (set tls.mode to internal or acme)"))
	}
	if c.TLS.Mode == "acme" && slices.Contains(c.TLS.Challenges, "http-01") && c.Listen.HTTP == "" {
		v.addf([]any{"tls", "challenges"}, "http-01 needs listen.http")
	}
	if c.TLS.RedirectPort < 0 || c.TLS.RedirectPort > 65535 {
		v.addf([]any{"tls", "redirect_port"}, "%d is not a port", c.TLS.RedirectPort)
	}
	c.validateDNS(v, []any{"tls", "dns"}, c.TLS.DNS)
	for i := range c.Routes {
		r := &c.Routes[i]
		c.validateDNS(v, []any{"routes", i, "tls", "dns"}, r.TLS.DNS)
		if !r.WildcardCert() {
			continue
		}
		if !strings.HasPrefix(r.Host, "*.") {
			v.addf([]any{"routes", i, "tls"}, "a wildcard certificate needs a *.name host, not %q", r.Host)
		} else if c.TLS.Mode == "acme" && c.DNSFor(r) == nil {
			v.addf([]any{"routes", i, "tls", "wildcard"}, "needs tls.dns or routes[%d].tls.dns: an ACME CA issues wildcard certificates through DNS-01 only", i)
		}
	}
	switch c.Blocklist.Source {
	case SourceFile:
		if c.Blocklist.File == "" {
			v.addf([]any{"blocklist", "file"}, "required")
		}
	case SourceFleet:
		if c.Fleet == nil {
			v.addf([]any{"blocklist", "source"}, "fleet needs the fleet section (fleet.redis.addr at least)")
		}
	default:
		v.addf([]any{"blocklist", "source"}, "%q: want file or fleet", c.Blocklist.Source)
	}
	if c.Fleet != nil {
		if v.fleetDefaults != nil {
			v.addf([]any{"fleet", "node"}, "%v", strings.TrimPrefix(v.fleetDefaults.Error(), "fleet.node: "))
		}
		for _, p := range c.Fleet.Validate() {
			field, msg := p.Path.Under("fleet"), p.Msg
			if p.Path.String() == "redis.addr" && strings.HasPrefix(msg, "required") {
				// About the section, so that a type error in addrs is
				// not followed by this derived complaint.
				field, msg = []any{"fleet", "redis"}, "addr or addrs is required"
			}
			v.addf(field, "%s", msg)
		}
	}
	for _, f := range []struct {
		key, val string
	}{{"policy", c.Blocklist.Policy}, {"blocked_by", c.Blocklist.BlockedBy}} {
		if f.val == "" {
			continue
		}
		if u, err := url.Parse(f.val); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.addf([]any{"blocklist", f.key}, "%q is not an absolute http or https URL", f.val)
		} else if strings.ContainsFunc(f.val, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>"\^{|}`+"`", r) }) {
			v.addf([]any{"blocklist", f.key}, "%q: a URL must not hold spaces, control characters, non-ASCII, or any of <>\"\\^`{|} (percent-encode them)", f.val)
		}
	}
	c.validatePages(v)
	if c.Blocklist.MaxDrop < 0 || c.Blocklist.MaxDrop > 1 {
		v.addf([]any{"blocklist", "max_drop"}, "%v: want a share in (0, 1], such as 0.5", c.Blocklist.MaxDrop)
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		name, wild := strings.CutPrefix(r.Host, "*.")
		n, err := blocklist.Normalize(name)
		switch {
		case r.Host == "":
			v.addf([]any{"routes", i, "host"}, "required")
		case strings.ContainsAny(name, "*/:"):
			v.addf([]any{"routes", i, "host"}, "%q: want a name or *.name", r.Host)
		case err != nil:
			v.addf([]any{"routes", i, "host"}, "%v", err)
		case wild && (strings.IndexByte(n, ':') >= 0 || net.ParseIP(n) != nil):
			// "*.0.2.7" normalizes to the address 0.2.0.7: a wildcard over
			// an address covers nothing.
			v.addf([]any{"routes", i, "host"}, "%q: a wildcard needs a name, not an IP address", r.Host)
		default:
			key := n
			if wild {
				key = "*." + n
			}
			if j, dup := seen[key]; dup {
				v.addf([]any{"routes", i, "host"}, "%q is also routes[%d]", r.Host, j)
			}
			seen[key] = i
		}
		if len(r.Origins) == 0 {
			v.addf([]any{"routes", i, "origins"}, "at least one origin is required")
		}
		labels := map[string]int{}
		for j, os := range r.Origins {
			o := os.URL
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.addf([]any{"routes", i, "origins", j}, "%q: want http://host:port or https://host:port", o)
			} else if u.RawQuery != "" || u.Fragment != "" {
				v.addf([]any{"routes", i, "origins", j}, "%q: no query or fragment allowed", o)
			} else if k, dup := labels[origin.Label(u)]; dup {
				v.addf([]any{"routes", i, "origins", j}, "%q is also origins[%d]", o, k)
			} else {
				labels[origin.Label(u)] = j
			}
			if os.Weight < 0 {
				v.addf([]any{"routes", i, "origins", j, "weight"}, "must not be negative")
			}
		}
		r.Balance.validate(c, v, []any{"routes", i})
	}
	c.Origins.Balance.validate(c, v, []any{"origins"})
	c.validateGeo(v)
	for i, s := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(s); err != nil {
			if _, err := netip.ParseAddr(s); err != nil {
				v.addf([]any{"trusted_proxies", i}, "%q is not a CIDR or an IP address", s)
				continue
			}
		}
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{{"read_header", c.Timeouts.ReadHeader}, {"idle", c.Timeouts.Idle}, {"dial", c.Timeouts.Dial}, {"response_header", c.Timeouts.ResponseHeader}, {"grace", c.Timeouts.Grace},
		{"drain", *c.Timeouts.Drain}, {"write_idle", c.Timeouts.WriteIdle}, {"body_read", c.Timeouts.BodyRead}} {
		if d.val < 0 {
			v.addf([]any{"timeouts", d.key}, "must not be negative")
		}
	}
	for _, l := range []struct {
		key string
		val int
	}{{"max_streams_per_conn", c.Limits.MaxStreamsPerConn}, {"max_conns_per_client", c.Limits.MaxConnsPerClient}, {"max_requests_per_client", c.Limits.MaxRequestsPerClient}, {"quic_pending_handshakes", c.Limits.QUICPendingHandshakes}} {
		if l.val < 0 {
			v.addf([]any{"limits", l.key}, "must not be negative")
		}
	}
	if c.Origins.FailTimeout < 0 {
		v.addf([]any{"origins", "fail_timeout"}, "must not be negative")
	}
	if c.Origins.BodyIdleTimeout < 0 {
		v.addf([]any{"origins", "body_idle_timeout"}, "must not be negative")
	}
	if c.Origins.MaxResponseHeaderBytes < 0 {
		v.addf([]any{"origins", "max_response_header_bytes"}, "must not be negative")
	}
	if c.Origins.MaxConns < 0 {
		v.addf([]any{"origins", "max_conns"}, "must not be negative")
	}
	if c.Origins.Client != "edgeblock" && c.Origins.Client != "stdlib" {
		v.addf([]any{"origins", "client"}, "%q: want edgeblock or stdlib", c.Origins.Client)
	}
	for i, u := range c.Origins.Upgrades {
		if !IsToken(u) {
			v.addf([]any{"origins", "upgrades", i}, "%q is not a protocol name (an HTTP token)", u)
		}
	}
	if !IsToken(c.Origins.ViaName) {
		v.addf([]any{"origins", "via_name"}, "%q: want an HTTP token (letters, digits, and !#$%%&'*+-.^_`|~)", c.Origins.ViaName)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		v.addf([]any{"log", "format"}, "%q: want json or text", c.Log.Format)
	}
	if m := c.GC.MemoryLimit; m != "" && m != "auto" && m != "off" {
		if _, err := ParseSize(m); err != nil {
			v.addf([]any{"gc", "memory_limit"}, "%v", err)
		}
	}
	if c.GC.Percent < -1 {
		v.addf([]any{"gc", "percent"}, "%d: want a percentage, or -1 for no collection but the memory limit's", c.GC.Percent)
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		v.addf([]any{"log", "level"}, "%v", err)
	}
	if c.Log.AccessSample < 0 || c.Log.AccessSample > 1 {
		v.addf([]any{"log", "access_sample"}, "%v: want a fraction in (0, 1]", c.Log.AccessSample)
	}
	if c.MaxHeaderBytes < 0 {
		v.addf([]any{"max_header_bytes"}, "must not be negative")
	}
	probs, warns := c.Admin.Check(c.Listen.Admin)
	v.addProblems([]any{"admin"}, probs)
	for _, w := range warns {
		c.Warnings = append(c.Warnings, v.format(w.Path.Under("admin"), "%s", w.Msg))
	}
	if c.looksLikeProduction() {
		c.warnPlaceholders(v)
		if c.Pages.Operator == "" {
			c.Warnings = append(c.Warnings, v.format([]any{"pages", "operator"}, "not set: the block page cannot say who blocked the site (set your organisation's name; see pages.contact and pages.appeal too)"))
		}
	}
}

// validateDNS checks a DNS-01 setup at field, if any.
func (c *Config) validateDNS(v *validator, field []any, d *DNSConfig) {
	if d == nil {
		return
	}
	at := func(key string) []any { return append(slices.Clip(field), key) }
	if d.Provider != "rfc2136" {
		v.addf(at("provider"), "%q: want rfc2136", d.Provider)
	}
	for _, s := range append([]string{d.Server}, d.Resolvers...) {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			key := "server"
			if s != d.Server {
				key = "resolvers"
			}
			v.addf(at(key), "%q is not host:port", s)
		}
	}
	if d.KeyName == "" {
		v.addf(at("key_name"), "required")
	}
	if !slices.Contains(certs.TSIGAlgorithms, d.KeyAlg) {
		v.addf(at("key_alg"), "%q: want one of %s", d.KeyAlg, strings.Join(certs.TSIGAlgorithms, ", "))
	}
	if d.KeySecretFile == "" {
		v.addf(at("key_secret_file"), "required")
	} else if _, err := os.Stat(d.KeySecretFile); err != nil {
		v.addf(at("key_secret_file"), "%s", problem.FileError(err))
	}
}

// looksLikeProduction reports whether the config obtains certificates from
// a public ACME CA: tls.mode acme, not Let's Encrypt staging, and no
// tls.ca_root (which only a private CA needs). Placeholders are warned
// about only then, so demos and tests against a private CA stay quiet.
func (c *Config) looksLikeProduction() bool {
	return c.TLS.Mode == "acme" && c.TLS.CA != LetsEncryptStaging && c.TLS.CARoot == ""
}

// warnPlaceholders adds a warning for every setting that still names a
// documentation domain (RFC 2606: example.com, example.net, example.org
// and the .example top-level domain), as copied from an example config.
func (c *Config) warnPlaceholders(v *validator) {
	warn := func(field []any, value, host string) {
		if isPlaceholder(host) {
			c.Warnings = append(c.Warnings, v.format(field, "%q names %s, a documentation placeholder (RFC 2606): replace it with your own", value, host))
		}
	}
	urlHost := func(s string) string {
		if u, err := url.Parse(s); err == nil {
			return u.Hostname()
		}
		return ""
	}
	warn([]any{"blocklist", "policy"}, c.Blocklist.Policy, urlHost(c.Blocklist.Policy))
	warn([]any{"blocklist", "blocked_by"}, c.Blocklist.BlockedBy, urlHost(c.Blocklist.BlockedBy))
	warn([]any{"pages", "appeal"}, c.Pages.Appeal, urlHost(c.Pages.Appeal))
	if addr, ok := strings.CutPrefix(c.Pages.Contact, "mailto:"); ok {
		_, domain, _ := strings.Cut(addr, "@")
		warn([]any{"pages", "contact"}, c.Pages.Contact, domain)
	} else {
		warn([]any{"pages", "contact"}, c.Pages.Contact, urlHost(c.Pages.Contact))
	}
	if _, domain, ok := strings.Cut(c.TLS.Email, "@"); ok {
		warn([]any{"tls", "email"}, c.TLS.Email, domain)
	}
	for i, r := range c.Routes {
		warn([]any{"routes", i, "host"}, r.Host, strings.TrimPrefix(r.Host, "*."))
		for j, o := range r.Origins {
			warn([]any{"routes", i, "origins", j}, o.URL, urlHost(o.URL))
		}
	}
}

// isPlaceholder reports whether host is or is under a documentation domain.
func isPlaceholder(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, d := range []string{"example.com", "example.net", "example.org", "example"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// restartFields names the settings a reload cannot change, with their
// values, so that a reload can log which of them changed.
func (c *Config) RestartFields() map[string]string {
	return map[string]string{
		"listen.http": c.Listen.HTTP, "listen.https": c.Listen.HTTPS, "listen.admin": c.Listen.Admin,
		"listen.quic": c.Listen.QUIC, "listen.quic_advertise_port": strconv.Itoa(c.Listen.QUICAdvertisePort),
		"tls.mode": c.TLS.Mode, "tls.ca": c.TLS.CA, "tls.ca_root": c.TLS.CARoot, "tls.email": c.TLS.Email,
		"tls.storage": c.TLS.Storage, "tls.redirect_http": strconv.FormatBool(*c.TLS.RedirectHTTP),
		"tls.redirect_port": strconv.Itoa(c.TLS.RedirectPort), "tls.challenges": strings.Join(c.TLS.Challenges, ","),
		"admin.pprof": strconv.FormatBool(c.Admin.Pprof), "admin.tokens_file": c.Admin.TokensFile, "admin.client_ca": c.Admin.ClientCA,
		"admin.tls_cert": c.Admin.TLSCert, "admin.tls_key": c.Admin.TLSKey, "admin.auth_reads": strconv.FormatBool(c.Admin.AuthReads),
		"admin.hosts": strings.Join(c.Admin.Hosts, ","), "admin.cert_scopes": fmt.Sprint(c.Admin.CertScopes),
		"max_header_bytes":     strconv.Itoa(c.MaxHeaderBytes),
		"timeouts.read_header": c.Timeouts.ReadHeader.String(), "timeouts.idle": c.Timeouts.Idle.String(),
		"timeouts.dial": c.Timeouts.Dial.String(), "timeouts.response_header": c.Timeouts.ResponseHeader.String(),
		"timeouts.grace": c.Timeouts.Grace.String(), "tls.manage_ahead_limit": strconv.Itoa(c.TLS.ManageAheadLimit),
		"tls.on_demand": fmt.Sprint(c.TLS.OnDemand), "tls.cache_capacity": strconv.Itoa(c.TLS.CacheCapacity), "tls.key_type": c.TLS.KeyType,
		"tls.internal_lifetime": c.TLS.InternalLifetime.String(), "tls.dns": DNSString(c.TLS.DNS),
		"log.format": c.Log.Format, "log.level": c.Log.Level, "log.access_file": c.Log.AccessFile,
		"gc.memory_limit": c.GC.MemoryLimit, "gc.percent": strconv.Itoa(c.GC.Percent),
		"blocklist.watch": strconv.FormatBool(*c.Blocklist.Watch), "blocklist.debounce": c.Blocklist.Debounce.String(),
		"blocklist.poll_interval": c.Blocklist.PollInterval.String(),
		"blocklist.source":        c.Blocklist.Source, "fleet": fleetSummary(c.Fleet),
		// origins: transport settings, fixed when the proxy is built.
		"origins.max_response_header_bytes": strconv.FormatInt(c.Origins.MaxResponseHeaderBytes, 10), "origins.max_conns": strconv.Itoa(c.Origins.MaxConns),
		"origins.client": c.Origins.Client,
		"timeouts.drain": c.Timeouts.Drain.String(), "timeouts.write_idle": c.Timeouts.WriteIdle.String(),
		"timeouts.body_read":             c.Timeouts.BodyRead.String(),
		"limits.max_streams_per_conn":    strconv.Itoa(c.Limits.MaxStreamsPerConn),
		"limits.max_conns_per_client":    strconv.Itoa(c.Limits.MaxConnsPerClient),
		"limits.max_requests_per_client": strconv.Itoa(c.Limits.MaxRequestsPerClient),
		"limits.quic_pending_handshakes": strconv.Itoa(c.Limits.QUICPendingHandshakes),
	}
}

// fleetSummary is the fleet section in one string, for restartFields: the
// connection is made once, at start.
func fleetSummary(f *fleet.Config) string {
	if f == nil {
		return "none"
	}
	return fmt.Sprintf("%+v", *f)
}

// validatePages checks the pages section; the template and translation
// files themselves are checked when the renderer is built (loadRenderer).
func (c *Config) validatePages(v *validator) {
	pc := &c.Pages
	for k, f := range pc.Templates {
		if !slices.Contains(pages.TemplateKeys, k) {
			v.addf([]any{"pages", "templates", k}, "unknown page %q (want one of %s)", k, strings.Join(pages.TemplateKeys, ", "))
		} else if f == "" {
			v.addf([]any{"pages", "templates", k}, "empty: want a template file")
		}
	}
	if pc.Template != "" && pc.Templates["block"] != "" {
		v.addf([]any{"pages", "template"}, "also given as pages.templates.block: keep one")
	}
	badURL := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>"\^{|}`+"`", r) })
	}
	if u := pc.Contact; u != "" {
		pu, err := url.Parse(u)
		switch {
		case err == nil && pu.Scheme == "mailto" && strings.Contains(pu.Opaque, "@") && !badURL(u):
		case err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != "" && !badURL(u):
		default:
			v.addf([]any{"pages", "contact"}, "%q: want an absolute http or https URL or mailto:name@example.com (percent-encode spaces and <>\"\\^`{|})", u)
		}
	}
	if u := pc.Appeal; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || badURL(u) {
			v.addf([]any{"pages", "appeal"}, "%q: want an absolute http or https URL (percent-encode spaces and <>\"\\^`{|})", u)
		}
	}
	if pc.RetryAfter != nil && *pc.RetryAfter < 0 {
		v.addf([]any{"pages", "retry_after"}, "must not be negative")
	}
	if strings.ContainsFunc(pc.Operator, unicode.IsControl) {
		v.addf([]any{"pages", "operator"}, "holds a control character")
	}
}

func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// validateQUIC checks listen.quic and listen.quic_advertise_port (the
// address form itself is checked with the other listeners).
func (c *Config) validateQUIC(v *validator) {
	if p := c.Listen.QUICAdvertisePort; p < 0 || p > 65535 {
		v.addf([]any{"listen", "quic_advertise_port"}, "%d is not a port (1-65535, or 0 for the port of listen.quic)", p)
	}
	if c.Listen.QUIC == "" {
		if c.Listen.QUICAdvertisePort != 0 {
			v.addf([]any{"listen", "quic_advertise_port"}, "set, but listen.quic is not: set listen.quic (HTTP/3) or remove it")
		}
		return
	}
	if c.Listen.HTTPS == "" || c.TLS.Mode == "off" {
		v.addf([]any{"listen", "quic"}, "HTTP/3 needs the HTTPS listener: set listen.https and tls.mode internal or acme")
	}
}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}
