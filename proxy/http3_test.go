package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"
	"github.com/edgeblock/edgeblock/proxy/edgetest"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// h3Env starts an edge in internal TLS mode with HTTP, HTTPS and QUIC
// listeners on loopback; extra goes at the top level of the config
// (limits:, timeouts:), routes follows. It returns the edge and a pool
// that trusts its internal CA.
func h3Env(t *testing.T, extra, routes, list string) (*testEnv, *x509.CertPool) {
	t.Helper()
	storage := edgetest.RemovedDir(t, "edgeblock-certs-")
	e := startEnv(t, fmt.Sprintf(`listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
  quic: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  mode: internal
  storage: %s
%s
`, storage, extra)+routes, list)
	pool := edgetest.InternalCAPool(t, storage)
	return e, pool
}

// h3Patience bounds how long the HTTP/3 tests' clients wait for what
// must happen (a QUIC handshake, an answer, a stream): a loaded machine
// running -race takes seconds for a handshake that takes milliseconds at
// idle (quic-go's client gives a handshake 5s by default, which timed
// out at load). It is never a speed the test asserts: a test waits this
// long only when it is failing anyway.
const h3Patience = 60 * time.Second

// h3Client returns an HTTP/3 client (quic-go's) that trusts pool and
// asks for serverName; its connections close when the test ends.
func h3Client(t *testing.T, pool *x509.CertPool, serverName string) (*http.Client, *http3.Transport) {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName},
		QUICConfig: &quic.Config{MaxIdleTimeout: h3Patience, HandshakeIdleTimeout: h3Patience}}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: h3Patience}, tr
}

// h2Client returns an HTTP/2 client over TLS that trusts pool.
func h2ClientFor(t *testing.T, pool *x509.CertPool, serverName string) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: h3Patience}
}

// fetch sends GET path for host to base with c and returns the response
// and its body.
func fetch(t *testing.T, c *http.Client, base, host, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s at %s: %v", host, path, base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s at %s: body: %v", host, path, base, err)
	}
	return resp, string(b)
}

// TestHTTP3SameEdge: over HTTP/3 a request gets what it gets over HTTP/2
// — proxied, the block page (the same bytes), the 404 and 400 pages, the
// loop page — with a request ID, the route's header rules, an access line
// with proto HTTP/3.0 and the per-protocol count; HTTPS responses
// advertise the QUIC port in Alt-Svc, HTTP/3 is spoken on it.
func TestHTTP3SameEdge(t *testing.T) {
	parallelTLS(t, "app.example", "blocked.example")
	o := echoOrigin(t)
	e, pool := h3Env(t, "", `routes:
  - host: app.example
    origins: ["`+o.URL+`"]
    headers:
      response:
        set: {X-Rule: applied}
  - host: blocked.example
    origins: ["`+o.URL+`"]
`, "blocked.example reason=\"Blocked over HTTP/3\"\n")
	quicPort := e.srv.Addr("quic")[strings.LastIndexByte(e.srv.Addr("quic"), ':')+1:]
	base3 := "https://" + e.srv.Addr("quic")
	for _, tt := range []struct {
		name, host, path string
		header           map[string]string
		status           int
		want             string
	}{
		{"proxied", "app.example", "/x?y=1", nil, 200, `"path":"/x?y=1"`},
		{"blocked", "blocked.example", "/", nil, 403, "Blocked over HTTP/3"},
		{"loop", "app.example", "/", map[string]string{"Via": "1.1 " + e.srv.cfg.Origins.ViaName}, 508, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c3, _ := h3Client(t, pool, tt.host)
			req, _ := http.NewRequest("GET", base3+tt.path, nil)
			req.Host = tt.host
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := c3.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != "HTTP/3.0" || resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Fatalf("%s %s: %s %d %.200q; want HTTP/3.0 %d containing %q", tt.host, tt.path, resp.Proto, resp.StatusCode, body, tt.status, tt.want)
			}
			if len(resp.Header.Get("X-Request-Id")) != 16 {
				t.Errorf("X-Request-Id = %q", resp.Header.Get("X-Request-Id"))
			}
			if tt.name == "proxied" && resp.Header.Get("X-Rule") != "applied" {
				t.Errorf("the route's response header rule was not applied: %v", resp.Header)
			}
			// The same request over HTTP/2: the same status and, but for
			// the request ID and the date, the same bytes.
			c2 := h2ClientFor(t, pool, tt.host)
			req2, _ := http.NewRequest("GET", e.url("https")+tt.path, nil)
			req2.Host = tt.host
			for k, v := range tt.header {
				req2.Header.Set(k, v)
			}
			resp2, err := c2.Do(req2)
			if err != nil {
				t.Fatal(err)
			}
			body2, _ := io.ReadAll(resp2.Body)
			resp2.Body.Close()
			if resp2.ProtoMajor != 2 || resp2.StatusCode != tt.status {
				t.Fatalf("over HTTP/2: %s %d", resp2.Proto, resp2.StatusCode)
			}
			if want := `h3=":` + quicPort + `"; ma=86400`; resp2.Header.Get("Alt-Svc") != want {
				t.Errorf("HTTPS Alt-Svc = %q, want %q", resp2.Header.Get("Alt-Svc"), want)
			}
			if tt.name != "proxied" {
				// The page names the time to the second: two requests
				// straddle a second now and then (more often at load).
				if a, b := normalizePage(string(body)), normalizePage(string(body2)); a != b {
					t.Errorf("page over HTTP/3 differs from HTTP/2:\n%s\n---\n%s", a, b)
				}
			}
		})
	}
	// Plain HTTP carries no Alt-Svc (it redirects to HTTPS).
	resp, _ := e.get("GET", "app.example", "/", nil)
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("plain HTTP response carries Alt-Svc %q", v)
	}
	// A name nothing covers gets no certificate, over QUIC as over TCP.
	c3, _ := h3Client(t, pool, "nothing.example")
	if _, err := c3.Get(base3 + "/"); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("QUIC handshake for an uncovered name: %v, want unrecognized name", err)
	}
	e.srv.FlushAccessLog()
	var h3 int
	for _, l := range e.logs.Lines(t, "request") {
		if l["proto"] == "HTTP/3.0+tls" {
			h3++
		}
	}
	if h3 != 3 {
		t.Errorf("%d access lines with proto HTTP/3.0+tls, want 3", h3)
	}
	s := e.scrape()
	if got := edgetest.MetricValue(s, `edgeblock_requests_by_protocol_total{proto="HTTP/3.0"}`); got != "3" {
		t.Errorf(`requests_by_protocol{HTTP/3.0} = %q, want 3`, got)
	}
	if got := edgetest.MetricValue(s, `edgeblock_quic_serving`); got != "1" {
		t.Errorf("quic_serving = %q, want 1", got)
	}
}

