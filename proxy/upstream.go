package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// origin is one origin server of a route. Its health outlives config
// reloads as long as the route keeps the origin.
type origin struct {
	route     string
	url       *url.URL
	label     string
	downUntil atomic.Int64 // Unix nanoseconds; an origin that refused is skipped until then
}

func (o *origin) up(now time.Time) bool { return now.UnixNano() >= o.downUntil.Load() }

// route is a configured route: a host pattern and its origins.
type route struct {
	pattern     string
	origins     []*origin
	next        atomic.Uint64
	failTimeout time.Duration
	proxy       http.Handler
}

// pick returns the next origin in turn that is up and not in skip; if
// every candidate is down, the one that comes back soonest. It returns nil
// only when every origin is in skip.
func (r *route) pick(now time.Time, skip []*origin) *origin {
	n := len(r.origins)
	start := int(r.next.Add(1)-1) % n
	var fallback *origin
	for i := range n {
		o := r.origins[(start+i)%n]
		if contains(skip, o) {
			continue
		}
		if o.up(now) {
			return o
		}
		if fallback == nil || o.downUntil.Load() < fallback.downUntil.Load() {
			fallback = o
		}
	}
	return fallback
}

func contains(s []*origin, o *origin) bool {
	for _, x := range s {
		if x == o {
			return true
		}
	}
	return false
}

// targetURL returns the URL of in's path and query on origin base, joining
// paths the way httputil.ProxyRequest.SetURL does.
func targetURL(base, in *url.URL) *url.URL {
	u := *in
	u.Scheme, u.Host, u.User = base.Scheme, base.Host, nil
	if base.Path != "" && base.Path != "/" {
		u.Path = strings.TrimSuffix(base.Path, "/") + "/" + strings.TrimPrefix(in.Path, "/")
		u.RawPath = ""
	}
	switch {
	case base.RawQuery == "":
	case in.RawQuery == "":
		u.RawQuery = base.RawQuery
	default:
		u.RawQuery = base.RawQuery + "&" + in.RawQuery
	}
	return &u
}

// errKind classifies an error reaching an origin into a bounded label value.
func errKind(err error) string {
	var ne net.Error
	var te *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	switch {
	case errors.Is(err, errClosedByBlock):
		return "closed_by_block"
	case errors.Is(err, errOriginBusy):
		return "busy"
	case errors.Is(err, errBodyIdle):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.As(err, &te), errors.As(err, &rec):
		return "tls"
	}
	return "other"
}

// upstreamTransport sends a request to the origin its Rewrite chose, counts
// the result per route and origin, marks origins that refuse connections
// as down for the route's fail timeout, and retries such a request on the
// next origin when it can be replayed (a refused connection sent nothing).
//
// Every attempt is bounded: getting a connection by timeouts.dial (see
// send), the response headers by timeouts.response_header, and every read
// of the response body by origins.body_idle_timeout (see idleBody).
type upstreamTransport struct {
	base    http.RoundTripper
	metrics *Metrics
	log     *slog.Logger
	// connWait bounds getting a connection to an origin.
	connWait time.Duration
}

func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := infoFrom(req.Context())
	var tried []*origin
	for {
		o := info.origin
		resp, a, err := t.send(req, t.connWait)
		if err == nil {
			t.metrics.UpstreamRequests.WithLabelValues(o.route, o.label, codeLabel(resp.StatusCode)).Inc()
			if o.downUntil.Swap(0) != 0 {
				t.log.Info("origin up", "event", "origin_up", "route", o.route, "origin", o.label)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				// An upgraded connection's body is the connection
				// itself, which ReverseProxy copies both ways and ends
				// with the request.
				t.wrapBody(resp, a, req.Context(), info, info.st.cfg.Origins.BodyIdleTimeout)
			}
			return resp, nil
		}
		kind := errKind(err)
		if kind == "canceled" || kind == "closed_by_block" {
			return nil, err
		}
		t.metrics.UpstreamErrors.WithLabelValues(o.route, o.label, kind).Inc()
		if kind != "refused" {
			return nil, err
		}
		r := info.route
		until := time.Now().Add(r.failTimeout).UnixNano()
		if o.downUntil.Swap(until) == 0 {
			t.log.Warn("origin down", "event", "origin_down", "route", o.route, "origin", o.label,
				"error", err.Error(), "skip_for", r.failTimeout.String())
		}
		tried = append(tried, o)
		if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
			return nil, err
		}
		next := r.pick(time.Now(), tried)
		if next == nil {
			return nil, err
		}
		info.origin = next
		req = req.Clone(req.Context())
		req.URL = targetURL(next.url, info.inURL)
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// upstreamCollector exports edgeblock_upstream_up for the origins of the
// routes in use, read at scrape time.
type upstreamCollector struct {
	p    *Proxy
	desc *prometheus.Desc
}

func newUpstreamCollector(p *Proxy) *upstreamCollector {
	return &upstreamCollector{p: p, desc: prometheus.NewDesc("edgeblock_upstream_up",
		"1 if the origin is in use, 0 while it is skipped after refusing connections.", []string{"route", "origin"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.state.Load()
	if st == nil {
		return
	}
	now := time.Now()
	for _, r := range st.routes.all {
		for _, o := range r.origins {
			v := 0.0
			if o.up(now) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, r.pattern, o.label)
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
