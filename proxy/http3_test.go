package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Env starts an edge in internal TLS mode with HTTP, HTTPS and QUIC
// listeners on loopback; extra goes at the top level of the config
// (limits:, timeouts:), routes follows. It returns the edge and a pool
// that trusts its internal CA.
func h3Env(t *testing.T, extra, routes, list string) (*testEnv, *x509.CertPool) {
	t.Helper()
	storage := storageDir(t)
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
	pemData, err := os.ReadFile(filepath.Join(storage, "internal-ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	return e, pool
}

// h3Client returns an HTTP/3 client (quic-go's) that trusts pool and
// asks for serverName; its connections close when the test ends.
func h3Client(t *testing.T, pool *x509.CertPool, serverName string) (*http.Client, *http3.Transport) {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName},
		QUICConfig: &quic.Config{MaxIdleTimeout: 30 * time.Second}}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

// h2Client returns an HTTP/2 client over TLS that trusts pool.
func h2ClientFor(t *testing.T, pool *x509.CertPool, serverName string) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
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
				strip := func(b []byte, id string) string { return strings.ReplaceAll(string(b), id, "ID") }
				if a, b := strip(body, resp.Header.Get("X-Request-Id")), strip(body2, resp2.Header.Get("X-Request-Id")); a != b {
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
	for _, l := range e.logs.logLines(t, "request") {
		if l["proto"] == "HTTP/3.0+tls" {
			h3++
		}
	}
	if h3 != 3 {
		t.Errorf("%d access lines with proto HTTP/3.0+tls, want 3", h3)
	}
	s := e.scrape()
	if got := metricValue(t, s, `edgeblock_requests_by_protocol_total{proto="HTTP/3.0"}`); got != "3" {
		t.Errorf(`requests_by_protocol{HTTP/3.0} = %q, want 3`, got)
	}
	if got := metricValue(t, s, `edgeblock_quic_serving`); got != "1" {
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
			_, err := ParseConfig("x.yaml", []byte("listen:\n"+tt.listen+"blocklist:\n  file: b\n"))
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
	a, _ := ParseConfig("x.yaml", []byte("listen:\n  quic: 127.0.0.1:8443\n"+tlsOn+"blocklist:\n  file: b\n"))
	b, _ := ParseConfig("x.yaml", []byte("listen:\n  quic: 127.0.0.1:9443\n  quic_advertise_port: 443\n"+tlsOn+"blocklist:\n  file: b\n"))
	for _, k := range []string{"listen.quic", "listen.quic_advertise_port"} {
		if a.restartFields()[k] == b.restartFields()[k] {
			t.Errorf("restart field %s: %q in both", k, a.restartFields()[k])
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
	writeFile(t, cfg, fmt.Sprintf("listen:\n  https: 127.0.0.1:0\n  quic: %s\n  admin: 127.0.0.1:0\ntls:\n  mode: internal\n  storage: %s\nblocklist:\n  file: b.txt\n",
		taken.LocalAddr(), storageDir(t)))
	writeFile(t, filepath.Join(dir, "b.txt"), "")
	b, err := LoadBundle(cfg)
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
	writeFile(t, filepath.Join(dir, quicKeysFile), "short")
	if _, _, _, err := loadQUICKeys(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, quicKeysFile)) {
		t.Errorf("damaged key file: %v, want an error naming it", err)
	}
	r1, _, f1, _ := loadQUICKeys("")
	r2, _, _, _ := loadQUICKeys("")
	if f1 != "" || *r1 == *r2 {
		t.Error("without a state directory: want fresh keys and no file")
	}
}