// TestQUICConfig: listen.quic and listen.quic_advertise_port, their
// errors naming file, line and key, and that a reload cannot change them.
func TestQUICConfig(t *testing.T) {
	tlsOn := "  https: 127.0.0.1:8443\ntls:\n  mode: internal\n"
	for _, tt := range []struct {
		name, listen, extra string
		err                 string
	}{
		{name: "off by default", listen: "  http: :8080\n"},
		{name: "beside https", listen: "  quic: 127.0.0.1:8443\n" + tlsOn},
		{name: "advertised port", listen: "  quic: 127.0.0.1:8443\n  quic_advertise_port: 443\n" + tlsOn},
		{name: "without https", listen: "  http: :8080\n  quic: 127.0.0.1:8443\n", err: "x.yaml:3: listen.quic: HTTP/3 needs the HTTPS listener"},
		{name: "not host:port", listen: "  quic: 8443\n" + tlsOn, err: `x.yaml:2: listen.quic: "8443" is not host:port`},
		{name: "bad advertised port", listen: "  quic: 127.0.0.1:8443\n  quic_advertise_port: 70000\n" + tlsOn, err: "x.yaml:3: listen.quic_advertise_port: 70000 is not a port"},
		{name: "advertised port alone", listen: "  quic_advertise_port: 443\n" + tlsOn, err: "x.yaml:2: listen.quic_advertise_port: set, but listen.quic is not"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseConfig("x.yaml", []byte("listen:\n"+tt.listen+"blocklist:\n  file: b\n"))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want %q", err, tt.err)
			}
		})
	}
	a, _ := config.ParseConfig("x.yaml", []byte("listen:\n  quic: 127.0.0.1:8443\n"+tlsOn+"blocklist:\n  file: b\n"))
	b, _ := config.ParseConfig("x.yaml", []byte("listen:\n  quic: 127.0.0.1:9443\n  quic_advertise_port: 443\n"+tlsOn+"blocklist:\n  file: b\n"))
	for _, k := range []string{"listen.quic", "listen.quic_advertise_port"} {
		if a.RestartFields()[k] == b.RestartFields()[k] {
			t.Errorf("restart field %s: %q in both", k, a.RestartFields()[k])
		}
	}
}

// TestQUICPortTaken: a UDP port that is taken is a start error naming
// listen.quic, and nothing is left listening.
func TestQUICPortTaken(t *testing.T) {
	taken, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edgeblock.yaml")
	edgetest.WriteFile(t, cfg, fmt.Sprintf("listen:\n  https: 127.0.0.1:0\n  quic: %s\n  admin: 127.0.0.1:0\ntls:\n  mode: internal\n  storage: %s\nblocklist:\n  file: b.txt\n",
		taken.LocalAddr(), edgetest.RemovedDir(t, "edgeblock-certs-")))
	edgetest.WriteFile(t, filepath.Join(dir, "b.txt"), "")
	b, err := reload.LoadBundle(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(slogDiscard(), cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start(b)
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("started on a taken UDP port")
	}
	if !strings.Contains(err.Error(), "listen.quic") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error %q, want listen.quic: ... address already in use", err)
	}
	for _, name := range []string{"https", "admin"} {
		if a := srv.listeners[name]; a != nil {
			if c, err := net.Dial("tcp", a.Addr().String()); err == nil {
				c.Close()
				t.Errorf("listener %s still accepts after the failed start", name)
			}
		}
	}
}

// TestQUICKeys: the stateless-reset and token keys are made once in the
// state directory (mode 0600) and read back the same by every later start,
// also by starts racing to make them; a damaged file is an error naming
// it; no state directory gives fresh keys each time.
func TestQUICKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	type keys struct {
		reset quic.StatelessResetKey
		token quic.TokenGeneratorKey
	}
	load := func() keys {
		t.Helper()
		r, tk, file, err := loadQUICKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		if file != filepath.Join(dir, quicKeysFile) {
			t.Fatalf("file %q", file)
		}
		return keys{*r, *tk}
	}
	got := make(chan keys, 8)
	for range 8 {
		go func() { got <- load() }()
	}
	first := <-got
	for range 7 {
		if k := <-got; k != first {
			t.Fatal("starts racing to make the keys got different keys")
		}
	}
	if [32]byte(first.reset) == [32]byte(first.token) || first.reset == (quic.StatelessResetKey{}) {
		t.Fatal("keys are zero or equal")
	}
	if load() != first {
		t.Error("a later start got other keys")
	}
	fi, err := os.Stat(filepath.Join(dir, quicKeysFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".quic-keys-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	edgetest.WriteFile(t, filepath.Join(dir, quicKeysFile), "short")
	if _, _, _, err := loadQUICKeys(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, quicKeysFile)) {
		t.Errorf("damaged key file: %v, want an error naming it", err)
	}
	r1, _, f1, _ := loadQUICKeys("")
	r2, _, _, _ := loadQUICKeys("")
	if f1 != "" || *r1 == *r2 {
		t.Error("without a state directory: want fresh keys and no file")
	}
}

