package fleet

import (
	"crypto/tls"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// redisServer is a real redis-server for one test (see fleettest).
type redisServer = fleettest.Server

// startRedis starts a redis-server for t (fleettest.Start).
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	return fleettest.Start(t, extra...)
}

// startRedisTLS starts a TLS-only redis-server for t (fleettest.StartTLS).
func startRedisTLS(t testing.TB, tc *tls.Config, extra ...string) *redisServer {
	t.Helper()
	return fleettest.StartTLS(t, tc, extra...)
}
