package certmgr

import (
	"fmt"
	"net"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/proxy/certs"
)

// Ahead is a name to obtain a certificate for before its first handshake.
type Ahead struct {
	// Name is an exact name, or "*.parent" for one wildcard certificate
	// serving the names one label under parent.
	Name string
	// DNS is the DNS-01 setup of a wildcard certificate in mode acme (an
	// ACME CA issues wildcards through DNS-01 only); unused otherwise,
	// where the internal CA signs wildcards like any name.
	DNS *certs.DNS
}

// ManageAhead obtains certificates for names in order, up to
// Options.ManageAheadLimit of them (wildcards by DNS-01 aside), so that
// first visitors do not wait; names already managed are left alone, and
// an IP address is skipped in mode acme (public ACME CAs do not issue
// for them). Names under wildcard patterns without a wildcard
// certificate are obtained on first use. The expiry series of names the
// edge no longer covers are removed. Orders run in the background.
func (t *Manager) ManageAhead(names []Ahead) {
	var exact []string
	wild := map[*certmagic.Config][]string{}
	for _, a := range names {
		if strings.HasPrefix(a.Name, "*.") && t.mode == "acme" {
			cfg, err := t.dnsConfig(a.DNS)
			if err != nil {
				t.log.Error("wildcard certificate not managed", "event", "tls_manage", "name", a.Name, "error", err.Error())
				continue
			}
			t.mu.Lock()
			t.wildCfgs[a.Name] = cfg
			t.mu.Unlock()
			wild[cfg] = append(wild[cfg], a.Name)
			continue
		}
		if len(exact) >= t.limit {
			continue
		}
		if net.ParseIP(a.Name) != nil && t.mode == "acme" {
			continue
		}
		exact = append(exact, a.Name)
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
	todo := map[*certmagic.Config][]string{t.ahead: fresh(exact)}
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
// DNS-01 with d, made on first use and kept per setting.
func (t *Manager) dnsConfig(d *certs.DNS) (*certmagic.Config, error) {
	if d == nil {
		return nil, fmt.Errorf("no DNS-01 setup (tls.dns or the route's tls.dns)")
	}
	key := fmt.Sprintf("%+v", *d)
	t.mu.Lock()
	defer t.mu.Unlock()
	if cfg, ok := t.dnsCfgs[key]; ok {
		return cfg, nil
	}
	solver, err := d.Solver()
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
