package blocklist

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM", want: "example.com"},
		{in: "example.com.", want: "example.com"},
		{in: "example.com:8080", want: "example.com"},
		{in: "EXAMPLE.com.:443", want: "example.com"},
		{in: "bücher.example", want: "xn--bcher-kva.example"},
		{in: "BÜCHER.example", want: "xn--bcher-kva.example"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "münchen.de:80", want: "xn--mnchen-3ya.de"},
		{in: "a_b.example", want: "a_b.example"},
		{in: "127.0.0.1:80", want: "127.0.0.1"},
		{in: "[::1]:8443", want: "::1"},
		{in: "[2001:DB8::1]", want: "2001:db8::1"},
		{in: "2001:db8:0::1", want: "2001:db8::1"},
		{in: "", err: "empty"},
		{in: ".", err: "empty"},
		{in: "a..b", err: "empty label"},
		{in: "example.com:http", err: "bad port"},
		{in: "[::1", err: "missing ']'"},
		{in: "[::1]x", err: "bad port"},
		{in: "exa mple.com", err: `invalid host name "exa mple.com": a name with a space`},
		{in: "bad host.example", err: "a name with a space"},
		{in: "bü cher.example", err: "a name with a space"},
		{in: "tab\there.example", err: "a name with a tab"},
		{in: "nul\x00.example", err: `a name with control character '\x00'`},
		{in: "exa<mple.com", err: `a name with character '<', which host names cannot hold`},
		{in: "-lead.example", err: `label "-lead" starts with '-'`},
		{in: "trail-.example", err: `label "trail-" ends with '-'`},
		{in: "www.example-", err: `label "example-" ends with '-'`},
		{in: "-", err: `label "-" starts with '-'`},
		{in: "mid-dle.example", want: "mid-dle.example"},
		{in: "a--b.example", want: "a--b.example"},
		{in: strings.Repeat("a", 64) + ".com", err: "longer than 63"},
		{in: strings.Repeat("abcdefghi.", 26) + "com", err: "longer than 253"},
		{in: "xn--a.example", err: "invalid host name"},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Normalize(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNormalizeCanonicalDoesNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		if _, err := Normalize("www.forum.example:443"); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Normalize of a canonical name allocates %v times; want 0", n)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"example.com", "Bücher.Example.:80", "[::1]:1", "a..b", "xn--zz", "1.2.3.4", "bad host.example", "-a.b-", "é-.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		// The canonical form is a fixed point.
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", s, n, n, again, err)
		}
		// A name (not an IP literal) holds only name characters, and no
		// label starts or ends with '-'.
		if strings.Contains(n, ":") || isIPv4(n) {
			return
		}
		for label := range strings.SplitSeq(n, ".") {
			if label == "" || label[0] == '-' || label[len(label)-1] == '-' || !isASCIIName(label) || strings.ContainsAny(label, "ABCDEFGHIJKLMNOPQRSTUVWXYZ.") {
				t.Fatalf("Normalize(%q) = %q: label %q is not canonical", s, n, label)
			}
		}
	})
}

func isIPv4(s string) bool {
	_, ok := parseIP(s)
	return ok
}

// BenchmarkNormalize measures the request-path cost of Normalize for a
// canonical name, a name with a port and upper case, and an IDN.
func BenchmarkNormalize(b *testing.B) {
	for _, host := range []string{"www.forum.example", "WWW.Forum.Example:443", "bücher.example"} {
		b.Run(host, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize(host); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
