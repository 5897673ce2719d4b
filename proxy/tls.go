package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"go.uber.org/zap"
)

// TLSManager obtains and renews certificates with certmagic, for exactly
// the names a route or a block rule covers. A name nothing covers gets no
// certificate and no ACME order: the handshake fails.
type TLSManager struct {
	log       *slog.Logger
	metrics   *metrics.Metrics
	p         *Proxy
	magic     *certmagic.Config // on demand, for handshakes
	ahead     *certmagic.Config // for names managed ahead
	cache     *certmagic.Cache
	acme      []*certmagic.ACMEIssuer // one per config; none in internal mode
	mode      string
	limit     int
	policy    *certs.Policy
	patLabels certs.LabelSet // pattern labels of the issuance metrics
	tickets   *certs.TicketKeys

	// For wildcard certificates by DNS-01 (tls.mode acme): the config
	// and ACME issuer templates, one config per DNS-01 setup (by
	// dnsString), and the config of each wildcard name (under mu).
	base     certmagic.Config
	acmeTmpl certmagic.ACMEIssuer
	dnsCfgs  map[string]*certmagic.Config
	wildCfgs map[string]*certmagic.Config

	mu      sync.Mutex
	managed map[string]bool
	certs   map[string]time.Time // expiry of the newest certificate of each name
	labels  map[string]bool      // name label values of the exported expiry series
	ctx     context.Context
	cancel  context.CancelFunc

	closeStorage func()
}

// certStorage returns where certificates, ACME accounts, locks and the
// internal CA live: the fleet's Redis (fleet.Storage) when cfg has a fleet
// section, so that every edge shares them (failing fast while Redis is
// unreachable, see failFastStorage), else the tls.storage directory.
// closeStorage releases the Redis client.
func certStorage(cfg *Config) (storage certmagic.Storage, closeStorage func(), err error) {
	if cfg.Fleet != nil {
		fc := *cfg.Fleet
		if err := fc.ApplyDefaults(); err != nil {
			return nil, nil, err
		}
		if err := fc.Validate().Err("fleet"); err != nil {
			return nil, nil, err
		}
		rdb, err := fleet.NewClient(fc)
		if err != nil {
			return nil, nil, err
		}
		f := &failFastStorage{s: fleet.NewStorage(rdb, fc)}
		if cfg.TLS.Storage != "" {
			dir := filepath.Join(cfg.TLS.Storage, fleetCopyDir)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				rdb.Close()
				return nil, nil, fmt.Errorf("tls.storage: the local copy of the fleet's certificates: %w", err)
			}
			f.local = &certmagic.FileStorage{Path: dir}
		}
		return f, func() { rdb.Close() }, nil
	}
	if err := os.MkdirAll(cfg.TLS.Storage, 0o700); err != nil {
		return nil, nil, fmt.Errorf("tls.storage: %w", err)
	}
	return &certmagic.FileStorage{Path: cfg.TLS.Storage}, func() {}, nil
}

// Storage returns where certificates live (see certStorage); in fleet
// mode the HTTP/3 keys live there too.
func (t *TLSManager) Storage() certmagic.Storage { return t.magic.Storage }

// fleetCopyDir is the directory under tls.storage that holds, in fleet
// mode, the local copy of the certificates, keys and internal CA read from
// or written to the fleet's Redis (see failFastStorage).
const fleetCopyDir = "fleet-copy"

