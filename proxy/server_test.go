package proxy

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// startTLSEnv starts a server with both public listeners on loopback and
// tls.mode internal, with config (routes, timeouts, limits) appended.
func startTLSEnv(t *testing.T, config, list string) (*testEnv, *x509.CertPool) {
	t.Helper()
	storage := edgetest.RemovedDir(t, "edgeblock-certs-")
	e := startEnv(t, fmt.Sprintf("listen:\n  http: 127.0.0.1:0\n  https: 127.0.0.1:0\n  admin: 127.0.0.1:0\ntls:\n  mode: internal\n  storage: %s\n  redirect_http: false\n%s", storage, config), list)
	pool := edgetest.InternalCAPool(t, storage)
	return e, pool
}

// watchedOrigin is an origin that counts its open connections and the
// handlers that ended, and serves size bytes, or events with pauses, or
// reads the request body.
type watchedOrigin struct {
	*httptest.Server
	conns    atomic.Int64 // open connections
	maxConns atomic.Int64
	ended    chan string // one line per handler that returned, with how
}

func newWatchedOrigin(t *testing.T, size int) *watchedOrigin {
	t.Helper()
	o := &watchedOrigin{ended: make(chan string, 100000)}
	chunk := make([]byte, 32<<10)
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/events": // two events, a pause longer than write_idle between them
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(1500 * time.Millisecond)
			io.WriteString(w, "data: two\n\n")
			o.ended <- "events"
		case "/small":
			io.WriteString(w, "ok")
		case "/upload":
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				o.ended <- fmt.Sprintf("upload error after %d bytes", n)
				return
			}
			fmt.Fprintf(w, "got %d bytes", n)
			o.ended <- "upload ok"
		default:
			size := size
			if r.URL.Path == "/huge" { // beyond what socket buffers absorb
				size = 32 << 20
			}
			w.Header().Set("Content-Length", fmt.Sprint(size))
			var err error
			for left := size; left > 0 && err == nil; left -= len(chunk) {
				_, err = w.Write(chunk[:min(left, len(chunk))])
			}
			if err != nil {
				o.ended <- "write error"
			} else {
				o.ended <- "complete"
			}
		}
	}))
	o.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			if n := o.conns.Add(1); n > o.maxConns.Load() {
				o.maxConns.Store(n)
			}
		case http.StateClosed, http.StateHijacked:
			o.conns.Add(-1)
		}
	}
	o.Start()
	t.Cleanup(o.Close)
	return o
}

// waitEnded waits for a handler of the origin to end and returns how.
func (o *watchedOrigin) waitEnded(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case s := <-o.ended:
		return s
	case <-time.After(timeout):
		t.Fatalf("no origin handler ended within %v", timeout)
		return ""
	}
}

func TestHTTP2Settings(t *testing.T) {
	parallelTLS(t, "settings.example")
	o := echoOrigin(t)
	for _, tt := range []struct {
		name, config string
		streams      uint32
	}{
		{"defaults", "", 100},
		{"configured", "limits:\n  max_streams_per_conn: 7\n", 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, pool := startTLSEnv(t, tt.config+routeConfig("settings.example", `"`+o.URL+`"`), "")
			c := dialFrames(t, e.srv.Addr("https"), pool, "settings.example", nil)
			if got := c.settings[http2.SettingMaxFrameSize]; got != 16384 {
				t.Errorf("SETTINGS_MAX_FRAME_SIZE = %d, want 16384", got)
			}
			if got := c.settings[http2.SettingMaxConcurrentStreams]; got != tt.streams {
				t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", got, tt.streams)
			}
			// A frame larger than announced is a connection error.
			if err := c.fr.WriteRawFrame(http2.FramePing, 0, 0, make([]byte, 20000)); err != nil {
				t.Fatal(err)
			}
			ev, err := c.next(5 * time.Second)
			if err != nil || !ev.goAway || ev.code != http2.ErrCodeFrameSize {
				t.Errorf("after a 20000-byte frame: %+v %v, want GOAWAY FRAME_SIZE_ERROR", ev, err)
			}
		})
	}
}

