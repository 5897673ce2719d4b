package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestHeaderRules: a route's request rules change what the origin gets
// and its response rules what the visitor gets, in the order remove, set,
// add; the edge's own headers come after the rules, whatever the visitor
// sent; the default rules in origins: apply to routes without their own.
func TestHeaderRules(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "origin/1.0")
		w.Header().Set("X-Frame-Options", "ALLOWALL")
		w.Header().Add("X-Seen", "user-agent="+r.Header.Get("User-Agent"))
		w.Header().Add("X-Seen", "tenant="+strings.Join(r.Header.Values("X-Tenant"), ","))
		w.Header().Add("X-Seen", "cookie="+r.Header.Get("Cookie"))
		w.Header().Add("X-Seen", "request-id="+strings.Join(r.Header.Values("X-Request-Id"), ","))
		w.Header().Add("X-Seen", "xff="+r.Header.Get("X-Forwarded-For"))
	}))
	t.Cleanup(o.Close)
	cfg := "origins:\n  headers: {response: {add: {X-Default: yes}}}\n" + routeConfig("rules.example", `"`+o.URL+`"`, "plain.example", `"`+o.URL+`"`) +
		""
	cfg = strings.Replace(cfg, "  - host: \"plain.example\"", `    headers:
      request: {remove: [Cookie], set: {User-Agent: edge-rewritten}, add: {X-Tenant: acme}}
      response: {remove: [Server], set: {X-Frame-Options: DENY}, add: {Strict-Transport-Security: "max-age=63072000"}}
  - host: "plain.example"`, 1)
	e := startEnv(t, cfg, "")
	hdr := map[string]string{"User-Agent": "visitor", "X-Tenant": "visitor-says", "Cookie": "session=1", "X-Request-Id": "spoofed", "X-Forwarded-For": "203.0.113.9"}

	resp, _ := e.get("GET", "rules.example", "/", hdr)
	seen := strings.Join(resp.Header.Values("X-Seen"), " | ")
	for _, want := range []string{"user-agent=edge-rewritten", "tenant=visitor-says,acme", "cookie= ", "request-id=" + resp.Header.Get("X-Request-Id"), "xff=127.0.0.1"} {
		if !strings.Contains(seen+" ", want) {
			t.Errorf("origin saw %q, want %q in it", seen, want)
		}
	}
	if resp.Header.Get("X-Request-Id") == "spoofed" {
		t.Error("the visitor's X-Request-Id reached the origin")
	}
	for k, want := range map[string]string{"Server": "", "X-Frame-Options": "DENY", "Strict-Transport-Security": "max-age=63072000", "X-Default": ""} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("rules.example response %s = %q, want %q", k, got, want)
		}
	}
	// A route without rules of its own gets the defaults only.
	resp, _ = e.get("GET", "plain.example", "/", hdr)
	for k, want := range map[string]string{"Server": "origin/1.0", "X-Frame-Options": "ALLOWALL", "X-Default": "yes"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("plain.example response %s = %q, want %q", k, got, want)
		}
	}
	if seen := strings.Join(resp.Header.Values("X-Seen"), " | "); !strings.Contains(seen, "user-agent=visitor") || !strings.Contains(seen, "cookie=session=1") {
		t.Errorf("plain.example: origin saw %q, want the visitor's headers unchanged", seen)
	}
}

// TestHeaderRulesConfig: rules that name the edge's own headers, or hold
// bad names or values, are config errors with their line.
func TestHeaderRulesConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "list.txt"), "")
	base := "listen: {http: 127.0.0.1:0}\nblocklist: {file: list.txt}\nroutes:\n  - host: a.test\n    origins: [\"http://10.0.0.1\"]\n    headers:\n"
	for _, tt := range []struct{ rules, want string }{
		{"      request: {set: {x-forwarded-for: 1.2.3.4}}\n", "routes[0].headers.request.set.x-forwarded-for: X-Forwarded-For is set by the edge; a rule cannot change it"},
		{"      request: {remove: [Via]}\n", "routes[0].headers.request.remove[0]: Via is set by the edge; a rule cannot change it"},
		{"      response: {add: {X-Request-Id: x}}\n", "routes[0].headers.response.add.X-Request-Id: X-Request-Id is set by the edge; a rule cannot change it"},
		{"      response: {add: {\"Bad Name\": x}}\n", `routes[0].headers.response.add.Bad Name: "Bad Name" is not a header name`},
		{"      request: {set: {X-A: \"a\\r\\nX-B: b\"}}\n", "routes[0].headers.request.set.X-A: \"a\\r\\nX-B: b\": a header value must not hold control characters"},
	} {
		path := filepath.Join(dir, "c.yaml")
		_, err := ParseConfig(path, []byte(base+tt.rules))
		if want := fmt.Sprintf("%s:7: %s", path, tt.want); !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}