// waitOrigin answers /wait?ms=N after N milliseconds with "done", and
// counts the requests it holds at once (max).
type waitOrigin struct {
	*httptest.Server
	mu        sync.Mutex
	now, peak int
}

func newWaitOrigin(t *testing.T) *waitOrigin {
	t.Helper()
	o := &waitOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.now++
		o.peak = max(o.peak, o.now)
		o.mu.Unlock()
		defer func() { o.mu.Lock(); o.now--; o.mu.Unlock() }()
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *waitOrigin) held() (now, peak int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.now, o.peak
}

// TestHTTP3BlockClosesStream: a stream open over HTTP/3 to a host that a
// reload blocks is reset within a second of the apply; another host's
// stream flows on.
func TestHTTP3BlockClosesStream(t *testing.T) {
	o := openOrigin(t)
	e, pool := h3Env(t, "", routeConfig("*.example", `"`+o.URL+`"`), "")
	base := "https://" + e.srv.Addr("quic")
	cb, _ := h3Client(t, pool, "sse.example")
	ck, _ := h3Client(t, pool, "ok.example")
	cb.Timeout, ck.Timeout = 0, 0 // the streams stay open
	blocked := streamWith(t, cb, base, "sse.example", 3)
	kept := streamWith(t, ck, base, "ok.example", 3)
	edgetest.WriteFile(t, e.list, "sse.example\n")
	edgetest.WaitFor(t, h3Patience, "the new list", func() bool { return len(e.logs.Lines(t, "blocklist applied")) == 2 })
	applied := logTime(t, e.logs.Lines(t, "blocklist applied")[1])
	edgetest.WaitFor(t, h3Patience, blocked.name+" to end", func() bool { _, end, _ := blocked.state(); return !end.IsZero() })
	_, end, err := blocked.state()
	if d := end.Sub(applied); d > time.Second {
		t.Errorf("%s ended %v after the list was applied; want within 1s", blocked.name, d)
	}
	var se *quic.StreamError
	if !errors.As(err, &se) || !se.Remote {
		t.Errorf("%s ended with %v; want a stream reset by the edge", blocked.name, err)
	}
	t.Logf("%s ended %v after the apply log line: %v", blocked.name, end.Sub(applied), err)
	keepsFlowing(t, kept, applied)
	if got := edgetest.MetricValue(e.scrape(), `edgeblock_blocked_connections_closed_total{kind="stream"}`); got != "1" {
		t.Errorf("closed streams = %q, want 1", got)
	}
}

