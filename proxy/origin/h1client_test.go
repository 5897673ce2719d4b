package origin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawOrigin is an origin on a real loopback listener that answers each
// request on a connection with serve, byte for byte as serve writes it.
type rawOrigin struct {
	ln      net.Listener
	accepts atomic.Int32
	closed  chan int // the number of each connection that ended
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

// serveFunc answers one request read from a connection (its n-th) and
// reports whether the connection stays open.
type serveFunc func(req *http.Request, body []byte, c net.Conn, br *bufio.Reader) (keep bool)

func newRawOrigin(t *testing.T, serve serveFunc) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newRawOriginOn(t, ln, serve)
}

// newRawOriginOn is newRawOrigin on listener ln (a TLS one, say).
func newRawOriginOn(t *testing.T, ln net.Listener, serve serveFunc) *rawOrigin {
	t.Helper()
	o := &rawOrigin{ln: ln, closed: make(chan int, 100)}
	t.Cleanup(func() {
		ln.Close()
		o.mu.Lock()
		for _, c := range o.conns {
			c.Close()
		}
		o.mu.Unlock()
		o.wg.Wait()
	})
	o.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(o.accepts.Add(1))
			o.mu.Lock()
			o.conns = append(o.conns, c)
			o.mu.Unlock()
			o.wg.Go(func() {
				defer func() {
					c.Close()
					select {
					case o.closed <- n:
					default:
					}
				}()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					var body []byte
					if req.Header.Get("Expect") == "" {
						body, _ = io.ReadAll(req.Body)
					}
					if !serve(req, body, c, br) {
						return
					}
				}
			})
		}
	})
	return o
}

func (o *rawOrigin) url() string { return "http://" + o.ln.Addr().String() }

// canned answers every request with resp.
func canned(resp string, keep bool) serveFunc {
	return func(_ *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
		io.WriteString(c, resp)
		return keep
	}
}

func newClient() *H1Client {
	return &H1Client{DialTimeout: time.Second, MaxIdlePerHost: 4, ResponseHeaderTimeout: 5 * time.Second, MaxResponseHeaderBytes: 16 << 10}
}

