package proxy

import (
	"net/http"
	"net/http/httptest"
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
