package proxy

import (
	"net/url"
	"testing"

	"github.com/edgeblock/edgeblock/blocklist"
)

func TestDecideHost(t *testing.T) {
	for _, tt := range []struct {
		name string
		n    hostNames
		want string
		err  error
	}{
		{"HTTP/1.1 Host", hostNames{authority: "App.Example.COM.:8080"}, "app.example.com", nil},
		{"HTTP/1.1 absolute-form", hostNames{authority: "a.example", target: "a.example"}, "", errAbsoluteForm},
		{"HTTP/1.1 no host", hostNames{}, "", errHostInvalid},
		{"HTTP/1.1 bad host", hostNames{authority: "a..example"}, "", errHostInvalid},
		{"HTTP/2 authority", hostNames{http2: true, authority: "a.example"}, "a.example", nil},
		{"HTTP/2 authority and port-only different target", hostNames{http2: true, authority: "a.example:443", target: "A.example"}, "a.example", nil},
		{"HTTP/2 authority and other target", hostNames{http2: true, authority: "a.example", target: "b.example"}, "", errHostMismatch},
		{"HTTP/2 authority and other Host", hostNames{http2: true, authority: "a.example", hostHeader: []string{"b.example"}}, "", errHostMismatch},
		{"HTTP/2 authority and same Host", hostNames{http2: true, authority: "a.example", hostHeader: []string{"a.example:443"}}, "a.example", nil},
		{"HTTP/2 two Host fields that differ", hostNames{http2: true, authority: "a.example", hostHeader: []string{"a.example", "b.example"}}, "", errHostMismatch},
		{"HTTP/2 bad Host field", hostNames{http2: true, authority: "a.example", hostHeader: []string{"a..example"}}, "", errHostMismatch},
		{"HTTP/2 IPv6", hostNames{http2: true, authority: "[2001:DB8::1]:443", target: "[2001:db8::1]"}, "2001:db8::1", nil},
		{"HTTP/1.1 target not origin-form", hostNames{authority: "a.example", badTarget: true}, "", errTargetForm},
		{"HTTP/2 target not origin-form", hostNames{http2: true, authority: "a.example", badTarget: true}, "", errTargetForm},
		{"HTTP/1.1 IPv4 in hex", hostNames{authority: "0x7f.1:80"}, "127.0.0.1", nil},
	} {
		got, err := decideHost(tt.n)
		if got != tt.want || err != tt.err {
			t.Errorf("%s: decideHost(%+v) = %q, %v; want %q, %v", tt.name, tt.n, got, err, tt.want, tt.err)
		}
	}
}

func TestTargetForm(t *testing.T) {
	for _, tt := range []struct {
		method, target string
		want           bool
	}{
		{"GET", "/", true},
		{"GET", "/a//b?c", true},
		{"GET", "//other.example/x", true}, // a path, as the origin reads it too
		{"GET", "http:///x", true},         // no authority: the path
		{"GET", "https://a.example", true}, // HTTP/2 absolute :path; decideHost compares its host
		{"OPTIONS", "*", true},
		{"GET", "*", false},
		{"GET", "http:a.example/x", false},
		{"GET", "a.example:80", false},
		{"GET", "x:@a.example/", false},
		{"GET", "mailto:a", false},
		// A space or control character as sent is refused; encoded, it
		// is forwarded (encoded).
		{"GET", "/rl?a=1 HTTP/1.0", false},
		{"GET", "/a b", false},
		{"GET", "/a?b= ", false},
		{"GET", "https://a.example/x y", false},
		{"GET", "/a%20b?c=%20%0d%0a%00", true},
		{"GET", "/caf\xc3\xa9?q=\xff", true}, // not ASCII, but not a space or control character
	} {
		u, err := url.ParseRequestURI(tt.target)
		if err != nil {
			t.Fatalf("%s: %v", tt.target, err)
		}
		if got := targetForm(tt.method, tt.target, u); got != tt.want {
			t.Errorf("targetForm(%s %s) = %v, want %v", tt.method, tt.target, got, tt.want)
		}
	}
	// Control characters, which url.ParseRequestURI refuses on its own.
	for _, raw := range []string{"/a\tb", "/a?b=\x00", "/\x7f", "/a?b\r\nHost: x"} {
		if targetForm("GET", raw, &url.URL{Path: "/"}) {
			t.Errorf("targetForm(GET %q) = true, want false", raw)
		}
	}
}

// FuzzRequestHost checks the decision over the names both protocols can
// carry: either the request is refused, or the decided name is the
// normalized form of every name present.
func FuzzRequestHost(f *testing.F) {
	f.Add(false, "a.example", "", "", "", uint8(0))
	f.Add(false, "b.example", "b.example", "", "", uint8(0))
	f.Add(true, "a.example:443", "A.EXAMPLE", "a.example.", "", uint8(1))
	f.Add(true, "a.example", "", "b.example", "", uint8(1))
	f.Add(true, "", "", "b.example", "b.example:80", uint8(2))
	f.Add(true, "[::1]:8443", "[0:0::1]", "", "", uint8(0))
	f.Add(true, "xn--bcher-kva.example", "bücher.example", "BÜCHER.example", "", uint8(1))
	f.Fuzz(func(t *testing.T, http2 bool, authority, target, h1, h2 string, nHost uint8) {
		n := hostNames{http2: http2, authority: authority, target: target}
		if http2 {
			// Go's HTTP/2 server takes Request.Host from the Host field
			// when :authority is absent, and keeps every Host field.
			n.hostHeader = []string{h1, h2}[:nHost%3]
			if n.authority == "" && len(n.hostHeader) > 0 {
				n.authority = n.hostHeader[0]
			}
		}
		got, err := decideHost(n)
		if err != nil {
			if got != "" {
				t.Fatalf("error %v with host %q", err, got)
			}
			return
		}
		if !http2 && target != "" {
			t.Fatalf("HTTP/1.x absolute-form target %q decided as %q", target, got)
		}
		present := append([]string{n.authority}, n.hostHeader...)
		if target != "" {
			present = append(present, target)
		}
		for _, name := range present {
			if norm, err := blocklist.Normalize(name); err != nil || norm != got {
				t.Fatalf("decided %q, but %q normalizes to %q (%v); names %+v", got, name, norm, err, n)
			}
		}
		if again, err := blocklist.Normalize(got); err != nil || again != got {
			t.Fatalf("decided %q is not normalized: %q %v", got, again, err)
		}
	})
}