func mustReq(t *testing.T, ctx context.Context, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestH1ClientCases sends two requests of each kind to a raw origin and
// checks what both sides saw, and whether the connection was kept.
func TestH1ClientCases(t *testing.T) {
	for _, tt := range []struct {
		name, method   string
		body           string // request body; "" none
		chunked        bool   // the request body's length unknown
		closeReq       bool
		resp           string // the origin's answer
		keep           bool   // the origin keeps the connection
		wantStatus     int
		wantBody       string
		wantTrailer    string // X-T
		want1xx        []int
		wantTE         string // the request's Transfer-Encoding at the origin
		wantCL         int64  // the request's Content-Length at the origin
		wantConnection string // the request's Connection header at the origin
		wantConns      int32  // after two requests
	}{
		{name: "sized", method: "GET", resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", keep: true, wantStatus: 200, wantBody: "hello", wantConns: 1},
		{name: "chunked with trailer", method: "GET", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: tv\r\n\r\n", keep: true, wantStatus: 200, wantBody: "abcde", wantTrailer: "tv", wantConns: 1},
		{name: "HEAD", method: "HEAD", resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", keep: true, wantStatus: 200, wantConns: 1},
		{name: "204", method: "GET", resp: "HTTP/1.1 204 No Content\r\n\r\n", keep: true, wantStatus: 204, wantConns: 1},
		{name: "304", method: "GET", resp: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", keep: true, wantStatus: 304, wantConns: 1},
		{name: "origin closes", method: "GET", resp: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200, wantBody: "ok", wantConns: 2},
		{name: "until EOF", method: "GET", resp: "HTTP/1.1 200 OK\r\n\r\nto the end", wantStatus: 200, wantBody: "to the end", wantConns: 2},
		{name: "HTTP/1.0", method: "GET", resp: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200, wantBody: "ok", wantConns: 2},
		{name: "client closes", method: "GET", closeReq: true, resp: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", keep: true, wantStatus: 200, wantBody: "ok", wantConnection: "close", wantConns: 2},
		{name: "103 passed up", method: "GET", resp: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", keep: true, wantStatus: 200, wantBody: "ok", want1xx: []int{103}, wantConns: 1},
		{name: "100 then final", method: "GET", resp: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", keep: true, wantStatus: 200, wantBody: "ok", want1xx: []int{100}, wantConns: 1},
		{name: "sized request body", method: "POST", body: "payload", resp: "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", keep: true, wantStatus: 201, wantCL: 7, wantConns: 1},
		{name: "chunked request body", method: "POST", body: "payload", chunked: true, resp: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk", keep: true, wantStatus: 200, wantBody: "k", wantTE: "chunked", wantCL: -1, wantConns: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			type seen struct {
				method, body, te, conn string
				cl                     int64
			}
			eachClient(t, newClient, func(t *testing.T, c http.RoundTripper) {
				got := make(chan seen, 2)
				o := newRawOrigin(t, func(req *http.Request, body []byte, c net.Conn, _ *bufio.Reader) bool {
					got <- seen{req.Method, string(body), strings.Join(req.TransferEncoding, ","), req.Header.Get("Connection"), req.ContentLength}
					io.WriteString(c, tt.resp)
					return tt.keep
				})
				for i := range 2 {
					var body io.Reader
					if tt.body != "" {
						body = strings.NewReader(tt.body)
						if tt.chunked {
							body = io.MultiReader(body) // hides the length
						}
					}
					var codes []int
					trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
						codes = append(codes, code)
						return nil
					}}
					req := mustReq(t, httptrace.WithClientTrace(t.Context(), trace), tt.method, o.url()+"/p", body)
					req.Close = tt.closeReq
					resp, err := c.RoundTrip(req)
					if err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Fatalf("request %d: body: %v", i, err)
					}
					if resp.StatusCode != tt.wantStatus || string(b) != tt.wantBody || resp.Trailer.Get("X-T") != tt.wantTrailer {
						t.Errorf("request %d: %d %q trailer %q, want %d %q trailer %q", i, resp.StatusCode, b, resp.Trailer.Get("X-T"), tt.wantStatus, tt.wantBody, tt.wantTrailer)
					}
					if len(codes) != len(tt.want1xx) || len(codes) > 0 && codes[0] != tt.want1xx[0] {
						t.Errorf("request %d: 1xx %v, want %v", i, codes, tt.want1xx)
					}
					s := <-got
					if s.method != tt.method || s.body != tt.body || s.te != tt.wantTE || s.cl != tt.wantCL || s.conn != tt.wantConnection {
						t.Errorf("request %d: origin saw %+v", i, s)
					}
				}
				if n := o.accepts.Load(); n != tt.wantConns {
					t.Errorf("%d connections for two requests, want %d", n, tt.wantConns)
				}
			})
		})
	}
}

// TestH1ClientPoolReuse: serial requests share one connection; the
// client's CloseIdleConnections closes it.
func TestH1ClientPoolReuse(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		o := newRawOrigin(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true))
		const n = 50
		reused := 0
		for range n {
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused++
				}
			}}
			resp, err := c.RoundTrip(mustReq(t, httptrace.WithClientTrace(t.Context(), trace), "GET", o.url(), nil))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if got := o.accepts.Load(); got != 1 || reused != n-1 {
			t.Errorf("%d connections, %d reused, for %d serial requests; want 1 and %d", got, reused, n, n-1)
		}
		c.(interface{ CloseIdleConnections() }).CloseIdleConnections()
		select {
		case <-o.closed:
		case <-time.After(5 * time.Second):
			t.Error("CloseIdleConnections left the connection open")
		}
	})
}

// TestH1ClientIdleTimeout: a connection idle past IdleTimeout is closed.
func TestH1ClientIdleTimeout(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		c.IdleTimeout = 100 * time.Millisecond
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		o := newRawOrigin(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true))
		resp, err := c.RoundTrip(mustReq(t, t.Context(), "GET", o.url(), nil))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		select {
		case <-o.closed:
		case <-time.After(5 * time.Second):
			t.Error("the idle connection stayed open past IdleTimeout")
		}
	})
}