// NewTLSManager sets up certificate management for cfg.TLS. Certificates
// are kept in cfg.TLS.Storage, or with a fleet section in the fleet's
// Redis, so a restart (and, in a fleet, every other edge) reuses them.
func NewTLSManager(cfg *Config, log *slog.Logger, m *metrics.Metrics, p *Proxy) (*TLSManager, error) {
	t := &TLSManager{log: log, metrics: m, p: p, mode: cfg.TLS.Mode, limit: cfg.TLS.ManageAheadLimit,
		managed: map[string]bool{}, certs: map[string]time.Time{}, labels: map[string]bool{}}
	storage, closeStorage, err := certStorage(cfg)
	if err != nil {
		return nil, err
	}
	t.closeStorage = closeStorage
	t.ctx, t.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			t.cancel()
			closeStorage()
		}
	}()
	t.patLabels.Max = patternLabels
	od := cfg.TLS.OnDemand
	t.policy = certs.NewPolicy(certs.Limits{MaxNewPerHour: od.MaxNewPerHour, MaxNames: od.MaxNames, Ask: od.Ask, AskTimeout: od.AskTimeout},
		p.coveredPatterns, t.stored)
	t.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   t.configForCert,
		Capacity:           cfg.TLS.CacheCapacity,
		RenewCheckInterval: renewCheckInterval,
		Logger:             zap.NewNop(),
	})
	// Two configs share one cache and one storage: the on-demand one
	// answers handshakes (and asks decide first), and the ahead one
	// obtains the exact names at start and reload, which certmagic does
	// not do for a config with on-demand set.
	base := certmagic.Config{
		Storage:   storage,
		OnEvent:   t.onEvent,
		Logger:    zap.NewNop(),
		KeySource: certmagic.StandardKeyGenerator{KeyType: certmagic.KeyType(cfg.TLS.KeyType)},
	}
	t.base = base
	t.dnsCfgs, t.wildCfgs = map[string]*certmagic.Config{}, map[string]*certmagic.Config{}
	onDemand := base
	onDemand.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: t.decide}
	t.magic = certmagic.New(t.cache, onDemand)
	t.ahead = certmagic.New(t.cache, base)
	switch cfg.TLS.Mode {
	case "internal":
		ca := newInternalCA(storage)
		// Read (or create) the root now. A directory that fails is an
		// error at start, as it always was; the fleet's Redis may be down
		// for a while: the edge then starts with what it has, and the CA
		// is read when a certificate is first needed.
		ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
		err := ca.load(ctx)
		cancel()
		if err != nil && cfg.Fleet == nil {
			return nil, err
		}
		if err != nil {
			log.Warn("internal CA not loaded from the fleet's Redis yet; certificates are issued once it can be read", "event", "tls_internal_ca", "error", err.Error())
		}
		ca.lifetime = cfg.TLS.InternalLifetime
		t.magic.Issuers = []certmagic.Issuer{ca}
		t.ahead.Issuers = []certmagic.Issuer{ca}
	case "acme":
		tmpl := certmagic.ACMEIssuer{CA: cfg.TLS.CA, Email: cfg.TLS.Email, Agreed: true, Logger: zap.NewNop(),
			DisableHTTPChallenge:    !slices.Contains(cfg.TLS.Challenges, "http-01"),
			DisableTLSALPNChallenge: !slices.Contains(cfg.TLS.Challenges, "tls-alpn-01")}
		if cfg.TLS.CARoot != "" {
			pemData, err := os.ReadFile(cfg.TLS.CARoot)
			if err != nil {
				return nil, fmt.Errorf("tls.ca_root: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemData) {
				return nil, fmt.Errorf("tls.ca_root: %s holds no PEM certificate", cfg.TLS.CARoot)
			}
			tmpl.TrustedRoots = pool
		}
		t.acmeTmpl = tmpl
		for _, c := range []*certmagic.Config{t.magic, t.ahead} {
			iss := certmagic.NewACMEIssuer(c, tmpl)
			c.Issuers = []certmagic.Issuer{iss}
			t.acme = append(t.acme, iss)
		}
	default:
		return nil, fmt.Errorf("tls.mode %q has no certificate manager", cfg.TLS.Mode)
	}
	t.policy.Seed(t.storedNames(t.ctx))
	t.tickets = certs.NewTicketKeys(ticketKeyRotation, ticketKeysKept)
	go t.refreshBudgets()
	ok = true
	return t, nil
}

// Tunables of certificate maintenance; tests shorten them.
var (
	// renewCheckInterval is how often certmagic looks for certificates
	// to renew (a third of their lifetime before expiry).
	renewCheckInterval = 10 * time.Minute
	// ticketKeyRotation is how often a new session ticket key is made;
	// ticketKeysKept keys are accepted, so a ticket resumes for at most
	// ticketKeyRotation * ticketKeysKept.
	ticketKeyRotation = time.Hour
	ticketKeysKept    = 24
	// budgetRefresh is how often the remaining-budget gauges are set.
	budgetRefresh = 15 * time.Second
)

// patternLabels is how many distinct covering patterns get their own
// label value in the issuance metrics; later ones share "other".
const patternLabels = 100

// issuerKey is where certmagic stores the certificates of our issuer.
func (t *TLSManager) issuerKey() string {
	if len(t.ahead.Issuers) == 0 {
		return ""
	}
	return t.ahead.Issuers[0].IssuerKey()
}

