package proxy

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/unknown-key.yaml", []string{
			"testdata/unknown-key.yaml:5: field polciy not found",
			"testdata/unknown-key.yaml:9: field weight not found",
		}},
		{"testdata/invalid.yaml", []string{
			`testdata/invalid.yaml:2: listen.http: "127.0.0.1" is not host:port`,
			`testdata/invalid.yaml:5: tls.mode: "magic": want off, internal or acme`,
			`testdata/invalid.yaml:8: blocklist.policy: "/relative" is not an absolute http or https URL`,
			`testdata/invalid.yaml:10: routes[0].host: invalid host name "app..example.com": empty label`,
			`testdata/invalid.yaml:11: routes[0].origins: at least one origin is required`,
			`testdata/invalid.yaml:13: routes[1].origins[0]: "ftp://x": want http://host:port`,
			`testdata/invalid.yaml:14: routes[2].host: "OK.example.com." is also routes[1]`,
			`testdata/invalid.yaml:16: trusted_proxies[1]: "bogus" is not a CIDR`,
			`testdata/invalid.yaml:18: timeouts.idle: must not be negative`,
			`testdata/invalid.yaml:20: log.format: "xml": want json or text`,
		}},
		{"testdata/missing.yaml", []string{"testdata/missing.yaml: no such file"}},
	}
	for _, tt := range tests {
		_, err := LoadConfig(tt.file)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("LoadConfig(%s) = %v, want *ConfigError", tt.file, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("LoadConfig(%s) error lacks %q; got:\n%v", tt.file, w, err)
			}
		}
	}
}

// TestIssueSampleConfig loads the sample of the configuration contract as
// written, where https is set while tls.mode is off: a warning, not an error.
func TestIssueSampleConfig(t *testing.T) {
	c, err := LoadConfig("testdata/contract.yaml")
	if err != nil {
		t.Fatalf("the contract's sample config: %v", err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "testdata/contract.yaml:3: listen.https: set, but tls.mode is off") {
		t.Errorf("warnings = %q", c.Warnings)
	}
	if c.TLS.Mode != "off" || c.Listen.HTTP != "127.0.0.1:8080" || len(c.Routes) != 1 || len(c.Routes[0].Origins) != 2 {
		t.Errorf("config = %+v", c)
	}
}

func TestConfigChallenges(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"  challenges: [dns-01]\n", `x.yaml:7: tls.challenges[0]: "dns-01": want http-01 or tls-alpn-01`},
		{"  challenges: []\n", "x.yaml:7: tls.challenges: empty"},
	} {
		_, err := ParseConfig("x.yaml", []byte("listen:\n  https: :8443\nblocklist:\n  file: b\ntls:\n  mode: acme\n"+tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("challenges %q: error %v, want %q", tt.yaml, err, tt.want)
		}
	}
	_, err := ParseConfig("x.yaml", []byte("listen:\n  https: :8443\nblocklist:\n  file: b\ntls:\n  mode: acme\n"))
	if err == nil || !strings.Contains(err.Error(), "http-01 needs listen.http") {
		t.Errorf("default challenges without an HTTP listener: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("/etc/edgeblock/edgeblock.yaml", []byte("listen:\n  http: :8080\nblocklist:\n  file: lists/blocklist.txt\n"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"blocklist.file", c.Blocklist.File, filepath.FromSlash("/etc/edgeblock/lists/blocklist.txt")},
		{"listen.admin", c.Listen.Admin, "127.0.0.1:9090"},
		{"tls.mode", c.TLS.Mode, "off"},
		{"tls.ca", c.TLS.CA, LetsEncryptProduction},
		{"tls.redirect_http", *c.TLS.RedirectHTTP, false},
		{"timeouts.read_header", c.Timeouts.ReadHeader, 10 * time.Second},
		{"timeouts.idle", c.Timeouts.Idle, 120 * time.Second},
		{"max_header_bytes", c.MaxHeaderBytes, 64 << 10},
		{"log.format", c.Log.Format, "json"},
		{"log.access", *c.Log.Access, true},
		{"blocklist.debounce", c.Blocklist.Debounce, 100 * time.Millisecond},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	c, err = ParseConfig("x.yaml", []byte("listen:\n  http: :8080\n  https: :8443\ntls:\n  mode: acme\n  staging: true\nblocklist:\n  file: b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.CA != LetsEncryptStaging || !*c.TLS.RedirectHTTP {
		t.Errorf("staging: ca %q redirect %v", c.TLS.CA, *c.TLS.RedirectHTTP)
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