// TestH1ClientStaleRetry: an origin that answers the first request of
// each connection and closes (or resets) the connection on the next one
// after reading it, without a word. The request reached the origin, so
// it is sent again on a new connection only when resendable: an
// idempotent method or an Idempotency-Key, and a body that can be had
// again. A POST is never sent twice. net/http's Transport resends GET,
// HEAD, OPTIONS and TRACE but not PUT and DELETE, which edgeblock's rule
// (the same as for retries on another origin) counts as idempotent.
func TestH1ClientStaleRetry(t *testing.T) {
	for _, reset := range []bool{false, true} {
		var got sync.Map // body and tag: times received
		var mu sync.Mutex
		served := map[net.Conn]int{}
		o := newRawOrigin(t, func(req *http.Request, body []byte, c net.Conn, _ *bufio.Reader) bool {
			n, _ := got.LoadOrStore(string(body)+req.Header.Get("X-Tag"), new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			mu.Lock()
			served[c]++
			reused := served[c] > 1
			mu.Unlock()
			if reused {
				if reset {
					c.(*net.TCPConn).SetLinger(0)
				}
				return false // closes without answering
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+string(body))
			return true
		})
		for _, tt := range []struct {
			name, method, body, header string
			noGetBody                  bool
			resent                     map[string]bool // by client
		}{
			{name: "GET", method: "GET", resent: map[string]bool{"edgeblock": true, "stdlib": true}},
			{name: "HEAD", method: "HEAD", resent: map[string]bool{"edgeblock": true, "stdlib": true}},
			{name: "PUT with GetBody", method: "PUT", body: "again", resent: map[string]bool{"edgeblock": true}},
			{name: "DELETE", method: "DELETE", resent: map[string]bool{"edgeblock": true}},
			{name: "PUT without GetBody", method: "PUT", body: "once", noGetBody: true},
			{name: "POST", method: "POST", body: "post"},
			{name: "POST without a body", method: "POST"},
			{name: "PATCH", method: "PATCH", body: "patch"},
			{name: "POST with Idempotency-Key", method: "POST", body: "keyed", header: "Idempotency-Key", resent: map[string]bool{"edgeblock": true, "stdlib": true}},
			{name: "POST with X-Idempotency-Key", method: "POST", body: "xkeyed", header: "X-Idempotency-Key", resent: map[string]bool{"edgeblock": true, "stdlib": true}},
		} {
			t.Run(fmt.Sprintf("%s reset %v", tt.name, reset), func(t *testing.T) {
				eachClient(t, newClient, func(t *testing.T, rt http.RoundTripper) {
					do := func(tag string) (*http.Response, error) {
						var body io.Reader
						if tt.body != "" {
							body = strings.NewReader(tt.body)
						}
						req := mustReq(t, t.Context(), tt.method, o.url(), body)
						req.Header.Set("X-Tag", tag)
						if tt.header != "" {
							req.Header.Set(tt.header, "k1")
						}
						if tt.noGetBody {
							req.GetBody = nil
						}
						return rt.RoundTrip(req)
					}
					// The first request opens a connection and leaves it idle.
					tag := t.Name()
					resp, err := do(tag + "/first")
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					// The second is read by the origin, which then closes.
					before := o.accepts.Load()
					resp, err = do(tag)
					if err == nil {
						resp.Body.Close()
					}
					n, _ := got.Load(tt.body + tag)
					received := int32(0)
					if n != nil {
						received = n.(*atomic.Int32).Load()
					}
					resent := tt.resent[t.Name()[strings.LastIndex(t.Name(), "/")+1:]]
					switch {
					case resent && (received != 2 || err != nil || o.accepts.Load() != before+1):
						t.Errorf("received %d times, error %v, %d new connections; want it sent again on one new connection", received, err, o.accepts.Load()-before)
					case !resent && (received != 1 || err == nil):
						t.Errorf("received %d times, error %v; want it once, and an error", received, err)
					}
				})
			})
		}
	}
}

// TestH1ClientCancel: the request's context ends a blocked wait for the
// response's headers and a blocked body read; the connection closes.
func TestH1ClientCancel(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		o := newRawOrigin(t, func(req *http.Request, _ []byte, c net.Conn, br *bufio.Reader) bool {
			if req.URL.Path == "/body" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
			}
			io.Copy(io.Discard, br) // until the client closes
			return false
		})
		for _, path := range []string{"/headers", "/body"} {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			resp, err := c.RoundTrip(mustReq(t, ctx, "GET", o.url()+path, nil))
			if path == "/body" {
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: error %v, want context.Canceled", path, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s: canceled after %v", path, d)
			}
			select {
			case <-o.closed:
			case <-time.After(5 * time.Second):
				t.Errorf("%s: the connection stayed open", path)
			}
		}
	})
}

