package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// clientKey returns the client an address belongs to for the per-client
// limits: the address itself for IPv4, its /64 for IPv6 (one subscriber
// line or host usually gets a whole /64, so counting single IPv6 addresses
// would cap nothing).
func clientKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// peerAddr returns the IP address (IPv4-mapped IPv6 unmapped) of a
// "host:port" string such as http.Request.RemoteAddr or
// net.Addr.String(), or the zero Addr when it is not one.
func peerAddr(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// clientCounter counts what each client holds and refuses more than max.
// The zero max means no limit. A client's count lives in a clientSlot;
// acquire and release find it in the map under the lock, while a
// connection that keeps its client's slot (keep, limitConn.requestSlot)
// takes and gives back units on it without the lock or the map. Both
// paths change the count with the same compare-and-swap, so the cap is
// exact: no client ever holds more than max, and a unit is refused only
// when max are held at that moment.
type clientCounter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Prefix]*clientSlot
}

// clientSlot is one client's count. It leaves the map when no unit is
// held and no connection keeps it; held is then set to slotGone, so that
// a late take on a kept pointer fails and goes through the map instead.
type clientSlot struct {
	held atomic.Int64
	// keeps is the number of connections keeping the slot; changed under
	// clientCounter.mu, read without it by give.
	keeps atomic.Int32
}

const slotGone = -1

// take takes one unit unless max are held (taken false) or the slot has
// left the map (gone true).
func (s *clientSlot) take(max int) (taken, gone bool) {
	for {
		v := s.held.Load()
		if v == slotGone {
			return false, true
		}
		if max > 0 && v >= int64(max) {
			return false, false
		}
		if s.held.CompareAndSwap(v, v+1) {
			return true, false
		}
	}
}

func newClientCounter(max int) *clientCounter {
	return &clientCounter{max: max, n: map[netip.Prefix]*clientSlot{}}
}

// acquire takes one unit for k, or reports false when k holds max already.
func (c *clientCounter) acquire(k netip.Prefix) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.n[k]
	if s == nil {
		s = new(clientSlot)
		c.n[k] = s
	}
	taken, _ := s.take(c.max) // a slot in the map is never gone
	return taken
}

// release gives back one unit of k.
func (c *clientCounter) release(k netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.n[k]; s != nil {
		s.held.Add(-1)
		c.dropIfIdle(k, s)
	}
}

// dropIfIdle removes s, k's slot, when it holds nothing and no connection
// keeps it. Called with c.mu held.
func (c *clientCounter) dropIfIdle(k netip.Prefix, s *clientSlot) {
	if s.keeps.Load() == 0 && c.n[k] == s && s.held.CompareAndSwap(0, slotGone) {
		delete(c.n, k)
	}
}

// keep returns k's slot for a connection to take and give back units on
// (takeKept, giveKept) until it calls unkeep.
func (c *clientCounter) keep(k netip.Prefix) *clientSlot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.n[k]
	if s == nil {
		s = new(clientSlot)
		c.n[k] = s
	}
	s.keeps.Add(1)
	return s
}

// unkeep ends a connection's keep of s, k's slot.
func (c *clientCounter) unkeep(k netip.Prefix, s *clientSlot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.keeps.Add(-1)
	c.dropIfIdle(k, s)
}

// takeKept takes one unit for k on s, a slot kept by a connection, without
// the lock; once s has left the map (a request that began as its
// connection closed), through the map. It reports false when k holds max.
func (c *clientCounter) takeKept(k netip.Prefix, s *clientSlot) (ok bool, onSlot bool) {
	taken, gone := s.take(c.max)
	if !gone {
		return taken, true
	}
	return c.acquire(k), false
}

// giveKept gives back a unit takeKept took on s.
func (c *clientCounter) giveKept(k netip.Prefix, s *clientSlot) {
	if s.held.Add(-1) == 0 && s.keeps.Load() == 0 {
		// The connection stopped keeping the slot while this unit was
		// held: the slot may now leave the map.
		c.mu.Lock()
		c.dropIfIdle(k, s)
		c.mu.Unlock()
	}
}

// limitListener caps open connections per client. A connection beyond the
// cap is closed as soon as it is accepted (the client sees the connection
// close before any response) and counted; Accept then waits for the next
// one. Peers in trusted_proxies (a load balancer) are not capped.
type limitListener struct {
	net.Listener
	conns   *clientCounter
	trusted func(netip.Addr) bool
	open    prometheus.Gauge
	refused prometheus.Counter
}

// Accept returns the next connection within the caps.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := peerAddr(c.RemoteAddr().String())
		if !a.IsValid() || l.trusted(a) {
			l.open.Inc()
			return &limitConn{Conn: c, peer: a, release: l.open.Dec}, nil
		}
		k := clientKey(a)
		if !l.conns.acquire(k) {
			l.refused.Inc()
			c.Close()
			continue
		}
		l.open.Inc()
		return &limitConn{Conn: c, peer: a, release: func() { l.conns.release(k); l.open.Dec() }}, nil
	}
}

