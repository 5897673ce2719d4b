package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// breakingOrigin sends its status line and headers (Content-Length
// 1 MiB) and 8000 bytes of body (more than the edge holds back, so that
// the head has gone out: heldhead.go), then on /stall sends nothing more
// until the request ends, and on /reset resets the connection.
func breakingOrigin(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", 1<<20, strings.Repeat("x", 8000))
		brw.Flush()
		if r.URL.Path == "/reset" {
			conn.(*net.TCPConn).SetLinger(0) // close with RST
			return
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, conn) // until the edge gives up on us
	}))
	t.Cleanup(s.Close)
	return s
}

func TestOriginBreaksOffBody(t *testing.T) {
	parallelTLS(t, "break.example")
	o := breakingOrigin(t)
	e, pool := tlsRoutesEnv(t, "origins:\n  body_idle_timeout: 300ms\n"+routeConfig("break.example", `"`+o.URL+`"`), "")
	h2 := dialH2(t, e.srv.Addr("https"), "break.example", pool)
	for _, tt := range []struct {
		path, kind string
		status     int
	}{
		{"/stall", "timeout", 504},
		{"/reset", "reset", 502},
	} {
		t.Run("HTTP/1.1"+tt.path, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.srv.Addr("http"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: break.example\r\n\r\n", tt.path)
			n, err := readResponseBody(conn)
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() || n >= 1<<20 {
				t.Errorf("visitor read %d bytes in %v, then %v; want the connection closed before the body's end", n, time.Since(start), err)
			}
		})
		t.Run("HTTP/2"+tt.path, func(t *testing.T) {
			res := h2.do(":method", "GET", ":scheme", "https", ":authority", "break.example", ":path", tt.path)
			if !res.reset || len(res.body) >= 1<<20 {
				t.Errorf("stream got %d bytes, reset %v (%v); want it reset", len(res.body), res.reset, res.resetErr)
			}
		})
	}
	var lines []map[string]any
	for _, l := range e.logs.Lines(t, "request") {
		if l["host"] == "break.example" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 4 {
		t.Fatalf("%d access lines, want 4", len(lines))
	}
	for _, l := range lines {
		want := map[string]any{"outcome": "error", "error_kind": "timeout", "status": 504.0, "upstream_status": 200.0}
		if l["path"] == "/reset" {
			want["error_kind"], want["status"] = "reset", 502.0
		}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s %s: access line %s = %v, want %v", l["proto"], l["path"], k, l[k], v)
			}
		}
	}
	m := e.scrape()
	for _, tt := range []struct{ series, want string }{
		{fmt.Sprintf(`edgeblock_upstream_errors_total{kind="timeout",origin="%s",route="break.example"}`, o.URL), "2"},
		{fmt.Sprintf(`edgeblock_upstream_errors_total{kind="reset",origin="%s",route="break.example"}`, o.URL), "2"},
		{`edgeblock_requests_total{code="504",method="GET",outcome="error"}`, "2"},
		{`edgeblock_requests_total{code="502",method="GET",outcome="error"}`, "2"},
		{`edgeblock_requests_total{code="200",method="GET",outcome="proxied"}`, ""},
	} {
		if v := edgetest.MetricValue(m, tt.series); v != tt.want {
			t.Errorf("%s = %q, want %q", tt.series, v, tt.want)
		}
	}
}

