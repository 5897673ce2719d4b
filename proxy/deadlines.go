package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// guardHandler wraps a public server's handler with what net/http's own
// timeouts cannot express without breaking streaming:
//
//   - a write idle deadline: every write (and flush) of the response must
//     make progress within writeIdle, else the HTTP/1.1 connection is
//     closed or the HTTP/2 stream reset; a response that keeps flowing
//     (server-sent events) lives as long as it flows;
//   - a body read idle deadline: every read of the request body must make
//     progress within bodyRead, else the request is answered 408 (or cut
//     off if the response had begun), and the origin connection that was
//     receiving the body is released;
//   - Connection: close on every response while the server drains, which
//     closes HTTP/1.1 connections after the response and makes the HTTP/2
//     server send GOAWAY.
//
// Deadlines are set through http.ResponseController, so they work the same
// on HTTP/1.1 and HTTP/2 (where they apply to the stream). A hijacked
// connection (a WebSocket) has its deadlines cleared: it is the reverse
// proxy's from then on.
type guardHandler struct {
	next      http.Handler
	writeIdle time.Duration
	bodyRead  time.Duration
	draining  *atomic.Bool
}

func (h *guardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := &guardWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: h.writeIdle, draining: h.draining}
	g.extend(true) // a fresh deadline: an earlier response on this connection may have left a past one
	if r.Body != nil && r.Body != http.NoBody && h.bodyRead > 0 {
		g.body = &guardBody{ReadCloser: r.Body, rc: g.rc, idle: h.bodyRead}
		r.Body = g.body
	}
	defer g.finish()
	h.next.ServeHTTP(g, r)
}

// extendEvery returns how long a deadline of d may go without being pushed
// forward: pushing it on every write would cost a timer reset per write
// (a message to the connection's goroutine on HTTP/2), so the effective
// idle bound lies between 7/8 of d and d.
func extendEvery(d time.Duration) time.Duration { return d / 8 }

// guardWriter is the ResponseWriter of guardHandler. Its methods are
// called by one goroutine at a time (the handler's), as net/http requires.
type guardWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	idle     time.Duration
	draining *atomic.Bool
	body     *guardBody

	last        time.Time // when the write deadline was last set
	wroteHeader bool
	hijacked    bool
	// timedOut is set when the answer became a 408 because the request
	// body stalled; the handler's own response is then discarded.
	timedOut bool
}

// extend pushes the write deadline to idle from now, at most every
// extendEvery unless force.
func (g *guardWriter) extend(force bool) {
	if g.idle <= 0 || g.hijacked {
		return
	}
	now := time.Now()
	if !force && now.Sub(g.last) < extendEvery(g.idle) {
		return
	}
	g.last = now
	g.rc.SetWriteDeadline(now.Add(g.idle))
}

// WriteHeader sends the status line and headers: Connection: close while
// draining, and 408 instead of the handler's status when the request body
// stalled before any response was written.
func (g *guardWriter) WriteHeader(code int) {
	if g.wroteHeader || g.timedOut {
		return
	}
	if code >= 200 {
		g.wroteHeader = true
		if g.body != nil && g.body.stalled() {
			g.timedOut = true
			h := g.Header()
			clear(h)
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("Connection", "close")
			g.extend(true)
			g.ResponseWriter.WriteHeader(http.StatusRequestTimeout)
			io.WriteString(g.ResponseWriter, "408 Request Timeout: the request body stalled\n")
			return
		}
		if g.draining != nil && g.draining.Load() {
			g.Header().Set("Connection", "close")
		}
	}
	g.extend(false)
	g.ResponseWriter.WriteHeader(code)
}

// Write writes response body bytes within the write idle deadline.
func (g *guardWriter) Write(p []byte) (int, error) {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	if g.timedOut {
		return len(p), nil
	}
	g.extend(false)
	return g.ResponseWriter.Write(p)
}

// FlushError flushes within the write idle deadline; http.ResponseController
// finds it before Unwrap.
func (g *guardWriter) FlushError() error {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	g.extend(false)
	return g.rc.Flush()
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
	c.SetDeadline(time.Time{})
	return c, brw, nil
}

// Unwrap returns the underlying ResponseWriter for http.ResponseController.
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// finish gives the final flush, done by net/http after the handler
// returns, a full write idle period.
func (g *guardWriter) finish() {
	g.extend(true)
}

// errBodyStalled is returned by a request body that made no progress for
// timeouts.body_read.
var errBodyStalled = fmt.Errorf("request body: no progress within timeouts.body_read: %w", os.ErrDeadlineExceeded)

// guardBody is a request body whose reads must make progress within idle.
// The reverse proxy's transport reads it on its own goroutine.
type guardBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	idle     time.Duration
	last     time.Time // last and ended are used by the reading goroutine only
	ended    bool
	deadline atomic.Int64 // Unix nanoseconds of the read deadline in force; 0 when none
	timedOut atomic.Bool
}

// stalled reports whether the body timed out, or is past its deadline
// (over HTTP/1.1 the timeout first cancels the request, so the handler may
// answer before Read has returned the error).
func (b *guardBody) stalled() bool {
	d := b.deadline.Load()
	return b.timedOut.Load() || (d != 0 && time.Now().UnixNano() >= d)
}

// Read reads with a read deadline idle from now. At the end of the body
// the deadline is cleared: on HTTP/1.1 net/http then reads the connection
// in the background, and a deadline firing there would cancel the request.
func (b *guardBody) Read(p []byte) (int, error) {
	if b.ended {
		return b.ReadCloser.Read(p)
	}
	if now := time.Now(); now.Sub(b.last) >= extendEvery(b.idle) {
		b.last = now
		b.deadline.Store(now.Add(b.idle).UnixNano())
		b.rc.SetReadDeadline(now.Add(b.idle))
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.ended = true
		b.deadline.Store(0)
		b.rc.SetReadDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			b.timedOut.Store(true)
			return n, errBodyStalled
		}
	}
	return n, err
}