// limitConn gives its client's unit back on the first Close. It also
// keeps what the request path would otherwise work out again for every
// request on the connection (see connInfo).
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
	// peer is peerAddr of the connection's remote address, which is
	// every request's RemoteAddr.
	peer netip.Addr
	// fresh: the connection has not begun a request (freshConns).
	fresh atomic.Bool
	// proto caches whether a TLS connection negotiated HTTP/2: 0 not
	// known yet, protoH1 or protoH2 (clearWriteDeadline).
	proto atomic.Int32
	// slot is the per-client request count of the connection's client,
	// kept from its first request until Close (requestSlot); slotMu
	// guards taking it, slotOf, slotKey and closed.
	slot    atomic.Pointer[clientSlot]
	slotMu  sync.Mutex
	slotOf  *clientCounter
	slotKey netip.Prefix
	closed  bool
}

// requestSlot returns the slot of k, the connection's client, in cc,
// kept by the connection until it closes; nil once it has closed or when
// it keeps a slot of another counter.
func (c *limitConn) requestSlot(cc *clientCounter, k netip.Prefix) *clientSlot {
	if s := c.slot.Load(); s != nil && c.slotOf == cc {
		return s
	}
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	if c.closed || (c.slotOf != nil && c.slotOf != cc) {
		return nil
	}
	if s := c.slot.Load(); s != nil {
		return s
	}
	s := cc.keep(k)
	c.slotOf, c.slotKey = cc, k
	c.slot.Store(s)
	return s
}

// unkeepSlot ends the connection's keep of its client's slot.
func (c *limitConn) unkeepSlot() {
	c.slotMu.Lock()
	c.closed = true
	s := c.slot.Swap(nil)
	c.slotMu.Unlock()
	if s != nil {
		c.slotOf.unkeep(c.slotKey, s)
	}
}

const (
	protoH1 = 1
	protoH2 = 2
)

// limitConnOf returns the limitConn under c (itself, or under TLS), or
// nil when c is not one of the public listeners' connections.
func limitConnOf(c net.Conn) *limitConn {
	switch c := c.(type) {
	case *limitConn:
		return c
	case *tls.Conn:
		lc, _ := c.NetConn().(*limitConn)
		return lc
	}
	return nil
}

// requestPeer returns peerAddr(r.RemoteAddr): kept with the connection
// when the request came through a public listener (withConn), else parsed.
func requestPeer(r *http.Request) netip.Addr {
	a, _ := requestConn(r)
	return a
}

// requestConn returns requestPeer(r) and the public listener's connection
// that r came on, or nil.
func requestConn(r *http.Request) (netip.Addr, *limitConn) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		if lc := limitConnOf(c); lc != nil {
			return lc.peer, lc
		}
	}
	return peerAddr(r.RemoteAddr), nil
}

// Close closes the connection and releases its unit once.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	c.unkeepSlot()
	return err
}

// requestLimiter caps requests in flight per client: beyond the cap it
// answers 429 with Retry-After and no body (over HTTP/2 that is one
// HEADERS frame, which needs no flow-control window, so even a client
// that announces a zero window cannot make the refusal itself linger).
type requestLimiter struct {
	next     http.Handler
	inFlight *clientCounter
	config   func() *edgeConfig // the config in use, for trusted_proxies
	refused  prometheus.Counter
}

func (h *requestLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k, lc, ok := h.client(r)
	if !ok {
		h.next.ServeHTTP(w, r)
		return
	}
	if lc != nil {
		// The connection's own client: counted on the slot it keeps.
		if s := lc.requestSlot(h.inFlight, k); s != nil {
			taken, onSlot := h.inFlight.takeKept(k, s)
			if !taken {
				h.refuse(w)
				return
			}
			if onSlot {
				defer h.inFlight.giveKept(k, s)
			} else {
				defer h.inFlight.release(k)
			}
			h.next.ServeHTTP(w, r)
			return
		}
	}
	if !h.inFlight.acquire(k) {
		h.refuse(w)
		return
	}
	defer h.inFlight.release(k)
	h.next.ServeHTTP(w, r)
}

// refuse answers a request beyond the cap.
func (h *requestLimiter) refuse(w http.ResponseWriter) {
	h.refused.Inc()
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusTooManyRequests)
}

// client returns the client a request counts against: the peer, or, when
// the peer is a trusted proxy, the right-most address in X-Forwarded-For
// that is not a trusted proxy (Config.forwardedClient, the walk
// X-Real-IP uses too). A trusted peer that names no client — an empty or
// all-trusted chain, or one that reaches an entry that is not an IP
// address first — is not limited. lc is the public listener's connection
// when the client is its peer (not a trusted proxy), else nil.
func (h *requestLimiter) client(r *http.Request) (k netip.Prefix, lc *limitConn, ok bool) {
	a, lc := requestConn(r)
	if !a.IsValid() {
		return netip.Prefix{}, nil, false
	}
	cfg := h.config()
	if cfg == nil || !cfg.trustsAddr(a) {
		return clientKey(a), lc, true
	}
	client, named := cfg.forwardedClient(a, r.Header.Values("X-Forwarded-For"))
	if !named {
		return netip.Prefix{}, nil, false
	}
	return clientKey(client), nil, true
}

// trusts reports whether a is in the trusted_proxies of the config in use.
func (p *Proxy) trusts(a netip.Addr) bool {
	c := p.config()
	return c != nil && c.trustsAddr(a)
}
