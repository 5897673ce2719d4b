package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/certmgr"
	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

func TestCoversDecision(t *testing.T) {
	cfg, err := config.ParseConfig("c.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\nroutes:\n  - host: app.example.com\n    origins: [\"http://127.0.0.1:1\"]\n  - host: \"*.apps.example.com\"\n    origins: [\"http://127.0.0.1:1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := blocklist.Parse("b", []byte("blocked.example\n*.wild.example\nold.example expires=2020-01-01\n"))
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := pages.NewRenderer(pages.Options{})
	p := NewProxy(slogDiscard(), metrics.New(newRegistry(), "t", "t"), cfg)
	if ok, err := p.Covers("app.example.com"); ok || err == nil {
		t.Error("Covers before any config said yes")
	}
	if err := p.Apply(cfg, list, rd); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want bool
	}{
		{"app.example.com", true},
		{"APP.example.com.", true},
		{"x.apps.example.com", true},
		{"apps.example.com", false},
		{"www.app.example.com", false},
		{"blocked.example", true},
		{"www.blocked.example", true},
		{"a.wild.example", true},
		{"wild.example", false},
		{"old.example", false},
		{"stranger.example", false},
		{"bad..name", false},
	}
	for _, tt := range tests {
		if got, _ := p.Covers(tt.name); got != tt.want {
			t.Errorf("Covers(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// tlsEnv starts a server in internal TLS mode and returns it with a pool
// that trusts its root.
func tlsEnv(t *testing.T, extra string) (*testEnv, *x509.CertPool) {
	t.Helper()
	o := echoOrigin(t)
	return internalTLSEnv(t, edgetest.RemovedDir(t, "edgeblock-certs-"), extra, routeConfig("app.example", `"`+o.URL+`"`, "*.apps.example", `"`+o.URL+`"`),
		"blocked.example reason=\"Blocked over TLS\"\n")
}

// internalTLSEnv starts a server with HTTP and HTTPS listeners in internal
// TLS mode, its certificates in storage: tlsExtra adds lines under tls:,
// routes follows (routeConfig), list is the blocklist. It returns the
// server and a pool that trusts the internal CA's root.
func internalTLSEnv(t *testing.T, storage, tlsExtra, routes, list string) (*testEnv, *x509.CertPool) {
	t.Helper()
	e := startEnv(t, fmt.Sprintf(`listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  mode: internal
  storage: %s
%s`, storage, tlsExtra)+routes, list)
	pool := edgetest.InternalCAPool(t, storage)
	return e, pool
}

func tlsClient(pool *x509.CertPool, serverName string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: serverName},
		ForceAttemptHTTP2: true,
	}}
}

func TestInternalTLS(t *testing.T) {
	e, pool := tlsEnv(t, "")
	// Exact names are managed ahead: their certificates exist before any
	// visitor asks.
	edgetest.WaitFor(t, 10*time.Second, "certificates managed ahead", func() bool {
		var n int
		for _, l := range e.logs.Lines(t, "certificate obtained") {
			if l["name"] == "app.example" || l["name"] == "blocked.example" {
				n++
			}
		}
		return n == 2
	})
	for _, tt := range []struct {
		host   string
		status int
		want   string
	}{
		{"app.example", 200, `"X-Forwarded-Proto":["https"]`},
		{"x.apps.example", 200, `"host":"x.apps.example"`}, // on demand, under a wildcard route
		{"blocked.example", 403, "Blocked over TLS"},
	} {
		c := tlsClient(pool, tt.host)
		req, _ := http.NewRequest("GET", e.url("https")+"/", nil)
		req.Host = tt.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.host, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) || resp.ProtoMajor != 2 {
			t.Errorf("%s: %s %d, body lacks %q:\n%s", tt.host, resp.Proto, resp.StatusCode, tt.want, body)
		}
		if resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("%s: TLS version %x", tt.host, resp.TLS.Version)
		}
	}
	// No certificate for a name nothing covers: the handshake fails.
	_, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pool, ServerName: "stranger.example"})
	if err == nil {
		t.Error("handshake for an unknown name succeeded")
	}
	if v := edgetest.MetricValue(e.scrape(), `edgeblock_tls_handshake_refused_total{reason="not_covered"}`); v != "1" {
		t.Errorf("handshake_refused_total = %q, want 1", v)
	}
	// TLS 1.1 is refused.
	if _, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pool, ServerName: "app.example", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// The decision follows the Host of each request, not the SNI: a
	// connection opened for an allowed name cannot reach a blocked one.
	conn, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pool, ServerName: "app.example", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\nGET / HTTP/1.1\r\nHost: blocked.example\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(conn)
	for i, want := range []int{200, 403} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("request %d on one connection: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	conn.Close()
	// Certificate metrics.
	m := e.scrape()
	for _, series := range []string{`edgeblock_tls_certificate_expiry_timestamp_seconds{issuer="internal",name="app.example"}`, `edgeblock_tls_certificate_expiry_timestamp_seconds{issuer="internal",name="*.apps.example"}`} {
		if edgetest.MetricValue(m, series) == "" {
			t.Errorf("scrape lacks %s", series)
		}
	}
	if v := edgetest.MetricValue(m, `edgeblock_tls_obtain_total{result="success"}`); v != "3" {
		t.Errorf("obtain success = %q, want 3 (two ahead, one on demand)", v)
	}
}

func TestHTTPRedirectsToHTTPS(t *testing.T) {
	e, _ := tlsEnv(t, "  redirect_http: true\n")
	_, port, _ := strings.Cut(e.srv.Addr("https"), ":")
	if resp, _ := e.get("GET", "stranger.example", "/", nil); resp.StatusCode != 404 {
		t.Errorf("uncovered host over HTTP: %d, want the 404 page", resp.StatusCode)
	}
	for _, host := range []string{"app.example", "blocked.example", "x.apps.example"} {
		resp, _ := e.get("GET", host, "/a/b?c=d&e=f", nil)
		want := "https://" + host + ":" + port + "/a/b?c=d&e=f"
		if resp.StatusCode != 308 || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d Location %q, want 308 %q", host, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if v := edgetest.MetricValue(e.scrape(), `edgeblock_requests_total{code="308",method="GET",outcome="redirect"}`); v != "3" {
		t.Errorf("redirect count = %q", v)
	}
}

func TestInternalCAKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{TLS: config.TLSConfig{Config: certmgr.Config{Storage: dir}}}
	a, err := InternalRootPEM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := InternalRootPEM(cfg)
	if err != nil || string(a) != string(b) || !strings.Contains(string(a), "BEGIN CERTIFICATE") {
		t.Errorf("root changed between loads or is not PEM: %v", err)
	}
}
