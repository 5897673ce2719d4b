package proxy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/reload"
)

func absTestdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBundleMissingFiles: files the config names are reported with their
// resolved path and the config line that names them, at start and at
// reload.
func TestBundleMissingFiles(t *testing.T) {
	_, err := reload.LoadBundle("testdata/missing-files.yaml")
	for _, want := range []string{
		"testdata/missing-files.yaml:4: blocklist.file: " + absTestdata(t, "no-such-blocklist.txt") + ": no such file",
		"testdata/missing-files.yaml:6: pages.template: " + absTestdata(t, "no-such-template.html") + ": no such file",
	} {
		if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), want) {
			t.Errorf("LoadBundle error lacks the line\n%s\ngot:\n%v", want, err)
		}
	}
}

func TestRoutePrecedence(t *testing.T) {
	var routes []*route
	for _, p := range []string{"app.example.com", "*.example.com", "*.eu.example.com", "*.b.eu.example.com", "example.com"} {
		routes = append(routes, &route{pattern: p})
	}
	rt := newRouteTable(routes)
	tests := []struct{ host, want string }{
		{"app.example.com", "app.example.com"},
		{"example.com", "example.com"},
		{"www.example.com", "*.example.com"},
		{"x.app.example.com", "*.example.com"},
		{"eu.example.com", "*.example.com"},
		{"x.eu.example.com", "*.eu.example.com"},
		{"a.b.eu.example.com", "*.b.eu.example.com"},
		{"b.eu.example.com", "*.eu.example.com"},
		{"example.org", ""},
		{"com", ""},
	}
	for _, tt := range tests {
		got := ""
		if r := rt.lookup(tt.host); r != nil {
			got = r.pattern
		}
		if got != tt.want {
			t.Errorf("lookup(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}
