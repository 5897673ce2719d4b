package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startCluster starts a three-node Redis Cluster (no replicas) and returns
// its addresses.
func startCluster(t *testing.T) []string {
	t.Helper()
	const nodes = 3
	var addrs []string
	var clients []*redis.Client
	for i := 0; i < nodes; i++ {
		r := startRedis(t, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
		addrs = append(addrs, r.Addr())
		clients = append(clients, r.Client())
	}
	ctx := ctxT(t)
	per := 16384 / nodes
	for i, c := range clients {
		lo, hi := i*per, (i+1)*per-1
		if i == nodes-1 {
			hi = 16383
		}
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("node %d: CLUSTER ADDSLOTSRANGE: %v", i, err)
		}
	}
	for i := 1; i < nodes; i++ {
		host, port, _ := strings.Cut(addrs[i], ":")
		if err := clients[0].ClusterMeet(ctx, host, port).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", addrs[i], err)
		}
	}
	waitFor(t, 20*time.Second, "cluster_state:ok on every node", func() bool {
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", nodes)) {
				return false
			}
		}
		return true
	})
	return addrs
}

// TestCluster runs the store, a follower and the storage against Redis
// Cluster with a hash-tagged prefix (what Validate requires), and shows why
// the tag is required.
func TestCluster(t *testing.T) {
	addrs := startCluster(t)
	ctx := ctxT(t)
	cfg := Config{Redis: RedisConfig{Mode: ModeCluster, Addrs: addrs}, Prefix: "{eb}:", Node: "edge-1"}
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatal(p)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.UniversalClient.(*redis.ClusterClient); !ok {
		t.Fatalf("NewClient with addrs returned %T, want a cluster client", c)
	}
	s := NewStore(c, cfg)

	rec := newRecorder()
	f := startFollower(t, s, rec, FollowOptions{PollInterval: time.Hour}) // notifications only
	waitFor(t, 10*time.Second, "Connected", f.Connected)
	for n := int64(1); n <= 3; n++ {
		if _, err := s.Publish(ctx, fmt.Appendf(nil, "v%d\n", n), Meta{Actor: "ops"}, n-1); err != nil {
			t.Fatal(err)
		}
		rec.waitVersion(t, n, 2*time.Second)
	}
	if _, err := s.Publish(ctx, []byte("stale\n"), Meta{}, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale publish on the cluster: %v", err)
	}
	if err := s.Beat(ctx, Heartbeat{Node: "edge-1", Version: 3}); err != nil {
		t.Fatal(err)
	}
	if nodes, err := s.Nodes(ctx, time.Minute); err != nil || len(nodes) != 1 || nodes[0].Behind {
		t.Fatalf("Nodes on the cluster = %+v, %v", nodes, err)
	}

	st := NewStorage(c, cfg)
	defer st.Close()
	if err := st.Store(ctx, "certificates/a/a.crt", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if l, err := st.List(ctx, "certificates", true); err != nil || len(l) != 2 {
		t.Fatalf("List on the cluster = %q, %v", l, err)
	}
	if err := st.Lock(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Unlock(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "certificates"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, "certificates/a/a.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load after Delete on the cluster: %v", err)
	}

	// Without a hash tag the keys scatter over slots and the scripts fail:
	// the reason Validate insists on one.
	untagged := NewStore(c, Config{Prefix: "edgeblock:"})
	if _, err := untagged.Publish(context.Background(), []byte("x\n"), Meta{}, 0); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("publish with an untagged prefix on a cluster: got %v, want CROSSSLOT", err)
	}
}
