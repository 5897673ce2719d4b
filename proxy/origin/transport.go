package origin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrBusy: no connection to the origin became free within the
// transport's ConnWait, because its connection limit is reached. Kind
// "busy".
var ErrBusy = errors.New("no connection to the origin became free in time (origins.max_conns)")

// ErrBodyIdle: the origin sent its headers and then nothing for the body
// idle timeout. Kind "timeout".
var ErrBodyIdle = errors.New("the origin's response body stalled (origins.body_idle_timeout)")

// Kind classifies an error reaching an origin into a bounded label value:
// busy, timeout, canceled, refused, reset, tls, all_down or other.
func Kind(err error) string {
	var ne net.Error
	var te *tls.CertificateVerificationError
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ie x509.CertificateInvalidError
	var rec tls.RecordHeaderError
	var ae tls.AlertError
	switch {
	case errors.Is(err, ErrAllDown):
		return "all_down"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrBodyIdle):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &te), errors.As(err, &rec), errors.As(err, &ae), errors.As(err, &ue), errors.As(err, &he), errors.As(err, &ie), isTLSText(err):
		return "tls"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "reset"
	}
	return "other"
}

// Trip is one visitor request on its way to an origin: the pool it is
// balanced in and the origin of its current attempt. The proxy puts it in
// the request's context (WithTrip) before the Transport sees the request.
type Trip struct {
	// Pool is the route's pool.
	Pool *Pool
	// Client is the visitor's address, for ip_hash.
	Client netip.Addr
	// Origin is the origin of the latest attempt, nil before the first.
	Origin *Origin
	// Tries is how many origins the request was sent to.
	Tries int
	// BodyFailed, if set, is called when the chosen origin's response
	// body breaks off (err is ErrBodyIdle for a stall), with canceled
	// true when the visitor went away first.
	BodyFailed func(err error, canceled bool)

	tried []*Origin
}

type tripKey struct{}

// WithTrip returns ctx carrying t.
func WithTrip(ctx context.Context, t *Trip) context.Context {
	return context.WithValue(ctx, tripKey{}, t)
}

// TripFrom returns the Trip of ctx, or nil.
func TripFrom(ctx context.Context) *Trip {
	t, _ := ctx.Value(tripKey{}).(*Trip)
	return t
}

// Transport sends a request to an origin of its Trip's pool and, when an
// attempt fails before any response came back, to another one, as long
// as that is safe:
//
//   - a request that never reached an origin (connection refused, no
//     connection free in time, dial failed) is always tried again;
//   - one that reached an origin (reset, timeout, TLS) is tried again
//     only for the idempotent methods GET, HEAD, OPTIONS, PUT and DELETE;
//   - a request body is sent again only when no attempt read any of it,
//     or when it was read to its end within Retry.BodyLimit (kept in
//     memory as it streams to the origin; nothing is read ahead);
//   - no new attempt starts after Retry.TryDuration or past
//     Retry.MaxTries, and never once a response has begun: the response
//     is returned as soon as its headers are in;
//   - when no usable origin is left, a request that reached no origin
//     yet goes to the least-bad one, also one out after failures, as a
//     first attempt does (Pool.Pick; with AllDown "503" it gets
//     ErrAllDown instead).
//
// Every attempt's result feeds the origin's passive health, and is told
// to the pool's Observer.
type Transport struct {
	// Base sends one attempt, typically an *http.Transport, for pools
	// whose Config.Base is nil.
	Base http.RoundTripper
	// ConnWait bounds waiting for a free connection to an origin under a
	// connection limit; a request still waiting then fails with ErrBusy.
	ConnWait time.Duration
	// BodyIdle bounds each read of a response body; 0 means no bound.
	BodyIdle func() time.Duration
}

// idempotent methods may be sent again after they reached an origin.
var idempotent = map[string]bool{"GET": true, "HEAD": true, "OPTIONS": true, "TRACE": true, "PUT": true, "DELETE": true}

