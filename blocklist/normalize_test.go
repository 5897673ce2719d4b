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
		// IPv4 in the forms browsers (WHATWG URL) and inet_aton accept:
		// one canonical address, whatever the spelling.
		{in: "192.0.2.7.", want: "192.0.2.7"},
		{in: "0xc0.0.2.7", want: "192.0.2.7"},
		{in: "0XC0.0x0.0x2.0x7", want: "192.0.2.7"},
		{in: "0300.0.02.07", want: "192.0.2.7"},
		{in: "192.0.2.07", want: "192.0.2.7"},
		{in: "3221225991", want: "192.0.2.7"},
		{in: "0xc0000207:80", want: "192.0.2.7"},
		{in: "192.519", want: "192.0.2.7"},
		{in: "192.0.519", want: "192.0.2.7"},
		{in: "0x7f.1", want: "127.0.0.1"},
		{in: "0x", want: "0.0.0.0"},
		{in: "[::ffff:192.0.2.7]", want: "192.0.2.7"},
		{in: "::ffff:c000:207", want: "192.0.2.7"},
		{in: "1.2.3.4..", err: "empty label"},
		{in: "256.0.0.1", err: "not a valid IPv4 address"},
		{in: "1.2.3.256", err: "not a valid IPv4 address"},
		{in: "4294967296", err: "not a valid IPv4 address"},
		{in: "09.1.2.3", err: "not a valid IPv4 address"},
		{in: "0x1g.1.2.3", err: "not a valid IPv4 address"},
		{in: "www.example.1", err: "not a valid IPv4 address"},
		{in: "1..2", err: "not a valid IPv4 address"},
		{in: "1.2.3.4..", err: "empty label"},
		{in: "www.example.0x1g", want: "www.example.0x1g"},
		{in: "www.1example", want: "www.1example"},
		{in: "０ｘｃ０．０．２．７", want: "192.0.2.7"},
		{in: "www.example.１", err: "not a valid IPv4 address"},
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
	for _, s := range []string{"example.com", "Bücher.Example.:80", "[::1]:1", "a..b", "xn--zz", "1.2.3.4", "bad host.example", "-a.b-", "é-.example",
		"0x7f.1", "3221225991", "0300.0.2.07", "[::ffff:192.0.2.7]", "０ｘｃ０．０．２．７", "a.0x"} {
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
		// A name never ends in a number: that is an IPv4 address.
		if endsInNumber(n) {
			t.Fatalf("Normalize(%q) = %q, a name that ends in a number", s, n)
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
