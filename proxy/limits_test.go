package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
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
		if k, _, ok := h.client(r); ok {
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
		if k, _, ok := h.client(r); ok {
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
		k, _, ok := h.client(r)
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

// TestClientCounterKept: a slot kept by connections (keep, takeKept,
// giveKept, unkeep) counts against the same cap as acquire and release,
// exactly: units taken either way add up, max are never exceeded, a unit
// is refused only when max are held; the slot leaves the map once nothing
// is held and no connection keeps it, and a take on a slot that has left
// (a request that began as its connection closed) goes through the map.
func TestClientCounterKept(t *testing.T) {
	k := clientKey(netip.MustParseAddr("192.0.2.9"))
	type step struct {
		op   string // keep, unkeep, take (kept), give (kept), acquire, release
		conn int    // which connection's slot, for keep/unkeep/take/give
		want bool   // take's or acquire's answer
		// onSlot: take's answer came from the kept slot, not the map.
		onSlot bool
		held   int64 // units held after the step
		inMap  bool  // k's slot in the map after the step
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"kept and mapped units add up to max", []step{
			{op: "keep", conn: 0, held: 0, inMap: true},
			{op: "take", conn: 0, want: true, onSlot: true, held: 1, inMap: true},
			{op: "acquire", want: true, held: 2, inMap: true},
			{op: "take", conn: 0, want: false, onSlot: true, held: 2, inMap: true},
			{op: "acquire", want: false, held: 2, inMap: true},
			{op: "release", held: 1, inMap: true},
			{op: "take", conn: 0, want: true, onSlot: true, held: 2, inMap: true},
			{op: "give", conn: 0, held: 1, inMap: true},
			{op: "give", conn: 0, held: 0, inMap: true}, // still kept
			{op: "unkeep", conn: 0, held: 0, inMap: false},
		}},
		{"two connections keep one slot", []step{
			{op: "keep", conn: 0, inMap: true},
			{op: "keep", conn: 1, inMap: true},
			{op: "take", conn: 0, want: true, onSlot: true, held: 1, inMap: true},
			{op: "take", conn: 1, want: true, onSlot: true, held: 2, inMap: true},
			{op: "take", conn: 1, want: false, onSlot: true, held: 2, inMap: true},
			{op: "unkeep", conn: 0, held: 2, inMap: true},
			{op: "give", conn: 0, held: 1, inMap: true},
			{op: "give", conn: 1, held: 0, inMap: true},
			{op: "unkeep", conn: 1, held: 0, inMap: false},
		}},
		{"unkept while a unit is held: the last give drops the slot", []step{
			{op: "keep", conn: 0, inMap: true},
			{op: "take", conn: 0, want: true, onSlot: true, held: 1, inMap: true},
			{op: "unkeep", conn: 0, held: 1, inMap: true},
			{op: "give", conn: 0, held: 0, inMap: false},
		}},
		{"a take after the slot left goes through the map", []step{
			{op: "keep", conn: 0, inMap: true},
			{op: "unkeep", conn: 0, inMap: false},
			{op: "take", conn: 0, want: true, onSlot: false, held: 1, inMap: true},
			{op: "acquire", want: true, held: 2, inMap: true},
			{op: "take", conn: 0, want: false, onSlot: false, held: 2, inMap: true},
			{op: "release", held: 1, inMap: true},
			{op: "release", held: 0, inMap: false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClientCounter(2)
			slots := map[int]*clientSlot{}
			for i, s := range tc.steps {
				switch s.op {
				case "keep":
					slots[s.conn] = c.keep(k)
				case "unkeep":
					c.unkeep(k, slots[s.conn])
				case "take":
					got, onSlot := c.takeKept(k, slots[s.conn])
					if got != s.want || onSlot != s.onSlot {
						t.Fatalf("step %d: takeKept = %v, on slot %v; want %v, %v", i, got, onSlot, s.want, s.onSlot)
					}
				case "give":
					c.giveKept(k, slots[s.conn])
				case "acquire":
					if got := c.acquire(k); got != s.want {
						t.Fatalf("step %d: acquire = %v, want %v", i, got, s.want)
					}
				case "release":
					c.release(k)
				}
				c.mu.Lock()
				slot, inMap := c.n[k]
				c.mu.Unlock()
				if inMap != s.inMap {
					t.Fatalf("step %d (%s): slot in map %v, want %v", i, s.op, inMap, s.inMap)
				}
				if inMap && slot.held.Load() != s.held {
					t.Fatalf("step %d (%s): %d held, want %d", i, s.op, slot.held.Load(), s.held)
				}
			}
		})
	}
}

// TestClientCounterKeptConcurrent: connections that keep the slot, open
// and close, and requests counted through the map, all at once for one
// client: at no moment more than max units are held (counted by the
// holders themselves), and nothing is left in the map at the end.
func TestClientCounterKeptConcurrent(t *testing.T) {
	const max, workers, rounds = 3, 8, 2000
	c := newClientCounter(max)
	k := clientKey(netip.MustParseAddr("2001:db8::7"))
	var holding, peak, taken atomic.Int64
	hold := func() {
		n := holding.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		taken.Add(1)
		runtime.Gosched()
		holding.Add(-1)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s *clientSlot
			for i := range rounds {
				if w%2 == 1 { // through the map
					if c.acquire(k) {
						hold()
						c.release(k)
					}
					continue
				}
				if s == nil {
					s = c.keep(k)
				}
				if ok, onSlot := c.takeKept(k, s); ok {
					hold()
					if onSlot {
						c.giveKept(k, s)
					} else {
						c.release(k)
					}
				}
				if i%50 == 49 { // the connection closes; the next opens
					c.unkeep(k, s)
					s = nil
				}
			}
			if s != nil {
				c.unkeep(k, s)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Errorf("%d units held at once, want <= %d", p, max)
	}
	if taken.Load() == 0 {
		t.Error("no unit was ever taken")
	}
	if n := len(c.n); n != 0 {
		t.Errorf("%d slots left in the map after every unit was given back and every keep ended", n)
	}
}
