package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestHeaderRulesConfig: rules that name the edge's own headers, or hold
// bad names or values, are config errors with their line.
func TestHeaderRulesConfig(t *testing.T) {
	dir := t.TempDir()
	edgetest.WriteFile(t, filepath.Join(dir, "list.txt"), "")
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
