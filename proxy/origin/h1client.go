package origin

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// H1Client is an HTTP/1.1 client for origins: a http.RoundTripper that
// writes each request and reads its response on the caller's goroutine,
// on a connection from a per-origin-address pool, instead of handing
// them to a connection's reader and writer goroutines as http.Transport
// does. Only a request with a body is written from a goroutine of its
// own, so that an origin may answer before it has read all of it.
//
// It serves http URLs, and https URLs when HTTPS is set (TLS with
// TLSConfig, ALPN http/1.1 only); it hands any other request to
// Fallback. It keeps what http.Transport guarantees a reverse proxy:
// request bodies (sized, chunked, none), trailers, 1xx responses passed
// to the request's httptrace.ClientTrace Got1xxResponse, 101 upgrades
// (the response body is an io.ReadWriteCloser over the connection),
// "Expect: 100-continue" (the body waits up to a second for the 100),
// Connection: close from either side, and the cancellation of a blocked
// read or write by the request's context. A connection goes back to the
// pool only once its response body was read to its end, and serves the
// next request only while nothing but that request's answer can arrive
// on it (see h1attribution.go); one closed earlier is closed. A request
// that fails on a reused connection before any of its response arrived
// (the origin closed the idle connection) is sent once more on a new
// connection only when that is safe (see resendable).
//
// The exported fields must not change once the client is in use.
type H1Client struct {
	// DialTimeout bounds connecting, and the TLS handshake; 0: none.
	DialTimeout time.Duration
	// HTTPS: serve https URLs too, over TLS with TLSConfig (nil: the
	// system roots); ServerName defaults to the URL's host.
	HTTPS     bool
	TLSConfig *tls.Config
	// MaxIdlePerHost is how many idle connections are kept per origin
	// address; 0 means 2, as in http.Transport.
	MaxIdlePerHost int
	// MaxConnsPerHost caps the connections (idle, busy and dialing) to
	// one origin address; a request waits for one to become free for
	// ConnWait, then fails with ErrBusy. 0: no cap.
	MaxConnsPerHost int
	// ConnWait bounds a request's wait for a free connection under
	// MaxConnsPerHost; 0: as long as its context lasts. (Under a
	// Transport, the Transport's ConnWait applies.)
	ConnWait time.Duration
	// IdleTimeout closes a connection idle for that long; 0: 90 s.
	IdleTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response's headers
	// once the request (without its body) is written; 0: none.
	ResponseHeaderTimeout time.Duration
	// MaxResponseHeaderBytes bounds the bytes of the response's headers
	// (1xx responses included); 0: 10 MiB, as in http.Transport.
	MaxResponseHeaderBytes int64
	// Fallback serves the requests the client does not (other schemes,
	// and https without HTTPS); nil: they fail.
	Fallback http.RoundTripper

	mu          sync.Mutex
	hosts       map[hostKey]*hostConns
	unsolicited atomic.Int64 // connections closed for unsolicited bytes
}

// hostKey names one origin address's pool.
type hostKey struct {
	tls  bool
	addr string // host:port
}

// errHeaderLimit: the response headers exceeded MaxResponseHeaderBytes.
type errHeaderLimit int64

func (e errHeaderLimit) Error() string {
	return fmt.Sprintf("origin response headers exceeded %d bytes; aborted", int64(e))
}

// errHeaderTimeout: no response headers within ResponseHeaderTimeout. It
// is a net.Error whose Timeout is true.
var errHeaderTimeout error = timeoutError{"timeout awaiting the origin's response headers"}

type timeoutError struct{ s string }

func (e timeoutError) Error() string   { return e.s }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

// errBodyAborted stops writing a request body the origin did not want
// (it answered an "Expect: 100-continue" request and closes).
var errBodyAborted = errors.New("request body not sent: the origin answered without 100 Continue")

// aLongTimeAgo is a deadline that has passed: it unblocks reads and writes.
var aLongTimeAgo = time.Unix(1, 0)

