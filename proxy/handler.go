package proxy

import (
	"context"
	crand "crypto/rand"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/accesslog"
	"github.com/edgeblock/edgeblock/proxy/geo"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"github.com/edgeblock/edgeblock/proxy/origin"
)

// Proxy is the public request handler: it finds the host of a request,
// serves the block page when the blocklist covers it, and otherwise
// forwards the request to the host's route. Its configuration and
// blocklist are swapped atomically by Apply; a request in flight keeps the
// state it started with, unless a new list blocks its host.
type Proxy struct {
	log       *slog.Logger
	metrics   *metrics.Metrics
	state     atomic.Pointer[state]
	transport *origin.Transport
	now       func() time.Time
	// observer counts origin events.
	observer origin.Observer
	// transports reach the origins, one per distinct route settings;
	// dial and responseHeader are the startup timeouts (restart-only).
	transports           transportCache
	dial, responseHeader time.Duration
	// cookieKey signs sticky cookies unless origins.cookie_key is set.
	cookieKey []byte
	flights   flights // proxied requests in flight, for closeBlocked
	// starting is the 503 page served until the first Apply.
	starting *pages.Page
	// access is where access lines go; nil: through log, synchronously.
	access *accesslog.Writer
	// upstream forwards the requests of every route (reverseProxy).
	upstream http.Handler
	// geo holds the country database (geo.database; geoscope.go).
	geo *geo.Source
}

// NewProxy returns a Proxy that logs to log and counts in m. Until Apply
// gives it a config and a blocklist it serves the 503 starting page (the
// pages cfg configures, else the built-in ones).
func NewProxy(log *slog.Logger, m *metrics.Metrics, cfg *config.Config) *Proxy {
	p := &Proxy{
		log:        log,
		metrics:    m,
		now:        time.Now,
		observer:   metrics.OriginObserver{M: m},
		starting:   startingPage(cfg),
		transports: transportCache{maxConns: cfg.Origins.MaxConns, maxHeader: cfg.Origins.MaxResponseHeaderBytes, client: cfg.Origins.Client},
		dial:       cfg.Timeouts.Dial,
		cookieKey:  make([]byte, 32),
		geo:        geo.NewSource(m.GeoMetrics()),
	}
	p.responseHeader = cfg.Timeouts.ResponseHeader
	crand.Read(p.cookieKey)
	p.transport = &origin.Transport{ConnWait: cfg.Timeouts.Dial, BodyIdle: func() time.Duration {
		if st := p.state.Load(); st != nil {
			return st.cfg.Origins.BodyIdleTimeout
		}
		return 0
	}}
	p.upstream = p.reverseProxy() // after p.transport, which it holds
	return p
}

// Apply builds the state for cfg, list and renderer and swaps it in.
// Requests already in flight finish with the state they started with,
// except proxied ones whose host the new list blocks: those are ended.
func (p *Proxy) Apply(cfg *config.Config, list *blocklist.List, renderer *pages.Renderer) error {
	prev := p.state.Load()
	s, err := p.newState(cfg, list, renderer, prev)
	if err != nil {
		return err
	}
	p.RefreshGeo(cfg, "apply")
	p.state.Store(s)
	p.closeBlocked(prev, s) // a block ends what is open (inflight.go)
	if prev == nil || prev.routes != s.routes {
		var was *routeTable
		if prev != nil {
			was = prev.routes
			was.closePools(s.routes)
		}
		s.routes.startPools(was)
		p.transports.prune(s.routes)
	}
	p.metrics.SetBlocklist(list.Len(), list.SHA256())
	return nil
}

// Close stops the origin health checks.
func (p *Proxy) Close() {
	if st := p.state.Load(); st != nil {
		st.routes.closePools(nil)
	}
}

// Ready reports whether a config and a blocklist are loaded.
func (p *Proxy) Ready() bool { return p.state.Load() != nil }

// reqInfo is what one proxied request carries through the reverse proxy.
type reqInfo struct {
	id   string
	host string
	// req is the visitor's request, for a scoped rule's country when a
	// reload decides again on the request in flight (inflight.go); it is
	// only read.
	req *http.Request
	// scoped: a rule scoped to countries covers host, so the answer
	// depends on where the visitor is (see privateToVisitor).
	scoped bool
	route  *route
	trip   origin.Trip
	st     *state
	// upstreamCode is the origin's status; 101 for an upgrade.
	upstreamCode int
	// failed: the origin gave no answer, or broke off its response.
	failed bool
	flight // the registry entry (inflight.go)
	// canceled: the visitor went away before the response was complete.
	canceled bool
	// err is why the origin's response broke off, for the access log.
	err error
	// head holds the origin's status until its body begins (heldhead.go).
	head heldHead
}

