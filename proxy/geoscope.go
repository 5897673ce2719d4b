package proxy

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
)

// decide finds the blocklist rule for a request to host at now, puts it
// in *rule and reports whether there is one: the one host decision. When
// no scoped rule (countries=, except_countries=) covers host it is the
// list's Match, with no country lookup and no allocation; otherwise it
// finds the visitor's country (recorded in *geo for the access line and
// the page) and asks MatchWhere. The request path and the check of
// requests in flight after a reload (inflight.go) both decide here, so a
// scoped rule closes what it would refuse. The rule is written through a
// pointer, not returned: on HTTP/2 each request runs on a new goroutine,
// and copies of a Rule (some 280 bytes) in the frames of the request path
// make its stack grow by copying.
func (p *Proxy) decide(rule *blocklist.Rule, st *state, r *http.Request, host string, now time.Time, geo *geoIndex) (ok bool) {
	if !st.list.ScopedFor(host) {
		*rule, ok = st.list.Match(host, now)
		return ok
	}
	country := ""
	if r != nil {
		country = p.visitorCountry(r, st.cfg)
	}
	*geo = indexOf(country)
	*rule, ok = st.list.MatchWhere(host, blocklist.Where{Country: country, UnknownBlocks: st.cfg.Geo.UnknownBlocks()}, now)
	return ok
}

// geoIndex records a visitor's country in an access entry: 0 when no
// country was looked up, 1 for unknown, else 2 + the code's index in
// countryCodes.
type geoIndex uint16

// countryCodes are the codes blocklist.Country accepts, sorted.
var countryCodes = blocklist.Countries()

// indexOf returns the geoIndex of a looked-up country ("" for unknown).
func indexOf(country string) geoIndex {
	if i, ok := slices.BinarySearch(countryCodes, country); ok {
		return geoIndex(i + 2)
	}
	return 1
}

// country returns the country of i: a code, or "" for unknown (or none
// looked up).
func (i geoIndex) country() string {
	if i < 2 {
		return ""
	}
	return countryCodes[i-2]
}

// visitorCountry returns the visitor's country as an ISO 3166-1 alpha-2
// code, or "" when unknown: a trusted proxy's geo.header when it names a
// country, else the database's country of the visitor's address (the
// peer, or the client a trusted proxy's X-Forwarded-For names).
func (p *Proxy) visitorCountry(r *http.Request, cfg *edgeConfig) string {
	peer := peerAddr(r.RemoteAddr)
	trusted := peer.IsValid() && cfg.trustsAddr(peer)
	if trusted && cfg.geoHeader != "" {
		if v := r.Header[cfg.geoHeader]; len(v) > 0 {
			if c, ok := blocklist.Country(strings.TrimSpace(v[0])); ok {
				return c
			}
		}
	}
	if p.geo.Current() == nil {
		return ""
	}
	return p.geo.Country(cfg.clientAddr(peer, trusted, r.Header["X-Forwarded-For"]))
}

// stripGeoHeader removes geo.header (and its spellings with '_' for '-',
// which some servers read as the same header) from a request an untrusted
// peer sent, so that no origin mistakes a visitor's claim for the edge's.
func stripGeoHeader(h http.Header, cfg *edgeConfig) {
	name := cfg.geoHeader
	if name == "" {
		return
	}
	delete(h, name)
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 && textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(k, "_", "-")) == name {
			delete(h, k)
		}
	}
}

// RefreshGeo loads geo.database when it changed, logging the result; the
// last good database stays on failure.
func (p *Proxy) RefreshGeo(cfg *config.Config, trigger string) {
	path := cfg.Geo.Database
	changed, err := p.geo.Refresh(path, false)
	switch {
	case err != nil:
		p.log.Warn("geo database not loaded; the last good one stays in use", "event", "geo_reload", "result", "failure",
			"trigger", trigger, "file", path, "error", err.Error())
	case changed && path != "":
		db := p.geo.Current()
		p.log.Info("geo database loaded", "event", "geo_reload", "result", "success", "trigger", trigger,
			"file", path, "sha256", db.SHA256, "type", db.Type, "built", db.Built.UTC())
	case changed:
		p.log.Info("geo database dropped (geo.database unset)", "event", "geo_reload", "result", "success", "trigger", trigger)
	}
}

// privateToVisitor marks a proxied answer for a host a scoped rule covers
// as the visitor's own: a shared cache in front of the edge (a CDN that
// sends geo.header, say) must not store the answer one country's visitor
// got and hand it to a visitor the rule blocks. Cache-Control gains
// "private" unless it already forbids shared storage (private, no-store),
// and Vary names geo.header when one is configured, for caches that key
// on it. The block pages carry no-store already.
func privateToVisitor(h http.Header, cfg *edgeConfig) {
	if cfg.geoHeader != "" {
		h.Add("Vary", cfg.geoHeader)
	}
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "private" || d == "no-store" {
				return
			}
		}
	}
	if cc := h.Values("Cache-Control"); len(cc) > 0 {
		h.Set("Cache-Control", strings.Join(cc, ", ")+", private")
		return
	}
	h.Set("Cache-Control", "private")
}
