package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// fleetConfig is an edge config in fleet mode against the Redis at addr.
func fleetConfig(addr, node string) string {
	return fmt.Sprintf("listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:0\nblocklist:\n  source: fleet\n  poll_interval: 100ms\n"+
		"fleet:\n  redis:\n    addr: %s\n    dial_timeout: 200ms\n    timeout: 500ms\n  node: %s\n"+routeConfig("app.example", `"http://127.0.0.1:9"`), addr, node)
}

// startFleetEnv starts an edge in fleet mode as serve does
// (LoadBundleForStart with stateDir, "" for none); it fails the test if
// the edge does not start.
func startFleetEnv(t *testing.T, addr, node, stateDir string) *testEnv {
	t.Helper()
	e, err := tryFleetEnv(t, addr, node, stateDir)
	if err != nil {
		t.Fatalf("LoadBundleForStart: %v", err)
	}
	return e
}

// tryFleetEnv is startFleetEnv returning the start error.
func tryFleetEnv(t *testing.T, addr, node, stateDir string) (*testEnv, error) {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, config: filepath.Join(dir, "edgeblock.yaml"), logs: &edgetest.LogBuffer{}}
	edgetest.WriteFile(t, e.config, fleetConfig(addr, node))
	b, err := reload.LoadBundleForStart(e.config, stateDir, time.Now())
	if err != nil {
		return nil, err
	}
	e.serve(b)
	return e, nil
}

// fleetStore returns a store on r with the default prefix.
func fleetStore(t *testing.T, r *fleettest.Server) *fleet.Store {
	t.Helper()
	return fleet.NewStore(r.Client(), fleet.Config{})
}

