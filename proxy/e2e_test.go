package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// echoOrigin answers with the request it saw, as JSON.
func echoOrigin(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"host": r.Host, "path": r.URL.RequestURI(), "header": r.Header})
	}))
	t.Cleanup(s.Close)
	return s
}

type echoed struct {
	Host   string      `json:"host"`
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
}

func decodeEcho(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("origin answer %q: %v", body, err)
	}
	return e
}

func routeConfig(routes ...string) string {
	var b strings.Builder
	b.WriteString("routes:\n")
	for i := 0; i+1 < len(routes); i += 2 {
		fmt.Fprintf(&b, "  - host: %q\n    origins: [%s]\n", routes[i], routes[i+1])
	}
	return b.String()
}

func TestForwardedHeaders(t *testing.T) {
	o := echoOrigin(t)
	for _, tt := range []struct {
		name, trusted, xff                   string
		wantXFF, wantXRI, wantProto, wantTCI string
	}{
		{"untrusted visitor headers are dropped", "", "203.0.113.9", "127.0.0.1", "127.0.0.1", "http", ""},
		{"trusted proxy headers are kept, but not its host", "trusted_proxies: [127.0.0.0/8]\n", "203.0.113.9", "203.0.113.9, 127.0.0.1", "203.0.113.9", "https", "198.51.100.1"},
		{"the client is the right-most untrusted address", "trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]\n", "198.51.100.7, 203.0.113.9, 10.1.2.3",
			"198.51.100.7, 203.0.113.9, 10.1.2.3, 127.0.0.1", "203.0.113.9", "https", "198.51.100.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, tt.trusted+routeConfig("app.example.com", `"`+o.URL+`/base"`), "blocked.example\n")
			resp, body := e.get("GET", "app.example.com", "/p?q=1", map[string]string{
				"X-Forwarded-For": tt.xff, "X-Forwarded-Host": "spoof.example", "X-Forwarded-Proto": "https",
				"Forwarded": "for=203.0.113.9;host=spoof.example", "X-Request-Id": "visitor-chosen",
				"X-Real-Ip": "192.0.2.66", "True-Client-Ip": "198.51.100.1", "Cf-Connecting-Ip": "192.0.2.66",
				"Fastly-Client-Ip": "192.0.2.66", "X-Client-Ip": "192.0.2.66", "X-Cluster-Client-Ip": "192.0.2.66", "Client-Ip": "192.0.2.66",
			})
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := decodeEcho(t, body)
			if got.Host != "app.example.com" || got.Path != "/base/p?q=1" {
				t.Errorf("origin saw host %q path %q", got.Host, got.Path)
			}
			for _, h := range []struct{ name, want string }{
				{"X-Forwarded-For", tt.wantXFF},
				{"X-Forwarded-Host", "app.example.com"}, // the decided name, from any peer
				{"X-Forwarded-Proto", tt.wantProto},
				{"X-Real-Ip", tt.wantXRI},
				{"Forwarded", "for=" + tt.wantXRI + ";host=app.example.com;proto=" + tt.wantProto},
				{"True-Client-Ip", tt.wantTCI},
			} {
				if v := got.Header.Values(h.name); len(v) > 1 || got.Header.Get(h.name) != h.want {
					t.Errorf("%s = %q, want %q", h.name, v, h.want)
				}
			}
			if tt.trusted == "" {
				for _, h := range []string{"Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip", "Client-Ip"} {
					if v := got.Header.Get(h); v != "" {
						t.Errorf("visitor's %s reached the origin: %q", h, v)
					}
				}
			}
			if id := resp.Header.Get("X-Request-Id"); len(id) != 16 || got.Header.Get("X-Request-Id") != id {
				t.Errorf("X-Request-Id: visitor got %q, origin got %q", id, got.Header.Get("X-Request-Id"))
			}
		})
	}
}

