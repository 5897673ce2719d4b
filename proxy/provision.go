package proxy

import (
	"net/http"
	"net/netip"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
)

// edgeConfig is a validated Config provisioned for the request path: what
// the request path derives from the file (parsed prefixes, canonical
// header names, normalized hosts) is computed once, when the config is
// applied, and kept here rather than in Config, which holds only the
// file's content and its defaults. A state's edgeConfig is never changed
// after the state is built.
type edgeConfig struct {
	*config.Config
	// trusted is TrustedProxies parsed and masked.
	trusted []netip.Prefix
	// geoHeader is Geo.Header in canonical form; empty when unset.
	geoHeader string
	// feedHost is Transparency.Host normalized; empty means no feed.
	feedHost string
}

// provision derives the request path's view of c, which must have been
// validated (LoadConfig, ParseConfig): entries that validation rejects
// are left out rather than reported again.
func provision(c *config.Config) *edgeConfig {
	e := &edgeConfig{Config: c}
	for _, s := range c.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		e.trusted = append(e.trusted, p.Masked())
	}
	if c.Geo.Header != "" {
		e.geoHeader = http.CanonicalHeaderKey(c.Geo.Header)
	}
	if h := c.Transparency.Host; h != "" {
		if n, err := blocklist.Normalize(h); err == nil {
			e.feedHost = n
		}
	}
	return e
}

// trustsAddr reports whether a is in trusted_proxies.
func (c *edgeConfig) trustsAddr(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