// readResponseBody reads one response off conn and returns how many body
// bytes came before the body ended or the read failed.
func readResponseBody(conn net.Conn) (int64, error) {
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

func TestVisitorGoesAway(t *testing.T) {
	entered := make(chan struct{}, 10)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Write([]byte("first\n"))
			w.(http.Flusher).Flush()
		}
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(o.Close)
	e, pool := tlsRoutesEnv(t, routeConfig("away.example", `"`+o.URL+`"`), "")

	// HTTP/1.1, before the response and in the middle of it.
	for _, path := range []string{"/wait", "/stream"} {
		conn, err := net.Dial("tcp", e.srv.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: away.example\r\n\r\n", path)
		<-entered
		if path == "/stream" {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(conn)
			if _, err := http.ReadResponse(br, nil); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
	}
	// HTTP/2: the visitor resets the stream mid-response.
	h2 := dialH2(t, e.srv.Addr("https"), "away.example", pool)
	h2.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "away.example"}, {":path", "/stream"}} {
		h2.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h2.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	<-entered
	h2.fr.WriteRSTStream(1, http2.ErrCodeCancel)

	edgetest.WaitFor(t, 5*time.Second, "three canceled requests", func() bool {
		return edgetest.MetricValue(e.scrape(), `edgeblock_requests_total{code="499",method="GET",outcome="canceled"}`) == "3"
	})
	// The access line is written just after the request is counted.
	var lines []map[string]any
	edgetest.WaitFor(t, 5*time.Second, "three access lines", func() bool {
		lines = lines[:0]
		for _, l := range e.logs.Lines(t, "request") {
			if l["host"] == "away.example" {
				lines = append(lines, l)
			}
		}
		return len(lines) >= 3
	})
	for _, l := range lines {
		if l["outcome"] != "canceled" || l["status"] != 499.0 {
			t.Errorf("%s %s: outcome %v status %v, want canceled 499", l["proto"], l["path"], l["outcome"], l["status"])
		}
	}
	if len(lines) != 3 {
		t.Errorf("%d access lines, want 3", len(lines))
	}
	if v := edgetest.MetricValue(e.scrape(), fmt.Sprintf(`edgeblock_upstream_errors_total{kind="canceled",origin="%s",route="away.example"}`, o.URL)); v != "" {
		t.Errorf("a visitor going away counted as an origin error: %s", v)
	}
}

// endlessHeaderOrigin answers every request with a status line and then
// header lines without end, and counts the bytes it got to write.
type endlessHeaderOrigin struct {
	addr    string
	written atomic.Int64
	wg      sync.WaitGroup
}

func newEndlessHeaderOrigin(t *testing.T) *endlessHeaderOrigin {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &endlessHeaderOrigin{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close(); o.wg.Wait() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			o.wg.Add(1)
			go func() {
				defer o.wg.Done()
				defer conn.Close()
				conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				line := []byte("X-Junk: " + strings.Repeat("j", 1000) + "\r\n")
				n, err := conn.Write([]byte("HTTP/1.1 200 OK\r\n"))
				o.written.Add(int64(n))
				for err == nil && o.written.Load() < 64<<20 {
					n, err = conn.Write(line)
					o.written.Add(int64(n))
				}
			}()
		}
	}()
	return o
}

func TestOriginEndlessHeaders(t *testing.T) {
	o := newEndlessHeaderOrigin(t)
	e := startEnv(t, "origins:\n  max_response_header_bytes: 16384\n"+routeConfig("junk.example", `"http://`+o.addr+`"`), "")
	const requests = 5
	for range requests {
		resp, body := e.get("GET", "junk.example", "/", nil)
		if resp.StatusCode != 502 || !strings.Contains(body, "could not be reached") {
			t.Errorf("status %d, want the 502 page", resp.StatusCode)
		}
	}
	e.srv.Shutdown(t.Context())
	o.wg.Wait()
	// The edge stops reading at the limit; what the origin got to write
	// beyond it sat in socket buffers, not in the edge's heap.
	per := o.written.Load() / requests
	t.Logf("origin wrote %d bytes per request before the edge hung up (limit 16 KiB)", per)
	if per > 1<<20 {
		t.Errorf("origin wrote %d bytes per request; the edge kept reading headers", per)
	}
}

func TestOriginMaxConns(t *testing.T) {
	parallelPlain(t)
	release := make(chan struct{})
	var inflight atomic.Int32
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "done")
	}))
	t.Cleanup(o.Close)
	e := startEnv(t, "origins:\n  max_conns: 2\ntimeouts:\n  dial: 500ms\n"+routeConfig("busy.example", `"`+o.URL+`"`), "")
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Go(func() {
			resp, _ := e.get("GET", "busy.example", "/", nil)
			codes <- resp.StatusCode
		})
	}
	edgetest.WaitFor(t, 5*time.Second, "two requests at the origin", func() bool { return inflight.Load() == 2 })
	start := time.Now()
	resp, body := e.get("GET", "busy.example", "/", nil)
	if took := time.Since(start); resp.StatusCode != 503 || !strings.Contains(body, "busy") || took > 3*time.Second {
		t.Errorf("third request: %d after %v, want the 503 page after about 500ms", resp.StatusCode, took)
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("a request holding a connection got %d", c)
		}
	}
	if v := edgetest.MetricValue(e.scrape(), fmt.Sprintf(`edgeblock_upstream_errors_total{kind="busy",origin="%s",route="busy.example"}`, o.URL)); v != "1" {
		t.Errorf("busy errors = %q, want 1", v)
	}
}
