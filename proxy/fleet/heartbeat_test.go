package fleet

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

func TestHeartbeatsNodesBehindSilent(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)
	for i := int64(1); i <= 3; i++ {
		if _, err := s.Publish(ctx, fmt.Appendf(nil, "v%d\n", i), Meta{}, i-1); err != nil {
			t.Fatal(err)
		}
	}
	if nodes, err := s.Nodes(ctx, time.Second); err != nil || len(nodes) != 0 {
		t.Fatalf("Nodes before any heartbeat = %v, %v; want none", nodes, err)
	}
	// edge-old beats, then goes quiet; the others beat after the pause.
	if err := s.Beat(ctx, Heartbeat{Node: "edge-old", Version: 3, SHA256: "c3"}); err != nil {
		t.Fatal(err)
	}
	const silentAfter = 400 * time.Millisecond
	time.Sleep(silentAfter + 100*time.Millisecond)
	for _, hb := range []Heartbeat{
		{Node: "edge-b", Version: 2, SHA256: "b2"},
		{Node: "edge-a", Version: 3, SHA256: "c3", Time: time.Unix(0, 0)}, // caller's time is ignored
	} {
		if err := s.Beat(ctx, hb); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Beat(ctx, Heartbeat{}); err == nil {
		t.Fatal("Beat without a node name succeeded")
	}

	nodes, err := s.Nodes(ctx, silentAfter)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		node           string
		version        int64
		sha            string
		behind, silent bool
	}{
		{"edge-a", 3, "c3", false, false},
		{"edge-b", 2, "b2", true, false},
		{"edge-old", 3, "c3", false, true},
	}
	if len(nodes) != len(want) {
		t.Fatalf("Nodes = %+v, want %d nodes", nodes, len(want))
	}
	for i, w := range want {
		n := nodes[i]
		if n.Node != w.node || n.Version != w.version || n.SHA256 != w.sha || n.Behind != w.behind || n.Silent != w.silent {
			t.Errorf("node %d = %+v, want %+v", i, n, w)
		}
		if time.Since(n.Time).Abs() > time.Minute {
			t.Errorf("node %s: time %v is not Redis's now", n.Node, n.Time)
		}
	}
	if nodes[2].Age < silentAfter || nodes[0].Age >= silentAfter {
		t.Errorf("ages: edge-a %v, edge-old %v (threshold %v)", nodes[0].Age, nodes[2].Age, silentAfter)
	}

	if err := s.Forget(ctx, "edge-old"); err != nil {
		t.Fatal(err)
	}
	nodes, err = s.Nodes(ctx, silentAfter)
	if err != nil || len(nodes) != 2 {
		t.Fatalf("after Forget: %+v, %v; want 2 nodes", nodes, err)
	}
}

func TestRunHeartbeat(t *testing.T) {
	s, _ := newTestStore(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	var version atomic.Int64
	version.Store(7)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunHeartbeat(ctx, 50*time.Millisecond, nil, func() Heartbeat {
			return Heartbeat{Node: "edge-1", Version: version.Load(), SHA256: "x"}
		}, func(err error) { t.Errorf("heartbeat: %v", err) })
	}()
	edgetest.WaitFor(t, 5*time.Second, "first heartbeat", func() bool {
		n, err := s.Nodes(context.Background(), time.Second)
		return err == nil && len(n) == 1 && n[0].Version == 7
	})
	version.Store(8)
	edgetest.WaitFor(t, 5*time.Second, "heartbeat with the new version", func() bool {
		n, err := s.Nodes(context.Background(), time.Second)
		return err == nil && len(n) == 1 && n[0].Version == 8
	})
	cancel()
	<-done
}

// TestHeartbeatExpiry: a node silent for longer than HeartbeatExpiry drops
// out of Nodes, both when another node beats (Beat deletes it) and when
// none does (Nodes deletes it), while a node that keeps beating stays.
func TestHeartbeatExpiry(t *testing.T) {
	r := startRedis(t)
	c, cfg := newTestClient(t, r.Addr(), "")
	const expiry = 600 * time.Millisecond
	cfg.HeartbeatExpiry = expiry
	s := NewStore(c, cfg)
	ctx := ctxT(t)
	for _, steps := range []struct {
		name    string
		beatNow bool // another node beats after the silence
	}{{"by a beat", true}, {"by a read", false}} {
		t.Run(steps.name, func(t *testing.T) {
			if err := s.Beat(ctx, Heartbeat{Node: "stopped", Version: 1}); err != nil {
				t.Fatal(err)
			}
			if n, err := s.Nodes(ctx, time.Hour); err != nil || len(n) == 0 {
				t.Fatalf("right after the beat: %+v, %v", n, err)
			}
			time.Sleep(expiry + 300*time.Millisecond)
			if steps.beatNow {
				if err := s.Beat(ctx, Heartbeat{Node: "live", Version: 1}); err != nil {
					t.Fatal(err)
				}
				// The beat itself deleted the stopped node: the hashes no
				// longer hold it, whoever reads them.
				if n, err := c.HExists(ctx, cfg.Prefix+"nodes", "stopped").Result(); err != nil || n {
					t.Fatalf("stopped node still in the nodes hash after another node's beat (%v)", err)
				}
			}
			nodes, err := s.Nodes(ctx, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				if n.Node == "stopped" {
					t.Fatalf("node silent for %v still listed (expiry %v): %+v", n.Age, expiry, n)
				}
			}
			if steps.beatNow && (len(nodes) != 1 || nodes[0].Node != "live") {
				t.Fatalf("nodes = %+v, want the live node only", nodes)
			}
			s.Forget(ctx, "live")
		})
	}
}
