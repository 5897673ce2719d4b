package proxy

import (
	"net/http"
	"strings"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/origin"
	"github.com/prometheus/client_golang/prometheus"
)

// route is a configured route: a host pattern and its origin pool.
type route struct {
	pattern string
	pool    *origin.Pool
	probe   *http.Client // for the pool's health checks
	// transport reaches the origins (transports.go).
	transport *routeTransport
	headers   *routeHeaders
	proxy     http.Handler
}

// routeTable finds the route of a normalized host: an exact name wins over
// a wildcard, and the longest wildcard wins. It is built once per config
// and never changed, so it is safe for concurrent use.
type routeTable struct {
	exact map[string]*route
	wild  map[string]*route // keyed by the name after "*."
	all   []*route
}

func newRouteTable(routes []*route) *routeTable {
	t := &routeTable{exact: map[string]*route{}, wild: map[string]*route{}, all: routes}
	for _, r := range routes {
		if name, ok := strings.CutPrefix(r.pattern, "*."); ok {
			t.wild[name] = r
		} else {
			t.exact[r.pattern] = r
		}
	}
	return t
}

// lookup returns the route for host, or nil. It costs one map lookup per
// label of host.
func (t *routeTable) lookup(host string) *route {
	if r, ok := t.exact[host]; ok {
		return r
	}
	for h := host; ; {
		dot := strings.IndexByte(h, '.')
		if dot < 0 {
			return nil
		}
		h = h[dot+1:]
		if r, ok := t.wild[h]; ok {
			return r
		}
	}
}

// byPattern returns the route of a normalized pattern ("name" or
// "*.name"), or nil.
func (t *routeTable) byPattern(pattern string) *route {
	if name, ok := strings.CutPrefix(pattern, "*."); ok {
		return t.wild[name]
	}
	return t.exact[pattern]
}

// closePools stops the health checks of every route's pool but those of
// the routes next took over (see buildRoutes); next may be nil.
func (t *routeTable) closePools(next *routeTable) {
	for _, r := range t.all {
		if r.pool != nil && (next == nil || next.byPattern(r.pattern) != r) {
			r.pool.Close()
		}
	}
}

// startPools starts the health checks of every route's pool but those of
// the routes taken over from prev, whose checks run on; prev may be nil.
func (t *routeTable) startPools(prev *routeTable) {
	for _, r := range t.all {
		if prev == nil || prev.byPattern(r.pattern) != r {
			r.pool.Start(r.probe)
		}
	}
}

// covers reports whether a route serves host.
func (t *routeTable) covers(host string) bool { return t.lookup(host) != nil }

// normalizePattern normalizes a route or rule pattern ("name" or "*.name").
func normalizePattern(p string) (string, error) {
	name, wild := strings.CutPrefix(p, "*.")
	n, err := blocklist.Normalize(name)
	if err != nil {
		return "", err
	}
	if wild {
		return "*." + n, nil
	}
	return n, nil
}

// upstreamCollector exports edgeblock_upstream_up for the origins of the
// routes in use, read at scrape time.
type upstreamCollector struct {
	p    *Proxy
	desc *prometheus.Desc
}

func newUpstreamCollector(p *Proxy) *upstreamCollector {
	return &upstreamCollector{p: p, desc: prometheus.NewDesc("edgeblock_upstream_up",
		"1 if the origin takes traffic, 0 while it is out: after failed requests (until a trial request succeeds) or failed health checks.", []string{"route", "origin"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.state.Load()
	if st == nil {
		return
	}
	for _, r := range st.routes.all {
		for _, o := range r.pool.Origins() {
			v := 0.0
			if o.Up() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, r.pattern, o.Label)
		}
	}
}