// stored reports whether storage holds a whole certificate for name, or
// for the wildcard one level above it: such a name is not new, and a
// handshake for it loads that certificate rather than obtaining one.
func (t *TLSManager) stored(ctx context.Context, name string) bool {
	if t.storedWhole(ctx, name) {
		return true
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		return t.storedWhole(ctx, "*."+parent)
	}
	return false
}

// storedWhole reports whether the key, the certificate and the metadata
// of name's certificate are all in storage. certmagic stores them one
// after another, the metadata last, and caches the certificate after
// that: a certificate file alone is one being stored, which a handshake
// cannot load yet. Allowed then, the handshake would get a certificate
// of its own, so that a name under a wildcard got a second order.
func (t *TLSManager) storedWhole(ctx context.Context, name string) bool {
	key := t.issuerKey()
	for _, k := range []string{certmagic.StorageKeys.SiteMeta(key, name), certmagic.StorageKeys.SiteCert(key, name),
		certmagic.StorageKeys.SitePrivateKey(key, name)} {
		if !t.ahead.Storage.Exists(ctx, k) {
			return false
		}
	}
	return true
}

// storedNames lists the names storage holds certificates for, so that
// they count towards tls.on_demand.max_names after a restart.
func (t *TLSManager) storedNames(ctx context.Context) []string {
	prefix := certmagic.StorageKeys.CertsPrefix(t.issuerKey())
	keys, err := t.ahead.Storage.List(ctx, prefix, false)
	if err != nil {
		return nil // none yet
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, path.Base(k))
	}
	return names
}

// configForCert is certmagic's GetConfigForCert: certificates whose names
// are still covered get the config without on-demand, so that certmagic's
// maintenance renews them in the background like the names managed ahead
// (certmagic leaves on-demand certificates to be renewed at a handshake,
// which a quiet name may not have before it expires). A certificate no
// longer covered gets the on-demand config, which maintenance skips, and
// whose handshake renewal the policy refuses.
func (t *TLSManager) configForCert(c certmagic.Certificate) (*certmagic.Config, error) {
	if len(c.Names) == 1 {
		t.mu.Lock()
		cfg := t.wildCfgs[c.Names[0]]
		t.mu.Unlock()
		if cfg != nil {
			return cfg, nil
		}
	}
	for _, n := range c.Names {
		if _, ok := t.policy.Covering(n); !ok {
			return t.magic, nil
		}
	}
	return t.ahead, nil
}

