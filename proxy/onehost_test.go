package proxy

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// hostRecorder is an origin that records the Host and X-Forwarded-Host of
// every request it gets.
type hostRecorder struct {
	*httptest.Server
	mu  sync.Mutex
	got []string // "Host|X-Forwarded-Host|Forwarded"
}

func newHostRecorder(t *testing.T) *hostRecorder {
	t.Helper()
	o := &hostRecorder{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.got = append(o.got, r.Host+"|"+r.Header.Get("X-Forwarded-Host")+"|"+r.Header.Get("Forwarded"))
		o.mu.Unlock()
		fmt.Fprintf(w, "origin for %s", r.Host)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *hostRecorder) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

// oneHostEnv runs an edge with TLS (internal CA) and a wildcard route
// *.customer.example with one blocked name under it; the HTTP listener
// does not redirect, and loopback is a trusted proxy, so that a trusted
// proxy's X-Forwarded-Host is tried too.
func oneHostEnv(t *testing.T) (*testEnv, *hostRecorder, *x509.CertPool) {
	t.Helper()
	o := newHostRecorder(t)
	e, pool := tlsRoutesEnv(t, "trusted_proxies: [127.0.0.0/8]\n"+routeConfig("*.customer.example", `"`+o.URL+`"`), "blocked.customer.example\n")
	return e, o, pool
}

// tlsRoutesEnv runs an edge with an HTTP listener that does not redirect
// and an HTTPS listener with the internal CA, and returns it with a pool
// that trusts the CA. config adds to the listener and TLS settings.
func tlsRoutesEnv(t *testing.T, config, list string) (*testEnv, *x509.CertPool) {
	t.Helper()
	return internalTLSEnv(t, edgetest.RemovedDir(t, "edgeblock-certs-"), "  redirect_http: false\n", config, list)
}

// accessLine returns the access log line of the request with id.
func (e *testEnv) accessLine(t *testing.T, id string) map[string]any {
	t.Helper()
	for _, l := range e.logs.Lines(t, "request") {
		if l["request_id"] == id {
			return l
		}
	}
	t.Fatalf("no access line for request %q", id)
	return nil
}

const (
	okName      = "ok.customer.example"
	blockedName = "blocked.customer.example"
)

func TestOneHostHTTP1(t *testing.T) {
	e, o, _ := oneHostEnv(t)
	for _, tt := range []struct {
		name, request string
		status        int
		host          string // decided host in the access line
	}{
		{"absolute-form blocked, Host allowed", "GET http://" + blockedName + "/ HTTP/1.1\r\nHost: " + okName + "\r\n", 400, blockedName},
		{"absolute-form allowed, Host blocked", "GET http://" + okName + "/ HTTP/1.1\r\nHost: " + blockedName + "\r\n", 400, okName},
		{"absolute-form, same Host", "GET http://" + okName + "/ HTTP/1.1\r\nHost: " + okName + "\r\n", 400, okName},
		{"absolute-form HTTP/1.0 without Host", "GET http://" + okName + "/ HTTP/1.0\r\n", 400, okName},
		{"Host with case, port and dot", "GET / HTTP/1.1\r\nHost: OK.Customer.Example.:80\r\n", 200, okName},
		{"trusted proxy names another host", "GET / HTTP/1.1\r\nHost: " + okName + "\r\nX-Forwarded-Host: " + blockedName + "\r\nForwarded: host=" + blockedName + "\r\n", 200, okName},
		{"blocked Host", "GET / HTTP/1.1\r\nHost: " + blockedName + "\r\n", 403, blockedName},
		// Go's server answers this one itself, before any handler.
		{"h2c prior knowledge over HTTP/1.1", "PRI * HTTP/2.0\r\n", 400, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawHTTP1(t, e.srv.Addr("http"), tt.request+"Connection: close\r\n\r\n")
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.host == "" {
				return
			}
			if tt.status == 400 && !strings.Contains(resp.body, "not valid or not unique") {
				t.Errorf("not the built-in 400 page (%d bytes)", len(resp.body))
			}
			if l := e.accessLine(t, resp.Header.Get("X-Request-Id")); l["host"] != tt.host || l["status"] != float64(tt.status) {
				t.Errorf("access line host %v status %v, want %s %d", l["host"], l["status"], tt.host, tt.status)
			}
		})
	}
	checkOrigin(t, o, 2)
}

func TestOneHostHTTP2(t *testing.T) {
	e, o, pool := oneHostEnv(t)
	c := dialH2(t, e.srv.Addr("https"), okName, pool)
	req := func(fields ...string) []string {
		return append([]string{":method", "GET", ":scheme", "https"}, fields...)
	}
	for _, tt := range []struct {
		name   string
		fields []string
		status int
		host   string
	}{
		{"authority allowed, absolute path blocked", req(":authority", okName, ":path", "https://"+blockedName+"/"), 400, okName},
		{"authority blocked, absolute path allowed", req(":authority", blockedName, ":path", "https://"+okName+"/"), 400, blockedName},
		{"authority allowed, Host blocked", req(":authority", okName, ":path", "/", "host", blockedName), 400, okName},
		{"no authority, Host blocked, absolute path allowed", req(":path", "https://"+okName+"/", "host", blockedName), 400, blockedName},
		{"two Host fields that differ", req(":authority", okName, ":path", "/", "host", okName, "host", blockedName), 400, okName},
		{"authority with port, absolute path of the same name", req(":authority", okName+":443", ":path", "https://OK.customer.example/x"), 200, okName},
		{"authority and Host agree", req(":authority", okName, ":path", "/", "host", okName+":443"), 200, okName},
		{"no authority, Host allowed", req(":path", "/", "host", okName), 200, okName},
		{"authority blocked", req(":authority", blockedName, ":path", "/"), 403, blockedName},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := c.do(tt.fields...)
			if res.status != tt.status {
				t.Errorf("status %d, want %d (reset %v)", res.status, tt.status, res.reset)
			}
			if tt.status == 400 && !strings.Contains(res.body, "not valid or not unique") {
				t.Errorf("not the built-in 400 page (%d bytes)", len(res.body))
			}
			ids := res.header["x-request-id"]
			if len(ids) != 1 {
				t.Fatalf("x-request-id %v", ids)
			}
			if l := e.accessLine(t, ids[0]); l["host"] != tt.host || l["status"] != float64(tt.status) {
				t.Errorf("access line host %v status %v, want %s %d", l["host"], l["status"], tt.host, tt.status)
			}
		})
	}
	checkOrigin(t, o, 3)
}

// checkOrigin checks that the origin got exactly n requests, every one
// for the allowed name in Host, X-Forwarded-Host and Forwarded, and none
// for the blocked name.
func checkOrigin(t *testing.T, o *hostRecorder, n int) {
	t.Helper()
	got := o.requests()
	if len(got) != n {
		t.Errorf("origin got %d requests, want %d: %q", len(got), n, got)
	}
	for _, g := range got {
		host, rest, _ := strings.Cut(g, "|")
		xfh, fwd, _ := strings.Cut(rest, "|")
		if host != okName || xfh != okName || !strings.Contains(fwd, "host="+okName+";") || strings.Contains(g, blockedName) {
			t.Errorf("origin got Host %q X-Forwarded-Host %q Forwarded %q, want %s throughout", host, xfh, fwd, okName)
		}
	}
}

// rawResponse is a response read off a raw connection, with its body.
type rawResponse struct {
	*http.Response
	body string
}

// rawHTTP1 writes request as it is to addr and reads one response.
func rawHTTP1(t *testing.T, addr, request string) rawResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", request, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return rawResponse{resp, string(b)}
}