// resendable reports whether req may be sent again after it may have
// reached an origin (an attempt that failed before any response came
// back, on another origin or on a new connection to the same one): its
// method is idempotent, or it carries an Idempotency-Key or
// X-Idempotency-Key header (net/http's rule, with PUT and DELETE too);
// and its body, if any, can be had again (GetBody, which trackBody
// bounds by retries.body_limit). A POST without such a header that may
// have reached an origin is never sent twice.
func resendable(req *http.Request) bool {
	method := req.Method
	if method == "" {
		method = "GET"
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	if !idempotent[method] && !key && !xkey {
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// RoundTrip implements http.RoundTripper. req.URL's path and query are
// joined to the chosen origin's base URL.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	trip := TripFrom(req.Context())
	if trip == nil || trip.Pool == nil {
		return nil, errors.New("origin.Transport: the request carries no Trip")
	}
	pool := trip.Pool
	rc := pool.cfg.Retry
	in := req.URL
	start := time.Now()
	body := trackBody(req, rc.BodyLimit)
	var lastErr error
	reachedAny := false // an attempt reached an origin
	for {
		o, sticky, err := pool.Pick(Request{Client: trip.Client, Header: req.Header, Reached: reachedAny}, trip.tried)
		if err != nil {
			return nil, err
		}
		if o == nil {
			return nil, lastErr
		}
		trip.Origin = o
		trip.Tries++
		out := req
		if trip.Tries > 1 {
			out = req.Clone(req.Context())
			if body != nil {
				if out.Body, err = req.GetBody(); err != nil {
					pool.done(o, resultNeutral, "")
					return nil, err
				}
			}
		}
		out.URL = TargetURL(o.URL, in)
		resp, a, err := t.send(out, pool.cfg.Base)
		if err == nil {
			pool.obs.Response(o, resp.StatusCode)
			if c := pool.StickyCookie(o); c != "" && !sticky {
				resp.Header.Add("Set-Cookie", c)
			}
			r := resultOK
			if slices.Contains(pool.cfg.Passive.UnhealthyStatuses, resp.StatusCode) {
				r = resultFailed
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// An upgraded connection's body is the connection
				// itself, which ReverseProxy copies both ways; it is
				// left as it is.
				pool.done(o, r, "")
				return resp, nil
			}
			var idle time.Duration
			if t.BodyIdle != nil {
				idle = t.BodyIdle()
			}
			wrapBody(resp, a, req.Context(), trip, o, r, idle)
			return resp, nil
		}
		lastErr = err
		if req.Context().Err() != nil {
			// The visitor went away, or the proxy ended the request:
			// nothing to say about the origin.
			pool.done(o, resultNeutral, "")
			return nil, err
		}
		kind := Kind(err)
		pool.obs.Failure(o, kind)
		if kind == "busy" {
			pool.done(o, resultNeutral, "") // the edge's own limit
		} else {
			pool.done(o, resultFailed, err.Error())
		}
		trip.tried = append(trip.tried, o)
		reached := kind != "refused" && kind != "busy" && !isDialError(err)
		reachedAny = reachedAny || reached
		switch {
		case trip.Tries >= rc.MaxTries, time.Since(start) >= rc.TryDuration:
			return nil, err
		case reached && !resendable(req):
			return nil, err
		case body != nil && !body.replayable():
			return nil, err // streamed past retries.body_limit, or partly sent
		}
		pool.obs.Retry(o, kind)
	}
}

// replayBody keeps what the attempts read of a request body, up to a
// limit, so that the request can be sent again. The body still streams:
// nothing is read ahead of the origin. Sending it again is possible while
// nothing was read (a refused connection) or once all of it was read
// within the limit.
type replayBody struct {
	src   io.ReadCloser
	limit int64
	mu    sync.Mutex
	buf   []byte
	read  int64 // bytes read from src
	eof   bool
	over  bool // more than limit was read: buf is dropped
	gen   int  // the current attempt's view
}

// errStaleAttempt: a failed attempt read the body after a new one started.
var errStaleAttempt = errors.New("request body read by a superseded attempt")

// errBodyNotReplayable: the request body cannot be sent again.
var errBodyNotReplayable = errors.New("request body was streamed and cannot be sent again (retries.body_limit)")

// trackBody makes req's body replayable within limit (see replayBody)
// and returns it, or nil when req has no body.
func trackBody(req *http.Request, limit int64) *replayBody {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	b := &replayBody{src: req.Body, limit: limit}
	req.Body = b.view()
	req.GetBody = func() (io.ReadCloser, error) {
		if !b.replayable() {
			return nil, errBodyNotReplayable
		}
		return b.view(), nil
	}
	return b
}

func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read == 0 || (b.eof && !b.over)
}

// view returns a reader of the body from its start for a new attempt;
// earlier attempts' readers stop reading the source.
func (b *replayBody) view() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	return &replayView{b: b, gen: b.gen}
}

// replayView is one attempt's reader of a replayBody. Closing it leaves
// the source open: the server closes the visitor's body.
type replayView struct {
	b   *replayBody
	gen int
	off int
}