// outcome returns the outcome of a forwarded request: blocked when a
// reload blocked its host while it was open; canceled when the
// visitor went away (a failed write to the visitor means the same, unless
// the origin's side broke first), error when the origin failed, else
// report or proxied.
func (i *reqInfo) outcome(report bool, rec *recorder) string {
	switch {
	case i.closed != nil:
		return metrics.OutcomeBlocked // a reload blocked the host (inflight.go)
	case i.canceled, rec.writeErr != nil && i.err == nil:
		return metrics.OutcomeCanceled
	case i.failed:
		return metrics.OutcomeError
	case report:
		return metrics.OutcomeReport
	}
	return metrics.OutcomeProxied
}

// bodyFailed is told when the origin's response body broke off.
func (i *reqInfo) bodyFailed(err error, canceled bool) {
	if canceled {
		i.canceled = true
		return
	}
	i.failed, i.err = true, err
}

// clientFor returns the visitor's address when the route's balancing
// needs it (ip_hash).
func (p *Proxy) clientFor(rt *route, r *http.Request, cfg *edgeConfig) netip.Addr {
	if !rt.pool.NeedsClient() {
		return netip.Addr{}
	}
	peer := peerAddr(r.RemoteAddr)
	return cfg.clientAddr(peer, peer.IsValid() && cfg.trustsAddr(peer), r.Header["X-Forwarded-For"])
}

type infoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(infoKey{}).(*reqInfo)
	return i
}

// putRequestID fills b with 16 hex digits from a per-process random stream.
func putRequestID(b *[16]byte) {
	const hex = "0123456789abcdef"
	v := rand.Uint64()
	for i := range b {
		b[i] = hex[v&15]
		v >>= 4
	}
}

// reqRecord is a request's bookkeeping: the recorder and the access
// entry. Records of requests the edge answered itself come from and go
// back to records (see release); the request ID lives in a reqID of its
// own.
type reqRecord struct {
	recorder
	accessEntry
}

// reqID is a request's ID and its X-Request-Id header value, in one
// allocation apart from the record: net/http reads the response header
// after the handler has returned (an HTTP/1.1 response's flush, an
// HTTP/2 stream's HEADERS frame), when the record may already serve
// another request.
type reqID struct {
	id  [16]byte
	idv [1]string
}

// records holds reqRecords for reuse, cleared.
var records sync.Pool // of *reqRecord

// begin starts the bookkeeping of one request: a request ID in
// X-Request-Id, the in-flight gauge, and the record for the access line.
func (p *Proxy) begin(w http.ResponseWriter, r *http.Request) *reqRecord {
	p.metrics.InFlight.Inc()
	x, _ := records.Get().(*reqRecord)
	if x == nil {
		x = new(reqRecord)
	}
	x.recorder.ResponseWriter = w
	rid := new(reqID)
	putRequestID(&rid.id)
	// The ID's bytes are never written again: the string can share them.
	id := unsafe.String(&rid.id[0], len(rid.id))
	rid.idv[0] = id
	// A header value of length and capacity 1: an Add by a later handler
	// makes a copy rather than writing into rid.
	w.Header()["X-Request-Id"] = rid.idv[:]
	x.accessEntry = accessEntry{id: id, start: p.now(), r: r}
	return x
}

// end finishes the request's bookkeeping (finish) and gives its record
// back for reuse when nothing can reach it any more: the edge answered
// the request itself. A forwarded request's recorder is held by the
// reverse proxy's parts (reqInfo, heldHead, the transport's body
// watchers), so its record is left to the collector.
func (p *Proxy) end(x *reqRecord) {
	p.finish(&x.recorder, &x.accessEntry)
	if x.info != nil {
		return
	}
	*x = reqRecord{}
	records.Put(x)
}

// observe serves a request that the listener answers itself (an ACME
// challenge, a redirect) with the same request ID, metrics and access line
// as proxied ones.
func (p *Proxy) observe(w http.ResponseWriter, r *http.Request, outcome string, h func(http.ResponseWriter)) {
	x := p.begin(w, r)
	rec, e := &x.recorder, &x.accessEntry
	defer p.finish(rec, e) // the record is not reused: h may keep rec
	e.st, e.outcome = p.state.Load(), outcome
	e.host, _ = decideHost(namesOf(r))
	h(rec)
}

