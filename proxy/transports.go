package proxy

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/proxy/origin"
)

// routeTransport is how the edge reaches the origins of routes with the
// same transport settings: visit carries visitors' requests (and holds
// origins.max_conns), probe the health checks, on connections of its own.
// With origins.client edgeblock, h1 carries the visitors' requests to
// plain-HTTP origins (and to HTTPS ones with http2 off) and hands the
// others to visit.
type routeTransport struct {
	visit *http.Transport
	h1    *origin.H1Client
	probe *http.Client
}

// base returns the RoundTripper of visitors' requests.
func (t *routeTransport) base() http.RoundTripper {
	if t.h1 != nil {
		return t.h1
	}
	return t.visit
}

// transportCache keeps one routeTransport per distinct transport settings
// (with the content of their TLS files), so that a reload that keeps a
// route's settings keeps its connections.
type transportCache struct {
	mu sync.Mutex
	m  map[string]*routeTransport
	// maxConns, maxHeader: the restart-only origins settings of the
	// config the proxy started with.
	maxConns  int
	maxHeader int64
	// client is origins.client: "stdlib" sends every request through
	// net/http's Transport.
	client string
}

// get returns the transport of settings s, building it on first use.
func (c *transportCache) get(s transportSettings) (*routeTransport, error) {
	var tc *tls.Config
	digest := ""
	if s.tls != (config.OriginTLSConfig{}) {
		var err error
		if tc, digest, err = config.OriginTLS(&s.tls); err != nil {
			return nil, err
		}
	}
	key := fmt.Sprintf("%+v %s", s, digest)
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.m[key]; t != nil {
		return t, nil
	}
	if c.m == nil {
		c.m = map[string]*routeTransport{}
	}
	visit := &http.Transport{
		Proxy:                  nil, // never send origin traffic through an environment proxy
		DialContext:            (&net.Dialer{Timeout: s.dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        tc,
		ForceAttemptHTTP2:      s.http2,
		MaxIdleConns:           1000,
		MaxIdleConnsPerHost:    s.maxIdle,
		MaxConnsPerHost:        c.maxConns,
		MaxResponseHeaderBytes: c.maxHeader,
		IdleConnTimeout:        90 * time.Second,
		// A proxy passes the visitor's Accept-Encoding (or its absence)
		// through: the transport must not add gzip and then decompress.
		DisableCompression:    true,
		TLSHandshakeTimeout:   s.dial,
		ResponseHeaderTimeout: s.respHeads,
		ExpectContinueTimeout: time.Second,
	}
	if !s.http2 {
		// A non-nil, empty map turns HTTP/2 off (net/http's documented way).
		visit.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	var h1 *origin.H1Client
	if c.client != "stdlib" {
		h1 = &origin.H1Client{
			DialTimeout:            s.dial,
			HTTPS:                  !s.http2,
			TLSConfig:              tc,
			MaxIdlePerHost:         s.maxIdle,
			MaxConnsPerHost:        c.maxConns,
			IdleTimeout:            90 * time.Second,
			ResponseHeaderTimeout:  s.respHeads,
			MaxResponseHeaderBytes: c.maxHeader,
			Fallback:               visit,
		}
	}
	probe := visit.Clone()
	probe.MaxConnsPerHost, probe.MaxIdleConnsPerHost = 0, 1
	t := &routeTransport{visit: visit, h1: h1, probe: &http.Client{Transport: probe,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	c.m[key] = t
	return t, nil
}

// prune forgets the transports no route in rt uses and closes their idle
// connections; requests still in flight on them finish, and their
// connections close after IdleConnTimeout.
func (c *transportCache) prune(rt *routeTable) {
	used := map[*routeTransport]bool{}
	for _, r := range rt.all {
		used[r.transport] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.m {
		if !used[t] {
			delete(c.m, k)
			t.visit.CloseIdleConnections()
			if t.h1 != nil {
				t.h1.CloseIdleConnections()
			}
			t.probe.CloseIdleConnections()
		}
	}
}