// publish publishes content as the version after the current one.
func publish(t *testing.T, s *fleet.Store, content, comment string) fleet.Version {
	t.Helper()
	ctx := context.Background()
	cur, err := s.CurrentNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Publish(ctx, []byte(content), fleet.Meta{Actor: "alice", Comment: comment}, cur)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// listStatus returns the edge's GET /blocklist, blocklist part.
func (e *testEnv) listStatus() reload.FileStatus {
	e.t.Helper()
	resp, err := http.Get(e.url("admin") + "/blocklist")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var s reload.FileStatus
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// metric returns the value of one series in the edge's scrape.
func (e *testEnv) metric(series string) string {
	e.t.Helper()
	return edgetest.MetricValue(e.scrape(), series)
}

// TestFleetFollow: an edge in fleet mode starts on the published version,
// applies each new one through the reload path (audit line with version,
// actor and comment; heartbeat), and refuses versions that fail
// validation or drop too much, keeping its last good list.
func TestFleetFollow(t *testing.T) {
	r := fleettest.Start(t)
	s := fleetStore(t, r)
	publish(t, s, "a.example\n", "first")
	e := startFleetEnv(t, r.Addr(), "edge-1", "")
	if c := e.status("a.example"); c != 403 {
		t.Fatalf("a.example: %d, want 403 (blocked by v1)", c)
	}
	edgetest.WaitFor(t, 2*time.Second, "connected", func() bool { return e.metric("edgeblock_fleet_connected") == "1" })
	for series, want := range map[string]string{"edgeblock_fleet_enabled": "1", "edgeblock_fleet_version_applied": "1"} {
		if got := e.metric(series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}

	steps := []struct {
		name, content   string
		applied, latest int
		blocked, open   []string
		errorHas        string // in GET /blocklist errors; "" means none
	}{
		{name: "block b", content: "a.example\nb.example\n", applied: 2, latest: 2, blocked: []string{"a.example", "b.example"}},
		{name: "bad attribute", content: "a.example\nc.example status=999\n", applied: 2, latest: 3,
			blocked: []string{"a.example", "b.example"}, open: []string{"c.example"}, errorHas: "fleet:v3:2:"},
		{name: "drops all", content: "c.example\n", applied: 2, latest: 4,
			blocked: []string{"a.example", "b.example"}, open: []string{"c.example"}, errorHas: "would drop 2 of 2 block rules"},
		{name: "allow-drop", content: "#! allow-drop\nc.example\n", applied: 5, latest: 5,
			blocked: []string{"c.example"}, open: []string{"a.example", "b.example"}},
	}
	for _, st := range steps {
		v := publish(t, s, st.content, st.name)
		edgetest.WaitFor(t, 2*time.Second, st.name+": latest version seen", func() bool {
			return e.metric("edgeblock_fleet_version_latest") == fmt.Sprint(st.latest)
		})
		edgetest.WaitFor(t, 2*time.Second, st.name+": applied version", func() bool {
			return e.metric("edgeblock_fleet_version_applied") == fmt.Sprint(st.applied)
		})
		for _, h := range st.blocked {
			if c := e.status(h); c != 403 {
				t.Errorf("%s: %s: %d, want 403", st.name, h, c)
			}
		}
		for _, h := range st.open {
			if c := e.status(h); c == 403 {
				t.Errorf("%s: %s: blocked, want open", st.name, h)
			}
		}
		got := e.listStatus()
		if st.errorHas == "" {
			if len(got.Errors) > 0 || got.File != fleet.ListName(v.Number) {
				t.Errorf("%s: /blocklist file %s errors %v, want %s and none", st.name, got.File, got.Errors, fleet.ListName(v.Number))
			}
			lines := e.logs.Lines(t, "blocklist applied")
			last := lines[len(lines)-1]
			if last["version"] != float64(v.Number) || last["actor"] != "alice" || last["comment"] != st.name || last["trigger"] != "fleet" {
				t.Errorf("%s: audit line %v, want version %d by alice, comment %q", st.name, last, v.Number, st.name)
			}
		} else if len(got.Errors) == 0 || !strings.Contains(got.LastError, st.errorHas) {
			t.Errorf("%s: /blocklist errors %q, want %q", st.name, got.LastError, st.errorHas)
		}
	}
	if got := e.metric(`edgeblock_blocklist_reloads_total{result="refused"}`); got != "1" {
		t.Errorf("refused reloads = %q, want 1", got)
	}
	if got := e.metric(`edgeblock_blocklist_reloads_total{result="failure"}`); got != "1" {
		t.Errorf("failed reloads = %q, want 1", got)
	}
	// The heartbeat names the version in effect.
	edgetest.WaitFor(t, 2*time.Second, "heartbeat with version 5", func() bool {
		nodes, err := s.Nodes(context.Background(), time.Minute)
		return err == nil && len(nodes) == 1 && nodes[0].Node == "edge-1" && nodes[0].Version == 5 && !nodes[0].Behind
	})
}

// TestFleetRedisLost: losing Redis never lifts blocks; the edge says it is
// disconnected and catches up when Redis is back.
func TestFleetRedisLost(t *testing.T) {
	parallelPlain(t)
	r := fleettest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := fleetStore(t, r)
	publish(t, s, "a.example\n", "first")
	e := startFleetEnv(t, r.Addr(), "edge-1", "")
	edgetest.WaitFor(t, 2*time.Second, "connected", func() bool { return e.metric("edgeblock_fleet_connected") == "1" })
	r.Stop()
	edgetest.WaitFor(t, 5*time.Second, "disconnected", func() bool { return e.metric("edgeblock_fleet_connected") == "0" })
	if c := e.status("a.example"); c != 403 {
		t.Errorf("a.example with Redis down: %d, want 403", c)
	}
	if len(e.logs.Lines(t, "fleet: Redis unreachable; keeping the last good list until it is back")) == 0 {
		t.Error("no log line says Redis is unreachable")
	}
	r.Start()
	publish(t, s, "a.example\nb.example\n", "second")
	d := edgetest.WaitFor(t, 5*time.Second, "b.example blocked after Redis came back", func() bool { return e.status("b.example") == 403 })
	if d > 2*time.Second {
		t.Errorf("caught up %v after Redis came back, want <= 2s", d)
	}
	edgetest.WaitFor(t, 2*time.Second, "connected again", func() bool { return e.metric("edgeblock_fleet_connected") == "1" })
}

// TestFleetStartFromSnapshot: with Redis unreachable at start, an edge
// starts from the state directory's snapshot of the version it last
// applied, and confirms it once Redis is back; without a snapshot it
// refuses to start, saying why.
func TestFleetStartFromSnapshot(t *testing.T) {
	parallelPlain(t)
	r := fleettest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := fleetStore(t, r)
	publish(t, s, "a.example\n", "first")
	publish(t, s, "a.example\nb.example\n", "second")
	state := t.TempDir()
	e1 := startFleetEnv(t, r.Addr(), "edge-1", state)
	if c := e1.status("b.example"); c != 403 {
		t.Fatalf("b.example: %d, want 403", c)
	}
	e1.srv.Shutdown(context.Background())
	r.Stop()

	// The first edge's config has another path: a second edge on the
	// same state directory would not use its snapshot. Start from e1's
	// config instead, as a restart does.
	b, err := reload.LoadBundleForStart(e1.config, state, time.Now())
	if err != nil {
		t.Fatalf("start with Redis down and a snapshot: %v", err)
	}
	if b.List.File() != "fleet:v2" || len(b.FromSnapshot) != 1 || b.FromSnapshot[0] != reload.PartBlocklist {
		t.Fatalf("list %s from snapshot %v, want fleet:v2 from the snapshot", b.List.File(), b.FromSnapshot)
	}
	if !strings.Contains(strings.Join(b.Problems, "\n"), "fleet.redis: cannot read the published blocklist from "+r.Addr()) {
		t.Errorf("problems %q do not say Redis is unreachable", b.Problems)
	}
	e2 := &testEnv{t: t, dir: e1.dir, config: e1.config, logs: &edgetest.LogBuffer{}}
	srv, err := NewServer(NewLogger(e2.logs, "json", slog.LevelDebug), e2.config, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(b); err != nil {
		t.Fatal(err)
	}
	e2.srv = srv
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	for _, h := range []string{"a.example", "b.example"} {
		if c := e2.status(h); c != 403 {
			t.Errorf("%s from the snapshot: %d, want 403", h, c)
		}
	}
	if got := e2.metric("edgeblock_running_from_snapshot"); got != "1" {
		t.Errorf("running_from_snapshot = %q, want 1", got)
	}
	if got := e2.metric("edgeblock_fleet_version_applied"); got != "2" {
		t.Errorf("version_applied = %q, want 2 (the snapshot's)", got)
	}
	r.Start()
	edgetest.WaitFor(t, 3*time.Second, "snapshot confirmed once Redis is back", func() bool {
		return e2.metric("edgeblock_running_from_snapshot") == "0" && !e2.listStatus().FromSnapshot
	})

	// No snapshot, no Redis: no start.
	r.Stop()
	_, err = tryFleetEnv(t, r.Addr(), "edge-3", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "cannot read the published blocklist") || !strings.Contains(err.Error(), "no snapshot to start from") {
		t.Errorf("start with neither Redis nor snapshot: %v; want a refusal naming both", err)
	}
}

// TestFleetMetricsInFileMode: the fleet series exist in file mode too (at
// 0), so that the alerts' queries match every node's scrape.
func TestFleetMetricsInFileMode(t *testing.T) {
	e := startEnv(t, routeConfig("app.example", `"http://127.0.0.1:9"`), "a.example\n")
	for _, m := range []string{"edgeblock_fleet_enabled", "edgeblock_fleet_connected", "edgeblock_fleet_version_applied", "edgeblock_fleet_version_latest"} {
		if got := e.metric(m); got != "0" {
			t.Errorf("%s = %q in file mode, want 0", m, got)
		}
	}
}

// TestFleetConfigReload: in fleet mode the config file is still watched
// and applied; the list stays the fleet's version, and a change to the
// fleet section is flagged as needing a restart.
func TestFleetConfigReload(t *testing.T) {
	parallelPlain(t)
	r := fleettest.Start(t)
	s := fleetStore(t, r)
	publish(t, s, "a.example\n", "first")
	e := startFleetEnv(t, r.Addr(), "edge-1", "")
	if c := e.status("a.example"); c != 403 {
		t.Fatalf("a.example: %d, want 403", c)
	}
	// A new route: applied by the watcher, the list unchanged.
	cfg := fleetConfig(r.Addr(), "edge-1") + "  - host: \"new.example\"\n    origins: [\"http://127.0.0.1:9\"]\n"
	edgetest.WriteFile(t, e.config, cfg)
	edgetest.WaitFor(t, 5*time.Second, "the new route", func() bool { return e.status("new.example") != 404 })
	st := e.listStatus()
	if st.File != "fleet:v1" || len(st.Errors) > 0 || e.status("a.example") != 403 {
		t.Errorf("after a config reload: list %s errors %v, a.example %d; want fleet:v1, none, 403", st.File, st.Errors, e.status("a.example"))
	}
	if got := e.metric("edgeblock_config_restart_needed"); got != "0" {
		t.Errorf("restart_needed = %q after a route change, want 0", got)
	}
	// Another node name: only a restart applies it.
	edgetest.WriteFile(t, e.config, strings.Replace(cfg, "node: edge-1", "node: edge-2", 1))
	edgetest.WaitFor(t, 5*time.Second, "restart needed", func() bool { return e.metric("edgeblock_config_restart_needed") == "1" })
	// Still following.
	publish(t, s, "a.example\nb.example\n", "second")
	edgetest.WaitFor(t, 2*time.Second, "b.example blocked", func() bool { return e.status("b.example") == 403 })
}

// TestFleetDivergentStoreInProcess: an edge whose store restarts empty
// keeps its list, reports the store divergent (metric, heartbeat), and
// its admin API refuses writes with 409 naming fleet reseed, publishing
// nothing; a reseed version is applied and counted as explicit.
func TestFleetDivergentStoreInProcess(t *testing.T) {
	parallelPlain(t)
	r := fleettest.Start(t)
	s := fleetStore(t, r)
	publish(t, s, "a.example\n", "first")
	v2 := publish(t, s, "a.example\nb.example\n", "second")
	e := startFleetAPIEnv(t, r.Addr())
	edgetest.WaitFor(t, 3*time.Second, "version 2 applied", func() bool { return e.metric("edgeblock_fleet_version_applied") == "2" })
	r.Stop()
	r.Start()
	edgetest.WaitFor(t, 5*time.Second, "divergent", func() bool { return e.metric("edgeblock_fleet_divergent") == "1" })
	for _, h := range []string{"a.example", "b.example"} {
		if c := e.status(h); c != 403 {
			t.Errorf("%s after the store restarted empty: %d, want 403", h, c)
		}
	}
	code, m := e.api(nil, "POST", "/v1/block", writeToken, `{"pattern":"c.example"}`)
	if code != 409 || !strings.Contains(fmt.Sprint(m["detail"]), "fleet reseed") {
		t.Errorf("block on a divergent store: %d %v, want 409 naming fleet reseed", code, m)
	}
	if n, _ := s.CurrentNumber(context.Background()); n != 0 {
		t.Errorf("the store holds version %d after a refused write, want 0", n)
	}
	nodes, err := s.Nodes(context.Background(), time.Minute)
	if err != nil || len(nodes) != 1 || nodes[0].Divergence == "" || nodes[0].Copy == "" {
		t.Fatalf("heartbeat %+v, %v; want the divergence and the copy named", nodes, err)
	}
	content, err := s.ReadCopy(context.Background(), v2.SHA256)
	if err != nil || string(content) != "a.example\nb.example\n" {
		t.Fatalf("the edge's copy: %q, %v", content, err)
	}
	if _, err := s.Commit(context.Background(), content, fleet.Meta{Actor: "ops"},
		fleet.Write{Expect: 0, Base: &fleet.Version{Number: 2, SHA256: v2.SHA256}, Kind: fleet.KindReseed, Floor: 2}); err != nil {
		t.Fatal(err)
	}
	edgetest.WaitFor(t, 3*time.Second, "the reseed applied", func() bool {
		return e.metric("edgeblock_fleet_version_applied") == "3" && e.metric("edgeblock_fleet_divergent") == "0"
	})
	if got := edgetest.MetricValue(e.scrape(), `edgeblock_fleet_explicit_applied_total{kind="reseed"}`); got != "1" {
		t.Errorf("explicit applies of kind reseed = %q, want 1", got)
	}
	if code, m := e.api(nil, "POST", "/v1/block", writeToken, `{"pattern":"c.example"}`); code != 200 || m["applied"] != true {
		t.Errorf("block after the reseed: %d %v", code, m)
	}
}
