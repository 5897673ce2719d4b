package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// guardHandler wraps a public server's handler with what net/http's own
// timeouts cannot express without breaking streaming:
//
//   - a write idle bound: a write (or flush) of the response that makes no
//     progress for writeIdle closes the HTTP/1.1 connection or resets the
//     HTTP/2 stream; a response that keeps flowing (server-sent events)
//     lives as long as it flows, however long it pauses between writes;
//   - a body read idle bound: a read of the request body that makes no
//     progress for bodyRead fails, the request is answered 408 (or cut off
//     if the response had begun), and the origin connection that was
//     receiving the body is released;
//   - Connection: close on every response while the server drains, which
//     closes HTTP/1.1 connections after the response and makes the HTTP/2
//     server send GOAWAY.
//
// The bounds are watchdog timers armed only while a read or write is in
// progress; when one fires it sets a past deadline through
// http.ResponseController, which fails the pending operation on HTTP/1.1
// and resets the stream on HTTP/2. A hijacked connection (a WebSocket) has
// its deadlines cleared: it is the reverse proxy's from then on.
//
// On HTTP/2 what the handler left in net/http's 4 KiB stream buffer (a
// whole block page) is flushed before the handler returns, under the
// write idle bound: a peer that grants the stream no flow-control window
// for writeIdle has that stream reset, and its connection serves on.
// net/http then ends the stream with an empty DATA frame, which needs no
// window (see guardWriter.finish).
type guardHandler struct {
	next      http.Handler
	writeIdle time.Duration
	bodyRead  time.Duration
	draining  *atomic.Bool
}

func (h *guardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := newGuardWriter(w, h.writeIdle, h.draining, r.ProtoMajor == 2)
	if r.Body != nil && r.Body != http.NoBody && h.bodyRead > 0 {
		g.body = &guardBody{ReadCloser: r.Body}
		g.body.wd = newWatchdog(h.bodyRead, func() { g.rc.SetReadDeadline(time.Now()) })
		r.Body = g.body
	}
	defer g.finish()
	h.next.ServeHTTP(g, r)
}

// guards holds guardWriters whose request ended with their write watchdog
// provably quiet (see guardWriter.release), with the watchdog's timer and
// action made: the writer, its watchdog, the timer and the action are made
// once per pooled writer instead of once per request.
var guards sync.Pool // of *guardWriter

// newGuardWriter returns a guardWriter for w, with a write watchdog of
// idle (none when idle is 0), from the pool when it has one.
func newGuardWriter(w http.ResponseWriter, idle time.Duration, draining *atomic.Bool, h2 bool) *guardWriter {
	g, _ := guards.Get().(*guardWriter)
	if g == nil {
		g = new(guardWriter)
		g.wdog.init(func() { g.rc.SetWriteDeadline(time.Now()) })
	}
	g.ResponseWriter, g.rc, g.idle, g.draining, g.h2 = w, *http.NewResponseController(w), idle, draining, h2
	if idle > 0 {
		g.wdog.d = idle
		g.wd = &g.wdog
	}
	return g
}

// reusable reports whether release may pool g (see release).
func (g *guardWriter) reusable() bool {
	return g.body == nil && !g.hijacked && (g.wd == nil || g.wd.reusable())
}

// release puts g back into the pool when nothing can reach it any more:
// no body watchdog (the transport may still read the body), not hijacked,
// and the write watchdog's timer never fired nor was caught firing (a late
// action would act on the next request's writer).
func (g *guardWriter) release() {
	if !g.reusable() {
		return
	}
	t, fire := g.wdog.t, g.wdog.fire
	*g = guardWriter{}
	g.wdog.t, g.wdog.fire = t, fire
	guards.Put(g)
}

type connKey struct{}

// withConn is the public servers' ConnContext: it makes a request's
// connection reachable from its context, for requestConn.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// clearWriteDeadline is the public servers' ConnState hook: an HTTP/1.1
// connection going idle loses the write deadline guardWriter.finish set
// for the last response, so that the next request starts afresh. HTTP/2
// connections are left alone: their writer sets its own deadlines
// (WriteByteTimeout) on another goroutine.
func clearWriteDeadline(c net.Conn, s http.ConnState) {
	if s != http.StateIdle {
		return
	}
	if tc, ok := c.(*tls.Conn); ok && isH2(tc) {
		return
	}
	c.SetWriteDeadline(time.Time{})
}