// refreshBudgets sets edgeblock_tls_issuance_budget_remaining now and
// then, since budgets come back with time, not with events.
func (t *TLSManager) refreshBudgets() {
	tick := time.NewTicker(budgetRefresh)
	defer tick.Stop()
	for {
		t.setBudgets()
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *TLSManager) setBudgets() {
	for pattern, n := range t.policy.Remaining() {
		if l := t.patLabels.Label(pattern); l != certs.OtherLabel {
			t.metrics.TLSBudgetRemaining.WithLabelValues(l).Set(float64(n))
		}
	}
}

// SetPorts tells the ACME issuer where our own listeners answer HTTP-01
// and TLS-ALPN-01 challenges, so that certmagic finds them in use and
// relies on our handlers instead of binding its own.
func (t *TLSManager) SetPorts(httpAddr, httpsAddr string) {
	for _, iss := range t.acme {
		if host, port, err := net.SplitHostPort(httpAddr); err == nil {
			iss.ListenHost = host
			iss.AltHTTPPort, _ = strconv.Atoi(port)
		}
		if _, port, err := net.SplitHostPort(httpsAddr); err == nil {
			iss.AltTLSALPNPort, _ = strconv.Atoi(port)
		}
	}
}

// Covers reports whether a route or an active block-mode rule covers
// name; only then may a certificate be obtained for it.
func (p *Proxy) Covers(name string) (bool, error) {
	if p.state.Load() == nil {
		return false, errors.New("not loaded yet")
	}
	n, err := blocklist.Normalize(name)
	if err != nil {
		return false, err
	}
	_, ok := p.coveredPatterns().Match(n, time.Now())
	return ok, nil
}

// coveredPatterns returns the patterns of the state in use.
func (p *Proxy) coveredPatterns() *certs.Patterns {
	if st := p.state.Load(); st != nil {
		return st.coveredSet()
	}
	return nil
}

// decide is certmagic's on-demand DecisionFunc: the policy decides, a
// refusal is counted by reason and logged.
func (t *TLSManager) decide(ctx context.Context, name string) error {
	d, err := t.policy.Decide(ctx, name)
	if err != nil {
		reason := certs.ReasonNotCovered
		var r *certs.Refusal
		if errors.As(err, &r) {
			reason = r.Reason
		}
		t.metrics.TLSHandshakeRefuse.WithLabelValues(reason).Inc()
		t.log.Info("certificate refused", "event", "tls_refused", "name", name, "reason", reason, "error", err.Error())
		t.setBudgets()
		return err
	}
	if d.New {
		t.log.Info("new name allowed", "event", "tls_new_name", "name", name, "pattern", d.Pattern.String())
		t.setBudgets()
	}
	return nil
}

// TLSConfig returns the listener's TLS config: certificates from
// certmagic; TLS 1.2 with ECDHE and AEAD suites only (AES-GCM,
// ChaCha20-Poly1305), or TLS 1.3; HTTP/2 and HTTP/1.1 through ALPN;
// session ticket keys rotated hourly. A name that we do not cover, or may
// not get a certificate for now, gets the unrecognized_name alert.
func (t *TLSManager) TLSConfig() *tls.Config {
	c, _ := t.TLSConfigs()
	return c
}

// TLSConfigs returns the TLS configs of the HTTPS listener (TLSConfig) and
// of the QUIC listener: the same certificates and the same in-process
// decision (getCertificate), whose session ticket keys rotate together;
// the QUIC one offers TLS 1.3 only (QUIC needs it) and ALPN h3 only (the
// tls-alpn-01 challenge is answered over TCP). Call it once: each call
// starts a rotation.
func (t *TLSManager) TLSConfigs() (tcp, quic *tls.Config) {
	c := t.magic.TLSConfig()
	c.GetCertificate = t.getCertificate
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	q := c.Clone()
	q.MinVersion, q.CipherSuites = tls.VersionTLS13, nil
	q.NextProtos = []string{"h3"}
	c.NextProtos = append([]string{"h2", "http/1.1"}, c.NextProtos...)
	t.tickets.Rotate(t.ctx, c, q)
	return c, q
}

// handshakeError counts and logs a handshake that got no certificate for a
// name a route or rule covers (names nothing covers are counted by decide).
func (t *TLSManager) handshakeError(name string, err error) {
	if ok, _ := t.p.Covers(name); !ok {
		return
	}
	reason := "obtain"
	if strings.Contains(err.Error(), "fleet storage") || strings.Contains(err.Error(), "redis") {
		reason = "storage"
	}
	t.metrics.TLSHandshakeErrors.WithLabelValues(reason).Inc()
	t.log.Warn("no certificate for a covered name; the handshake failed and the next one tries again", "event", "tls_handshake_error",
		"name", name, "reason", reason, "error", err.Error())
}

// getCertificate is the listener's GetCertificate. When the policy
// refused the name it returns no certificate and no error: crypto/tls
// then finds no certificate at all and sends the unrecognized_name alert
// (112), where an error would send internal_error (80). Other errors
// (the storage or the CA failed) are counted and logged by handshakeError.
func (t *TLSManager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := t.magic.GetCertificate(hello)
	var r *certs.Refusal
	if errors.As(err, &r) {
		return nil, nil
	}
	if err != nil {
		t.handshakeError(hello.ServerName, err)
	}
	return cert, err
}

// HTTPHandler returns the plain-HTTP listener's handler: ACME HTTP-01
// challenges first (so a blocked host still validates), then a 308
// redirect to https keeping host, path and query, or, with redirect off,
// the proxy itself. Hosts that no route or rule covers are not redirected
// but get the proxy's 404 page. The redirect names port httpsPort unless it is 443.
func (t *TLSManager) HTTPHandler(next *Proxy, redirect bool, httpsPort int) http.Handler {
	port := ""
	if httpsPort != 443 {
		port = ":" + strconv.Itoa(httpsPort)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(t.acme) > 0 && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			next.observe(w, r, metrics.OutcomeACME, func(w http.ResponseWriter) {
				if !t.acme[0].HandleHTTPChallenge(w, r) {
					http.NotFound(w, r)
				}
			})
			return
		}
		if !redirect {
			next.ServeHTTP(w, r)
			return
		}
		host, err := decideHost(namesOf(r))
		if covered, _ := next.Covers(host); err != nil || !covered || strings.Contains(host, ":") {
			// No certificate would be had there: the proxy answers with
			// its 400 or 404 page instead of sending the visitor into a
			// failing handshake.
			next.ServeHTTP(w, r)
			return
		}
		next.observe(w, r, metrics.OutcomeRedirect, func(w http.ResponseWriter) {
			target := "https://" + host + port + r.URL.RequestURI()
			w.Header().Set("Location", target)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusPermanentRedirect)
		})
	})
}