// TestH1ClientEarlyClose: a body closed before its end closes its
// connection; the next request dials anew.
func TestH1ClientEarlyClose(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		o := newRawOrigin(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 100000), true))
		for range 2 {
			resp, err := c.RoundTrip(mustReq(t, t.Context(), "GET", o.url(), nil))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Read(make([]byte, 10))
			resp.Body.Close()
			select {
			case <-o.closed:
			case <-time.After(5 * time.Second):
				t.Fatal("a body closed early left its connection open")
			}
		}
		if n := o.accepts.Load(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
	})
}

// TestH1ClientMaxConns: under MaxConnsPerHost a request waits for a
// connection while its context lasts, and gets the first one freed.
func TestH1ClientMaxConns(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		c.MaxConnsPerHost = 1
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		release := make(chan struct{})
		o := newRawOrigin(t, func(req *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
			if req.URL.Path == "/slow" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
				<-release
				io.WriteString(c, "0\r\n\r\n")
				return true
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		resp, err := c.RoundTrip(mustReq(t, t.Context(), "GET", o.url()+"/slow", nil))
		if err != nil {
			t.Fatal(err)
		}
		// The only connection is busy: a request waits until its context ends.
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		_, err = c.RoundTrip(mustReq(t, ctx, "GET", o.url(), nil))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("waiting request: %v, want DeadlineExceeded", err)
		}
		// ... or, for edgeblock's client, until ConnWait, then it is busy
		// (net/http's Transport has no such bound).
		if h, ok := c.(*H1Client); ok {
			h.ConnWait = 100 * time.Millisecond
			_, err = h.RoundTrip(mustReq(t, t.Context(), "GET", o.url(), nil))
			if !errors.Is(err, ErrBusy) || Kind(err) != "busy" {
				t.Errorf("waiting request past ConnWait: %v, want ErrBusy", err)
			}
			h.ConnWait = 0
		}
		// A waiting request gets the connection once the first ends.
		done := make(chan error, 1)
		go func() {
			resp, err := c.RoundTrip(mustReq(t, t.Context(), "GET", o.url(), nil))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("request did not wait: %v", err)
		default:
		}
		close(release)
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "a" {
			t.Fatalf("first body %q, %v", b, err)
		}
		resp.Body.Close()
		if err := <-done; err != nil {
			t.Errorf("waiting request: %v", err)
		}
		if n := o.accepts.Load(); n != 1 {
			t.Errorf("%d connections under MaxConnsPerHost 1", n)
		}
	})
}

// TestH1ClientHeaderLimit: an origin that sends headers without end is
// cut off at MaxResponseHeaderBytes.
func TestH1ClientHeaderLimit(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		var written atomic.Int64
		o := newRawOrigin(t, func(_ *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			line := []byte("X-Junk: " + strings.Repeat("j", 100) + "\r\n")
			for range 100000 {
				n, err := c.Write(line)
				written.Add(int64(n))
				if err != nil {
					break
				}
			}
			return false
		})
		_, err := c.RoundTrip(mustReq(t, t.Context(), "GET", o.url(), nil))
		if err == nil || !strings.Contains(err.Error(), "exceeded") {
			t.Fatalf("error %v, want the header limit", err)
		}
		o.ln.Close()
		o.wg.Wait()
		if w := written.Load(); w > 4<<20 {
			t.Errorf("origin wrote %d bytes: the client kept reading", w)
		}
	})
}

