package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/invalid.yaml", []string{
			`testdata/invalid.yaml:2: listen.http: "127.0.0.1" is not host:port`,
			`testdata/invalid.yaml:5: tls.mode: "magic": want off, internal or acme`,
			`testdata/invalid.yaml:8: blocklist.policy: "/relative" is not an absolute http or https URL`,
			`testdata/invalid.yaml:10: routes[0].host: invalid host name "app..example.com": empty label`,
			`testdata/invalid.yaml:11: routes[0].origins: at least one origin is required`,
			`testdata/invalid.yaml:13: routes[1].origins[0]: "ftp://x": want http://host:port or https://host:port`,
			`testdata/invalid.yaml:14: routes[2].host: "OK.example.com." is also routes[1]`,
			`testdata/invalid.yaml:16: trusted_proxies[1]: "bogus" is not a CIDR or an IP address`,
			`testdata/invalid.yaml:18: timeouts.idle: must not be negative`,
			`testdata/invalid.yaml:20: log.format: "xml": want json or text`,
		}},
		// Certificate settings: on-demand bounds, key type, DNS-01.
		{"testdata/invalid-tls.yaml", []string{
			`testdata/invalid-tls.yaml:6: tls.on_demand.max_new_per_hour: must not be negative`,
			`testdata/invalid-tls.yaml:7: tls.on_demand.ask: "ftp://ask.example/check": want an http:// or https:// URL without a fragment`,
			`testdata/invalid-tls.yaml:8: tls.cache_capacity: must not be negative`,
			`testdata/invalid-tls.yaml:9: tls.key_type: "rsa1024": want p256, p384, rsa2048 or rsa4096`,
			`testdata/invalid-tls.yaml:10: tls.internal_lifetime: 1s: want at least 10s`,
			`testdata/invalid-tls.yaml:12: tls.dns.provider: "route53": want rfc2136`,
			`testdata/invalid-tls.yaml:12: tls.dns.key_name: required`,
			`testdata/invalid-tls.yaml:13: tls.dns.server: "ns1.example" is not host:port`,
			`testdata/invalid-tls.yaml:14: tls.dns.key_alg: "hmac-md5": want one of hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1`,
			`testdata/invalid-tls.yaml:15: tls.dns.key_secret_file: ` + absTestdata(t, "no-such-secret") + `: no such file`,
			`testdata/invalid-tls.yaml:22: routes[0].tls: a wildcard certificate needs a *.name host, not "app.example.com"`,
			`testdata/invalid-tls.yaml:30: routes[1].tls.dns.key_secret_file: ` + absTestdata(t, "no-such-secret") + `: no such file`,
		}},
		// Every unknown key, at every depth, with its dotted path and
		// the nearest known key at that level.
		{"testdata/unknown-key.yaml", []string{
			"testdata/unknown-key.yaml:5: blocklist.polciy: unknown key (did you mean policy?)",
			"testdata/unknown-key.yaml:9: routes[0].weight: unknown key",
			"testdata/unknown-key.yaml:10: routes[1].origins: at least one origin is required",
			"testdata/unknown-key.yaml:11: routes[1].origin: unknown key (did you mean origins?)",
			"testdata/unknown-key.yaml:13: tls.mdoe: unknown key (did you mean mode?)",
			"testdata/unknown-key.yaml:14: listn: unknown key (did you mean listen?)",
			"testdata/unknown-key.yaml:16: frobnicate: unknown key",
			"testdata/unknown-key.yaml:18: timeouts.read-header: unknown key (did you mean read_header?)",
		}},
		// Values of the wrong type and semantic problems in one pass,
		// sorted by line; a field with a type error gets no second,
		// derived complaint (listen.http is not also "no public listener").
		{"testdata/types-and-checks.yaml", []string{
			`testdata/types-and-checks.yaml:2: listen.http: want a string, got a list`,
			`testdata/types-and-checks.yaml:3: listen.admin: "127.0.0.1:99999" has a bad port`,
			`testdata/types-and-checks.yaml:5: tls.mode: "magic": want off, internal or acme`,
			`testdata/types-and-checks.yaml:8: blocklist.watch: want true or false, got "maybe"`,
			`testdata/types-and-checks.yaml:9: blocklist.policy: "/relative" is not an absolute http or https URL`,
			`testdata/types-and-checks.yaml:11: routes[0].host: invalid host name "bad host.example": a name with a space`,
			`testdata/types-and-checks.yaml:13: routes[1].host: invalid host name "-lead.example": label "-lead" starts with '-'`,
			`testdata/types-and-checks.yaml:14: routes[1].origins: want a list, got "http://10.0.0.1:80"`,
			`testdata/types-and-checks.yaml:16: timeouts.idle: want a duration such as 30s or 1m30s, got "forever"`,
			`testdata/types-and-checks.yaml:17: timeouts.dial: must not be negative`,
			`testdata/types-and-checks.yaml:18: max_header_bytes: want a whole number, got "lots"`,
			`testdata/types-and-checks.yaml:20: log.access_sample: 2: want a fraction in (0, 1]`,
		}},
		{"testdata/missing-ca-root.yaml", []string{
			"testdata/missing-ca-root.yaml:7: tls.ca_root: " + absTestdata(t, "no-such-ca.pem") + ": no such file",
		}},
		{"testdata/missing.yaml", []string{absTestdata(t, "missing.yaml") + ": no such file"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			_, err := LoadConfig(tt.file)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("LoadConfig(%s) = %v, want *ConfigError", tt.file, err)
			}
			if !slices.Equal(ce.Problems, tt.want) {
				t.Errorf("LoadConfig(%s) problems:\n%s\nwant:\n%s", tt.file, strings.Join(ce.Problems, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"policy", "policy", 0}, {"polcy", "policy", 1}, {"polciy", "policy", 1}, {"plicyo", "policy", 2}, {"pol", "policy", 3},
		{"mdoe", "mode", 1}, {"origin", "origins", 1}, {"read-header", "read_header", 1}, {"abc", "", 3}, {"ab", "ba", 1},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	known := []string{"file", "policy", "blocked_by", "debounce", "watch", "poll_interval"}
	for key, want := range map[string]string{"polcy": "policy", "Policy": "policy", "fiel": "file", "wathc": "watch", "x": "", "polling": "", "blocked-by": "blocked_by"} {
		if got := closest(key, known); got != want {
			t.Errorf("closest(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestPlaceholderWarnings: a config that obtains certificates from a public
// CA is warned about every setting naming a documentation domain; the same
// names against a staging or private CA, or real names, give no warning.
func TestPlaceholderWarnings(t *testing.T) {
	const f = "testdata/placeholders.yaml"
	want := []string{
		f + `:6: tls.email: "ops@example.com" names example.com, a documentation placeholder (RFC 2606): replace it with your own`,
		f + `:9: blocklist.policy: "https://example.org/abuse-policy" names example.org, a documentation placeholder (RFC 2606): replace it with your own`,
		f + `:10: blocklist.blocked_by: "https://edge.example.net" names edge.example.net, a documentation placeholder (RFC 2606): replace it with your own`,
		f + `:12: routes[0].host: "app.example.com" names app.example.com, a documentation placeholder (RFC 2606): replace it with your own`,
		f + `:13: routes[0].origins[0]: "http://origin.example:8080" names origin.example, a documentation placeholder (RFC 2606): replace it with your own`,
		f + `:14: routes[1].host: "*.shop.example.org" names shop.example.org, a documentation placeholder (RFC 2606): replace it with your own`,
		f + `:19: pages.contact: "mailto:abuse@example.net" names example.net, a documentation placeholder (RFC 2606): replace it with your own`,
		f + `:19: pages.operator: not set: the block page cannot say who blocked the site (set your organisation's name; see pages.contact and pages.appeal too)`,
	}
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, tls string
		want      []string
	}{
		{"production CA", "", want},
		{"another public CA", "  ca: https://acme.zerossl.com/v2/DV90\n", want},
		{"staging", "  staging: true\n", nil},
		{"private CA", "  ca: https://acme.internal/dir\n  ca_root: invalid.yaml\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(string(data), "  mode: acme\n", "  mode: acme\n"+tt.tls, 1)
			c, err := ParseConfig(f, []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			// The extra tls lines shift everything below line 5.
			got := c.Warnings
			if n := strings.Count(tt.tls, "\n"); n > 0 && len(got) > 0 {
				got = shiftLines(t, f, got, -n)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	for _, mode := range []string{"internal", "off"} {
		c, err := ParseConfig(f, []byte(strings.Replace(string(data), "mode: acme", "mode: "+mode, 1)))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.Warnings {
			if strings.Contains(w, "documentation placeholder") {
				t.Errorf("tls.mode %s: %s", mode, w)
			}
		}
	}
	c, err := LoadConfig("testdata/real-names.yaml")
	if err != nil || len(c.Warnings) != 0 {
		t.Errorf("real names: %v, warnings %q", err, c.Warnings)
	}
}

// shiftLines moves the line numbers of "file:line: ..." messages by d.
func shiftLines(t *testing.T, file string, msgs []string, d int) []string {
	t.Helper()
	out := make([]string, len(msgs))
	for i, m := range msgs {
		line := textLine(file, m)
		if line == 0 {
			t.Fatalf("no line in %q", m)
		}
		rest := strings.TrimPrefix(m, file+":"+strconv.Itoa(line))
		out[i] = file + ":" + strconv.Itoa(line+d) + rest
	}
	return out
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

// FuzzParseConfig: any input gives a config or a *ConfigError whose every
// problem names the file, never a panic; problems are sorted by line.
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"contract.yaml", "invalid.yaml", "unknown-key.yaml", "types-and-checks.yaml", "placeholders.yaml", "origins.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &x {b: 1}\nlisten:\n  <<: *x\n"))
	f.Add([]byte("- 1\n- 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("f.yaml", data)
		if err == nil {
			if c.Blocklist.File == "" {
				t.Fatal("a config without blocklist.file loaded")
			}
			return
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || len(ce.Problems) == 0 {
			t.Fatalf("error %v is not a *ConfigError with problems", err)
		}
		last := 0
		for _, p := range ce.Problems {
			if !strings.HasPrefix(p, "f.yaml:") {
				t.Fatalf("problem %q does not name the file", p)
			}
			line := textLine("f.yaml", p)
			if line < last && len(ce.Problems) > 1 {
				t.Fatalf("problems not sorted by line: %q", ce.Problems)
			}
			last = max(last, line)
		}
	})
}

func TestLimitsAndTimeoutsConfig(t *testing.T) {
	base := "listen:\n  http: :8080\nblocklist:\n  file: b\n"
	for _, tt := range []struct {
		name, yaml string
		check      func(c *Config) string
		err        string
	}{
		{name: "defaults", check: func(c *Config) string {
			got := fmt.Sprint(*c.Timeouts.Drain, c.Timeouts.WriteIdle, c.Timeouts.BodyRead, c.Limits.MaxStreamsPerConn, c.Limits.MaxConnsPerClient, c.Limits.MaxRequestsPerClient)
			return wantString(got, "5s 30s 30s 100 256 128")
		}},
		{name: "set", yaml: "timeouts:\n  drain: 2s\n  write_idle: 10s\n  body_read: 5s\nlimits:\n  max_streams_per_conn: 50\n  max_conns_per_client: 10\n  max_requests_per_client: 20\n", check: func(c *Config) string {
			got := fmt.Sprint(*c.Timeouts.Drain, c.Timeouts.WriteIdle, c.Timeouts.BodyRead, c.Limits.MaxStreamsPerConn, c.Limits.MaxConnsPerClient, c.Limits.MaxRequestsPerClient)
			return wantString(got, "2s 10s 5s 50 10 20")
		}},
		{name: "drain 0s skips the drain", yaml: "timeouts:\n  drain: 0s\n", check: func(c *Config) string {
			return wantString(c.Timeouts.Drain.String(), "0s")
		}},
		{name: "negative drain", yaml: "timeouts:\n  drain: -1s\n", err: "x.yaml:6: timeouts.drain: must not be negative"},
		{name: "negative write_idle", yaml: "timeouts:\n  write_idle: -1s\n", err: "x.yaml:6: timeouts.write_idle: must not be negative"},
		{name: "negative body_read", yaml: "timeouts:\n  body_read: -1s\n", err: "x.yaml:6: timeouts.body_read: must not be negative"},
		{name: "negative streams", yaml: "limits:\n  max_streams_per_conn: -1\n", err: "x.yaml:6: limits.max_streams_per_conn: must not be negative"},
		{name: "negative conns", yaml: "limits:\n  max_conns_per_client: -1\n", err: "x.yaml:6: limits.max_conns_per_client: must not be negative"},
		{name: "negative requests", yaml: "limits:\n  max_requests_per_client: -5\n", err: "x.yaml:6: limits.max_requests_per_client: must not be negative"},
		{name: "unknown limit", yaml: "limits:\n  max_conns: 5\n", err: "x.yaml:6: limits.max_conns: unknown key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig("x.yaml", []byte(base+tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
	// A reload cannot change them: they are restart fields.
	a, _ := ParseConfig("x.yaml", []byte(base))
	b, _ := ParseConfig("x.yaml", []byte(base+"timeouts:\n  drain: 1s\nlimits:\n  max_requests_per_client: 3\n"))
	fa, fb := a.RestartFields(), b.RestartFields()
	for _, k := range []string{"timeouts.drain", "limits.max_requests_per_client"} {
		if fa[k] == fb[k] {
			t.Errorf("restart field %s: %q in both", k, fa[k])
		}
	}
}

func wantString(got, want string) string {
	if got != want {
		return fmt.Sprintf("got %q, want %q", got, want)
	}
	return ""
}

func absTestdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