// TestHTTP3ClientCaps: the per-client caps count TCP and QUIC together.
// With max_conns_per_client 1, an HTTP/2 connection held open makes the
// client's QUIC connection refused (and counted); once it closes, QUIC
// connects. With max_requests_per_client 1, a request held over HTTP/2
// makes an HTTP/3 request get 429.
func TestHTTP3ClientCaps(t *testing.T) {
	parallelTLS(t, "caps.example")
	o := newWaitOrigin(t)
	t.Run("connections", func(t *testing.T) {
		e, pool := h3Env(t, "limits:\n  max_conns_per_client: 1\n", routeConfig("caps.example", `"`+o.URL+`"`), "")
		c2 := h2ClientFor(t, pool, "caps.example")
		if resp, _ := fetch(t, c2, e.url("https"), "caps.example", "/wait?ms=0"); resp.ProtoMajor != 2 {
			t.Fatalf("over %s", resp.Proto)
		}
		c3, tr3 := h3Client(t, pool, "caps.example")
		// quic-go's Transport dials once more when the refusal arrives
		// before the request's stream is open (errConnUnusable), as it
		// can at load. The first dial here returns only once the edge
		// has closed its connection, so that second dial always comes:
		// each is a connection the edge must refuse and count.
		var dials atomic.Int32
		tr3.Dial = func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			c, err := quic.DialAddrEarly(ctx, addr, tlsCfg, cfg)
			if dials.Add(1) == 1 && err == nil {
				select {
				case <-c.Context().Done():
				case <-time.After(h3Patience):
					t.Errorf("the edge did not close the QUIC connection beyond the cap within %v", h3Patience)
				}
			}
			return c, err
		}
		req, _ := http.NewRequest("GET", "https://"+e.srv.Addr("quic")+"/wait?ms=0", nil)
		req.Host = "caps.example"
		if resp, err := c3.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("HTTP/3 got %s with the client's one connection held over TCP", resp.Status)
		} else if !strings.Contains(err.Error(), "H3_EXCESSIVE_LOAD") && !strings.Contains(err.Error(), "too many connections") {
			t.Errorf("refused with %v, want H3_EXCESSIVE_LOAD", err)
		}
		if n := dials.Load(); n != 2 {
			t.Fatalf("the HTTP/3 client dialed %d times for one request, want 2 (a retry after its first connection was closed)", n)
		}
		if got := edgetest.MetricValue(e.scrape(), `edgeblock_connections_refused_total{reason="max_conns_per_client"}`); got != "2" {
			t.Errorf("refused connections = %q, want 2 (one per QUIC connection; the TCP connection holds the unit)", got)
		}
		if got := edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="quic"}`); got != "0" {
			t.Errorf("open QUIC connections = %q after the refusal, want 0", got)
		}
		c2.Transport.(*http.Transport).CloseIdleConnections()
		edgetest.WaitFor(t, h3Patience, "the TCP connection to close", func() bool {
			return edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="https"}`) == "0"
		})
		if resp, body := fetch(t, c3, "https://"+e.srv.Addr("quic"), "caps.example", "/wait?ms=0"); resp.StatusCode != 200 || body != "done" {
			t.Fatalf("HTTP/3 after the TCP connection closed: %s %q", resp.Status, body)
		}
		if got := edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="quic"}`); got != "1" {
			t.Errorf("open QUIC connections = %q, want 1", got)
		}
		// And the other way round: the QUIC connection holds the unit.
		c2b := h2ClientFor(t, pool, "caps.example")
		req2, _ := http.NewRequest("GET", e.url("https")+"/wait?ms=0", nil)
		req2.Host = "caps.example"
		if resp, err := c2b.Do(req2); err == nil {
			resp.Body.Close()
			t.Errorf("HTTP/2 got %s with the client's one connection held over QUIC", resp.Status)
		}
	})
	t.Run("requests", func(t *testing.T) {
		e, pool := h3Env(t, "limits:\n  max_requests_per_client: 1\n", routeConfig("caps.example", `"`+o.URL+`"`), "")
		c2 := h2ClientFor(t, pool, "caps.example")
		held := make(chan string, 1)
		go func() {
			resp, body := fetch(t, c2, e.url("https"), "caps.example", "/wait?ms=3000")
			held <- resp.Status + " " + body
		}()
		edgetest.WaitFor(t, h3Patience, "the held request at the origin", func() bool { n, _ := o.held(); return n == 1 })
		c3, _ := h3Client(t, pool, "caps.example")
		resp, _ := fetch(t, c3, "https://"+e.srv.Addr("quic"), "caps.example", "/wait?ms=0")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("HTTP/3 request while one is held over HTTP/2: %s (Retry-After %q), want 429", resp.Status, resp.Header.Get("Retry-After"))
		}
		if got := <-held; got != "200 OK done" {
			t.Errorf("held request: %s", got)
		}
	})
}

// TestHTTP3StreamCap: limits.max_streams_per_conn bounds the requests
// one QUIC connection has open at once; the others wait and then succeed.
func TestHTTP3StreamCap(t *testing.T) {
	parallelTLS(t, "app.example")
	o := newWaitOrigin(t)
	e, pool := h3Env(t, "limits:\n  max_streams_per_conn: 2\n", routeConfig("app.example", `"`+o.URL+`"`), "")
	c3, _ := h3Client(t, pool, "app.example")
	fetch(t, c3, "https://"+e.srv.Addr("quic"), "app.example", "/wait?ms=0") // one connection
	var wg sync.WaitGroup
	errs := make(chan string, 6)
	for range 6 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", "https://"+e.srv.Addr("quic")+"/wait?ms=300", nil)
			req.Host = "app.example"
			resp, err := c3.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "done" {
				errs <- resp.Status + " " + string(b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if _, peak := o.held(); peak != 2 {
		t.Errorf("origin held %d requests of one QUIC connection at once, want 2 (the stream cap)", peak)
	}
	if got := edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="quic"}`); got != "1" {
		t.Errorf("open QUIC connections = %q, want 1", got)
	}
}