// TestH1ClientResponseHeaderTimeout: an origin that does not answer.
func TestH1ClientResponseHeaderTimeout(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		c.ResponseHeaderTimeout = 100 * time.Millisecond
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		o := newRawOrigin(t, func(_ *http.Request, _ []byte, _ net.Conn, br *bufio.Reader) bool {
			io.Copy(io.Discard, br) // no answer
			return false
		})
		_, err := c.RoundTrip(mustReq(t, t.Context(), "GET", o.url(), nil))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || Kind(err) != "timeout" {
			t.Errorf("error %v, want a timeout", err)
		}
	})
}

// TestH1ClientUpgrade: a 101 response's body is the connection, both ways.
func TestH1ClientUpgrade(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		o := newRawOrigin(t, func(_ *http.Request, _ []byte, c net.Conn, br *bufio.Reader) bool {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhi ")
			io.Copy(c, br)
			return false
		})
		req := mustReq(t, t.Context(), "GET", o.url(), nil)
		req.Header.Set("Upgrade", "echo")
		req.Header.Set("Connection", "Upgrade")
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		rw, ok := resp.Body.(io.ReadWriteCloser)
		if resp.StatusCode != 101 || !ok {
			t.Fatalf("status %d, body %T", resp.StatusCode, resp.Body)
		}
		io.WriteString(rw, "there")
		buf := make([]byte, 8)
		if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "hi there" {
			t.Errorf("read %q, %v", buf, err)
		}
		rw.Close()
		select {
		case <-o.closed:
		case <-time.After(5 * time.Second):
			t.Error("closing the upgraded body left the connection open")
		}
	})
}

// TestH1ClientExpectContinue: the body waits for the origin's 100.
func TestH1ClientExpectContinue(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		o := newRawOrigin(t, func(req *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
			b, _ := io.ReadAll(req.Body)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(b))+"\r\n\r\n"+string(b))
			return true
		})
		req := mustReq(t, t.Context(), "POST", o.url(), strings.NewReader("the body"))
		req.Header.Set("Expect", "100-continue")
		start := time.Now()
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "the body" {
			t.Errorf("body %q", b)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("took %v: the body waited for the timeout, not the 100", d)
		}
	})
}

// TestH1ClientTLS: https origins with HTTPS set, over TLS with ALPN
// http/1.1, as net/http's Transport with HTTP/2 off; other requests go to
// Fallback.
func TestH1ClientTLS(t *testing.T) {
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	o.EnableHTTP2 = true
	o.StartTLS()
	t.Cleanup(o.Close)
	tc := o.Client().Transport.(*http.Transport).TLSClientConfig
	for _, tt := range []struct {
		name  string
		https bool
		std   bool // net/http's Transport with the same settings
		want  string
	}{
		{"h1 client", true, false, "HTTP/1.1"},
		{"fallback", false, false, "HTTP/2.0"},
		{"stdlib", true, true, "HTTP/1.1"},
	} {
		c := newClient()
		c.HTTPS, c.TLSConfig = tt.https, tc
		c.Fallback = o.Client().Transport
		var rt http.RoundTripper = c
		if tt.std {
			rt = stdlibLike(c)
		}
		resp, err := rt.RoundTrip(mustReq(t, t.Context(), "GET", o.URL, nil))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tt.want || resp.TLS == nil {
			t.Errorf("%s: origin saw %q (TLS %v), want %s", tt.name, b, resp.TLS != nil, tt.want)
		}
	}
}