const (
	defaultMaxHeaderBytes = 10 << 20
	defaultIdleTimeout    = 90 * time.Second
	expectContinueTimeout = time.Second
	// writeWait is how long a response that arrived before its request
	// was fully written waits for the write to end, for the connection
	// to be reused (http.Transport waits as long).
	writeWait = 50 * time.Millisecond
)

// RoundTrip implements http.RoundTripper.
func (c *H1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if !c.serves(req.URL) {
		if c.Fallback != nil && req.URL != nil {
			return c.Fallback.RoundTrip(req)
		}
		closeBody(req)
		if req.URL == nil {
			return nil, errors.New("origin: request has no URL")
		}
		return nil, fmt.Errorf("origin: unsupported protocol scheme %q", req.URL.Scheme)
	}
	return c.roundTrip(req, c.ConnWait)
}

// serves reports whether the client itself sends requests to u.
func (c *H1Client) serves(u *url.URL) bool {
	return u != nil && (u.Scheme == "http" || u.Scheme == "https" && c.HTTPS)
}

// roundTrip sends req, which the client serves, waiting up to connWait
// for a connection under MaxConnsPerHost (0: while req's context lasts).
func (c *H1Client) roundTrip(req *http.Request, connWait time.Duration) (*http.Response, error) {
	u := req.URL
	if u.Host == "" {
		closeBody(req)
		return nil, errors.New("origin: request URL has no host")
	}
	key := hostKey{tls: u.Scheme == "https"}
	if key.tls {
		key.addr = canonicalAddr(u.Host, "443")
	} else {
		key.addr = canonicalAddr(u.Host, "80")
	}
	hc := c.hostsFor(key, u.Hostname())
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	var pool *Pool
	var origin *Origin
	if t := TripFrom(ctx); t != nil {
		pool, origin = t.Pool, t.Origin
	}
	fresh := false
	for {
		pc, err := hc.get(ctx, trace, fresh, connWait)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		pc.pool, pc.origin = pool, origin
		resp, err := pc.roundTrip(req, trace)
		if err == nil {
			return resp, nil
		}
		var st staleError
		if !errors.As(err, &st) {
			closeBody(req)
			return nil, err
		}
		// The origin closed a connection it had kept idle, maybe after
		// it got the request: once more, on a new one, if that is safe.
		err = st.err
		if fresh || ctx.Err() != nil || !resendable(req) {
			closeBody(req)
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
		fresh = true
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// canonicalAddr returns host:port of an URL's Host, with port def when
// it names none.
func canonicalAddr(host, def string) string {
	// A host with a port ends in ":digits" after any "]".
	for i := len(host) - 1; i >= 0; i-- {
		switch b := host[i]; {
		case b == ':':
			if i < len(host)-1 {
				return host
			}
			return host + def
		case b < '0' || b > '9':
			return net.JoinHostPort(trimBrackets(host), def)
		}
	}
	return net.JoinHostPort(host, def)
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// hostsFor returns the pool of key, making it on first use.
func (c *H1Client) hostsFor(key hostKey, serverName string) *hostConns {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc := c.hosts[key]; hc != nil {
		return hc
	}
	if c.hosts == nil {
		c.hosts = map[hostKey]*hostConns{}
	}
	hc := &hostConns{c: c, key: key, maxIdle: c.MaxIdlePerHost, maxOpen: c.MaxConnsPerHost, idleTimeout: c.IdleTimeout}
	if hc.maxIdle <= 0 {
		hc.maxIdle = 2
	}
	if hc.idleTimeout <= 0 {
		hc.idleTimeout = defaultIdleTimeout
	}
	hc.maxHeader = c.MaxResponseHeaderBytes
	if hc.maxHeader <= 0 {
		hc.maxHeader = defaultMaxHeaderBytes
	}
	if key.tls {
		if c.TLSConfig != nil {
			hc.tls = c.TLSConfig.Clone()
		} else {
			hc.tls = &tls.Config{}
		}
		if hc.tls.ServerName == "" {
			hc.tls.ServerName = serverName
		}
		hc.tls.NextProtos = []string{"http/1.1"}
	}
	c.hosts[key] = hc
	return hc
}

// CloseIdleConnections closes the connections no request uses; those in
// use close or go idle when their requests end.
func (c *H1Client) CloseIdleConnections() {
	c.mu.Lock()
	hosts := make([]*hostConns, 0, len(c.hosts))
	for _, hc := range c.hosts {
		hosts = append(hosts, hc)
	}
	c.mu.Unlock()
	for _, hc := range hosts {
		hc.closeIdle(0)
	}
	if ci, ok := c.Fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// hostConns is the pool of one origin address: its idle connections
// (most recently used last), how many are open, and the requests waiting
// for one under maxOpen.
type hostConns struct {
	c           *H1Client
	key         hostKey
	tls         *tls.Config
	maxIdle     int
	maxOpen     int
	maxHeader   int64
	idleTimeout time.Duration

	mu      sync.Mutex
	idle    []*h1Conn
	open    int
	waiters []chan *h1Conn // a nil *h1Conn sent means: a slot to dial in
	sweep   *time.Timer
	swept   bool // sweep is armed

	// noReuseUntil (Unix nanoseconds): until then no connection to this
	// address is reused, as it sent bytes no request asked for (see
	// unsolicitedNoReuse).
	noReuseUntil atomic.Int64
}

// reusable reports whether hc's connections may carry another request.
// An address that never sent unsolicited bytes costs no clock read.
func (hc *hostConns) reusable() bool {
	u := hc.noReuseUntil.Load()
	return u == 0 || time.Now().UnixNano() >= u
}

// get returns a connection for one request: an idle one (unless fresh),
// else a new one when the pool is under maxOpen, else the first to free
// up, while ctx lasts and for wait at most (0: no bound), after which it
// fails with ErrBusy.
func (hc *hostConns) get(ctx context.Context, trace *httptrace.ClientTrace, fresh bool, wait time.Duration) (*h1Conn, error) {
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(hc.key.addr)
	}
	hc.mu.Lock()
	for !fresh && hc.reusable() {
		pc := hc.popIdle()
		if pc == nil {
			break
		}
		hc.mu.Unlock()
		if pc.whileIdle() == quiet {
			pc.gotConn(trace)
			return pc, nil
		}
		pc.nc.Close()
		hc.mu.Lock()
		hc.open--
	}
	if hc.maxOpen <= 0 || hc.open < hc.maxOpen {
		hc.open++
		hc.mu.Unlock()
		return hc.dial(ctx, trace)
	}
	ch := make(chan *h1Conn, 1)
	hc.waiters = append(hc.waiters, ch)
	hc.mu.Unlock()
	var expired <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	var err error
	select {
	case pc := <-ch:
		return hc.handed(ctx, trace, pc)
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = ErrBusy
	}
	hc.mu.Lock()
	for i, w := range hc.waiters {
		if w == ch {
			hc.waiters = append(hc.waiters[:i], hc.waiters[i+1:]...)
			hc.mu.Unlock()
			return nil, err
		}
	}
	hc.mu.Unlock()
	// Handed something as the wait ended: pass it on.
	if pc := <-ch; pc != nil {
		hc.put(pc)
	} else {
		hc.release()
	}
	return nil, err
}

// handed takes what a waiter was handed: a connection, or a slot to dial
// (also the slot of a handed connection that is not quiet).
func (hc *hostConns) handed(ctx context.Context, trace *httptrace.ClientTrace, pc *h1Conn) (*h1Conn, error) {
	if pc != nil && hc.reusable() && pc.whileIdle() == quiet {
		pc.gotConn(trace)
		return pc, nil
	}
	if pc != nil {
		pc.nc.Close()
	}
	return hc.dial(ctx, trace)
}

// popIdle takes the most recently used idle connection that has not
// expired; hc.mu is held. The caller checks that it is quiet.
func (hc *hostConns) popIdle() *h1Conn {
	for n := len(hc.idle); n > 0; n = len(hc.idle) {
		pc := hc.idle[n-1]
		hc.idle[n-1] = nil
		hc.idle = hc.idle[:n-1]
		if time.Since(pc.idleAt) < hc.idleTimeout {
			return pc
		}
		hc.open--
		pc.nc.Close()
	}
	return nil
}

// dial opens a connection in a slot already counted in open.
func (hc *hostConns) dial(ctx context.Context, trace *httptrace.ClientTrace) (*h1Conn, error) {
	nc, err := hc.connect(ctx, trace)
	if err != nil {
		hc.release()
		return nil, err
	}
	pc := &h1Conn{hc: hc, nc: nc, limit: math.MaxInt64}
	pc.br = bufio.NewReaderSize(pc, 4<<10)
	pc.bw = bufio.NewWriterSize(nc, 4<<10)
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		pc.tlsState = &st
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: nc})
	}
	return pc, nil
}

// connect dials the address, and shakes hands over TLS for https.
func (hc *hostConns) connect(ctx context.Context, trace *httptrace.ClientTrace) (net.Conn, error) {
	d := net.Dialer{Timeout: hc.c.DialTimeout, KeepAlive: 30 * time.Second}
	if trace != nil && trace.ConnectStart != nil {
		trace.ConnectStart("tcp", hc.key.addr)
	}
	nc, err := d.DialContext(ctx, "tcp", hc.key.addr)
	if trace != nil && trace.ConnectDone != nil {
		trace.ConnectDone("tcp", hc.key.addr, err)
	}
	if err != nil || hc.tls == nil {
		return nc, err
	}
	tc := tls.Client(nc, hc.tls)
	hctx := ctx
	if t := hc.c.DialTimeout; t > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	err = tc.HandshakeContext(hctx)
	if trace != nil && trace.TLSHandshakeDone != nil {
		trace.TLSHandshakeDone(tc.ConnectionState(), err)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

// put returns a connection whose response ended cleanly: to a waiting
// request, else to the idle list.
func (hc *hostConns) put(pc *h1Conn) {
	hc.mu.Lock()
	if len(hc.waiters) > 0 {
		w := hc.waiters[0]
		hc.waiters = hc.waiters[1:]
		hc.mu.Unlock()
		w <- pc
		return
	}
	if len(hc.idle) >= hc.maxIdle {
		hc.open--
		hc.mu.Unlock()
		pc.nc.Close()
		return
	}
	pc.idleAt = time.Now()
	hc.idle = append(hc.idle, pc)
	if !hc.swept {
		hc.swept = true
		if hc.sweep == nil {
			hc.sweep = time.AfterFunc(min(sweepInterval, hc.idleTimeout), hc.sweepIdle)
		} else {
			hc.sweep.Reset(min(sweepInterval, hc.idleTimeout))
		}
	}
	hc.mu.Unlock()
}

// release frees the slot of a connection that closed (or never opened):
// the first waiting request may dial in it.
func (hc *hostConns) release() {
	hc.mu.Lock()
	if len(hc.waiters) > 0 {
		w := hc.waiters[0]
		hc.waiters = hc.waiters[1:]
		hc.mu.Unlock()
		w <- nil
		return
	}
	hc.open--
	hc.mu.Unlock()
}

// sweepInterval is how often idle connections are checked for an origin
// that closed them, so that their descriptors go soon (http.Transport's
// reader goroutine notices at once).
const sweepInterval = time.Second

// sweepIdle closes the connections idle for idleTimeout and those their
// origin closed, and arms itself again while any are idle.
func (hc *hostConns) sweepIdle() {
	hc.closeIdle(hc.idleTimeout)
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if len(hc.idle) == 0 {
		hc.swept = false
		return
	}
	hc.sweep.Reset(min(sweepInterval, time.Until(hc.idle[0].idleAt.Add(hc.idleTimeout))+time.Millisecond))
}

// closeIdle closes the idle connections idle for at least d, and, for
// d > 0 (a sweep), those that are not quiet: the origin closed them, or
// sent something unasked (which is reported).
func (hc *hostConns) closeIdle(d time.Duration) {
	hc.mu.Lock()
	var closing, stirred []*h1Conn
	keep := hc.idle[:0]
	var b [1]byte
	for _, pc := range hc.idle {
		switch {
		case time.Since(pc.idleAt) >= d:
			closing = append(closing, pc)
		case d > 0:
			if n, closed := peekSocket(pc.nc, b[:]); closed || n > 0 {
				stirred = append(stirred, pc)
				continue
			}
			fallthrough
		default:
			keep = append(keep, pc)
		}
	}
	clear(hc.idle[len(keep):])
	hc.idle = keep
	hc.open -= len(closing) + len(stirred)
	hc.mu.Unlock()
	for _, pc := range stirred {
		pc.whileIdle() // reports what it holds
		pc.nc.Close()
	}
	for _, pc := range closing {
		pc.nc.Close()
	}
}

// h1Conn is one connection to an origin; one request uses it at a time.
type h1Conn struct {
	hc       *hostConns
	nc       net.Conn
	br       *bufio.Reader // reads through the h1Conn, under limit
	bw       *bufio.Writer
	tlsState *tls.ConnectionState
	idleAt   time.Time
	reused   bool // served a request before

	// pool and origin: the latest request's, for reporting unsolicited
	// bytes (nil outside an origin.Transport); reported: they were.
	pool     *Pool
	origin   *Origin
	reported bool

	limit int64 // bytes the reader may still read (response headers)
	nread int64 // bytes read in the current request

	// canceled: the request's context ended; the connection's deadline
	// is in the past and it is closed when the request is done.
	canceled atomic.Bool

	// dmu orders the writer's arming of ResponseHeaderTimeout (once the
	// request is written) with the reader's disarming (headers in).
	dmu            sync.Mutex
	headersIn      bool
	headerDeadline time.Time // zero: not armed
}

// armHeaderTimeout starts ResponseHeaderTimeout, unless the headers are
// in already.
func (pc *h1Conn) armHeaderTimeout() {
	t := pc.hc.c.ResponseHeaderTimeout
	if t <= 0 {
		return
	}
	pc.dmu.Lock()
	if !pc.headersIn {
		pc.headerDeadline = time.Now().Add(t)
		pc.setReadDeadline(pc.headerDeadline)
	}
	pc.dmu.Unlock()
}

// headerTimedOut reports whether ResponseHeaderTimeout ran out: a read
// cut by the deadline can fail in any way (a status line cut short reads
// as a malformed one).
func (pc *h1Conn) headerTimedOut() bool {
	pc.dmu.Lock()
	defer pc.dmu.Unlock()
	return !pc.headerDeadline.IsZero() && !time.Now().Before(pc.headerDeadline)
}

// disarmHeaderTimeout ends ResponseHeaderTimeout: the headers are in.
func (pc *h1Conn) disarmHeaderTimeout() {
	if pc.hc.c.ResponseHeaderTimeout <= 0 {
		return
	}
	pc.dmu.Lock()
	pc.headersIn = true
	pc.setReadDeadline(time.Time{})
	pc.dmu.Unlock()
}

// Read implements io.Reader for br: the connection, under limit.
func (pc *h1Conn) Read(p []byte) (int, error) {
	if pc.limit <= 0 {
		return 0, errHeaderLimit(pc.hc.maxHeader)
	}
	if int64(len(p)) > pc.limit {
		p = p[:pc.limit]
	}
	n, err := pc.nc.Read(p)
	pc.limit -= int64(n)
	pc.nread += int64(n)
	return n, err
}

func (pc *h1Conn) gotConn(trace *httptrace.ClientTrace) {
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: pc.nc, Reused: true, WasIdle: true, IdleTime: time.Since(pc.idleAt)})
	}
}

