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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"go.uber.org/zap"
)

// TLSManager obtains and renews certificates with certmagic, for exactly
// the names a route or a block rule covers. A name nothing covers gets no
// certificate and no ACME order: the handshake fails.
type TLSManager struct {
	log     *slog.Logger
	metrics *Metrics
	p       *Proxy
	magic   *certmagic.Config // on demand, for handshakes
	ahead   *certmagic.Config // for names managed ahead
	cache   *certmagic.Cache
	acme    []*certmagic.ACMEIssuer // one per config; none in internal mode
	mode    string
	limit   int

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
		if p := fc.Validate(); len(p) > 0 {
			return nil, nil, errors.New(strings.Join(p, "\n"))
		}
		rdb, err := fleet.NewClient(fc)
		if err != nil {
			return nil, nil, err
		}
		return &failFastStorage{s: fleet.NewStorage(rdb, fc)}, func() { rdb.Close() }, nil
	}
	if err := os.MkdirAll(cfg.TLS.Storage, 0o700); err != nil {
		return nil, nil, fmt.Errorf("tls.storage: %w", err)
	}
	return &certmagic.FileStorage{Path: cfg.TLS.Storage}, func() {}, nil
}

// NewTLSManager sets up certificate management for cfg.TLS. Certificates
// are kept in cfg.TLS.Storage, or with a fleet section in the fleet's
// Redis, so a restart (and, in a fleet, every other edge) reuses them.
func NewTLSManager(cfg *Config, log *slog.Logger, m *Metrics, p *Proxy) (*TLSManager, error) {
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
	t.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return t.magic, nil },
		Logger:           zap.NewNop(),
	})
	// Two configs share one cache and one storage: the on-demand one
	// answers handshakes (and asks decide first), and the ahead one
	// obtains the exact names at start and reload, which certmagic does
	// not do for a config with on-demand set.
	base := certmagic.Config{
		Storage: storage,
		OnEvent: t.onEvent,
		Logger:  zap.NewNop(),
	}
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
		for _, c := range []*certmagic.Config{t.magic, t.ahead} {
			iss := certmagic.NewACMEIssuer(c, tmpl)
			c.Issuers = []certmagic.Issuer{iss}
			t.acme = append(t.acme, iss)
		}
	default:
		return nil, fmt.Errorf("tls.mode %q has no certificate manager", cfg.TLS.Mode)
	}
	ok = true
	return t, nil
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

// Covers reports whether a route or an active rule covers name; only then
// may a certificate be obtained for it.
func (p *Proxy) Covers(name string) (bool, error) {
	st := p.state.Load()
	if st == nil {
		return false, errors.New("not loaded yet")
	}
	n, err := blocklist.Normalize(name)
	if err != nil {
		return false, err
	}
	if st.routes.covers(n) {
		return true, nil
	}
	_, ok := st.list.Match(n, time.Now())
	return ok, nil
}

// decide is certmagic's on-demand DecisionFunc.
func (t *TLSManager) decide(ctx context.Context, name string) error {
	ok, err := t.p.Covers(name)
	if err == nil && !ok {
		err = fmt.Errorf("no route or block rule covers %q", name)
	}
	if err != nil {
		t.metrics.TLSHandshakeRefuse.Inc()
		t.log.Info("certificate refused", "event", "tls_refused", "name", name, "error", err.Error())
	}
	return err
}

// TLSConfig returns the listener's TLS config: certificates from
// certmagic, TLS 1.2 or later, HTTP/2 and HTTP/1.1 through ALPN.
func (t *TLSManager) TLSConfig() *tls.Config {
	c := t.magic.TLSConfig()
	get := c.GetCertificate
	c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := get(hello)
		if err != nil {
			t.handshakeError(hello.ServerName, err)
		}
		return cert, err
	}
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = append([]string{"h2", "http/1.1"}, c.NextProtos...)
	return c
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
			next.observe(w, r, OutcomeACME, func(w http.ResponseWriter) {
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
		next.observe(w, r, OutcomeRedirect, func(w http.ResponseWriter) {
			target := "https://" + host + port + r.URL.RequestURI()
			w.Header().Set("Location", target)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusPermanentRedirect)
		})
	})
}

// ManageAhead obtains certificates for the exact names of b's routes and
// block rules, up to the configured limit, so that first visitors do not
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
	for _, r := range b.Config.Routes {
		if n, err := normalizePattern(r.Host); err == nil && !strings.HasPrefix(n, "*.") {
			add(n)
		}
	}
	now := time.Now()
	for r := range b.List.Rules() {
		if !r.Wildcard && r.ActiveAt(now) && !add(r.Name) {
			break
		}
	}
	t.mu.Lock()
	var fresh []string
	for _, n := range names {
		if !t.managed[n] {
			t.managed[n] = true
			fresh = append(fresh, n)
		}
	}
	ctx := t.ctx
	t.mu.Unlock()
	// Names the new state no longer covers lose their expiry series.
	t.refreshExpiry()
	if len(fresh) == 0 {
		return
	}
	if err := t.ahead.ManageAsync(ctx, fresh); err != nil {
		t.log.Error("managing certificates failed", "event", "tls_manage", "names", len(fresh), "error", err.Error())
	}
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
		t.log.Info("certificate obtained", "event", "tls_obtained", "name", name, "renewal", renewal, "issuer", fmt.Sprint(data["issuer"]))
		// The event comes before certmagic puts a renewed certificate
		// in its cache: the expiry is read from what it stored.
		key, _ := data["certificate_path"].(string)
		t.recordStored(ctx, name, key)
	case "cert_failed":
		renewal, _ := data["renewal"].(bool)
		t.metrics.TLSObtain.WithLabelValues("failure").Inc()
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
		if ok, err := t.p.Covers(name); err != nil || !ok {
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
			t.metrics.certExpiry.DeleteLabelValues(label, issuer)
			delete(t.labels, label)
		}
	}
	for label, notAfter := range want {
		t.metrics.certExpiry.WithLabelValues(label, issuer).Set(float64(notAfter.Unix()))
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
