package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/config"
)

// TestRequestClient: which client a request counts against, with and
// without a trusted proxy in front.
func TestRequestClient(t *testing.T) {
	cfg, err := config.ParseConfig("x.yaml", []byte("listen:\n  http: :8080\nblocklist:\n  file: b\ntrusted_proxies: [10.0.0.0/8, \"2001:db8:ffff::/48\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ec := provision(cfg)
	h := &requestLimiter{config: func() *edgeConfig { return ec }}
	for _, tt := range []struct {
		remote string
		xff    []string
		want   string // "" when not limited
	}{
		{"192.0.2.1:5000", nil, "192.0.2.1/32"},
		{"192.0.2.1:5000", []string{"198.51.100.9"}, "192.0.2.1/32"}, // untrusted peer: its XFF is ignored
		{"[2001:db8:1:2::7]:443", nil, "2001:db8:1:2::/64"},
		{"10.1.2.3:5000", []string{"198.51.100.9"}, "198.51.100.9/32"},
		{"10.1.2.3:5000", []string{"203.0.113.5, 198.51.100.9"}, "198.51.100.9/32"}, // the right-most untrusted hop
		{"10.1.2.3:5000", []string{"203.0.113.5", "198.51.100.9, 10.9.9.9"}, "198.51.100.9/32"},
		{"10.1.2.3:5000", []string{"2001:db8:5:6::1"}, "2001:db8:5:6::/64"},
		{"10.1.2.3:5000", []string{"2001:db8:ffff::1"}, ""}, // only trusted hops
		{"10.1.2.3:5000", nil, ""},                          // a trusted peer that names no client
		{"10.1.2.3:5000", []string{"garbage"}, ""},
		{"not-an-address", nil, ""},
	} {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{"X-Forwarded-For": tt.xff}}
		got := ""
		if k, ok := h.client(r); ok {
			got = k.String()
		}
		if got != tt.want {
			t.Errorf("client(%s, XFF %q) = %q, want %q", tt.remote, tt.xff, got, tt.want)
		}
	}
}

// TestForwardedClientBothCallers: X-Real-IP (clientAddr) and the
// per-client request cap (requestLimiter.client) walk X-Forwarded-For the
// same way; in particular an entry that is not an IP address ends the walk
// for both, so neither believes anything left of it. When the walk names
// a client both pick it; when it names none the cap does not limit and
// X-Real-IP is the last trusted address walked.
func TestForwardedClientBothCallers(t *testing.T) {
	cfg, err := config.ParseConfig("x.yaml", []byte("listen:\n  http: :8080\nblocklist:\n  file: b\ntrusted_proxies: [10.0.0.0/8]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ec := provision(cfg)
	h := &requestLimiter{config: func() *edgeConfig { return ec }}
	const peer = "10.1.2.3"
	for _, tt := range []struct {
		name     string
		xff      []string
		realIP   string // clientAddr
		limitKey string // requestLimiter.client; "" when not limited
	}{
		{"bad entry first from the right", []string{"198.51.100.9, garbage"}, peer, ""},
		{"bad entry after a trusted hop", []string{"198.51.100.9, garbage, 10.9.9.9"}, "10.9.9.9", ""},
		{"bad entry in an earlier field value", []string{"198.51.100.9, garbage", "10.9.9.9"}, "10.9.9.9", ""},
		{"bad entry left of the client is never reached", []string{"garbage, 198.51.100.9"}, "198.51.100.9", "198.51.100.9/32"},
		{"empty entry", []string{"198.51.100.9,,10.9.9.9"}, "10.9.9.9", ""},
		{"address with a port", []string{"198.51.100.9:5000"}, peer, ""},
		{"mapped IPv4", []string{"::ffff:198.51.100.9"}, "198.51.100.9", "198.51.100.9/32"},
		{"all trusted", []string{"10.7.7.7, 10.9.9.9"}, "10.7.7.7", ""},
	} {
		r := &http.Request{RemoteAddr: peer + ":5000", Header: http.Header{"X-Forwarded-For": tt.xff}}
		p := peerAddr(r.RemoteAddr)
		if got := ec.clientAddr(p, ec.trustsAddr(p), tt.xff).String(); got != tt.realIP {
			t.Errorf("%s: clientAddr(XFF %q) = %s, want %s", tt.name, tt.xff, got, tt.realIP)
		}
		got := ""
		if k, ok := h.client(r); ok {
			got = k.String()
		}
		if got != tt.limitKey {
			t.Errorf("%s: requestLimiter.client(XFF %q) = %q, want %q", tt.name, tt.xff, got, tt.limitKey)
		}
	}
}

// FuzzRequestClient: X-Forwarded-For is visitor input (a trusted proxy
// appends to what the visitor sent). Any value gives no client or a
// client that is a /32 or /64 outside trusted_proxies, never a panic.
func FuzzRequestClient(f *testing.F) {
	cfg, err := config.ParseConfig("x.yaml", []byte("listen:\n  http: :8080\nblocklist:\n  file: b\ntrusted_proxies: [10.0.0.0/8, \"::1\"]\n"))
	if err != nil {
		f.Fatal(err)
	}
	ec := provision(cfg)
	h := &requestLimiter{config: func() *edgeConfig { return ec }}
	for _, s := range []string{"198.51.100.9", "203.0.113.5, 198.51.100.9", "::ffff:10.0.0.1", "2001:db8::1,10.0.0.1", " , ,", "fe80::1%eth0"} {
		f.Add("10.1.2.3:5000", s)
		f.Add("[::1]:80", s)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		k, ok := h.client(r)
		if !ok {
			return
		}
		if !k.IsValid() || (k.Bits() != 32 && k.Bits() != 64) || k != k.Masked() {
			t.Fatalf("client %v for %q, %q", k, remote, xff)
		}
		if k.Bits() == 32 && ec.trustsAddr(k.Addr()) {
			t.Fatalf("client %v is a trusted proxy (%q, %q)", k, remote, xff)
		}
		if (k.Bits() == 32 && !k.Addr().Is4()) || (k.Bits() == 64 && !k.Addr().Is6()) {
			t.Fatalf("client %v has the wrong size for its family", k)
		}
	})
}

// TestClientCounter: each client is capped on its own, IPv6 addresses of
// one /64 count as one client, released units can be taken again, and
// nothing is held once every unit is back.
func TestClientCounter(t *testing.T) {
	c := newClientCounter(2)
	key := func(s string) netip.Prefix { return clientKey(netip.MustParseAddr(s)) }
	for _, tt := range []struct {
		op   string // acquire or release
		addr string
		want bool // acquire's answer
	}{
		{"acquire", "192.0.2.1", true}, {"acquire", "192.0.2.1", true}, {"acquire", "192.0.2.1", false},
		// another client
		{"acquire", "192.0.2.2", true},
		// one /64, then the next
		{"acquire", "2001:db8::1", true}, {"acquire", "2001:db8::ffff", true}, {"acquire", "2001:db8::2", false},
		{"acquire", "2001:db8:0:1::1", true},
		{"release", "192.0.2.1", false}, {"acquire", "192.0.2.1", true}, {"acquire", "192.0.2.1", false},
		{"release", "2001:db8::5", false}, {"acquire", "2001:db8::6", true},
	} {
		switch tt.op {
		case "acquire":
			if got := c.acquire(key(tt.addr)); got != tt.want {
				t.Errorf("acquire %s = %v, want %v", tt.addr, got, tt.want)
			}
		case "release":
			c.release(key(tt.addr))
		}
	}
	for _, a := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::1", "2001:db8:0:1::1"} {
		c.release(key(a))
	}
	if n := len(c.n); n != 0 {
		t.Errorf("%d clients held after every unit was released", n)
	}
}

// BenchmarkClientCounter takes and gives back a unit per request, as the
// per-client request cap does: one client and many (a flood from many
// addresses). Run with -cpu 1,2,4 and -mutexprofile.
func BenchmarkClientCounter(b *testing.B) {
	for _, clients := range []int{1, 10000} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := newClientCounter(1000000)
			var next atomic.Uint32
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(7919))
				for pb.Next() {
					i++
					k := clientKey(netip.AddrFrom4([4]byte{10, byte(i % clients >> 16), byte(i % clients >> 8), byte(i % clients)}))
					if !c.acquire(k) {
						b.Fatal("refused")
					}
					c.release(k)
				}
			})
		})
	}
}