func TestBlockDecision(t *testing.T) {
	o := echoOrigin(t)
	e := startEnv(t, routeConfig("app.example.com", `"`+o.URL+`"`, "blocked.example", `"`+o.URL+`"`, "*.example.net", `"`+o.URL+`"`),
		"blocked.example reason=\"Abuse\" policy=https://blog.example.com/why\ncourt.example status=451 reason=\"Court order 1\"\nreport.example.net mode=report\n")
	tests := []struct {
		name, host string
		header     map[string]string
		status     int
		outcome    string
	}{
		{"routed", "app.example.com", nil, 200, "proxied"},
		{"blocked although routed", "blocked.example", nil, 403, "blocked"},
		{"blocked, upper case, port and dot", "WWW.Blocked.Example.:8080", nil, 403, "blocked"},
		{"blocked without route", "court.example", nil, 451, "blocked"},
		{"X-Forwarded-Host cannot unblock", "blocked.example", map[string]string{"X-Forwarded-Host": "app.example.com", "Forwarded": "host=app.example.com"}, 403, "blocked"},
		{"X-Forwarded-Host cannot block", "app.example.com", map[string]string{"X-Forwarded-Host": "blocked.example"}, 200, "proxied"},
		{"report mode proxies", "report.example.net", nil, 200, "report"},
		{"unknown host", "nothing.example", nil, 404, "unknown"},
	}
	for _, tt := range tests {
		resp, body := e.get("GET", tt.host, "/", tt.header)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d\n%s", tt.name, resp.StatusCode, tt.status, body)
		}
		if tt.status == 404 && !strings.Contains(body, "No site is configured") {
			t.Errorf("%s: 404 page lacks its message:\n%s", tt.name, body)
		}
		id := resp.Header.Get("X-Request-Id")
		lines := e.logs.Lines(t, "request")
		found := false
		for _, l := range lines {
			if l["request_id"] == id {
				found = true
				if l["outcome"] != tt.outcome || l["status"] != float64(tt.status) {
					t.Errorf("%s: access line outcome %v status %v, want %s %d", tt.name, l["outcome"], l["status"], tt.outcome, tt.status)
				}
				if d, ok := l["duration"].(float64); !ok || d <= 0 || d > 5 {
					t.Errorf("%s: access line duration = %v", tt.name, l["duration"])
				}
				if tt.outcome == "blocked" && l["rule_line"] == nil {
					t.Errorf("%s: access line lacks the rule line: %v", tt.name, l)
				}
			}
		}
		if !found {
			t.Errorf("%s: no access line with request_id %s", tt.name, id)
		}
	}
}

func TestBlockPageFormatsEndToEnd(t *testing.T) {
	e := startEnv(t, "", "court.example status=451 policy=https://lumendatabase.org/notices/1 reason=\"Court order 123\"\nplain.example\n")
	resp, body := e.get("GET", "court.example", "/", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != 451 || !strings.Contains(body, "Court order 123") || !strings.Contains(body, resp.Header.Get("X-Request-Id")) {
		t.Errorf("HTML: %d\n%s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Link"); got != `<https://edge.example.com>; rel="blocked-by"` {
		t.Errorf("Link = %q", got)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	resp, body = e.get("GET", "court.example", "/", map[string]string{"Accept": "application/json"})
	var p map[string]any
	if err := json.Unmarshal([]byte(body), &p); err != nil || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("JSON: %v %q\n%s", err, resp.Header.Get("Content-Type"), body)
	}
	if p["type"] != "https://lumendatabase.org/notices/1" || p["status"] != 451.0 || p["detail"] != "Court order 123" ||
		p["instance"] != resp.Header.Get("X-Request-Id") || p["host"] != "court.example" {
		t.Errorf("problem = %v", p)
	}
	resp, body = e.get("GET", "plain.example", "/", map[string]string{"Accept": "text/plain"})
	if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(body, "Policy: https://policy.example/default") {
		t.Errorf("text (default policy): %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = e.get("HEAD", "court.example", "/", nil)
	if resp.StatusCode != 451 || body != "" || resp.Header.Get("Content-Length") == "" || resp.Header.Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d Content-Length %q body %q", resp.StatusCode, resp.Header.Get("Content-Length"), body)
	}
}

func TestStreaming(t *testing.T) {
	release := make(chan struct{})
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: second\n\n")
	}))
	defer o.Close()
	defer close(release)
	e := startEnv(t, routeConfig("sse.example", `"`+o.URL+`"`), "")
	req, _ := http.NewRequest("GET", e.url("http")+"/events", nil)
	req.Host = "sse.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "data: first\n" {
			t.Errorf("first event line = %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not reach the visitor while the origin was still writing")
	}
}