// cancel unblocks the connection's reads and writes for good.
func (pc *h1Conn) cancel() {
	pc.canceled.Store(true)
	pc.nc.SetDeadline(aLongTimeAgo)
}

// setReadDeadline sets the read deadline unless the request was canceled.
func (pc *h1Conn) setReadDeadline(t time.Time) {
	pc.nc.SetReadDeadline(t)
	if pc.canceled.Load() {
		pc.nc.SetDeadline(aLongTimeAgo)
	}
}

// errIdle408 is the error of a request whose reused connection
// answered 408: the origin closed the connection while the request was
// on its way, or timed out a request it had not fully got.
var errIdle408 = errors.New("origin: 408 on a reused connection (the origin closed it as idle)")

// staleError: a reused connection failed before any of the response
// arrived; the request may be sent again.
type staleError struct{ err error }

func (e staleError) Error() string { return e.err.Error() }

// exchange is one request on one connection, from its write to the end
// of its response body.
type exchange struct {
	pc     *h1Conn
	req    *http.Request
	stop   func() bool // stops the context's cancel of the connection
	wrote  chan error  // the writer goroutine's result; nil: written inline
	body   *reqBody    // the request body being written, if any
	resp   *http.Response
	closed bool
}

// roundTrip sends req on pc and reads the response's headers. On error
// pc is closed; on success pc belongs to the response's body.
func (pc *h1Conn) roundTrip(req *http.Request, trace *httptrace.ClientTrace) (*http.Response, error) {
	ctx := req.Context()
	reused := pc.reused
	pc.reused = true
	pc.nread = 0
	pc.headersIn = false
	pc.headerDeadline = time.Time{}
	x := &exchange{pc: pc, req: req}
	x.stop = context.AfterFunc(ctx, pc.cancel)
	var cont chan bool // the origin's 100 Continue (true), or its refusal
	if req.Body != nil && req.Body != http.NoBody {
		// The body is written on a goroutine of its own, so that the
		// origin may answer before it has read all of it.
		x.body = &reqBody{ReadCloser: req.Body, bw: pc.bw}
		if expectsContinue(req) {
			cont = make(chan bool, 1)
			x.body.cont = cont
		}
		wreq := *req
		wreq.Body = x.body
		x.wrote = make(chan error, 1)
		go func() {
			err := wreq.Write(pc.bw)
			if err == nil {
				err = pc.bw.Flush()
			}
			if err != nil {
				// Like http.Transport: the connection is done for, and
				// the reader waiting for an answer is released.
				pc.nc.Close()
			} else {
				pc.armHeaderTimeout()
				if trace != nil && trace.WroteRequest != nil {
					trace.WroteRequest(httptrace.WroteRequestInfo{})
				}
			}
			x.wrote <- err
		}()
	} else {
		err := req.Write(pc.bw)
		if err == nil {
			err = pc.bw.Flush()
		}
		if err != nil {
			return nil, x.fail(err, reused)
		}
		if trace != nil && trace.WroteRequest != nil {
			trace.WroteRequest(httptrace.WroteRequestInfo{})
		}
		pc.armHeaderTimeout()
	}
	pc.limit = pc.hc.maxHeader
	resp, err := x.readResponse(trace, cont)
	pc.limit = math.MaxInt64
	if err != nil {
		if !pc.canceled.Load() && pc.hc.c.ResponseHeaderTimeout > 0 && (isTimeout(err) || pc.headerTimedOut()) {
			err = errHeaderTimeout
		}
		return nil, x.fail(err, reused)
	}
	if reused && resp.StatusCode == http.StatusRequestTimeout {
		// An origin timing out an idle connection writes a 408 that
		// answers no request (net/http's server and nginx do), and it can
		// cross this request on the wire: on a reused connection a 408 is
		// not known to be this request's answer, so it is not handed on.
		// The connection closes; the request goes again on a new one if
		// that is safe (see resendable), else the caller gets an error.
		if err := x.fail(errIdle408, false); err != errIdle408 {
			return nil, err
		}
		return nil, staleError{errIdle408}
	}
	pc.disarmHeaderTimeout()
	resp.Request = req
	resp.TLS = pc.tlsState
	x.resp = resp
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection leaves the pool: it is the body now.
		x.stop()
		pc.nc.SetDeadline(time.Time{})
		if pc.canceled.Load() {
			pc.nc.SetDeadline(aLongTimeAgo)
		}
		resp.Body = newUpgradedBody(pc)
		return resp, nil
	}
	if resp.Body == http.NoBody {
		x.end(true)
		return resp, nil
	}
	resp.Body = &h1Body{x: x, body: resp.Body}
	return resp, nil
}