// ServeHTTP implements http.Handler. A request goes through these steps,
// each of which may answer it: the method (CONNECT, TRACE and TRACK are
// never forwarded), the one host the request is for, the blocklist, loop
// detection, the route, and finally the origin (the last three in route).
//
// The answers other than the block page are made in functions of their
// own: on HTTP/2 every request runs on a new goroutine, whose stack grows
// by copying when a request goes deeper than it started, and the block
// page, the busiest answer when a popular name is blocked, keeps this
// frame small without the locals of the others.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := p.begin(w, r)
	rec, e := &x.recorder, &x.accessEntry
	defer p.end(x)

	st := p.state.Load()
	if st == nil {
		p.serveStarting(rec, r, e)
		return
	}
	e.st = st
	if refusedMethods[r.Method] {
		rec.Header().Set("Allow", allowHeader)
		p.refuse(rec, r, e, metrics.OutcomeRejected, http.StatusMethodNotAllowed)
		return
	}

	// One host from here on: the blocklist, the route, the origin's Host
	// and X-Forwarded-Host, and the access log all use this name.
	host, err := decideHost(namesOf(r))
	if err != nil {
		outcome := metrics.OutcomeRejected
		if err == errHostInvalid {
			outcome = metrics.OutcomeUnknown
		}
		p.refuse(rec, r, e, outcome, http.StatusBadRequest)
		return
	}
	e.host = host
	if isFeedHost(st, host) {
		e.outcome = metrics.OutcomeTransparency
		p.serveFeed(rec, r, st, e.start, e.page(host))
		return
	}

	var report bool
	if e.ruled = p.decide(&e.rule, st, r, host, e.start, &e.geo); e.ruled {
		rule := &e.rule
		st.blocked[rule.AttrsID].Inc()
		if rule.Mode == blocklist.ModeBlock {
			e.outcome = metrics.OutcomeBlocked
			page := st.blockPage(rule.AttrsID)
			if !rule.Scope.IsZero() {
				page = page.InCountry(e.geo.country())
				p.metrics.GeoMetrics().Blocked(e.geo.country())
			}
			page.Serve(rec, r, e.page(host))
			return
		}
		report = true
	}
	p.route(rec, r, e, host, report)
}

// serveStarting answers with the 503 page until the first Apply.
//
//go:noinline
func (p *Proxy) serveStarting(rec *recorder, r *http.Request, e *accessEntry) {
	e.outcome = metrics.OutcomeError
	p.starting.Serve(rec, r, e.page(displayHost(r)))
}

// refuse answers a request the edge does not serve with the error page of
// status, logged with outcome under the host as the visitor gave it.
//
//go:noinline
func (p *Proxy) refuse(rec *recorder, r *http.Request, e *accessEntry, outcome string, status int) {
	e.outcome, e.host = outcome, displayHost(r)
	e.st.renderer.Error(status).Serve(rec, r, e.page(e.host))
}

// route sends a request for host that the blocklist lets through (report:
// a report-mode rule matched) to its route's origins, unless it has
// looped through this edge or no route serves host.
//
//go:noinline
func (p *Proxy) route(rec *recorder, r *http.Request, e *accessEntry, host string, report bool) {
	st := e.st
	preq := e.page(host)
	if viaLoop(r.Header, st.cfg.Origins.ViaName) {
		e.outcome = metrics.OutcomeRejected
		st.renderer.Error(http.StatusLoopDetected).Serve(rec, r, preq)
		return
	}
	rt := st.routes.lookup(host)
	if rt == nil {
		e.outcome = metrics.OutcomeUnknown
		st.renderer.Error(http.StatusNotFound).Serve(rec, r, preq)
		return
	}
	info := &reqInfo{id: e.id, host: host, req: r, route: rt, st: st, scoped: e.geo != 0}
	info.trip = origin.Trip{Pool: rt.pool, Client: p.clientFor(rt, r, st.cfg), BodyFailed: info.bodyFailed}
	e.info, e.report = info, report
	ctx := p.track(r.Context(), info) // canceled if a reload blocks host (inflight.go)
	defer p.untrack(info, rec, e)
	// finish takes the outcome from info, also when ReverseProxy aborts a
	// response that broke off by panicking with http.ErrAbortHandler. The
	// transport picks the origin (proxy/origin).
	ctx = origin.WithTrip(context.WithValue(ctx, infoKey{}, info), &info.trip)
	p.forward(rt, rec, r.WithContext(ctx), info)
}