func TestUpgrade(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		buf := make([]byte, 4)
		for {
			if _, err := io.ReadFull(brw, buf); err != nil {
				return
			}
			conn.Write([]byte(strings.ToUpper(string(buf))))
		}
	}))
	defer o.Close()
	e := startEnv(t, routeConfig("ws.example", `"`+o.URL+`"`), "")
	conn, err := net.Dial("tcp", e.srv.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "GET /socket HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade response: %v %v", resp, err)
	}
	for _, msg := range []string{"ping", "pong"} {
		conn.Write([]byte(msg))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != strings.ToUpper(msg) {
			t.Fatalf("echo of %q = %q, %v", msg, buf, err)
		}
	}
}

// refusedAddr returns a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestOriginFailures(t *testing.T) {
	parallelPlain(t)
	good := echoOrigin(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	down := "http://" + refusedAddr(t)
	// Only the slow origin waits on a short response_header (its
	// route's timeouts): a loaded machine may take longer to answer.
	e := startEnv(t, "origins:\n  fail_timeout: 1m\n"+
		routeConfig("down.example", `"`+down+`"`, "pair.example", `"`+down+`", "`+good.URL+`"`)+
		fmt.Sprintf("  - host: slow.example\n    origins: [%q]\n    timeouts:\n      response_header: 300ms\n", slow.URL), "")

	resp, body := e.get("GET", "down.example", "/", nil)
	if resp.StatusCode != 502 || !strings.Contains(body, "could not be reached") || !strings.Contains(body, resp.Header.Get("X-Request-Id")) {
		t.Errorf("down origin: %d\n%s", resp.StatusCode, body)
	}
	resp, body = e.get("GET", "slow.example", "/", map[string]string{"Accept": "application/json"})
	if resp.StatusCode != 504 || !strings.Contains(body, `"status": 504`) {
		t.Errorf("slow origin: %d\n%s", resp.StatusCode, body)
	}
	// With one origin refusing, every request still succeeds: the refused
	// attempt is retried on the other origin, and the refusing one is then
	// skipped.
	for i := range 6 {
		resp, body := e.get("GET", "pair.example", "/", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("pair request %d: %d\n%s", i, resp.StatusCode, body)
		}
	}
	m := e.scrape()
	for _, want := range []string{
		fmt.Sprintf(`edgeblock_upstream_errors_total{kind="refused",origin="%s",route="pair.example"} 1`, down),
		fmt.Sprintf(`edgeblock_upstream_up{origin="%s",route="pair.example"} 0`, down),
		fmt.Sprintf(`edgeblock_upstream_up{origin="%s",route="pair.example"} 1`, good.URL),
		fmt.Sprintf(`edgeblock_upstream_requests_total{code="200",origin="%s",route="pair.example"} 6`, good.URL),
		fmt.Sprintf(`edgeblock_upstream_errors_total{kind="timeout",origin="%s",route="slow.example"} 1`, slow.URL),
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Every kind of failure takes an origin out (passive.max_fails 1):
	// the refusing origin in both routes that use it, the slow one after
	// its timeout.
	var lines []string
	for _, l := range e.logs.Lines(t, "origin down") {
		lines = append(lines, fmt.Sprintf("%v %v", l["route"], l["origin"]))
	}
	slices.Sort(lines)
	if want := []string{"down.example " + down, "pair.example " + down, "slow.example " + slow.URL}; !slices.Equal(lines, want) {
		t.Errorf("origin down lines for %q, want %q", lines, want)
	}
}

func TestServerLimits(t *testing.T) {
	parallelPlain(t)
	o := echoOrigin(t)
	e := startEnv(t, "max_header_bytes: 8192\n"+routeConfig("app.example", `"`+o.URL+`"`), "")
	resp, _ := e.get("GET", "app.example", "/", map[string]string{"X-Big": strings.Repeat("a", 32<<10)})
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("32 KiB header with max_header_bytes 8192: %d, want 431", resp.StatusCode)
	}
	srv := e.srv.servers["http"]
	if srv.ReadHeaderTimeout != 10*time.Second || srv.IdleTimeout != 120*time.Second || srv.MaxHeaderBytes != 8192 {
		t.Errorf("public server limits: ReadHeaderTimeout %v IdleTimeout %v MaxHeaderBytes %d", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}