// readResponse reads the final response, passing 1xx responses to trace.
func (x *exchange) readResponse(trace *httptrace.ClientTrace, cont chan bool) (*http.Response, error) {
	pc := x.pc
	if trace != nil && trace.GotFirstResponseByte != nil {
		if peek, err := pc.br.Peek(1); err == nil && len(peek) == 1 {
			trace.GotFirstResponseByte()
		}
	}
	for {
		resp, err := http.ReadResponse(pc.br, x.req)
		if err != nil {
			if pc.limit <= 0 {
				err = errHeaderLimit(pc.hc.maxHeader)
			}
			if cont != nil {
				cont <- false
			}
			return nil, err
		}
		code := resp.StatusCode
		if code < 100 {
			// ReadResponse takes any three digits; no handler could
			// write such a status (net/http's WriteHeader panics).
			if cont != nil {
				cont <- false
			}
			return nil, fmt.Errorf("origin: malformed HTTP status code %q", resp.Status)
		}
		if cont != nil && code == http.StatusContinue {
			if trace != nil && trace.Got100Continue != nil {
				trace.Got100Continue()
			}
			cont <- true
			cont = nil
		}
		if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
			if trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
					return nil, err
				}
				pc.limit = pc.hc.maxHeader
			}
			continue
		}
		if cont != nil {
			// A final answer without 100 Continue: send the body only if
			// the connection is kept.
			cont <- !(resp.Close || x.req.Close)
		}
		return resp, nil
	}
}

