package proxy

import (
	"net/url"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/proxy/origin"
)

// transportSettings is what sets a route's origin transport apart; routes
// with equal settings share one transport, and so its connections.
type transportSettings struct {
	tls             config.OriginTLSConfig
	http2           bool
	maxIdle         int
	dial, respHeads time.Duration
}

// settingsOf returns the transport settings of a route's merged balance
// config; dial and respHeads are the global defaults.
func settingsOf(b config.BalanceConfig, dial, respHeads time.Duration) transportSettings {
	s := transportSettings{http2: b.HTTP2 == nil || *b.HTTP2, maxIdle: b.MaxIdleConns, dial: dial, respHeads: respHeads}
	if s.maxIdle == 0 {
		s.maxIdle = 100
	}
	if b.OriginTLS != nil {
		s.tls = *b.OriginTLS
	}
	if t := b.Timeouts; t != nil {
		if t.Dial > 0 {
			s.dial = t.Dial
		}
		if t.ResponseHeader > 0 {
			s.respHeads = t.ResponseHeader
		}
	}
	return s
}

// poolConfig returns the origin.Config of c's route rc named pattern.
func poolConfig(c *config.Config, rc config.RouteConfig, pattern string, cookieKey []byte) (origin.Config, error) {
	b := rc.Balance.Merged(c.Origins.Balance)
	oc := origin.Config{Route: pattern, Policy: b.LB, Cookie: b.Cookie, CookieKey: cookieKey, AllDown: b.AllDown}
	for _, s := range rc.Origins {
		u, err := url.Parse(s.URL)
		if err != nil {
			return oc, err // validated already
		}
		oc.Origins = append(oc.Origins, origin.Spec{URL: u, Weight: s.Weight})
	}
	if b.Passive != nil {
		oc.Passive = *b.Passive
	}
	if oc.Passive.FailTimeout == 0 {
		oc.Passive.FailTimeout = c.Origins.FailTimeout // the edge-wide default
	}
	if b.Health != nil {
		oc.Health = *b.Health
	}
	if b.Retries != nil {
		oc.Retry = *b.Retries
	}
	return oc, nil
}