// TestHTTP3OriginBreaksOff: an origin that breaks off its response
// mid-body gets the HTTP/3 stream reset, never a clean end that would
// make the cut-off body look complete.
func TestHTTP3OriginBreaksOff(t *testing.T) {
	parallelTLS(t, "app.example")
	o := breakingOrigin(t)
	e, pool := h3Env(t, "", routeConfig("app.example", `"`+o.URL+`"`), "")
	c3, _ := h3Client(t, pool, "app.example")
	req, _ := http.NewRequest("GET", "https://"+e.srv.Addr("quic")+"/reset", nil)
	req.Host = "app.example"
	resp, err := c3.Do(req)
	if err != nil {
		// The reset can overtake the head (quic-go drops unsent data on
		// a reset): the visitor sees no response at all, not a complete one.
		if !strings.Contains(err.Error(), "H3_INTERNAL_ERROR") {
			t.Fatalf("request failed with %v; want a stream reset (H3_INTERNAL_ERROR)", err)
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %s, want 200 and a body that breaks off", resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	var se *quic.StreamError
	if !errors.As(err, &se) || !se.Remote {
		t.Errorf("cut-off body (%d bytes) ended with %v; want a stream reset by the edge", n, err)
	}
}

// TestHTTP3Drain: on Stop with a drain, HTTPS responses stop advertising
// HTTP/3 at once, the open HTTP/3 connection gets GOAWAY (its client
// opens no new request on it), QUIC refuses new connections while TCP
// still serves, the request in flight on the connection finishes with its
// whole answer, and Stop returns once it has, not at the end of the grace.
//
// Its bounds are orderings, not a machine's speed: the checks run inside
// a drain of several seconds (a 700ms drain was shorter than a new HTTPS
// connection takes at load with -race), the request in flight outlasts
// the drain, so Stop must wait for it, and the grace is far longer than
// any of it.
func TestHTTP3Drain(t *testing.T) {
	parallelTLS(t, "drain.example")
	const (
		drain = 5 * time.Second
		hold  = drain + 1500*time.Millisecond // the origin's answer to the request in flight
		grace = 2 * h3Patience
	)
	o := newWaitOrigin(t)
	e, pool := h3Env(t, "", routeConfig("drain.example", `"`+o.URL+`"`), "")
	ctx, cancel := context.WithTimeout(context.Background(), h3Patience)
	defer cancel()
	qc, err := quic.DialAddr(ctx, e.srv.Addr("quic"), &tls.Config{RootCAs: pool, ServerName: "drain.example", NextProtos: []string{http3.NextProtoH3}},
		&quic.Config{HandshakeIdleTimeout: h3Patience, MaxIdleTimeout: h3Patience})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(qc)
	get := func(path string) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://drain.example"+path, nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return fmt.Sprint(resp.StatusCode, " ", string(b)), err
	}
	if got, err := get("/wait?ms=0"); got != "200 done" || err != nil {
		t.Fatalf("before the drain: %s %v", got, err)
	}
	held := make(chan string, 1)
	sent := time.Now()
	go func() {
		got, err := get("/wait?ms=" + strconv.Itoa(int(hold.Milliseconds())))
		held <- fmt.Sprint(got, " ", err)
	}()
	edgetest.WaitFor(t, h3Patience, "the held request at the origin", func() bool { n, _ := o.held(); return n == 1 })
	stopped := make(chan error, 1)
	var stoppedAt time.Time // written before the send on stopped
	start := time.Now()
	go func() {
		err := e.srv.Stop(context.Background(), drain, grace)
		stoppedAt = time.Now()
		stopped <- err
	}()
	edgetest.WaitFor(t, h3Patience, "the drain", func() bool { return e.srv.draining.Load() })

	resp, _ := fetch(t, h2ClientFor(t, pool, "drain.example"), e.url("https"), "drain.example", "/wait?ms=0")
	if v := resp.Header.Get("Alt-Svc"); v != "" || resp.StatusCode != 200 {
		t.Errorf("HTTPS during the drain: %s, Alt-Svc %q; want 200 and no Alt-Svc", resp.Status, v)
	}
	// The open connection gets GOAWAY. quic-go's client then opens no new
	// request stream on it ("connection in graceful shutdown"); with a
	// done context, asking for one opens nothing before that.
	done, stop := context.WithCancel(context.Background())
	stop()
	edgetest.WaitFor(t, drain, "GOAWAY on the open HTTP/3 connection", func() bool {
		_, err := cc.OpenRequestStream(done)
		return err != nil && err.Error() == "connection in graceful shutdown"
	})
	fresh := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "drain.example"},
		QUICConfig: &quic.Config{HandshakeIdleTimeout: 500 * time.Millisecond}}
	defer fresh.Close()
	req, _ := http.NewRequest("GET", "https://"+e.srv.Addr("quic")+"/wait?ms=0", nil)
	req.Host = "drain.example"
	if resp, err := (&http.Client{Transport: fresh}).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("a new QUIC connection during the drain got %s; want it refused", resp.Status)
	}
	checks := time.Since(start)
	if checks >= drain {
		// They would have tested the end of the drain, not the drain.
		t.Fatalf("the checks during the drain took %v, longer than the drain (%v)", checks, drain)
	}
	t.Logf("the checks during the drain took %v of %v", checks.Round(time.Millisecond), drain)
	if got := <-held; got != "200 done <nil>" {
		t.Errorf("request in flight over HTTP/3 during the drain: %s; want 200 done", got)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}
	// Stop waited for the request in flight, which outlasted the drain...
	if d := stoppedAt.Sub(sent); d < hold {
		t.Errorf("Stop returned %v after the request in flight was sent, before the origin answered it (%v)", d, hold)
	}
	// ... and no longer: it did not wait for the grace to end.
	if d := stoppedAt.Sub(start); d >= grace {
		t.Errorf("Stop took %v, the whole grace period", d)
	}
}

// TestHTTP3ReloadKeepsConnection: a config reload and a list reload that
// do not concern a host leave its open QUIC connection alone: the same
// connection serves before and after, and serves what the reload changed.
func TestHTTP3ReloadKeepsConnection(t *testing.T) {
	o := echoOrigin(t)
	e, pool := h3Env(t, "", routeConfig("app.example", `"`+o.URL+`"`, "new.example", `"`+o.URL+`"`), "")
	var conns []*quic.Conn
	var mu sync.Mutex
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "app.example"},
		Dial: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			c, err := quic.DialAddrEarly(ctx, addr, tc, qc)
			if err == nil {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
			return c, err
		}}
	defer tr.Close()
	c3 := &http.Client{Transport: tr, Timeout: h3Patience}
	base3 := "https://" + e.srv.Addr("quic")
	if resp, _ := fetch(t, c3, base3, "app.example", "/"); resp.StatusCode != 200 {
		t.Fatalf("before: %s", resp.Status)
	}
	edgetest.WriteFile(t, e.list, "new.example\n")
	edgetest.WaitFor(t, h3Patience, "the new list", func() bool { return len(e.logs.Lines(t, "blocklist applied")) == 2 })
	cfg, _ := os.ReadFile(e.config)
	edgetest.WriteFile(t, e.config, strings.Replace(string(cfg), "routes:", "pages:\n  operator: Reloaded Ltd\nroutes:", 1))
	e.srv.Reloader().Reload("test")
	edgetest.WaitFor(t, h3Patience, "the new config", func() bool { return len(e.logs.Lines(t, "config applied")) >= 1 })
	if resp, _ := fetch(t, c3, base3, "app.example", "/"); resp.StatusCode != 200 {
		t.Errorf("after: %s", resp.Status)
	}
	if resp, body := fetch(t, c3, base3, "new.example", "/"); resp.StatusCode != 403 || !strings.Contains(body, "Reloaded Ltd") {
		t.Errorf("newly blocked host on the same connection: %s %.100q", resp.Status, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 || conns[0].Context().Err() != nil {
		t.Errorf("%d QUIC connections dialed (want 1, still open)", len(conns))
	}
}

// TestHTTP3SafeDefaults: a client that holds a session ticket and tries
// 0-RTT resumes its session but sends no early data (0-RTT is never
// offered); above the Retry threshold new connections must prove their
// address with a Retry, and they all still connect.
func TestHTTP3SafeDefaults(t *testing.T) {
	was := quicRetryAbove
	quicRetryAbove = 2
	t.Cleanup(func() { quicRetryAbove = was })
	o := echoOrigin(t)
	e, pool := h3Env(t, "", routeConfig("app.example", `"`+o.URL+`"`), "")
	base3 := "https://" + e.srv.Addr("quic")
	cache := tls.NewLRUClientSessionCache(4)
	var dialed []*quic.Conn
	for i := range 6 {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "app.example", ClientSessionCache: cache},
			Dial: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
				c, err := quic.DialAddrEarly(ctx, addr, tc, qc)
				if err == nil {
					dialed = append(dialed, c)
				}
				return c, err
			}}
		resp, body := fetch(t, &http.Client{Transport: tr, Timeout: h3Patience}, base3, "app.example", "/")
		if resp.StatusCode != 200 || !strings.Contains(body, "app.example") {
			t.Errorf("connection %d: %s", i, resp.Status)
		}
		tr.Close()
	}
	if len(dialed) != 6 {
		t.Fatalf("%d connections dialed, want 6", len(dialed))
	}
	for i, c := range dialed[1:] {
		st := c.ConnectionState()
		if st.Used0RTT {
			t.Errorf("connection %d used 0-RTT", i+1)
		}
		if !st.TLS.DidResume {
			t.Errorf("connection %d did not resume its session (the ticket works, only early data is refused)", i+1)
		}
	}
	if got := edgetest.MetricValue(e.scrape(), "edgeblock_quic_retries_total"); got == "0" || got == "" {
		t.Errorf("quic_retries_total = %q after 6 connections in a second with the threshold at 2; want Retries", got)
	}
}