// fail ends an exchange that got no response: the connection closes. An
// error on a reused connection before any response byte, with the
// request written (or not at all), is stale.
func (x *exchange) fail(err error, reused bool) error {
	pc := x.pc
	pc.nc.Close()
	written := true
	if x.wrote != nil {
		_, written = x.waitWrite()
	}
	x.stop()
	pc.hc.release()
	if pc.canceled.Load() {
		if cerr := x.req.Context().Err(); cerr != nil {
			return cerr
		}
	}
	if written && x.body != nil && x.body.err != nil {
		// Reading the visitor's body failed: that is the error to tell
		// (http.Transport returns it too).
		return x.body.err
	}
	if reused && pc.nread == 0 && written && !isTimeout(err) {
		return staleError{err}
	}
	return err
}

// waitWrite waits up to writeWait for the writer goroutine; done is
// false when it is still writing (then its result is drained later: the
// connection is closed, or will be, so it ends).
func (x *exchange) waitWrite() (err error, done bool) {
	select {
	case err = <-x.wrote:
		return err, true
	default:
	}
	t := time.NewTimer(writeWait)
	defer t.Stop()
	select {
	case err = <-x.wrote:
		return err, true
	case <-t.C:
		go func(w chan error) { <-w }(x.wrote)
		return nil, false
	}
}

