package proxy

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
)

// Proxy is the public request handler: it finds the host of a request,
// serves the block page when the blocklist covers it, and otherwise
// forwards the request to the host's route. Its configuration and
// blocklist are swapped atomically by Apply; a request in flight keeps the
// state it started with, unless a new list blocks its host.
type Proxy struct {
	log       *slog.Logger
	metrics   *Metrics
	state     atomic.Pointer[state]
	transport *upstreamTransport
	now       func() time.Time
	flights   flights // proxied requests in flight, for closeBlocked
}

// NewProxy returns a Proxy that logs to log and counts in m. It serves
// nothing (503) until Apply gives it a config and a blocklist.
func NewProxy(log *slog.Logger, m *Metrics, cfg *Config) *Proxy {
	base := &http.Transport{
		Proxy:                 nil, // never send origin traffic through an environment proxy
		DialContext:           (&net.Dialer{Timeout: cfg.Timeouts.Dial, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1000,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeouts.Dial,
		ResponseHeaderTimeout: cfg.Timeouts.ResponseHeader,
		ExpectContinueTimeout: time.Second,
	}
	return &Proxy{
		log:       log,
		metrics:   m,
		transport: &upstreamTransport{base: base, metrics: m, log: log},
		now:       time.Now,
	}
}

// Apply builds the state for cfg, list and renderer and swaps it in.
// Requests already in flight finish with the state they started with,
// except proxied ones whose host the new list blocks: those are ended.
func (p *Proxy) Apply(cfg *Config, list *blocklist.List, renderer *pages.Renderer) error {
	prev := p.state.Load()
	s, err := p.newState(cfg, list, renderer, prev)
	if err != nil {
		return err
	}
	p.state.Store(s)
	p.closeBlocked(prev, s) // a block ends what is open (inflight.go)
	p.metrics.setBlocklist(list.Len(), list.SHA256())
	return nil
}

// Ready reports whether a config and a blocklist are loaded.
func (p *Proxy) Ready() bool { return p.state.Load() != nil }

// reqInfo is what one proxied request carries through the reverse proxy.
type reqInfo struct {
	id     string
	host   string
	route  *route
	origin *origin
	inURL  *url.URL
	st     *state
	// upstreamCode is the origin's status; 101 for an upgrade.
	upstreamCode int
	failed       bool
	flight       // the registry entry (inflight.go)
}

type infoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(infoKey{}).(*reqInfo)
	return i
}

// newRequestID returns 16 hex digits from a per-process random stream.
func newRequestID() string {
	const hex = "0123456789abcdef"
	var b [16]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = hex[v&15]
		v >>= 4
	}
	return string(b[:])
}

// requestHost returns the host a request is for: an absolute-form request
// target wins over the Host header. Headers such as X-Forwarded-Host or
// Forwarded never count.
func requestHost(r *http.Request) string {
	if r.URL.Host != "" {
		return r.URL.Host
	}
	return r.Host
}

// begin starts the bookkeeping of one request: a request ID in
// X-Request-Id, the in-flight gauge, and the recorder for the access line.
func (p *Proxy) begin(w http.ResponseWriter, r *http.Request) (*recorder, *accessEntry) {
	p.metrics.InFlight.Inc()
	id := newRequestID()
	w.Header()["X-Request-Id"] = []string{id}
	return &recorder{ResponseWriter: w}, &accessEntry{id: id, start: p.now(), r: r}
}

// observe serves a request that the listener answers itself (an ACME
// challenge, a redirect) with the same request ID, metrics and access line
// as proxied ones.
func (p *Proxy) observe(w http.ResponseWriter, r *http.Request, outcome string, h func(http.ResponseWriter)) {
	rec, e := p.begin(w, r)
	defer p.finish(rec, e)
	e.st, e.outcome = p.state.Load(), outcome
	e.host, _ = blocklist.Normalize(requestHost(r))
	h(rec)
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec, e := p.begin(w, r)
	defer p.finish(rec, e)
	start, id := e.start, e.id

	st := p.state.Load()
	if st == nil {
		e.outcome = OutcomeError
		http.Error(rec, "edgeblock is starting", http.StatusServiceUnavailable)
		return
	}
	e.st = st
	preq := pages.Request{RequestID: id, Time: start}
	host, err := blocklist.Normalize(requestHost(r))
	if err != nil {
		e.outcome, e.host = OutcomeUnknown, requestHost(r)
		preq.Host = e.host
		st.renderer.Error(http.StatusBadRequest).Serve(rec, r, preq)
		return
	}
	e.host, preq.Host = host, host

	var report bool
	if rule, ok := st.list.Match(host, start); ok {
		e.rule = &rule
		st.blocked[rule.AttrsID].Inc()
		if rule.Mode == blocklist.ModeBlock {
			e.outcome = OutcomeBlocked
			st.blockPage(rule.AttrsID).Serve(rec, r, preq)
			return
		}
		report = true
	}
	rt := st.routes.lookup(host)
	if rt == nil {
		e.outcome = OutcomeUnknown
		st.renderer.Error(http.StatusNotFound).Serve(rec, r, preq)
		return
	}
	info := &reqInfo{id: id, host: host, route: rt, inURL: r.URL, st: st}
	info.origin = rt.pick(start, nil)
	e.info = info
	ctx := p.track(r.Context(), info) // canceled if a reload blocks host
	defer p.untrack(info, rec, e)
	rt.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, infoKey{}, info)))
	switch {
	case info.failed:
		e.outcome = OutcomeError
	case report:
		e.outcome = OutcomeReport
	default:
		e.outcome = OutcomeProxied
	}
}

