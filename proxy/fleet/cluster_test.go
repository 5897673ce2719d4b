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

	"github.com/edgeblock/edgeblock/proxy/edgetest"
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
	edgetest.WaitFor(t, 20*time.Second, "cluster_state:ok on every node", func() bool {
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
	edgetest.WaitFor(t, 10*time.Second, "Connected", f.Connected)
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

// startClusterWithReplicas starts a Redis Cluster of three primaries, each
// with one replica, and returns the servers by address and the primaries'
// addresses (the seeds).
func startClusterWithReplicas(t *testing.T) (map[string]*redisServer, []string) {
	t.Helper()
	const primaries = 3
	servers := map[string]*redisServer{}
	var all []*redisServer
	for i := 0; i < 2*primaries; i++ {
		r := startRedis(t, "--cluster-enabled", "yes", "--cluster-node-timeout", "1500")
		servers[r.Addr()] = r
		all = append(all, r)
	}
	ctx := context.Background()
	var seeds []string
	per := 16384 / primaries
	for i := 0; i < primaries; i++ {
		lo, hi := i*per, (i+1)*per-1
		if i == primaries-1 {
			hi = 16383
		}
		if err := all[i].Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
		}
		seeds = append(seeds, all[i].Addr())
	}
	c0 := all[0].Client()
	for _, r := range all[1:] {
		host, port, _ := strings.Cut(r.Addr(), ":")
		if err := c0.ClusterMeet(ctx, host, port).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", r.Addr(), err)
		}
	}
	edgetest.WaitFor(t, 20*time.Second, "every node to know every other", func() bool {
		for _, r := range all {
			info, err := r.Client().ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(all))) {
				return false
			}
		}
		return true
	})
	for i := 0; i < primaries; i++ {
		id, err := all[i].Client().Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		rep := all[primaries+i]
		edgetest.WaitFor(t, 10*time.Second, "CLUSTER REPLICATE", func() bool {
			return rep.Client().Do(ctx, "CLUSTER", "REPLICATE", id).Err() == nil
		})
	}
	edgetest.WaitFor(t, 30*time.Second, "cluster_state:ok and every replica in sync", func() bool {
		for i, r := range all {
			info, err := r.Client().ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			slots, err := r.Client().ClusterSlots(ctx).Result()
			if err != nil || len(slots) != primaries {
				return false
			}
			for _, s := range slots {
				if len(s.Nodes) != 2 {
					return false
				}
			}
			if i >= primaries {
				rep, err := r.Client().Info(ctx, "replication").Result()
				if err != nil || !strings.Contains(rep, "master_link_status:up") {
					return false
				}
			}
		}
		return true
	})
	return servers, seeds
}

// clusterSlotNodes returns the primary and the replicas serving the slot of
// key, as any running node reports them.
func clusterSlotNodes(servers map[string]*redisServer, key string) (primary string, replicas []string) {
	slot := int64(clusterKeySlot(key))
	for addr, r := range servers {
		if !r.Running() {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, MaxRetries: -1})
		slots, err := c.ClusterSlots(context.Background()).Result()
		c.Close()
		if err != nil {
			continue
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				for _, n := range s.Nodes[1:] {
					replicas = append(replicas, n.Addr)
				}
				return s.Nodes[0].Addr, replicas
			}
		}
	}
	return "", nil
}

// clusterKeySlot is Redis Cluster's slot of key (CRC16 of the hash tag).
func clusterKeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for _, b := range []byte(key) {
		crc ^= uint16(b) << 8
		for k := 0; k < 8; k++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// TestClusterFailover is TestSentinelFailover on a Redis Cluster of three
// primaries with a replica each: CLUSTER FAILOVER on the replica of the
// fleet's slot, then SIGKILL of that slot's primary (its replica is
// promoted).
//
//	go test -run TestClusterFailover -v ./proxy/fleet
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a six-node Redis Cluster; skipped under -short")
	}
	servers, seeds := startClusterWithReplicas(t)
	cfg := Config{Redis: RedisConfig{Mode: ModeCluster, Addrs: seeds}, Prefix: "{eb}:", Node: "rig"}
	key := newKeys(cfg.Prefix).version
	r := newFailoverRig(t, cfg, 3, 2)
	primary := func() string { p, _ := clusterSlotNodes(servers, key); return p }
	failoverScenario(t, r, primary,
		func() {
			_, reps := clusterSlotNodes(servers, key)
			if len(reps) == 0 {
				t.Fatal("the fleet's slot has no replica")
			}
			if err := servers[reps[0]].Client().Do(context.Background(), "CLUSTER", "FAILOVER").Err(); err != nil {
				t.Fatalf("CLUSTER FAILOVER on %s: %v", reps[0], err)
			}
		},
		func(addr string) {
			servers[addr].Stop()
		})
}

// TestClusterACL runs every fleet feature on a Redis Cluster as an ACL
// user with aclCommands and CLUSTER SLOTS only.
func TestClusterACL(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node Redis Cluster; skipped under -short")
	}
	addrs := startCluster(t)
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		err := c.Do(ctxT(t), aclRule("cluster|slots")...).Err()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	runAsACLUser(t, RedisConfig{Mode: ModeCluster, Addrs: addrs}, "{edgeblock}:")
}