// TestQUICProbeAgreesWithQUICGo compares what the start line and the
// metrics say about GSO (probeUDP) with what quic-go reports for a real
// connection on the same socket, with GSO allowed and turned off by
// QUIC_GO_DISABLE_GSO; and the buffers with getsockopt's after quic-go
// set them.
func TestQUICProbeAgreesWithQUICGo(t *testing.T) {
	for _, env := range []string{"", "true"} {
		t.Run("QUIC_GO_DISABLE_GSO="+env, func(t *testing.T) {
			t.Setenv("QUIC_GO_DISABLE_GSO", env)
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer udp.Close()
			tr := &quic.Transport{Conn: udp}
			defer tr.Close()
			cert, pool := selfSignedFor(t, "probe.test")
			ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"p"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			probed := probeUDP(udp)
			ctx, cancel := context.WithTimeout(context.Background(), h3Patience)
			defer cancel()
			cc, err := quic.DialAddr(ctx, udp.LocalAddr().String(), &tls.Config{RootCAs: pool, ServerName: "probe.test", NextProtos: []string{"p"}}, &quic.Config{HandshakeIdleTimeout: h3Patience})
			if err != nil {
				t.Fatal(err)
			}
			defer cc.CloseWithError(0, "")
			sc, err := ln.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := sc.ConnectionState().GSO; got != probed.gso {
				t.Errorf("probe says GSO %v, quic-go's connection %v", probed.gso, got)
			}
			if env == "true" && probed.gso {
				t.Error("GSO on although QUIC_GO_DISABLE_GSO=true")
			}
			if probed.recvBuf <= 0 || probed.sendBuf <= 0 {
				t.Errorf("buffers %d/%d", probed.recvBuf, probed.sendBuf)
			}
			t.Logf("gso=%v ecn=%v receive buffer %d, send buffer %d", probed.gso, probed.ecn, probed.recvBuf, probed.sendBuf)
		})
	}
}

// selfSignedFor returns a certificate for name and a pool that trusts it.
func selfSignedFor(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// h3Raw sends one HTTP/3 request made of exactly fields (name, value
// pairs, in order: what quic-go's client would never send) on a new
// stream of conn and returns the status and body, or the stream error.
func h3Raw(t *testing.T, conn *quic.Conn, fields ...string) (status string, body string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h3Patience)
	defer cancel()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(qpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	frame := quicvarint.Append(quicvarint.Append(nil, 0x1), uint64(block.Len())) // HEADERS
	str.Write(append(frame, block.Bytes()...))
	str.Close()
	str.SetReadDeadline(time.Now().Add(h3Patience))
	r := quicvarint.NewReader(str)
	for {
		typ, err := quicvarint.Read(r)
		if err == io.EOF {
			return status, body, nil
		}
		if err != nil {
			return status, body, err
		}
		n, err := quicvarint.Read(r)
		if err != nil {
			return status, body, err
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(str, payload); err != nil {
			return status, body, err
		}
		switch typ {
		case 0x1:
			dec := qpack.NewDecoder().Decode(payload)
			for {
				f, err := dec()
				if err != nil {
					break
				}
				if f.Name == ":status" {
					status = f.Value
				}
			}
		case 0x0:
			body += string(payload)
		}
	}
}

// TestHTTP3HostDecision: the one host decision on the names an HTTP/3
// request carries — :authority, or the Host field without it — the same
// as on HTTP/2: normalized, then blocklist and route; a name that is not
// one gets the 400 page. What quic-go refuses before the edge sees it
// (a Host field that differs from :authority, an absolute :path) is reset
// and never forwarded.
func TestHTTP3HostDecision(t *testing.T) {
	parallelTLS(t, "app.example", "blocked.example")
	o := echoOrigin(t)
	e, pool := h3Env(t, "", routeConfig("app.example", `"`+o.URL+`"`), "blocked.example\n")
	ctx, cancel := context.WithTimeout(context.Background(), h3Patience)
	defer cancel()
	qc, err := quic.DialAddr(ctx, e.srv.Addr("quic"), &tls.Config{RootCAs: pool, ServerName: "app.example", NextProtos: []string{"h3"}},
		&quic.Config{HandshakeIdleTimeout: h3Patience, MaxIdleTimeout: h3Patience})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	(&http3.Transport{}).NewClientConn(qc) // the control stream and SETTINGS
	req := func(extra ...string) []string {
		return append([]string{":method", "GET", ":scheme", "https"}, extra...)
	}
	for _, tt := range []struct {
		name   string
		fields []string
		status string // "" : the stream is reset, nothing forwarded
		want   string
	}{
		{"authority", req(":authority", "app.example", ":path", "/a"), "200", `"path":"/a"`},
		{"authority normalized", req(":authority", "APP.Example.:443", ":path", "/b"), "200", `"host":"app.example"`},
		{"blocked", req(":authority", "blocked.example", ":path", "/"), "403", "blocked.example"},
		{"host field alone", req(":path", "/c", "host", "blocked.example"), "403", "blocked.example"},
		{"not a name", req(":authority", "bad..name", ":path", "/"), "400", ""},
		{"host field disagrees", req(":authority", "app.example", ":path", "/", "host", "blocked.example"), "", ""},
		{"absolute path", req(":authority", "app.example", ":path", "https://blocked.example/"), "", ""},
		{"path not origin-form", req(":authority", "app.example", ":path", "*"), "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body, err := h3Raw(t, qc, tt.fields...)
			if tt.status == "" {
				var se *quic.StreamError
				if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeMessageError) {
					t.Errorf("got %s %.80q, %v; want the stream reset with H3_MESSAGE_ERROR", status, body, err)
				}
				return
			}
			if err != nil || status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("got %s %.120q, %v; want %s containing %q", status, body, err, tt.status, tt.want)
			}
		})
	}
	// Nothing that was reset reached the origin or the access log as proxied.
	e.srv.FlushAccessLog()
	for _, l := range e.logs.Lines(t, "request") {
		if l["outcome"] == "proxied" && l["path"] == "/" {
			t.Errorf("forwarded: %v", l)
		}
	}
}