// end ends the exchange once its response is over: the connection goes
// back to the pool when ok and nothing asks to close it, else it closes.
func (x *exchange) end(ok bool) {
	if x.closed {
		return
	}
	x.closed = true
	pc := x.pc
	if x.wrote != nil {
		if ok {
			err, done := x.waitWrite()
			ok = done && err == nil
		} else {
			pc.nc.Close() // ends the writer
			x.waitWrite()
		}
	}
	// Not stopped: canceled, the deadline is in the past.
	stopped := x.stop()
	reuse := ok && stopped && pc.afterResponse() == quiet && !x.resp.Close && !x.req.Close && pc.hc.reusable()
	if reuse {
		pc.hc.put(pc)
		return
	}
	pc.nc.Close()
	pc.hc.release()
}

// h1Body is a response body: at its end the connection goes back to the
// pool; closed before, the connection closes.
type h1Body struct {
	x       *exchange
	body    io.ReadCloser
	mu      sync.Mutex
	done    bool // the exchange ended
	reading bool // a Read is under way, outside mu
	closing bool // Close came during a Read
}

// Read implements io.Reader.
func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return 0, errors.New("origin: read on a closed response body")
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.body.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	switch {
	case b.closing:
		b.done = true
		b.x.end(false)
		if err == nil {
			err = errors.New("origin: read on a closed response body")
		}
	case err != nil:
		b.done = true
		if err != io.EOF && b.x.pc.canceled.Load() {
			if cerr := b.x.req.Context().Err(); cerr != nil {
				err = cerr
			}
		}
		b.x.end(err == io.EOF)
	}
	return n, err
}