// ManageAhead obtains certificates for the exact names of b's routes and
// block-mode rules (a report-mode rule covers no name), up to the configured limit, so that first visitors do not
// wait. Names under wildcards are obtained on first use.
func (t *TLSManager) ManageAhead(b *Bundle) {
	var names []string
	add := func(n string) bool {
		if len(names) >= t.limit {
			return false
		}
		if net.ParseIP(n) != nil && t.mode == "acme" {
			return true // public ACME CAs do not issue for IP addresses
		}
		names = append(names, n)
		return true
	}
	// Wildcard routes with tls.wildcard get one certificate for
	// "*.name": signed by the internal CA, or by DNS-01 with the
	// route's DNS setup.
	wild := map[*certmagic.Config][]string{}
	for i := range b.Config.Routes {
		r := &b.Config.Routes[i]
		n, err := normalizePattern(r.Host)
		switch {
		case err != nil:
		case !strings.HasPrefix(n, "*."):
			add(n)
		case r.wildcardCert() && t.mode == "internal":
			add(n)
		case r.wildcardCert() && t.mode == "acme":
			cfg, err := t.dnsConfig(b.Config.dnsFor(r))
			if err != nil {
				t.log.Error("wildcard certificate not managed", "event", "tls_manage", "name", n, "error", err.Error())
				continue
			}
			t.mu.Lock()
			t.wildCfgs[n] = cfg
			t.mu.Unlock()
			wild[cfg] = append(wild[cfg], n)
		}
	}
	now := time.Now()
	for r := range b.List.Rules() {
		if !r.Wildcard && r.Mode == blocklist.ModeBlock && r.ActiveAt(now) && !add(r.Name) {
			break
		}
	}
	t.mu.Lock()
	fresh := func(names []string) []string {
		var out []string
		for _, n := range names {
			if !t.managed[n] {
				t.managed[n] = true
				out = append(out, n)
			}
		}
		return out
	}
	todo := map[*certmagic.Config][]string{t.ahead: fresh(names)}
	for cfg, ns := range wild {
		todo[cfg] = fresh(ns)
	}
	ctx := t.ctx
	t.mu.Unlock()
	// Names the new state no longer covers lose their expiry series.
	t.refreshExpiry()
	for cfg, ns := range todo {
		if len(ns) == 0 {
			continue
		}
		if err := cfg.ManageAsync(ctx, ns); err != nil {
			t.log.Error("managing certificates failed", "event", "tls_manage", "names", len(ns), "error", err.Error())
		}
	}
}

// dnsConfig returns the certmagic config that obtains certificates by
// DNS-01 with d, made on first use.
func (t *TLSManager) dnsConfig(d *DNSConfig) (*certmagic.Config, error) {
	key := dnsString(d)
	t.mu.Lock()
	defer t.mu.Unlock()
	if cfg, ok := t.dnsCfgs[key]; ok {
		return cfg, nil
	}
	solver, err := d.certsDNS().Solver()
	if err != nil {
		return nil, err
	}
	cfg := certmagic.New(t.cache, t.base)
	tmpl := t.acmeTmpl
	tmpl.DNS01Solver = solver
	cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, tmpl)}
	t.dnsCfgs[key] = cfg
	return cfg, nil
}