// TestHTTP3Gtlsclient: ngtcp2's client (Debian's ngtcp2-client, GnuTLS:
// an HTTP/3 and QUIC implementation other than quic-go) fetches the block
// page and a proxied answer; the block page has the same bytes as over
// HTTP/2 (but for the request ID and the time). gtlsclient sends SNI
// "localhost" to a numeric address (its --sni is not used for the
// handshake), so the list blocks localhost, which gets it a certificate.
func TestHTTP3Gtlsclient(t *testing.T) {
	bin := requireBinary(t, "gtlsclient", "ngtcp2-client")
	skipHeavyInShort(t, "ngtcp2's gtlsclient")
	o := echoOrigin(t)
	e, pool := h3Env(t, "", routeConfig("app.example", `"`+o.URL+`"`), "localhost reason=\"Blocked for ngtcp2\"\n")
	host, port, _ := net.SplitHostPort(e.srv.Addr("quic"))
	for _, tt := range []struct{ name, want string }{
		{"localhost", "Blocked for ngtcp2"},
		{"app.example", `"host":"app.example"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--quiet", "--exit-on-all-streams-close", "--timeout=10s",
				"--download="+dir, host, port, "https://"+tt.name+"/index.html")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("gtlsclient: %v\n%s", err, out)
			}
			got, err := os.ReadFile(filepath.Join(dir, "index.html"))
			if err != nil || !strings.Contains(string(got), tt.want) {
				t.Fatalf("gtlsclient downloaded %.200q (%v); want %q\n%s", got, err, tt.want, out)
			}
			if tt.name != "localhost" {
				return
			}
			_, h2body := fetch(t, h2ClientFor(t, pool, tt.name), e.url("https"), tt.name, "/index.html")
			if a, b := normalizePage(string(got)), normalizePage(h2body); a != b {
				t.Errorf("block page over HTTP/3 (gtlsclient) differs from HTTP/2:\n%s\n---\n%s", a, b)
			}
		})
	}
	e.srv.FlushAccessLog()
	var h3 int
	for _, l := range e.logs.Lines(t, "request") {
		if l["proto"] == "HTTP/3.0+tls" {
			h3++
		}
	}
	if h3 != 2 {
		t.Errorf("%d access lines over HTTP/3, want 2", h3)
	}
}

// normalizePage blanks a page's request ID and time, which differ
// between two requests.
func normalizePage(s string) string {
	s = regexp.MustCompile(`[0-9a-f]{16}`).ReplaceAllString(s, "ID")
	return regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z| UTC|[+-]\d\d:?\d\d)?`).ReplaceAllString(s, "TIME")
}

// TestHTTP3Timeouts: over HTTP/3 a response the client stops reading
// (flow control stalls the edge's writes) has its stream reset after
// timeouts.write_idle and the origin released; the connection stays
// usable; a connection left idle is closed after timeouts.idle.
func TestHTTP3Timeouts(t *testing.T) {
	parallelTLS(t, "slow.example")
	o := newWatchedOrigin(t, 32<<20)
	e, pool := h3Env(t, "timeouts:\n  write_idle: 1s\n  idle: 2s\n", routeConfig("slow.example", `"`+o.URL+`"`), "")
	c3, _ := h3Client(t, pool, "slow.example")
	c3.Timeout = 0
	req, _ := http.NewRequest("GET", "https://"+e.srv.Addr("quic")+"/big", nil)
	req.Host = "slow.example"
	resp, err := c3.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	if got := o.waitEnded(t, 15*time.Second); got != "write error" {
		t.Errorf("origin handler: %s, want a write error (the edge gave up)", got)
	}
	t.Logf("origin released %v after the response began", time.Since(start).Round(time.Millisecond))
	n, err := io.Copy(io.Discard, resp.Body)
	var se *quic.StreamError
	if !errors.As(err, &se) || n >= 32<<20 {
		t.Errorf("the stalled response: %d bytes then %v; want the stream reset", n, err)
	}
	// The connection itself is fine.
	if resp, _ := fetch(t, c3, "https://"+e.srv.Addr("quic"), "slow.example", "/small"); resp.StatusCode != 200 {
		t.Errorf("next request on the connection: %s", resp.Status)
	}
	if got := edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="quic"}`); got != "1" {
		t.Fatalf("open QUIC connections = %q, want 1", got)
	}
	d := edgetest.WaitFor(t, 10*time.Second, "the idle connection to close", func() bool {
		return edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="quic"}`) == "0"
	})
	t.Logf("idle connection closed %v after its last request", d.Round(100*time.Millisecond))
	if d < time.Second {
		t.Errorf("idle connection closed after %v, before timeouts.idle (2s)", d)
	}
}