func (v *replayView) Read(p []byte) (int, error) {
	b := v.b
	b.mu.Lock()
	if !b.over && v.off < len(b.buf) {
		n := copy(p, b.buf[v.off:])
		v.off += n
		b.mu.Unlock()
		return n, nil
	}
	if b.eof {
		b.mu.Unlock()
		return 0, io.EOF
	}
	if v.gen != b.gen {
		b.mu.Unlock()
		return 0, errStaleAttempt
	}
	b.mu.Unlock()
	n, err := b.src.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read += int64(n)
	v.off += n
	switch {
	case b.over:
	case b.read > b.limit:
		b.over, b.buf = true, nil
	default:
		b.buf = append(b.buf, p[:n]...)
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (v *replayView) Close() error { return nil }

// isDialError reports whether err happened while connecting, before the
// request was written.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// isTLSText recognizes TLS failures that reach the transport as plain
// errors (a handshake to a plain-HTTP port, for one). An HTTP/2
// connection that fails right after its handshake is counted too: under
// TLS 1.3 the client finishes its handshake before the origin checks the
// client certificate, and net/http reports the origin's refusal only as
// "client conn could not be established".
func isTLSText(err error) bool {
	s := err.Error()
	return strings.Contains(s, "tls: ") || strings.Contains(s, "x509: ") || strings.Contains(s, "http2: client conn could not be established")
}

// TargetURL returns the URL of in's path and query on origin base,
// joining paths the way httputil.ProxyRequest.SetURL does.
func TargetURL(base, in *url.URL) *url.URL {
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

// attempt is one request to one origin: its context, which is cancelled
// when the response body is closed, when no connection became free in
// time, or when the body stalls. An attempt through an H1Client has no
// context of its own (cancel is nil): the client bounds the wait for a
// connection itself, and a stalled body is ended by closing it.
type attempt struct {
	cancel context.CancelCauseFunc
	body   io.Closer
}

// end ends the attempt; cause is why, nil once its body is closed.
func (a *attempt) end(cause error) {
	switch {
	case a.cancel != nil:
		a.cancel(cause)
	case cause != nil:
		a.body.Close()
	}
}

// send sends req. Getting a connection (waiting for a free one under the
// connection limit, then dialing) is bounded by ConnWait: a request still
// queued for a connection then fails with ErrBusy, while one whose dial is
// under way is left to the dial timeout.
func (t *Transport) send(req *http.Request, base http.RoundTripper) (*http.Response, *attempt, error) {
	if base == nil {
		base = t.Base
	}
	if h, ok := base.(*H1Client); ok && h.serves(req.URL) {
		// The client waits for a connection for ConnWait itself, on the
		// visitor's goroutine: no context, timer or trace to set up.
		resp, err := h.roundTrip(req, t.ConnWait)
		if err != nil {
			return nil, nil, err
		}
		return resp, &attempt{body: resp.Body}, nil
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	a := &attempt{cancel: cancel}
	var dialing atomic.Bool
	timer := time.AfterFunc(t.ConnWait, func() {
		if !dialing.Load() {
			cancel(ErrBusy)
		}
	})
	trace := &httptrace.ClientTrace{
		ConnectStart: func(string, string) { dialing.Store(true) },
		GotConn:      func(httptrace.GotConnInfo) { timer.Stop() },
	}
	resp, err := base.RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
	timer.Stop()
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrBusy) {
			err = ErrBusy
		}
		cancel(nil)
		return nil, nil, err
	}
	return resp, a, nil
}

// idleBody is an origin's response body whose every Read must return
// within idle. When one does not, the attempt is cancelled and Read
// returns ErrBodyIdle. A failed read (stall or origin reset) counts as a
// failure of the origin and is reported to the Trip's BodyFailed; a read
// that fails because the visitor went away is reported as canceled. The
// attempt ends (for passive health and least_conn) when the body is
// closed.
type idleBody struct {
	body    io.ReadCloser
	idle    time.Duration
	timer   *time.Timer
	stalled atomic.Bool
	a       *attempt
	visitor context.Context
	trip    *Trip
	o       *Origin
	result  result
	why     string
	failed  bool
	once    sync.Once
}

func wrapBody(resp *http.Response, a *attempt, visitor context.Context, trip *Trip, o *Origin, r result, idle time.Duration) {
	b := &idleBody{body: resp.Body, idle: idle, a: a, visitor: visitor, trip: trip, o: o, result: r}
	if idle > 0 {
		b.timer = time.AfterFunc(idle, func() {
			b.stalled.Store(true)
			a.end(ErrBodyIdle)
		})
		b.timer.Stop()
	}
	resp.Body = b
}

// Read implements io.Reader.
func (b *idleBody) Read(p []byte) (int, error) {
	if b.timer != nil {
		b.timer.Reset(b.idle)
	}
	n, err := b.body.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if err != nil && err != io.EOF && !b.failed {
		b.failed = true
		err = b.fail(err)
	}
	return n, err
}

func (b *idleBody) fail(err error) error {
	switch {
	case b.stalled.Load():
		err = ErrBodyIdle
	case b.visitor.Err() != nil:
		b.result = resultNeutral
		if b.trip.BodyFailed != nil {
			b.trip.BodyFailed(err, true)
		}
		return err
	}
	b.result, b.why = resultFailed, err.Error()
	b.trip.Pool.obs.Failure(b.o, Kind(err))
	if b.trip.BodyFailed != nil {
		b.trip.BodyFailed(err, false)
	}
	return err
}

// Close implements io.Closer; it also ends the attempt.
func (b *idleBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.body.Close()
	b.a.end(nil)
	b.once.Do(func() { b.trip.Pool.done(b.o, b.result, b.why) })
	return err
}