// reverseProxy returns the forwarding handler of route r.
func (p *Proxy) reverseProxy(r *route) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			info := infoFrom(pr.In.Context())
			pr.Out.URL = targetURL(info.origin.url, pr.In.URL)
			pr.Out.Host = pr.In.Host // the visitor's Host goes to the origin
			trusted := info.st.cfg.isTrusted(pr.In.RemoteAddr)
			if trusted {
				// Keep the values a trusted proxy in front of us set.
				if v := pr.In.Header.Values("X-Forwarded-For"); len(v) > 0 {
					pr.Out.Header["X-Forwarded-For"] = v
				}
			} else {
				pr.Out.Header.Del("Forwarded")
			}
			pr.SetXForwarded()
			if trusted {
				for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
					if v := pr.In.Header.Get(h); v != "" {
						pr.Out.Header.Set(h, v)
					}
				}
			}
			pr.Out.Header.Set("X-Request-Id", info.id)
		},
		Transport: p.transport,
		ModifyResponse: func(resp *http.Response) error {
			if info := infoFrom(resp.Request.Context()); info != nil {
				info.upstreamCode = resp.StatusCode
			}
			return nil
		},
		ErrorHandler: p.upstreamError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
}

// upstreamError serves the 502 or 504 page when the origin could not give
// an answer; the visitor never sees an empty body or Go's error text.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	info := infoFrom(r.Context())
	if p.serveClosed(w, r, info) {
		return // a reload blocked the host while the origin was asked
	}
	info.failed = true
	status := http.StatusBadGateway
	kind := errKind(err)
	if kind == "timeout" {
		status = http.StatusGatewayTimeout
	}
	if rec, ok := w.(*recorder); ok {
		rec.err = err
	}
	info.st.renderer.Error(status).Serve(w, r, pages.Request{Host: info.host, RequestID: info.id, Time: p.now()})
}

func (c *Config) isTrusted(remoteAddr string) bool {
	if len(c.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// recorder notes the status and size of a response for the access log.
// Unwrap lets http.ResponseController reach the connection for flushing
// streamed responses and for upgrades.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap returns the underlying ResponseWriter.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// accessEntry is one request's access log line and metrics.
type accessEntry struct {
	id      string
	start   time.Time
	r       *http.Request
	st      *state
	host    string
	outcome string
	rule    *blocklist.Rule
	info    *reqInfo
}

// finish counts a request and writes its access line.
func (p *Proxy) finish(rec *recorder, e *accessEntry) {
	p.metrics.InFlight.Dec()
	d := p.now().Sub(e.start)
	status := rec.status
	if status == 0 && e.info != nil && e.info.upstreamCode != 0 {
		status = e.info.upstreamCode // an upgraded connection
	}
	if status == 0 {
		status = http.StatusOK
	}
	p.metrics.Requests.WithLabelValues(e.outcome, codeLabel(status), methodLabel(e.r.Method)).Inc()
	p.metrics.Duration.WithLabelValues(e.outcome).Observe(d.Seconds())
	if e.st == nil || !*e.st.cfg.Log.Access {
		return
	}
	if e.outcome != OutcomeError && e.st.cfg.Log.AccessSample < 1 && rand.Float64() >= e.st.cfg.Log.AccessSample {
		return
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("request_id", e.id),
		slog.String("remote", e.r.RemoteAddr),
		slog.String("host", e.host),
		slog.String("method", e.r.Method),
		slog.String("path", e.r.URL.Path),
		slog.Int("status", status),
		slog.String("outcome", e.outcome),
		slog.Int64("bytes", rec.bytes),
		slog.Float64("duration", d.Seconds()),
	)
	if e.r.TLS != nil {
		attrs = append(attrs, slog.String("proto", e.r.Proto+"+tls"))
	} else {
		attrs = append(attrs, slog.String("proto", e.r.Proto))
	}
	if e.rule != nil {
		attrs = append(attrs, slog.String("rule", e.rule.Pattern()), slog.Int("rule_line", e.rule.Line), slog.String("mode", e.rule.Mode.String()))
	}
	if e.info != nil {
		attrs = append(attrs, slog.String("route", e.info.route.pattern))
		if e.info.origin != nil {
			attrs = append(attrs, slog.String("origin", e.info.origin.label))
		}
	}
	if rec.err != nil {
		attrs = append(attrs, slog.String("error", rec.err.Error()), slog.String("error_kind", errKind(rec.err)))
	}
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}
