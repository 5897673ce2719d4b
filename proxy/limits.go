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
// The zero max means no limit.
type clientCounter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Prefix]int
}

func newClientCounter(max int) *clientCounter {
	return &clientCounter{max: max, n: map[netip.Prefix]int{}}
}

// acquire takes one unit for k, or reports false when k holds max already.
func (c *clientCounter) acquire(k netip.Prefix) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.n[k] >= c.max {
		return false
	}
	c.n[k]++
	return true
}

// release gives back one unit of k.
func (c *clientCounter) release(k netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] <= 1 {
		delete(c.n, k)
		return
	}
	c.n[k]--
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
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		if lc := limitConnOf(c); lc != nil {
			return lc.peer
		}
	}
	return peerAddr(r.RemoteAddr)
}

// Close closes the connection and releases its unit once.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
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
	k, ok := h.client(r)
	if !ok {
		h.next.ServeHTTP(w, r)
		return
	}
	if !h.inFlight.acquire(k) {
		h.refused.Inc()
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	defer h.inFlight.release(k)
	h.next.ServeHTTP(w, r)
}

// client returns the client a request counts against: the peer, or, when
// the peer is a trusted proxy, the right-most address in X-Forwarded-For
// that is not a trusted proxy (Config.forwardedClient, the walk
// X-Real-IP uses too). A trusted peer that names no client — an empty or
// all-trusted chain, or one that reaches an entry that is not an IP
// address first — is not limited.
func (h *requestLimiter) client(r *http.Request) (netip.Prefix, bool) {
	a := requestPeer(r)
	if !a.IsValid() {
		return netip.Prefix{}, false
	}
	cfg := h.config()
	if cfg == nil || !cfg.trustsAddr(a) {
		return clientKey(a), true
	}
	client, named := cfg.forwardedClient(a, r.Header.Values("X-Forwarded-For"))
	if !named {
		return netip.Prefix{}, false
	}
	return clientKey(client), true
}

// trusts reports whether a is in the trusted_proxies of the config in use.
func (p *Proxy) trusts(a netip.Addr) bool {
	c := p.config()
	return c != nil && c.trustsAddr(a)
}
