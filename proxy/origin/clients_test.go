package origin

import (
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"
)

// clientRow is one origin client under test, built from an H1Client's
// settings: edgeblock's own, and net/http's Transport set up the way the
// proxy sets it up for origins.client stdlib. The differential tests run
// every case through both: the visitor must get the same result from
// both, or a stricter one from edgeblock's.
type clientRow struct {
	name string
	new  func(t *testing.T, c *H1Client) http.RoundTripper
}

var clientRows = []clientRow{
	{"edgeblock", func(t *testing.T, c *H1Client) http.RoundTripper {
		t.Cleanup(c.CloseIdleConnections)
		return c
	}},
	{"stdlib", func(t *testing.T, c *H1Client) http.RoundTripper {
		tr := stdlibLike(c)
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}},
}

// stdlibLike is the http.Transport with c's settings, HTTP/2 off.
func stdlibLike(c *H1Client) *http.Transport {
	idle := c.IdleTimeout
	if idle == 0 {
		idle = defaultIdleTimeout
	}
	var tc *tls.Config
	if c.TLSConfig != nil {
		tc = c.TLSConfig.Clone()
		tc.NextProtos = nil // as the proxy's origin TLS settings have none
	}
	return &http.Transport{
		DialContext:            (&net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    c.DialTimeout,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost:    c.MaxIdlePerHost,
		MaxConnsPerHost:        c.MaxConnsPerHost,
		IdleConnTimeout:        idle,
		ResponseHeaderTimeout:  c.ResponseHeaderTimeout,
		MaxResponseHeaderBytes: c.MaxResponseHeaderBytes,
		DisableCompression:     true,
		ExpectContinueTimeout:  time.Second,
	}
}

// eachClient runs f as a subtest per client row, with a client of c's
// settings (a fresh copy for each).
func eachClient(t *testing.T, c func() *H1Client, f func(t *testing.T, rt http.RoundTripper)) {
	t.Helper()
	for _, row := range clientRows {
		t.Run(row.name, func(t *testing.T) { f(t, row.new(t, c())) })
	}
}