// TestWriteIdle shows that a client that stops reading is cut off after
// timeouts.write_idle, over HTTP/1.1 and over HTTP/2 with a zero window,
// and that the origin connection is released; and that streams and
// upgrades that pause longer than write_idle but keep flowing are not.
func TestWriteIdle(t *testing.T) {
	parallelTLS(t, "big.example", "ws.example")
	o := newWatchedOrigin(t, 32<<20)
	ws := upgradeOrigin(t, false)
	e, pool := startTLSEnv(t, "timeouts:\n  write_idle: 1s\n"+routeConfig("big.example", `"`+o.URL+`"`, "ws.example", `"`+ws.URL+`"`), "")

	t.Run("http1 client that does not read", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.srv.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprint(conn, "GET /big HTTP/1.1\r\nHost: big.example\r\n\r\n")
		start := time.Now()
		if got := o.waitEnded(t, 15*time.Second); got != "write error" {
			t.Errorf("origin handler: %s, want a write error (the edge gave up)", got)
		}
		t.Logf("origin released %v after the request", time.Since(start).Round(time.Millisecond))
		// The edge closed its side of the visitor's connection. (What
		// the visitor then reads depends on the kernel: the data already
		// in the send buffer, then a FIN or a reset.)
		edgetest.WaitFor(t, 5*time.Second, "the edge to close the visitor's connection", func() bool {
			return edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="http"}`) == "0"
		})
	})
	t.Run("http2 zero window", func(t *testing.T) {
		c := dialFrames(t, e.srv.Addr("https"), pool, "big.example", nil, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		c.get(1, "big.example", "/big")
		evs, err := c.waitStream(1, 15*time.Second)
		if err != nil || len(evs) == 0 || !evs[len(evs)-1].isRST {
			t.Errorf("stream 1: %+v %v, want HEADERS then RST_STREAM", evs, err)
		}
		if got := o.waitEnded(t, 10*time.Second); got != "write error" {
			t.Errorf("origin handler: %s, want a write error", got)
		}
		// The connection itself is fine.
		c.get(3, "big.example", "/big")
		if evs, err := c.waitStream(3, 15*time.Second); err != nil || firstStatus(evs) != "200" {
			t.Errorf("stream 3 on the same connection: %+v %v", evs, err)
		}
		o.waitEnded(t, 10*time.Second)
	})
	edgetest.WaitFor(t, 5*time.Second, "origin connections closed", func() bool { return o.conns.Load() == 0 })

	t.Run("event stream pausing longer than write_idle", func(t *testing.T) {
		for _, proto := range []string{"http1", "http2"} {
			client := &http.Client{Timeout: 10 * time.Second}
			url := e.url("http") + "/events"
			if proto == "http2" {
				client = tlsClient(pool, "big.example")
				url = e.url("https") + "/events"
			}
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "big.example"
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "data: one\n\ndata: two\n\n" {
				t.Errorf("%s: events %q, %v", proto, body, err)
			}
			o.waitEnded(t, 5*time.Second)
		}
	})
	t.Run("websocket idle longer than write_idle", func(t *testing.T) {
		conn, br := upgrade(t, e.srv.Addr("http"), "ws.example")
		defer conn.Close()
		time.Sleep(1500 * time.Millisecond)
		conn.Write([]byte("ping"))
		buf := make([]byte, 4)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "PING" {
			t.Errorf("echo after an idle pause: %q %v", buf, err)
		}
	})
}

// upgrade opens an upgraded connection through the edge.
func upgrade(t *testing.T, addr, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /socket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", host)
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// TestBodyReadIdle shows that a request body that stalls is cut off after
// timeouts.body_read with a 408, over both protocols, and the origin that
// was reading it is released; a slow body that keeps moving is not.
func TestBodyReadIdle(t *testing.T) {
	parallelTLS(t, "up.example")
	o := newWatchedOrigin(t, 0)
	e, pool := startTLSEnv(t, "timeouts:\n  body_read: 1s\n"+routeConfig("up.example", `"`+o.URL+`"`), "")

	t.Run("http1 stalled body", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.srv.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "POST /upload HTTP/1.1\r\nHost: up.example\r\nContent-Length: 100\r\n\r\nx")
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
			t.Fatalf("stalled body: %v %v, want 408 with Connection: close", resp, err)
		}
		if got := o.waitEnded(t, 5*time.Second); !strings.HasPrefix(got, "upload error") {
			t.Errorf("origin: %s, want its body read to fail", got)
		}
	})
	t.Run("http2 stalled body", func(t *testing.T) {
		c := dialFrames(t, e.srv.Addr("https"), pool, "up.example", nil)
		c.request(1, false, ":method", "POST", ":scheme", "https", ":authority", "up.example", ":path", "/upload", "content-length", "100")
		c.fr.WriteData(1, false, []byte("x"))
		evs, err := c.waitStream(1, 15*time.Second)
		if err != nil || firstStatus(evs) != "408" {
			t.Fatalf("stalled body: %+v %v, want 408", evs, err)
		}
		if got := o.waitEnded(t, 5*time.Second); !strings.HasPrefix(got, "upload error") {
			t.Errorf("origin: %s, want its body read to fail", got)
		}
	})
	t.Run("slow body that keeps moving", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for range 8 {
				time.Sleep(250 * time.Millisecond) // 2s in all, twice body_read
				pw.Write([]byte("y"))
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", e.url("http")+"/upload", pr)
		req.Host = "up.example"
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "got 8 bytes" {
			t.Errorf("slow body: %d %q", resp.StatusCode, body)
		}
		o.waitEnded(t, 5*time.Second)
	})
	edgetest.WaitFor(t, 5*time.Second, "origin connections closed", func() bool {
		return o.conns.Load() <= 1 // the last, complete request may keep its connection
	})
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
	} {
		if got := clientKey(netip.MustParseAddr(tt.addr)).String(); got != tt.want {
			t.Errorf("clientKey(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestPerClientLimits: connections beyond limits.max_conns_per_client are
// closed at accept and counted; requests beyond
// limits.max_requests_per_client get 429; other clients are unaffected;
// behind a trusted proxy the forwarded-for client counts.
func TestPerClientLimits(t *testing.T) {
	release := make(chan struct{})
	var held atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.Add(1)
			<-release
		}
		io.WriteString(w, "ok")
	}))
	defer o.Close()
	defer close(release)
	e := startEnv(t, "limits:\n  max_conns_per_client: 3\n  max_requests_per_client: 2\ntrusted_proxies: [127.0.0.9]\n"+
		routeConfig("app.example", `"`+o.URL+`"`), "")
	addr := e.srv.Addr("http")

	t.Run("connections", func(t *testing.T) {
		var conns []net.Conn
		for range 3 {
			conns = append(conns, dialFrom(t, "127.0.0.1", addr))
		}
		edgetest.WaitFor(t, 5*time.Second, "3 connections open", func() bool {
			return edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="http"}`) == "3"
		})
		extra := dialFrom(t, "127.0.0.1", addr)
		extra.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := extra.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("fourth connection from one client: read %d, %v; want it closed (EOF)", n, err)
		}
		if v := edgetest.MetricValue(e.scrape(), `edgeblock_connections_refused_total{reason="max_conns_per_client"}`); v != "1" {
			t.Errorf("connections_refused_total = %q, want 1", v)
		}
		// Another client is served meanwhile.
		other := dialFrom(t, "127.0.0.2", addr)
		fmt.Fprint(other, "GET / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
		other.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(other), nil); err != nil || resp.StatusCode != 200 {
			t.Errorf("another client: %v %v", resp, err)
		}
		for _, c := range conns {
			c.Close()
		}
		edgetest.WaitFor(t, 5*time.Second, "connections closed", func() bool {
			return edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="http"}`) == "0"
		})
		// The slots are free again.
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Errorf("after closing: %v %v", resp, err)
		}
	})

	t.Run("requests in flight", func(t *testing.T) {
		send := func(src, xff string) (*http.Response, error) {
			c := dialFrom(t, src, addr)
			fmt.Fprintf(c, "GET /hold HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: %s\r\n\r\n", xff)
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			return http.ReadResponse(bufio.NewReader(c), nil)
		}
		for i := range 2 {
			go send("127.0.0.3", "")
			edgetest.WaitFor(t, 5*time.Second, "request held", func() bool { return held.Load() == int64(i+1) })
		}
		resp, err := send("127.0.0.3", "")
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("third request in flight: %v %v, want 429 with Retry-After", resp, err)
		}
		if v := edgetest.MetricValue(e.scrape(), `edgeblock_requests_refused_total{reason="max_requests_per_client"}`); v != "1" {
			t.Errorf("requests_refused_total = %q, want 1", v)
		}
		// Through a trusted proxy the forwarded-for client counts: two
		// held for 198.51.100.7, a third for it refused, one for another
		// client held.
		for i := range 2 {
			go send("127.0.0.9", "198.51.100.7")
			edgetest.WaitFor(t, 5*time.Second, "request held", func() bool { return held.Load() == int64(3+i) })
		}
		if resp, err := send("127.0.0.9", "203.0.113.1, 198.51.100.7"); err != nil || resp.StatusCode != 429 {
			t.Errorf("third request for one forwarded client: %v %v, want 429", resp, err)
		}
		go send("127.0.0.9", "198.51.100.8")
		edgetest.WaitFor(t, 5*time.Second, "another forwarded client's request held", func() bool { return held.Load() == 5 })
	})
}

// TestDrain counts every request of clients that behave like a load
// balancer's connections under load across a shutdown: each is either
// answered or never accepted, none is cut off after it was written.
// /readyz answers 503 at once, while the listener keeps serving for the
// drain.
func TestDrain(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(5 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	defer o.Close()
	e := startEnv(t, routeConfig("app.example", `"`+o.URL+`"`), "")
	addr := e.srv.Addr("http")

	// The load balancer stops opening connections once its health check
	// sees the 503; requests on connections it has go on.
	var lbOut atomic.Bool
	var sawNotReady atomic.Int64 // Unix nanoseconds
	go func() {
		for !lbOut.Load() {
			resp, err := http.Get(e.url("admin") + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 503 {
					sawNotReady.Store(time.Now().UnixNano())
					lbOut.Store(true)
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var answered, refused, lost, closes, afterNotReady atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var conn net.Conn
			var br *bufio.Reader
			for {
				if conn == nil {
					if lbOut.Load() {
						return
					}
					c, err := net.Dial("tcp", addr)
					if err != nil {
						refused.Add(1)
						return
					}
					conn, br = c, bufio.NewReader(c)
				}
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				// POST: not idempotent, so nothing may retry it.
				if _, err := fmt.Fprint(conn, "POST /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4\r\n\r\nbody"); err != nil {
					lost.Add(1)
					conn.Close()
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					t.Logf("request cut off: %v %v", resp, err)
					lost.Add(1)
					conn.Close()
					return
				}
				answered.Add(1)
				if lbOut.Load() {
					afterNotReady.Add(1)
				}
				if resp.Close {
					closes.Add(1)
					conn.Close()
					conn = nil
				}
			}
		})
	}
	// Load first: enough answered requests that a cut-off one would show
	// (a fixed wait gave 19 at load 24).
	edgetest.WaitFor(t, 30*time.Second, "100 answered requests before the shutdown", func() bool { return answered.Load() >= 100 })
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- e.srv.Stop(t.Context(), time.Second, 5*time.Second) }()
	// A new connection during the drain is still served, with
	// Connection: close.
	for deadline := time.Now().Add(time.Second); !lbOut.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if lbOut.Load() {
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 || !resp.Close {
			t.Errorf("new connection during the drain: %v %v, want 200 with Connection: close", resp, err)
		}
	} else {
		t.Error("/readyz did not answer 503 within 1s of the shutdown (the drain's length)")
	}
	wg.Wait()
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// Well within the 1s drain; a loaded machine (load 24) delays the
	// health-check poller itself by tens of milliseconds.
	if d := time.Duration(sawNotReady.Load() - start.UnixNano()); d > 500*time.Millisecond {
		t.Errorf("/readyz turned 503 %v after the shutdown began", d)
	}
	t.Logf("answered %d (%d after /readyz turned 503), refused %d, lost %d; %d connections closed by Connection: close",
		answered.Load(), afterNotReady.Load(), refused.Load(), lost.Load(), closes.Load())
	if lost.Load() != 0 {
		t.Errorf("%d requests cut off after being written", lost.Load())
	}
	if answered.Load() < 100 || closes.Load() < 8 {
		t.Errorf("too little load to tell: %d answered, %d closes", answered.Load(), closes.Load())
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("listener still accepts after Shutdown returned")
	}
}

// firstStatus returns the status of the first response HEADERS in evs.
func firstStatus(evs []h2Event) string {
	for _, ev := range evs {
		if ev.status != "" {
			return ev.status
		}
	}
	return ""
}

// TestDrainHTTP2: during the drain an HTTP/2 connection's requests are
// answered and the connection gets a GOAWAY (NO_ERROR), so the client
// opens its next streams elsewhere; after the drain the listener closes.
func TestDrainHTTP2(t *testing.T) {
	o := echoOrigin(t)
	e, pool := startTLSEnv(t, routeConfig("app.example", `"`+o.URL+`"`), "")
	c := dialFrames(t, e.srv.Addr("https"), pool, "app.example", nil)
	c.get(1, "app.example", "/")
	if evs, err := c.waitStream(1, 5*time.Second); err != nil || firstStatus(evs) != "200" {
		t.Fatalf("before the shutdown: %+v %v", evs, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- e.srv.Stop(t.Context(), time.Second, 5*time.Second) }()
	time.Sleep(100 * time.Millisecond)
	c.get(3, "app.example", "/")
	evs, err := c.waitStream(3, 5*time.Second)
	if err != nil || firstStatus(evs) != "200" {
		t.Fatalf("during the drain: %+v %v, want 200", evs, err)
	}
	goAway := false
	for _, ev := range evs {
		goAway = goAway || (ev.goAway && ev.code == http2.ErrCodeNo)
	}
	for !goAway {
		ev, err := c.next(5 * time.Second)
		if err != nil {
			t.Fatalf("no GOAWAY during the drain: %v", err)
		}
		goAway = ev.goAway && ev.code == http2.ErrCodeNo
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