// TestAltSvcFromOrigin: an origin's own Alt-Svc names its endpoints, not
// the edge's: it never reaches the visitor, who gets the edge's (while
// QUIC serves) or none.
func TestAltSvcFromOrigin(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Alt-Svc", `h3=":9999"; ma=2592000`)
		io.WriteString(w, "hi")
	}))
	t.Cleanup(o.Close)
	e, pool := h3Env(t, "", routeConfig("app.example", `"`+o.URL+`"`), "")
	port := e.srv.Addr("quic")[strings.LastIndexByte(e.srv.Addr("quic"), ':')+1:]
	resp, _ := fetch(t, h2ClientFor(t, pool, "app.example"), e.url("https"), "app.example", "/")
	if got := resp.Header.Values("Alt-Svc"); len(got) != 1 || got[0] != `h3=":`+port+`"; ma=86400` {
		t.Errorf("Alt-Svc over HTTPS with QUIC on: %q, want the edge's only", got)
	}
	e2 := startEnv(t, routeConfig("app.example", `"`+o.URL+`"`), "")
	resp, _ = e2.get("GET", "app.example", "/", nil)
	if got := resp.Header.Values("Alt-Svc"); len(got) != 0 {
		t.Errorf("Alt-Svc without QUIC: %q, want none", got)
	}
}

// TestQUICStatelessResetAcrossRestart: an edge that stops without closing
// its QUIC connections (a crash) and starts again on the same state
// directory resets a client's connection at its next packet (a stateless
// reset from the kept key), so the client moves on at once instead of
// waiting out its idle timeout. Started on another state directory (other
// keys), the new edge cannot, and the client is left waiting.
func TestQUICStatelessResetAcrossRestart(t *testing.T) {
	parallelTLS(t, "restart.example")
	o := echoOrigin(t)
	for _, tt := range []struct {
		name      string
		sameState bool
	}{{"same state directory", true}, {"other state directory", false}} {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			free, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			addr := free.LocalAddr().String()
			free.Close()
			storage := edgetest.RemovedDir(t, "edgeblock-certs-")
			e := startEnv(t, fmt.Sprintf("listen:\n  https: 127.0.0.1:0\n  quic: %s\n  admin: 127.0.0.1:0\ntls:\n  mode: internal\n  storage: %s\n", addr, storage)+
				routeConfig("restart.example", `"`+o.URL+`"`), "")
			start := func(stateDir string) *Server {
				t.Helper()
				b, err := reload.LoadBundle(e.config)
				if err != nil {
					t.Fatal(err)
				}
				b.StateDir = stateDir
				srv, err := NewServer(slogDiscard(), e.config, b)
				if err != nil {
					t.Fatal(err)
				}
				if err := srv.Start(b); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					srv.Shutdown(ctx)
				})
				return srv
			}
			e.srv.Shutdown(context.Background()) // the env's own edge: memory keys
			first := start(state)
			pool := edgetest.InternalCAPool(t, storage)
			ctx, cancel := context.WithTimeout(context.Background(), h3Patience)
			defer cancel()
			qc, err := quic.DialAddr(ctx, addr, &tls.Config{RootCAs: pool, ServerName: "restart.example", NextProtos: []string{"h3"}},
				&quic.Config{MaxIdleTimeout: 20 * time.Second, HandshakeIdleTimeout: h3Patience})
			if err != nil {
				t.Fatal(err)
			}
			defer qc.CloseWithError(0, "")
			cc := (&http3.Transport{}).NewClientConn(qc)
			req, _ := http.NewRequest("GET", "https://restart.example/", nil)
			if resp, err := cc.RoundTrip(req); err != nil || resp.StatusCode != 200 {
				t.Fatalf("first request: %v %v", resp, err)
			}
			first.quic.udp.Close() // the crash: no CONNECTION_CLOSE goes out
			edgetest.WaitFor(t, h3Patience, "the first edge to stop advertising HTTP/3", func() bool { return !first.quic.serving.Load() })
			next := state
			if !tt.sameState {
				next = t.TempDir()
			}
			start(next)
			sent := time.Now()
			go func() {
				req, _ := http.NewRequest("GET", "https://restart.example/", nil)
				if resp, err := cc.RoundTrip(req); err == nil {
					resp.Body.Close()
				}
			}()
			select {
			case <-qc.Context().Done():
				var reset *quic.StatelessResetError
				err := context.Cause(qc.Context())
				if !tt.sameState || !errors.As(err, &reset) {
					t.Errorf("the client's connection ended after %v with %v", time.Since(sent), err)
				}
				t.Logf("connection ended %v after its next request: %v", time.Since(sent).Round(time.Millisecond), err)
			case <-time.After(3 * time.Second):
				if tt.sameState {
					t.Error("no stateless reset within 3s of the next request")
				}
			}
		})
	}
}