// TestH1ClientTrickledHead: a head that trickles past
// ResponseHeaderTimeout is a timeout, not a malformed response.
func TestH1ClientTrickledHead(t *testing.T) {
	eachClient(t, func() *H1Client {
		c := newClient()
		c.ResponseHeaderTimeout = 300 * time.Millisecond
		return c
	}, func(t *testing.T, c http.RoundTripper) {
		o := newRawOrigin(t, func(_ *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
			for _, b := range []byte("HTTP/1.1 200 OK\r\nX-Slow: aaaaaaaa") {
				if _, err := c.Write([]byte{b}); err != nil {
					return false
				}
				time.Sleep(50 * time.Millisecond)
			}
			return false
		})
		_, err := c.RoundTrip(mustReq(t, t.Context(), "GET", o.url(), nil))
		if Kind(err) != "timeout" {
			t.Errorf("error %v (kind %s), want a timeout", err, Kind(err))
		}
	})
}

// TestH1ClientIdleClosedByOrigin: an idle connection the origin closed
// is closed within about a second, not kept until IdleTimeout.
func TestH1ClientIdleClosedByOrigin(t *testing.T) {
	o := newRawOrigin(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false))
	c := newClient()
	resp, err := c.RoundTrip(mustReq(t, t.Context(), "GET", o.url(), nil))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		hc := c.hosts[hostKey{addr: o.ln.Addr().String()}]
		c.mu.Unlock()
		hc.mu.Lock()
		open := hc.open
		hc.mu.Unlock()
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 5s after the origin closed", open)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestH1ClientReused408: an origin closing an idle connection writes a
// 408 that answers no request, and it can cross the next request on the
// wire. On a reused connection the 408 is never handed on as that
// request's answer: a request that may go again goes on a new
// connection, any other gets an error. On a new connection a 408 is the
// request's own answer and is passed on.
func TestH1ClientReused408(t *testing.T) {
	var mu sync.Mutex
	served := map[net.Conn]int{}
	prevTag := map[net.Conn]string{}
	o := newRawOrigin(t, func(req *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
		mu.Lock()
		served[c]++
		reused := served[c] > 1
		prev := prevTag[c]
		prevTag[c] = req.Header.Get("X-Tag")
		mu.Unlock()
		if req.Header.Get("X-Fresh-408") != "" {
			io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nX-Tag: "+req.Header.Get("X-Tag")+"\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		if reused {
			// The 408 of the idle timeout, tagged with the last request
			// this connection served: it crossed the new request.
			io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nX-Tag: "+prev+"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Tag: "+req.Header.Get("X-Tag")+"\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	for _, tt := range []struct {
		method string
		header string // set on the second request
		want   int    // the second request's status; 0: an error
	}{
		{method: "GET", want: 200},
		{method: "HEAD", want: 200},
		{method: "POST"},
		{method: "GET", header: "X-Fresh-408", want: 408},
	} {
		t.Run(tt.method+tt.header, func(t *testing.T) {
			c := newClient()
			defer c.CloseIdleConnections()
			do := func(tag, header string) (*http.Response, error) {
				req := mustReq(t, t.Context(), tt.method, o.url(), nil)
				req.Header.Set("X-Tag", tag)
				if header != "" {
					req.Header.Set(header, "1")
				}
				return c.RoundTrip(req)
			}
			first := t.Name() + "/first"
			resp, err := do(first, "")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if tt.header != "" {
				// A 408 that is a new connection's own answer.
				c.CloseIdleConnections()
			}
			second := t.Name() + "/second"
			before := o.accepts.Load()
			resp, err = do(second, tt.header)
			switch {
			case tt.want == 0:
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got %d (X-Tag %q), want an error: the 408 on a reused connection is not this request's answer", resp.StatusCode, resp.Header.Get("X-Tag"))
				}
			case err != nil:
				t.Fatalf("error %v, want %d", err, tt.want)
			default:
				resp.Body.Close()
				if resp.StatusCode != tt.want || resp.Header.Get("X-Tag") != second {
					t.Fatalf("got %d with X-Tag %q, want %d with X-Tag %q", resp.StatusCode, resp.Header.Get("X-Tag"), tt.want, second)
				}
				if tt.header == "" && o.accepts.Load() != before+1 {
					t.Errorf("%d new connections, want the request sent again on one", o.accepts.Load()-before)
				}
			}
		})
	}
}
