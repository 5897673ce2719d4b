package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/certmgr"
	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// renewCheckInterval is certmgr.Options.RenewCheckInterval (zero: its
// default); tests shorten it.
var renewCheckInterval time.Duration

// certOptions returns the certificate manager's options of cfg's tls and
// fleet sections.
func certOptions(cfg *config.Config) certmgr.Options {
	return certmgr.Options{Config: cfg.TLS.Config, Fleet: cfg.Fleet, RenewCheckInterval: renewCheckInterval}
}

// newCertManager starts certificate management for cfg (tls.mode internal
// or acme) on behalf of p.
func newCertManager(cfg *config.Config, log *slog.Logger, m *metrics.Metrics, p *Proxy) (*certmgr.Manager, error) {
	return certmgr.New(certOptions(cfg), log, m, certEdge{p})
}

// InternalRootPEM returns the internal CA's root certificate for the
// config's storage (tls.storage, or the fleet's Redis when the config has
// a fleet section), creating the CA if it does not exist yet.
func InternalRootPEM(cfg *config.Config) ([]byte, error) {
	return certmgr.InternalRootPEM(cfg.TLS.Storage, cfg.Fleet)
}

// certEdge is the proxy as the certificate manager sees it
// (certmgr.Edge).
type certEdge struct{ p *Proxy }

func (e certEdge) Covers(name string) (bool, error) { return e.p.Covers(name) }
func (e certEdge) CoveredPatterns() *certs.Patterns { return e.p.coveredPatterns() }

// ExpiryLabel is name when a route or rule names it exactly, else the
// wildcard route or rule that covers it.
func (e certEdge) ExpiryLabel(name string) string {
	st := e.p.state.Load()
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

// aheadNames lists, in order, the names of b whose certificates are
// obtained ahead of their first handshake: the routes' exact hosts and
// the "*.name" of wildcard routes with tls.wildcard (with their DNS-01
// setup), then the names of the active block-mode rules (a report-mode
// rule covers no name). Names under other wildcards are obtained on first
// use.
func aheadNames(b *reload.Bundle) []certmgr.Ahead {
	var names []certmgr.Ahead
	for i := range b.Config.Routes {
		r := &b.Config.Routes[i]
		n, err := normalizePattern(r.Host)
		switch {
		case err != nil:
		case !strings.HasPrefix(n, "*."):
			names = append(names, certmgr.Ahead{Name: n})
		case r.WildcardCert():
			a := certmgr.Ahead{Name: n}
			if d := b.Config.DNSFor(r); d != nil {
				dns := d.CertsDNS()
				a.DNS = &dns
			}
			names = append(names, a)
		}
	}
	now := time.Now()
	for r := range b.List.Rules() {
		if !r.Wildcard && r.Mode == blocklist.ModeBlock && r.ActiveAt(now) {
			names = append(names, certmgr.Ahead{Name: r.Name})
		}
	}
	return names
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

// httpHandler returns the plain-HTTP listener's handler: ACME HTTP-01
// challenges first (so a blocked host still validates), then a 308
// redirect to https keeping host, path and query, or, with redirect off,
// the proxy itself. Hosts that no route or rule covers are not redirected
// but get the proxy's 404 page. The redirect names port httpsPort unless
// it is 443.
func httpHandler(certs *certmgr.Manager, next *Proxy, redirect bool, httpsPort int) http.Handler {
	port := ""
	if httpsPort != 443 {
		port = ":" + strconv.Itoa(httpsPort)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if certs.IsHTTPChallenge(r) {
			next.observe(w, r, metrics.OutcomeACME, func(w http.ResponseWriter) {
				certs.HandleHTTPChallenge(w, r)
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