// forward sends r to the route's origins through the reverse proxy. An
// origin response whose body broke off before any of it was sent
// (http.ErrAbortHandler with the status still held) is answered with the
// 502 or 504 page: the origin's headers are dropped, the request keeps
// its ID. Any other abort goes on up to net/http, which cuts the
// connection (HTTP/1.1) or resets the stream (HTTP/2), so that a visitor
// never takes a short body for a whole one.
func (p *Proxy) forward(rt *route, rec *recorder, r *http.Request, info *reqInfo) {
	h := &info.head
	h.ResponseWriter = rec
	h.keepEdgeHeaders()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler || h.sent || info.err == nil || info.closed != nil || r.Context().Err() != nil {
				h.drop()
				panic(v)
			}
			h.drop()
			hdr := rec.Header()
			clear(hdr)
			h.restoreEdgeHeaders(hdr)
			p.upstreamError(rec, r, info.err)
			return
		}
		h.release() // what is left of a short response
	}()
	rt.proxy.ServeHTTP(h, r)
}

// reverseProxy returns the forwarding handler, one for every route: what
// is the route's (its pool, its header rules) comes with the request's
// reqInfo.
func (p *Proxy) reverseProxy() http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			info := infoFrom(pr.In.Context())
			cfg := info.st.cfg
			// The route's header rules first: the edge's own headers follow.
			info.route.headers.applyRequest(pr.Out.Header)
			pr.Out.Host = hostField(info.host) // the decided name, never the visitor's spelling
			setForwarding(pr.Out, pr.In, cfg, info.host, cfg.Origins.ViaName)
			filterUpgrade(pr.Out.Header, cfg.Origins.Upgrades)
			pr.Out.Header.Set("X-Request-Id", info.id)
		},
		Transport: p.transport,
		ModifyResponse: func(resp *http.Response) error {
			info := infoFrom(resp.Request.Context())
			// The origin's Alt-Svc names its own endpoints, which the
			// visitor cannot reach through the edge (http3.go).
			delete(resp.Header, "Alt-Svc")
			if info != nil {
				info.upstreamCode = resp.StatusCode
				info.route.headers.applyResponse(resp.Header)
				if info.scoped {
					privateToVisitor(resp.Header, info.st.cfg)
				}
			}
			if resp.StatusCode == http.StatusSwitchingProtocols && resp.Request.Header.Get("Upgrade") == "" {
				// An origin must not switch protocols unasked, least of
				// all to one the edge removed from the request.
				return errUnaskedUpgrade
			}
			return nil
		},
		ErrorHandler: p.upstreamError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		BufferPool:   copyBuffers,
	}
}

// copyBuffers lends ReverseProxy its 32 KiB body copy buffers, which it
// would otherwise allocate for every request.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool } // of *[copyBufferSize]byte

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if a, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return a[:]
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(s []byte) {
	if len(s) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(s))
	}
}

var errUnaskedUpgrade = errors.New("the origin switched protocols although the request asked for no upgrade")

// upstreamError serves the 502 or 504 page when the origin could not give
// an answer; the visitor never sees an empty body or Go's error text.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	info := infoFrom(r.Context())
	if p.serveClosed(w, r, info) {
		return // a reload blocked the host while the origin was asked
	}
	if h, ok := w.(*heldHead); ok {
		w = h.unwrapForPage() // the page goes out as it is
	}
	if rec, ok := w.(*recorder); ok {
		rec.err = err
	}
	status := http.StatusBadGateway
	switch errKind(err) {
	case "canceled":
		if r.Context().Err() != nil {
			info.canceled = true // nobody is left to read a page
			return
		}
	case "timeout":
		status = http.StatusGatewayTimeout
	case "busy":
		status = http.StatusServiceUnavailable
	case "all_down":
		status = http.StatusServiceUnavailable
		w = &retryAfterWriter{w, strconv.Itoa(int(info.route.pool.RetryAfter().Round(time.Second).Seconds()))}
	}
	info.failed = true
	info.st.renderer.Error(status).Serve(w, r, pages.Request{Host: info.host, RequestID: info.id, Time: p.now()})
}

// errKind classifies an error of a proxied request into a bounded label
// value: closed_by_block, or the kind of origin failure (origin.Kind).
func errKind(err error) string {
	if errors.Is(err, errClosedByBlock) {
		return "closed_by_block"
	}
	return origin.Kind(err)
}

// retryAfterWriter replaces the Retry-After a page sets (pages.retry_after)
// with when an origin of the route may be back; a page sent without one
// (retry_after 0s) stays without.
type retryAfterWriter struct {
	http.ResponseWriter
	value string
}

func (w *retryAfterWriter) WriteHeader(code int) {
	if h := w.Header(); h["Retry-After"] != nil {
		h["Retry-After"] = []string{w.value}
	}
	w.ResponseWriter.WriteHeader(code)
}

