package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// propagationLimit is the hard limit from publish to applied on
// every edge.
const propagationLimit = 2 * time.Second

// fleetEdge is one real `edgeblock serve` process in fleet mode.
type fleetEdge struct {
	*edgeProc
	name, config, state string
	http, admin         string
}

// startFleetEdge runs serve for node name against the Redis at addr, on
// ports from :0, with its own state directory, and waits until it is
// ready. dir keeps the config and state across restarts of the node.
func startFleetEdge(t *testing.T, bin, addr, name, dir string) *fleetEdge {
	t.Helper()
	e := launchFleetEdge(t, bin, addr, name, dir)
	e.ready()
	return e
}

// launchFleetEdge starts serve as startFleetEdge does, without waiting
// for it: several edges then start at once.
func launchFleetEdge(t *testing.T, bin, addr, name, dir string) *fleetEdge {
	t.Helper()
	return launchFleetEdgeTimeout(t, bin, addr, name, dir, "1s")
}

// launchFleetEdgeTimeout is launchFleetEdge with fleet.redis.timeout
// redisTimeout (one command: reading a large list's snapshot included).
func launchFleetEdgeTimeout(t *testing.T, bin, addr, name, dir, redisTimeout string) *fleetEdge {
	t.Helper()
	e := &fleetEdge{name: name, config: filepath.Join(dir, "edgeblock.yaml"), state: filepath.Join(dir, "state")}
	edgetest.WriteFile(t, e.config, fmt.Sprintf("listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:0\nlog:\n  access: false\n"+
		"timeouts:\n  drain: 0s\nblocklist:\n  source: fleet\nfleet:\n  redis:\n    addr: %s\n    dial_timeout: 500ms\n    timeout: %s\n  node: %s\n"+
		"routes:\n  - host: \"*.example\"\n    origins: [\"http://127.0.0.1:9\"]\n", addr, redisTimeout, name))
	e.edgeProc = startProc(t, bin, "serve", "-config", e.config, "-state-dir", e.state)
	return e
}

// ready waits until the edge listens and is ready.
func (e *fleetEdge) ready() {
	e.t.Helper()
	addrs := e.listening()
	e.http, e.admin = addrs["http"], addrs["admin"]
	e.waitReady(e.admin)
}