// isH2 reports whether c negotiated HTTP/2; a public listener's connection
// remembers the answer (ConnectionState copies the whole state under a
// lock), which the handshake, over before the first request, fixed.
func isH2(c *tls.Conn) bool {
	lc, _ := c.NetConn().(*limitConn)
	if lc != nil {
		switch lc.proto.Load() {
		case protoH1:
			return false
		case protoH2:
			return true
		}
	}
	h2 := c.ConnectionState().NegotiatedProtocol == "h2"
	if lc != nil {
		p := int32(protoH1)
		if h2 {
			p = protoH2
		}
		lc.proto.Store(p)
	}
	return h2
}

// watchdog calls fire when an operation between start and stop takes
// longer than d. Its timer is made once; start and stop are called by one
// goroutine at a time, close by any, after which fire is never called.
type watchdog struct {
	d     time.Duration
	t     *time.Timer
	fire  func()
	mu    sync.Mutex
	off   bool
	fired atomic.Bool
	// armed: started and not stopped since; spoiled: a stop found the
	// timer already fired. Only the goroutine calling start and stop uses
	// them (reusable).
	armed, spoiled bool
}

func newWatchdog(d time.Duration, fire func()) *watchdog {
	w := &watchdog{d: d}
	w.init(fire)
	return w
}

// init makes w's timer, stopped, with fire as its action.
func (w *watchdog) init(fire func()) {
	w.fire = fire
	w.t = time.AfterFunc(time.Hour, w.trigger)
	w.t.Stop()
}

func (w *watchdog) start() { w.t.Reset(w.d); w.armed = true }

func (w *watchdog) stop() {
	if !w.t.Stop() && w.armed {
		w.spoiled = true // it fired, or its action is about to run
	}
	w.armed = false
}

// reusable reports whether w's action has never run and never will for
// what happened so far: every start was followed by a stop that caught
// the timer before it fired. Call it after close.
func (w *watchdog) reusable() bool { return !w.spoiled && !w.armed && !w.fired.Load() }

func (w *watchdog) trigger() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.off {
		return
	}
	w.fired.Store(true)
	w.fire()
}

// close stops the watchdog for good; when it returns, fire is not running
// and will not run.
func (w *watchdog) close() {
	w.mu.Lock()
	w.off = true
	w.mu.Unlock()
	w.t.Stop()
}

// guardWriter is the ResponseWriter of guardHandler. Its methods are
// called by one goroutine at a time (the handler's), as net/http requires.
type guardWriter struct {
	http.ResponseWriter
	rc       http.ResponseController
	idle     time.Duration
	wd       *watchdog // &wdog, or nil when writeIdle is 0
	wdog     watchdog
	draining *atomic.Bool
	body     *guardBody

	h2 bool
	// length is the response's Content-Length as the header said when
	// it was written, -1 for none; written counts the body bytes the
	// handler wrote (finish: a complete response).
	length, written int64
	wroteHeader     bool
	dirty           bool // body bytes written since the last flush
	hijacked        bool
	// bodyTimeout is set when the answer became a 408 because the request
	// body stalled; the handler's own response is then discarded.
	bodyTimeout bool
}

// WriteHeader sends the status line and headers: Connection: close while
// draining, and 408 instead of the handler's status when the request body
// stalled before any response was written.
func (g *guardWriter) WriteHeader(code int) {
	if g.wroteHeader || g.bodyTimeout {
		return
	}
	if code >= 200 {
		g.wroteHeader = true
		if g.body != nil && g.body.wd.fired.Load() {
			g.bodyTimeout = true
			h := g.Header()
			clear(h)
			h.Set("Content-Type", "text/plain; charset=utf-8")
			if !g.h2 { // the connection's read side is spent; an HTTP/2 connection's other streams are fine
				h.Set("Connection", "close")
			}
			g.ResponseWriter.WriteHeader(http.StatusRequestTimeout)
			g.guard(func() error {
				_, err := io.WriteString(g.ResponseWriter, "408 Request Timeout: the request body stalled\n")
				return err
			})
			return
		}
		if g.draining != nil && g.draining.Load() {
			g.Header().Set("Connection", "close")
		}
		g.length = -1
		if v := g.Header()["Content-Length"]; !g.h2 && len(v) == 1 {
			if n, err := strconv.ParseInt(v[0], 10, 64); err == nil {
				g.length = n
			}
		}
	}
	g.ResponseWriter.WriteHeader(code)
}