// Close implements io.Closer. A body not read to its end closes the
// connection: it is not drained.
func (b *h1Body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.done:
	case b.reading:
		// The Read under way ends the exchange.
		b.closing = true
		b.x.pc.nc.SetReadDeadline(aLongTimeAgo)
	default:
		b.done = true
		b.x.end(false)
	}
	return nil
}

// upgradedBody is the body of a 101 response: the connection itself,
// after what the reader holds.
type upgradedBody struct {
	pc   *h1Conn
	once sync.Once
}

func newUpgradedBody(pc *h1Conn) *upgradedBody { return &upgradedBody{pc: pc} }

// Read implements io.Reader.
func (b *upgradedBody) Read(p []byte) (int, error) {
	if n := b.pc.br.Buffered(); n > 0 {
		return b.pc.br.Read(p[:min(len(p), n)])
	}
	return b.pc.nc.Read(p)
}

// Write implements io.Writer.
func (b *upgradedBody) Write(p []byte) (int, error) { return b.pc.nc.Write(p) }

// Close implements io.Closer: it closes the connection.
func (b *upgradedBody) Close() error {
	err := error(nil)
	b.once.Do(func() {
		err = b.pc.nc.Close()
		b.pc.hc.release()
	})
	return err
}

// reqBody is a request body on its way to the origin. It keeps the
// body's own read error apart from the connection's, and with cont set
// ("Expect: 100-continue") it holds the body back until the origin
// answered with 100 Continue, or for a second.
type reqBody struct {
	io.ReadCloser
	bw      *bufio.Writer
	cont    chan bool
	decided bool
	send    bool
	err     error // the body's read error, read once the writer ended
}

// Read implements io.Reader.
func (b *reqBody) Read(p []byte) (int, error) {
	if b.cont != nil && !b.decided {
		b.decided = true
		if err := b.bw.Flush(); err != nil {
			return 0, err
		}
		t := time.NewTimer(expectContinueTimeout)
		select {
		case b.send = <-b.cont:
		case <-t.C:
			b.send = true
		}
		t.Stop()
		if !b.send {
			return 0, errBodyAborted
		}
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func expectsContinue(req *http.Request) bool {
	for _, v := range req.Header["Expect"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), "100-continue") {
				return true
			}
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
