package origin

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestH1ClientUnsolicited: bytes an origin sends that no request asked
// for, after a response or while its connection is idle, over plain TCP
// and TLS, close the connection: the next request gets its own answer on
// a new connection, and the client counts the connection once, and
// reuses no connection to that origin after. A 408 on an idle connection
// is the origin closing it: not counted.
func TestH1ClientUnsolicited(t *testing.T) {
	answer := func(r *http.Request) string { // the proper answer
		b := "for " + r.URL.Path
		head := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(b)) + "\r\n\r\n"
		if r.Method == "HEAD" {
			return head
		}
		return head + b
	}
	junk := "HTTP/1.1 200 OK\r\nSet-Cookie: session=stolen\r\nContent-Length: 8\r\n\r\nnot-mine"
	for _, tt := range []struct {
		name, method string
		first        func(r *http.Request) string // the answer to the first request
		firstBody    string                       // its body; "": "for /0"
		idle         string                       // then, while idle
		want         int64                        // connections counted
	}{
		{name: "extra response in the same write", method: "GET", first: func(r *http.Request) string { return answer(r) + junk }, want: 1},
		{name: "extra response while idle", method: "GET", first: answer, idle: junk, want: 1},
		{name: "bytes past Content-Length", method: "GET", first: func(r *http.Request) string { return answer(r) + "not-mine" }, want: 1},
		{name: "big body, bytes past Content-Length", method: "GET", first: func(r *http.Request) string {
			b := strings.Repeat("x", 20000)
			return "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n" + b + junk
		}, firstBody: strings.Repeat("x", 20000), want: 1},
		{name: "body after HEAD", method: "HEAD", first: func(r *http.Request) string { return answer(r) + "for " + r.URL.Path }, want: 1},
		{name: "body after HEAD while idle", method: "HEAD", first: answer, idle: "for /0", want: 1},
		{name: "408 while idle", method: "GET", first: answer, idle: "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n", want: 0},
	} {
		for _, tlsOn := range []bool{false, true} {
			name := tt.name
			if tlsOn {
				name += " over TLS"
			}
			t.Run(name, func(t *testing.T) {
				// idleSent closes once the idle bytes are on the wire: the
				// next request must follow them, or they would be its
				// answer on any HTTP/1.1 client (a loaded machine once
				// sent it first with a fixed sleep).
				idleSent := make(chan struct{})
				serve := func(req *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
					if req.URL.Path == "/0" {
						io.WriteString(c, tt.first(req))
						if tt.idle != "" {
							time.Sleep(20 * time.Millisecond) // the first answer is read: the connection is idle
							io.WriteString(c, tt.idle)
							close(idleSent)
						}
					} else {
						io.WriteString(c, answer(req))
					}
					return true
				}
				c := newClient()
				var o *rawOrigin
				scheme := "http://"
				if tlsOn {
					srv := httptest.NewUnstartedServer(nil)
					srv.StartTLS()
					srv.Close()
					ln, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						t.Fatal(err)
					}
					o = newRawOriginOn(t, tls.NewListener(ln, srv.TLS), serve)
					c.HTTPS, c.TLSConfig = true, srv.Client().Transport.(*http.Transport).TLSClientConfig
					scheme = "https://"
				} else {
					o = newRawOrigin(t, serve)
				}
				defer c.CloseIdleConnections()
				for i := range 3 {
					if i == 1 && tt.idle != "" {
						select {
						case <-idleSent:
						case <-time.After(30 * time.Second):
							t.Fatal("the origin did not send its idle bytes")
						}
					}
					req := mustReq(t, t.Context(), tt.method, scheme+o.ln.Addr().String()+"/"+strconv.Itoa(i), nil)
					resp, err := c.RoundTrip(req)
					if err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					want := "for /" + strconv.Itoa(i)
					if i == 0 && tt.firstBody != "" {
						want = tt.firstBody
					}
					if tt.method == "HEAD" {
						want = ""
					}
					if err != nil || string(b) != want || resp.Header.Get("Set-Cookie") != "" {
						t.Errorf("request %d: %.100q %v (Set-Cookie %q), want %.100q", i, b, err, resp.Header.Get("Set-Cookie"), want)
					}
				}
				if n := c.Unsolicited(); n != tt.want {
					t.Errorf("%d connections counted, want %d", n, tt.want)
				}
				// The first connection is closed; after unsolicited bytes
				// no connection is reused (unsolicitedNoReuse), after a
				// 408 the second one is.
				wantConns := int32(2)
				if tt.want > 0 {
					wantConns = 3
				}
				if n := o.accepts.Load(); n != wantConns {
					t.Errorf("%d connections for 3 requests, want %d", n, wantConns)
				}
			})
		}
	}
}

// TestH1ClientNoReuseAfterUnsolicited: once an origin has sent a response
// no request asked for (here 20 ms after its first answer, while the
// connection was idle), no connection to it is reused: a late response
// that crosses the next request on the wire, after every check, would be
// taken as that request's answer. Every later request takes a new
// connection, though the origin behaves from then on.
func TestH1ClientNoReuseAfterUnsolicited(t *testing.T) {
	var first atomic.Bool
	o := newRawOrigin(t, func(req *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if first.CompareAndSwap(false, true) {
			time.Sleep(20 * time.Millisecond)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")
		}
		return true
	})
	c := newClient()
	defer c.CloseIdleConnections()
	get := func() (reused bool) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		resp, err := c.RoundTrip(mustReq(t, httptrace.WithClientTrace(t.Context(), trace), "GET", o.url(), nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("body %q, want ok", b)
		}
		return reused
	}
	get()
	time.Sleep(200 * time.Millisecond) // the extra response arrives on the idle connection
	for i := range 5 {
		if get() {
			t.Errorf("request %d after the unsolicited response reused a connection", i+2)
		}
	}
	if got := c.Unsolicited(); got != 1 {
		t.Errorf("Unsolicited() = %d, want 1", got)
	}
	if got := o.accepts.Load(); got != 6 {
		t.Errorf("%d connections for 6 requests, want 6 (one each)", got)
	}
}