// statusClientClosedRequest is nginx's 499, logged and counted for
// requests whose visitor went away.
const statusClientClosedRequest = 499

// recorder notes the status and size of a response for the access log.
// Unwrap lets http.ResponseController reach the connection for flushing
// streamed responses and for upgrades.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error
	// writeErr is the first failed write to the visitor.
	writeErr error
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
	if err != nil && r.writeErr == nil {
		r.writeErr = err
	}
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
	rule    blocklist.Rule // when ruled
	ruled   bool
	info    *reqInfo
	// report: a report-mode rule matched a forwarded request.
	report bool
	// geo is set when a scoped rule covers host, so the visitor's country
	// was looked up (see countryOf) and goes into the access line. It is
	// an index rather than a string so that the entry stays in its
	// allocation size class.
	geo geoIndex
}

// page returns what a page served for the request shows: host, the
// request's ID and its start.
func (e *accessEntry) page(host string) pages.Request {
	return pages.Request{Host: host, RequestID: e.id, Time: e.start}
}

// finish counts a request and writes its access line.
func (p *Proxy) finish(rec *recorder, e *accessEntry) {
	p.metrics.InFlight.Dec()
	start := e.start
	d := p.now().Sub(start)
	err := rec.err
	if e.info != nil {
		e.outcome = e.info.outcome(e.report, rec)
		if err == nil {
			err = e.info.err
		}
	}
	status := rec.status
	if status == 0 && e.info != nil && e.info.upstreamCode != 0 {
		status = e.info.upstreamCode // an upgraded connection
	}
	switch {
	case e.outcome == metrics.OutcomeCanceled:
		status = statusClientClosedRequest
	case e.outcome == metrics.OutcomeBlocked:
		// Closed by a block (inflight.go): the status the visitor got.
		if status == 0 {
			status = http.StatusOK
		}
	case e.info != nil && e.info.err != nil:
		// The origin broke off its response: counted with the status
		// the edge gives such failures, not the origin's; the origin's
		// is logged as upstream_status.
		status = http.StatusBadGateway
		if errKind(e.info.err) == "timeout" {
			status = http.StatusGatewayTimeout
		}
	case status == 0:
		status = http.StatusOK
	}
	end := start.Add(d)
	p.metrics.Served(e.outcome, status, e.r.Method, d)
	if e.st == nil || !*e.st.cfg.Log.Access {
		return
	}
	if e.outcome != metrics.OutcomeError && e.st.cfg.Log.AccessSample < 1 && rand.Float64() >= e.st.cfg.Log.AccessSample {
		return
	}
	// The line is a pooled one, filled field by field, rather than a
	// local: on HTTP/2 each request runs on a new goroutine, and a line of
	// some 300 bytes in this frame, beneath the encoder's, made its stack
	// grow by copying a second time.
	l := lines.Get().(*accesslog.Line)
	l.Time, l.ID, l.Remote, l.Host, l.Method, l.Path = end, e.id, e.r.RemoteAddr, e.host, e.r.Method, e.r.URL.Path
	l.Status, l.Outcome, l.Bytes, l.Duration, l.Proto, l.TLS = status, e.outcome, rec.bytes, d.Seconds(), e.r.Proto, e.r.TLS != nil
	if e.ruled {
		l.HasRule, l.Rule, l.RuleLine, l.Mode = true, e.rule.Pattern(), e.rule.Line, e.rule.Mode.String()
	}
	if e.geo != 0 {
		l.HasCountry, l.Country = true, e.geo.country()
		if l.Country == "" {
			l.Country = "unknown"
		}
	}
	if e.info != nil {
		l.HasRoute, l.Route = true, e.info.route.pattern
		if o := e.info.trip.Origin; o != nil {
			l.HasOrigin, l.Origin = true, o.Label
		}
		if e.info.trip.Tries > 1 {
			l.Tries = e.info.trip.Tries
		}
		if e.info.upstreamCode != status {
			l.UpstreamStatus = e.info.upstreamCode
		}
	}
	if err != nil {
		l.HasErr, l.ErrText, l.ErrKind = true, err.Error(), errKind(err)
	}
	p.logAccess(l)
	*l = accesslog.Line{}
	lines.Put(l)
}

// lines holds cleared access lines for finish to fill.
var lines = sync.Pool{New: func() any { return new(accesslog.Line) }}

// logAccess writes an access line: to the access log's queue when the
// server set one up, else through the logger.
func (p *Proxy) logAccess(l *accesslog.Line) {
	if !p.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	if w := p.access; w != nil {
		w.Write(l)
		return
	}
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "request", l.Attrs()...)
}