// listening returns the addresses serve logged in its "listening" lines.
func (e *fleetEdge) listening() map[string]string {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		addrs := map[string]string{}
		for line := range strings.SplitSeq(e.stderr.String(), "\n") {
			var m struct{ Msg, Listener, Addr string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "listening" {
				addrs[m.Listener] = m.Addr
			}
		}
		if addrs["http"] != "" && addrs["admin"] != "" {
			return addrs
		}
		select {
		case <-e.done:
			e.t.Fatalf("%s exited %d:\n%s", e.name, e.code, e.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: no listening lines:\n%s", e.name, e.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// blocks reports whether a visitor to host gets the block page.
func (e *fleetEdge) blocks(host string) bool {
	code, _ := hostGet(e.http, host, "/", "")
	return code == http.StatusForbidden
}

// timeToBlock polls every edge every 10ms from now until it blocks host,
// while publish runs, and returns each edge's time from start (measured
// from the moment before publish) until its first block page; an edge
// that does not block within limit gets limit+1 and an error.
func timeToBlock(t *testing.T, edges []*fleetEdge, host string, start time.Time, limit time.Duration, publish func()) []time.Duration {
	t.Helper()
	out := make([]time.Duration, len(edges))
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if e.blocks(host) {
					out[i] = time.Since(start)
					return
				}
				if time.Since(start) > limit+time.Second {
					out[i] = limit + time.Second
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	publish()
	wg.Wait()
	for i, d := range out {
		if d > limit {
			t.Errorf("%s: %s not blocked within %v of the publish (%v)", edges[i].name, host, limit, d)
		}
	}
	return out
}

// percentile returns the p-th percentile (0..1, nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	i := int(p*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// TestFleetPropagation runs one redis-server and five real edges in fleet
// mode and measures, per edge, the time from `edgeblock block -fleet` to
// the first block page for the new host (polled every 10ms): at most 2s
// each. Then: Redis killed while the edges run, they keep blocking and
// catch up within 2s of its return; an edge restarted while Redis is down
// starts from its snapshot and blocks; a version that fails validation,
// published around the CLI, is refused by every edge, which keep
// blocking.
func TestFleetPropagation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server and five edges; skipped with -short")
	}
	bin := edgeblockBin(t)
	r := fleettest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	store := fleet.NewStore(r.Client(), fleet.Config{})
	ctx := context.Background()
	if _, err := store.Publish(ctx, []byte("seed.example\n"), fleet.Meta{Actor: "test"}, 0); err != nil {
		t.Fatal(err)
	}
	cli := fleetCLIConfig(t, r.Addr())
	t.Setenv("SUDO_USER", "alice")
	var returns []time.Duration // block -fleet's own time, until every edge reported it applied
	block := func(host string) func() {
		return func() {
			start := time.Now()
			if code, out, errOut := runCmd("block", "-fleet", "-config", cli, host, "-comment", "propagation"); code != 0 {
				t.Errorf("block -fleet %s: exit %d\n%s%s", host, code, out, errOut)
			} else if !strings.Contains(out, "applied: by all") {
				t.Errorf("block -fleet %s does not report the edges applied it:\n%s", host, out)
			}
			returns = append(returns, time.Since(start))
		}
	}

	const n = 5
	dirs := make([]string, n)
	edges := make([]*fleetEdge, n)
	for i := range edges {
		dirs[i] = t.TempDir()
		edges[i] = startFleetEdge(t, bin, r.Addr(), fmt.Sprintf("edge-%d", i), dirs[i])
	}
	for _, e := range edges {
		if !e.blocks("seed.example") {
			t.Fatalf("%s does not block the published seed.example", e.name)
		}
	}

	// Propagation: several rounds, every edge measured in each.
	var all []time.Duration
	for round := range 20 {
		host := fmt.Sprintf("new%d.example", round)
		all = append(all, timeToBlock(t, edges, host, time.Now(), propagationLimit, block(host))...)
	}
	t.Logf("propagation, block -fleet to block page, %d edges x %d rounds: p50 %v, p99 %v, max %v",
		n, len(all)/n, percentile(all, 0.5), percentile(all, 0.99), percentile(all, 1))
	t.Logf("block -fleet returned, once every edge reported it applied, after: p50 %v, max %v", percentile(returns, 0.5), percentile(returns, 1))

	// Redis killed while the edges run: blocks stay; the edges catch up
	// within 2s of its return.
	r.Stop()
	for _, e := range edges {
		waitMetric(t, e, "edgeblock_fleet_connected", "0")
		if !e.blocks("new0.example") {
			t.Errorf("%s: new0.example not blocked while Redis is down", e.name)
		}
	}
	r.Start()
	back := time.Now()
	catchUp := timeToBlock(t, edges, "after-restart.example", back, propagationLimit, block("after-restart.example"))
	t.Logf("catch-up after Redis returned: max %v", percentile(catchUp, 1))
	// One subscription per edge, none piled up by the reconnects.
	deadline := time.Now().Add(5 * time.Second)
	for {
		subs, err := r.Client().PubSubNumSub(ctx, "edgeblock:list:notify").Result()
		if err == nil && subs["edgeblock:list:notify"] == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions after Redis's restart: %v (%v), want %d, one per edge", subs, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// An edge restarted while Redis is down starts from its snapshot.
	edges[0].stop()
	r.Stop()
	e0 := startFleetEdge(t, bin, r.Addr(), "edge-0", dirs[0])
	for _, h := range []string{"seed.example", "new19.example", "after-restart.example"} {
		if !e0.blocks(h) {
			t.Errorf("edge-0 started from its snapshot: %s not blocked", h)
		}
	}
	if got := metric(t, e0.admin, "edgeblock_running_from_snapshot"); got != "1" {
		t.Errorf("edge-0 started with Redis down: running_from_snapshot %q, want 1", got)
	}
	r.Start()
	edges[0] = e0
	waitMetric(t, e0, "edgeblock_running_from_snapshot", "0")

	// A version that fails validation, published around the CLI.
	cur, err := store.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := store.Publish(ctx, append(cur.Content, "bad.example status=999\n"...), fleet.Meta{Actor: "raw"}, cur.Number)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edges {
		waitMetric(t, e, "edgeblock_fleet_version_latest", fmt.Sprint(bad.Number))
		if got := metric(t, e.admin, "edgeblock_fleet_version_applied"); got != fmt.Sprint(cur.Number) {
			t.Errorf("%s applied version %s, want %d (the last good one)", e.name, got, cur.Number)
		}
		if !e.blocks("after-restart.example") || e.blocks("bad.example") {
			t.Errorf("%s: after the refused version, after-restart.example blocked %v, bad.example blocked %v; want true, false",
				e.name, e.blocks("after-restart.example"), e.blocks("bad.example"))
		}
		resp, err := http.Get("http://" + e.admin + "/blocklist")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			LastError string `json:"last_error"`
		}
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if want := fmt.Sprintf("fleet:v%d:", bad.Number); !strings.Contains(st.LastError, want) {
			t.Errorf("%s: /blocklist last_error %q, want it to name %s", e.name, st.LastError, want)
		}
	}
	// The fleet's view: every node on the last good version is behind
	// the published (bad) one.
	code, out, _ := runCmd("fleet", "status", "-config", cli)
	if code != 1 || strings.Count(out, "BEHIND") != n {
		t.Errorf("fleet status after a refused version: exit %d, want 1 and %d nodes BEHIND:\n%s", code, n, out)
	}
	for _, e := range edges {
		e.stop()
	}
}

// waitMetric waits until the edge exports series with value want.
func waitMetric(t *testing.T, e *fleetEdge, series, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := metric(t, e.admin, series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s = %q, want %q", e.name, series, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
