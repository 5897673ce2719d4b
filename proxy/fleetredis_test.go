package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// TestFleetRedisMetrics: an edge exports its Redis mode and primary (one
// info series), counts the subscription's reconnects when Redis restarts,
// and says both in its heartbeat (what fleet status shows).
func TestFleetRedisMetrics(t *testing.T) {
	parallelPlain(t)
	r := fleettest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := fleetStore(t, r)
	publish(t, s, "a.example\n", "first")
	e := startFleetEnv(t, r.Addr(), "edge-1", "")
	edgetest.WaitFor(t, 2*time.Second, "connected", func() bool { return e.metric("edgeblock_fleet_connected") == "1" })
	info := fmt.Sprintf(`edgeblock_fleet_redis_info{mode="single",primary=%q}`, r.Addr())
	edgetest.WaitFor(t, 2*time.Second, info, func() bool { return e.metric(info) == "1" })
	if got := e.metric("edgeblock_fleet_redis_reconnects_total"); got != "0" {
		t.Errorf("reconnects before any loss = %q, want 0", got)
	}
	r.Stop()
	edgetest.WaitFor(t, 5*time.Second, "disconnected", func() bool { return e.metric("edgeblock_fleet_connected") == "0" })
	r.Start()
	edgetest.WaitFor(t, 5*time.Second, "connected again", func() bool { return e.metric("edgeblock_fleet_connected") == "1" })
	edgetest.WaitFor(t, 2*time.Second, "a reconnect counted", func() bool { return e.metric("edgeblock_fleet_redis_reconnects_total") == "1" })
	if got := e.metric("edgeblock_fleet_redis_failovers_total"); got != "0" {
		t.Errorf("failovers with one server = %q, want 0", got)
	}
	edgetest.WaitFor(t, 10*time.Second, "the heartbeat says how the edge reaches Redis", func() bool {
		nodes, err := s.Nodes(context.Background(), time.Minute)
		if err != nil || len(nodes) != 1 || nodes[0].Redis == nil {
			return false
		}
		l := nodes[0].Redis
		return l.Mode == "single" && l.Primary == r.Addr() && l.Reconnects == 1
	})
}