// onEvent logs certmagic's certificate events and keeps the metrics.
func (t *TLSManager) onEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining":
		t.log.Info("obtaining certificate", "event", "tls_obtaining", "name", name)
	case "cert_obtained":
		renewal, _ := data["renewal"].(bool)
		t.metrics.TLSObtain.WithLabelValues("success").Inc()
		t.metrics.TLSObtainByPattern.WithLabelValues(t.patternLabel(name), "success").Inc()
		t.log.Info("certificate obtained", "event", "tls_obtained", "name", name, "renewal", renewal, "issuer", fmt.Sprint(data["issuer"]))
		// The event comes before certmagic puts a renewed certificate
		// in its cache: the expiry is read from what it stored.
		key, _ := data["certificate_path"].(string)
		t.recordStored(ctx, name, key)
	case "cert_failed":
		renewal, _ := data["renewal"].(bool)
		t.metrics.TLSObtain.WithLabelValues("failure").Inc()
		t.metrics.TLSObtainByPattern.WithLabelValues(t.patternLabel(name), "failure").Inc()
		t.log.Error("certificate obtain failed", "event", "tls_failed", "name", name, "renewal", renewal, "error", fmt.Sprint(data["error"]))
	case "cached_managed_cert":
		if sans, ok := data["sans"].([]string); ok {
			for _, s := range sans {
				t.log.Info("certificate loaded from storage", "event", "tls_cached", "name", s)
				t.recordCached(s)
			}
		}
	}
	return nil
}

// patternLabel is the pattern label of name in the issuance metrics.
func (t *TLSManager) patternLabel(name string) string {
	p, ok := t.policy.Covering(name)
	if !ok {
		return certs.OtherLabel
	}
	return t.patLabels.Label(p.String())
}

// issuerLabel is the issuer label of the expiry series: "internal" for the
// internal CA, whose certificates are renewed locally and never page, and
// "acme" for a public or private ACME CA.
func (t *TLSManager) issuerLabel() string {
	if t.mode == "internal" {
		return "internal"
	}
	return "acme"
}

// recordStored notes the expiry of the certificate certmagic just stored
// under key for name.
func (t *TLSManager) recordStored(ctx context.Context, name, key string) {
	pemData, err := t.ahead.Storage.Load(ctx, key)
	if err != nil {
		t.log.Warn("certificate expiry unknown", "event", "tls_expiry", "name", name, "error", err.Error())
		t.recordCached(name)
		return
	}
	block, _ := pem.Decode(pemData)
	if block == nil {
		return
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return
	}
	t.recordExpiry(name, leaf.NotAfter)
}

// recordCached notes the expiry of the newest certificate in the cache for
// name.
func (t *TLSManager) recordCached(name string) {
	var notAfter time.Time
	for _, c := range t.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && c.Leaf.NotAfter.After(notAfter) {
			notAfter = c.Leaf.NotAfter
		}
	}
	if !notAfter.IsZero() {
		t.recordExpiry(name, notAfter)
	}
}

// recordExpiry notes that name's newest certificate expires at notAfter
// and updates the series.
func (t *TLSManager) recordExpiry(name string, notAfter time.Time) {
	t.mu.Lock()
	if old, ok := t.certs[name]; !ok || notAfter.After(old) {
		t.certs[name] = notAfter
	}
	t.mu.Unlock()
	t.refreshExpiry()
}

// refreshExpiry sets edgeblock_tls_certificate_expiry_timestamp_seconds
// from the certificates of the names the current routes and rules cover,
// under a bounded label: the name itself when a route or rule names it
// exactly, else the wildcard route or rule that covers it (the earliest
// expiry under it wins). Series of labels nothing covers any more are
// deleted, so an alert never fires for a name that was dropped.
func (t *TLSManager) refreshExpiry() {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := map[string]time.Time{}
	for name, notAfter := range t.certs {
		if _, ok := t.policy.Covering(name); !ok {
			continue
		}
		label := t.expiryLabel(name)
		if old, ok := want[label]; !ok || notAfter.Before(old) {
			want[label] = notAfter
		}
	}
	issuer := t.issuerLabel()
	for label := range t.labels {
		if _, ok := want[label]; !ok {
			t.metrics.CertExpiry.DeleteLabelValues(label, issuer)
			delete(t.labels, label)
		}
	}
	for label, notAfter := range want {
		t.metrics.CertExpiry.WithLabelValues(label, issuer).Set(float64(notAfter.Unix()))
		t.labels[label] = true
	}
}

func (t *TLSManager) expiryLabel(name string) string {
	st := t.p.state.Load()
	if st == nil {
		return name
	}
	if _, ok := st.routes.exact[name]; ok {
		return name
	}
	if r := st.routes.lookup(name); r != nil {
		return r.pattern
	}
	if rule, ok := st.list.Match(name, time.Now()); ok {
		return rule.Pattern()
	}
	return name
}

// Stop ends certificate maintenance and closes the fleet's Redis client,
// if any.
func (t *TLSManager) Stop() {
	t.cancel()
	t.cache.Stop()
	t.closeStorage()
}
