package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// errOriginBusy: no connection to the origin became free within
// timeouts.dial, because origins.max_conns are all in use. The visitor
// gets a 503 page; the error kind is "busy".
var errOriginBusy = errors.New("no connection to the origin became free in time (origins.max_conns)")

// errBodyIdle: the origin sent its headers and then nothing for
// origins.body_idle_timeout. The error kind is "timeout".
var errBodyIdle = errors.New("the origin's response body stalled (origins.body_idle_timeout)")

// attempt is one request to one origin: its context, which is cancelled
// when the response body is closed, when no connection became free in
// time, or when the body stalls.
type attempt struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// send sends req to the origin. Getting a connection (waiting for a free
// one under origins.max_conns, then dialing) is bounded by wait: a
// request still queued for a connection then fails with errOriginBusy,
// while one whose dial is under way is left to the dial timeout.
func (t *upstreamTransport) send(req *http.Request, wait time.Duration) (*http.Response, *attempt, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	a := &attempt{ctx: ctx, cancel: cancel}
	var dialing atomic.Bool
	timer := time.AfterFunc(wait, func() {
		if !dialing.Load() {
			cancel(errOriginBusy)
		}
	})
	trace := &httptrace.ClientTrace{
		ConnectStart: func(string, string) { dialing.Store(true) },
		GotConn:      func(httptrace.GotConnInfo) { timer.Stop() },
	}
	resp, err := t.base.RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
	timer.Stop()
	if err != nil {
		if errors.Is(context.Cause(ctx), errOriginBusy) {
			err = errOriginBusy
		}
		cancel(nil)
		return nil, nil, err
	}
	return resp, a, nil
}

// idleBody is an origin's response body whose every Read must return
// within idle. When one does not, the origin request is cancelled, and
// Read returns errBodyIdle. A failed read (stall or origin reset) is
// counted in edgeblock_upstream_errors_total and marks the request failed,
// so that it is logged and counted as an error, never as a success; a read
// that fails because the visitor went away marks it canceled instead.
// ReverseProxy then aborts the response (http.ErrAbortHandler), which
// closes the visitor's HTTP/1.1 connection or resets its HTTP/2 stream.
type idleBody struct {
	body    io.ReadCloser
	idle    time.Duration
	timer   *time.Timer
	stalled atomic.Bool
	a       *attempt
	visitor context.Context
	info    *reqInfo
	t       *upstreamTransport
	done    bool
}

func (t *upstreamTransport) wrapBody(resp *http.Response, a *attempt, visitor context.Context, info *reqInfo, idle time.Duration) {
	b := &idleBody{body: resp.Body, idle: idle, a: a, visitor: visitor, info: info, t: t}
	b.timer = time.AfterFunc(idle, func() {
		b.stalled.Store(true)
		a.cancel(errBodyIdle)
	})
	b.timer.Stop()
	resp.Body = b
}

// Read implements io.Reader.
func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.body.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && !b.done {
		b.done = true
		err = b.fail(err)
	}
	return n, err
}

func (b *idleBody) fail(err error) error {
	switch {
	case b.stalled.Load():
		err = errBodyIdle
	case b.visitor.Err() != nil:
		b.info.canceled = true
		return err
	}
	b.info.failed = true
	b.info.err = err
	o := b.info.origin
	b.t.metrics.UpstreamErrors.WithLabelValues(o.route, o.label, errKind(err)).Inc()
	return err
}

// Close implements io.Closer; it also ends the origin request's context.
func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.a.cancel(nil)
	return err
}
