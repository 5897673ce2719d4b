package proxy

import (
	"errors"
	"net/http"
	"strconv"

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

// errKind classifies an error of a proxied request into a bounded label
// value: closed_by_block, or the kind of origin failure (origin.Kind).
func errKind(err error) string {
	if errors.Is(err, errClosedByBlock) {
		return "closed_by_block"
	}
	return origin.Kind(err)
}

// originObserver counts what happens to origins in the metrics.
type originObserver struct{ m *Metrics }

func (ob originObserver) Response(o *origin.Origin, code int) {
	ob.m.UpstreamRequests.WithLabelValues(o.Route, o.Label, codeLabel(code)).Inc()
}

func (ob originObserver) Failure(o *origin.Origin, kind string) {
	ob.m.UpstreamErrors.WithLabelValues(o.Route, o.Label, kind).Inc()
}

func (ob originObserver) Retry(o *origin.Origin, kind string) {
	ob.m.UpstreamRetries.WithLabelValues(o.Route, kind).Inc()
}

func (ob originObserver) Probe(o *origin.Origin, result string) {
	ob.m.HealthChecks.WithLabelValues(o.Route, o.Label, result).Inc()
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

// codeLabels holds the label text of every status code, so that counting a
// response does not format a number.
var codeLabels = func() []string {
	s := make([]string, 1000)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func codeLabel(code int) string {
	if code >= 0 && code < len(codeLabels) {
		return codeLabels[code]
	}
	return "other"
}