// guard runs op under the write watchdog.
func (g *guardWriter) guard(op func() error) error {
	if g.wd == nil {
		return op()
	}
	g.wd.start()
	defer g.wd.stop()
	return op()
}

// Write writes response body bytes under the write watchdog.
func (g *guardWriter) Write(p []byte) (n int, err error) {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	if g.bodyTimeout {
		return len(p), nil
	}
	g.guard(func() error {
		n, err = g.ResponseWriter.Write(p)
		return err
	})
	g.dirty = g.dirty || n > 0
	g.written += int64(n)
	return n, err
}

// FlushError flushes under the write watchdog; http.ResponseController
// finds it before Unwrap.
func (g *guardWriter) FlushError() error {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	g.dirty = false
	return g.guard(g.rc.Flush)
}

// Flush implements http.Flusher.
func (g *guardWriter) Flush() { g.FlushError() }

// Hijack takes the connection over (an upgrade) and clears its deadlines:
// an upgraded connection is bounded by its own peers from then on.
func (g *guardWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := g.rc.Hijack()
	if err != nil {
		return nil, nil, err
	}
	g.hijacked = true
	if g.wd != nil {
		g.wd.close()
	}
	c.SetDeadline(time.Time{})
	return c, brw, nil
}

// Unwrap returns the underlying ResponseWriter for http.ResponseController.
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// finish stops the watchdogs and bounds the final flush, which net/http
// does after the handler returns. On HTTP/1.1 that is a write deadline of
// idle from now on the connection, cleared when it goes idle.
//
// On HTTP/2 a stream deadline set now could outlive a stream that has
// already closed (leaving a timer behind), and the stream cannot be reset
// once the handler has returned, so body bytes still buffered (at most
// net/http's 4 KiB) are flushed here under the watchdog, and net/http ends
// the stream with an empty DATA frame, which needs no flow-control window.
// (Leaving them to net/http's last write, with a watchdog that closes the
// connection if that write stalls, saves that frame but costs two
// goroutines per response, one of them CloseNotify's, to see the stream
// end: 9% more CPU per HTTP/2 block page.)
func (g *guardWriter) finish() {
	if g.body != nil {
		g.body.wd.close()
		if !g.wroteHeader && !g.hijacked && g.body.wd.fired.Load() {
			// The handler gave up without answering (on HTTP/1.1 the
			// stalled read also cancels the request): answer 408.
			g.WriteHeader(http.StatusRequestTimeout)
		}
	}
	if g.wd == nil || g.hijacked {
		g.release()
		return
	}
	if g.h2 {
		if g.dirty {
			g.FlushError()
		}
		g.wd.close()
		g.release()
		return
	}
	if g.complete() {
		// Flushed here, under the watchdog, the response leaves net/http
		// nothing to write after the handler: no connection deadline to
		// set now and clear when the connection goes idle.
		g.guard(g.rc.Flush)
		g.wd.close()
		g.release()
		return
	}
	g.wd.close()
	g.rc.SetWriteDeadline(time.Now().Add(g.idle))
	g.release()
}

// complete reports whether the HTTP/1.1 response is whole: its header
// was written with a Content-Length and the handler wrote that many body
// bytes (net/http then adds nothing after the handler: no chunk trailer).
func (g *guardWriter) complete() bool {
	return g.wroteHeader && !g.bodyTimeout && g.length > 0 && g.written == g.length
}

// errBodyStalled is returned by a request body that made no progress for
// timeouts.body_read.
var errBodyStalled = fmt.Errorf("request body: no progress within timeouts.body_read: %w", os.ErrDeadlineExceeded)

// guardBody is a request body whose reads must make progress within its
// watchdog's time. The reverse proxy's transport reads it on its own
// goroutine.
type guardBody struct {
	io.ReadCloser
	wd *watchdog
}

// Read reads under the body watchdog.
func (b *guardBody) Read(p []byte) (int, error) {
	b.wd.start()
	n, err := b.ReadCloser.Read(p)
	b.wd.stop()
	if err != nil && b.wd.fired.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, errBodyStalled
	}
	return n, err
}
