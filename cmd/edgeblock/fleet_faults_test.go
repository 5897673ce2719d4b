package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
	"github.com/redis/go-redis/v9"
)

// faultFleet is one redis-server, three real edges and a CLI config, for
// the store fault tests.
type faultFleet struct {
	t     *testing.T
	bin   string
	r     *fleettest.Server
	store *fleet.Store
	cli   string
	dirs  []string
	edges []*fleetEdge
}

// startFaultFleet publishes seed as version 1 and starts three edges on it.
func startFaultFleet(t *testing.T, seed string, redisArgs ...string) *faultFleet {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a redis-server and three edges; skipped with -short")
	}
	f := &faultFleet{t: t, bin: edgeblockBin(t), r: fleettest.Start(t, redisArgs...)}
	f.store = fleet.NewStore(f.r.Client(), fleet.Config{})
	f.cli = fleetCLIConfig(t, f.r.Addr())
	t.Setenv("SUDO_USER", "alice")
	if _, err := f.store.Publish(context.Background(), []byte(seed), fleet.Meta{Actor: "test"}, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.dirs = append(f.dirs, t.TempDir())
		f.edges = append(f.edges, startFleetEdge(t, f.bin, f.r.Addr(), fmt.Sprintf("edge-%d", i), f.dirs[i]))
	}
	t.Cleanup(func() {
		for _, e := range f.edges {
			e.cmd.Process.Kill()
		}
	})
	// Ready is not yet beaten: wait for every edge's first heartbeat, so
	// that the writes count all three as live.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes, err := f.store.Nodes(context.Background(), fleet.LiveAfter)
		if err == nil && len(nodes) == len(f.edges) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeats of %d edges: %v, %v", len(f.edges), nodes, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f
}

// cmd runs the CLI and checks its exit code and that its output matches
// every regexp.
func (f *faultFleet) cmd(code int, res []string, args ...string) string {
	f.t.Helper()
	if args[0] == "fleet" {
		args = append([]string{"fleet", args[1], "-config", f.cli}, args[2:]...)
	} else {
		args = append([]string{args[0], "-config", f.cli}, args[1:]...)
	}
	got, out, errOut := runCmd(args...)
	all := out + errOut
	if got != code {
		f.t.Errorf("%v: exit %d, want %d\n%s", args, got, code, all)
	}
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(all) {
			f.t.Errorf("%v: output does not match %q:\n%s", args, re, all)
		}
	}
	return all
}

// blocking checks that every edge blocks every host.
func (f *faultFleet) blocking(what string, hosts ...string) {
	f.t.Helper()
	for _, e := range f.edges {
		for _, h := range hosts {
			if !e.blocks(h) {
				f.t.Errorf("%s: %s on %s is not blocked: a block was lifted", what, h, e.name)
			}
		}
	}
}

// waitAll waits until every edge exports series with value want.
func (f *faultFleet) waitAll(series, want string) {
	f.t.Helper()
	for _, e := range f.edges {
		waitMetric(f.t, e, series, want)
	}
}

// current is the store's newest version number.
func (f *faultFleet) current() int64 {
	f.t.Helper()
	n, err := f.store.CurrentNumber(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// TestFleetStoreRestoredFromOlderDump: Redis goes back to an older dump
// (SAVE, copy dump.rdb aside, more blocks, kill, put the old dump back,
// start): version numbers are reused with other content. No edge lifts a
// block, every edge says the store is divergent (metric), fleet status
// exits 1 naming it, writes are refused naming fleet reseed, a restarted
// edge stays on its own list, and after fleet reseed writes work again
// and every edge applies them.
func TestFleetStoreRestoredFromOlderDump(t *testing.T) {
	f := startFaultFleet(t, "seed.example\n")
	ctx := context.Background()
	f.cmd(0, []string{`added: a.example .*version 2`}, "block", "a.example")
	if err := f.r.Client().Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(f.r.Dir(), "dump.rdb")
	old, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	f.cmd(0, []string{`added: b.example .*version 3`}, "block", "b.example")
	f.cmd(0, []string{`added: c.example .*version 4`}, "block", "c.example")
	f.waitAll("edgeblock_fleet_version_applied", "4")
	f.blocking("before the restore", "a.example", "b.example", "c.example")

	f.r.Stop()
	if err := os.WriteFile(dump, old, 0o644); err != nil {
		t.Fatal(err)
	}
	f.r.Start()
	if n := f.current(); n != 2 {
		t.Fatalf("restored store at version %d, want 2", n)
	}
	f.waitAll("edgeblock_fleet_divergent", "1")
	f.blocking("after the restore", "a.example", "b.example", "c.example")
	f.cmd(1, []string{"STORE DIVERGENT", `edge-0: .*older than version 4 in effect.*older dump`, "fleet reseed"}, "fleet", "status")
	// Writes are refused: numbers 3 and 4 would be reused.
	f.cmd(1, []string{"divergent", "fleet reseed"}, "block", "d.example")
	f.cmd(1, []string{"divergent"}, "unblock", "a.example")
	if n := f.current(); n != 2 {
		t.Errorf("after refused writes the store is at version %d, want 2", n)
	}
	// A version written around the CLI (an old edgeblock) is not applied.
	if _, err := f.store.Publish(ctx, []byte("seed.example\na.example\nx.example\n"), fleet.Meta{Actor: "raw"}, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Publish(ctx, []byte("seed.example\nx.example\n"), fleet.Meta{Actor: "raw"}, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Publish(ctx, []byte("seed.example\nx.example\ny.example\n"), fleet.Meta{Actor: "raw"}, 4); err != nil {
		t.Fatal(err)
	}
	f.waitAll("edgeblock_fleet_version_latest", "5")
	time.Sleep(300 * time.Millisecond)
	f.blocking("after versions 3-5 were reused", "a.example", "b.example", "c.example")
	for _, e := range f.edges {
		if got := metric(t, e.admin, "edgeblock_fleet_version_applied"); got != "4" {
			t.Errorf("%s applied version %s, want 4 (its own; 5 does not descend from it)", e.name, got)
		}
	}
	// An edge restarted now starts on its own list, not the store's.
	f.edges[0].stop()
	f.edges[0] = startFleetEdge(t, f.bin, f.r.Addr(), "edge-0", f.dirs[0])
	f.blocking("edge-0 restarted on the divergent store", "a.example", "b.example", "c.example")
	waitMetric(t, f.edges[0], "edgeblock_fleet_divergent", "1")

	f.cmd(0, []string{`reseeded: version 6 from node edge-\d's list \(version 4\)`, "applied: by all 3 live edges",
		"version 5 has 2 rules the reseed does not carry over .*x.example y.example"}, "fleet", "reseed")
	f.waitAll("edgeblock_fleet_divergent", "0")
	f.blocking("after the reseed", "a.example", "b.example", "c.example")
	f.cmd(0, nil, "fleet", "status")
	f.cmd(1, []string{"not divergent: nothing to reseed"}, "fleet", "reseed")
	f.cmd(0, []string{`added: d.example .*version 7`, "applied: by all 3 live edges"}, "block", "d.example")
	f.blocking("after a block on the reseeded store", "d.example")
}

// TestFleetStoreRestartedEmpty: Redis restarts with no data. Edges keep
// their lists and say the store is divergent; block -fleet is refused
// (not "added (version 1)" with nobody applying it), naming fleet
// reseed; fleet status exits 1; after the reseed the block is applied.
func TestFleetStoreRestartedEmpty(t *testing.T) {
	f := startFaultFleet(t, "seed.example\n")
	f.cmd(0, []string{`added: a.example .*version 2`, "applied: by all 3 live edges"}, "block", "a.example")
	f.r.Stop()
	os.Remove(filepath.Join(f.r.Dir(), "dump.rdb"))
	f.r.Start()
	f.waitAll("edgeblock_fleet_divergent", "1")
	f.blocking("after the empty restart", "seed.example", "a.example")
	f.cmd(1, []string{"divergent", "holds no version", "fleet reseed"}, "block", "b.example")
	list := filepath.Join(t.TempDir(), "list.txt")
	edgetest.WriteFile(t, list, "seed.example\na.example\nb.example\n")
	f.cmd(1, []string{"divergent"}, "publish", list)
	if n := f.current(); n != 0 {
		t.Errorf("after refused writes the store is at version %d, want 0", n)
	}
	f.cmd(1, []string{"STORE DIVERGENT", "DIVERGENT"}, "fleet", "status")
	f.cmd(0, []string{`reseeded: version 3 `, "applied: by all 3 live edges"}, "fleet", "reseed")
	f.cmd(0, []string{`added: b.example .*version 4`, "applied: by all 3 live edges"}, "block", "b.example")
	f.blocking("after the reseed and a block", "seed.example", "a.example", "b.example")
}

// TestFleetBlockRightAfterEmptyRestart: a block written to a store that
// restarted empty before any edge has beaten again (the edges are stopped
// with SIGSTOP meanwhile) is not reported as done: the edges come back,
// refuse it as divergent, and the command says so and exits 3. No block
// is lifted; the reseed names the rule it does not carry over.
func TestFleetBlockRightAfterEmptyRestart(t *testing.T) {
	f := startFaultFleet(t, "seed.example\n")
	f.cmd(0, []string{`added: a.example .*version 2`, "applied: by all 3 live edges"}, "block", "a.example")
	for _, e := range f.edges {
		e.cmd.Process.Signal(syscall.SIGSTOP)
	}
	f.r.Stop()
	os.Remove(filepath.Join(f.r.Dir(), "dump.rdb"))
	f.r.Start()
	go func() {
		time.Sleep(500 * time.Millisecond)
		for _, e := range f.edges {
			e.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	f.cmd(exitNotApplied, []string{`added: b.example .*version 1`, "NOT APPLIED by 3 of 3 live edges", "divergent: .*lost versions"}, "block", "-wait", "15s", "b.example")
	f.waitAll("edgeblock_fleet_divergent", "1")
	f.blocking("after the write on the emptied store", "seed.example", "a.example")
	f.cmd(1, []string{"STORE DIVERGENT"}, "fleet", "status")
	f.cmd(0, []string{`reseeded: version 3 `, `version 1 has \d+ rules the reseed does not carry over .*b.example`, "applied: by all 3 live edges"}, "fleet", "reseed")
	f.blocking("after the reseed", "seed.example", "a.example")
}

// TestFleetCorruptAndInvalidVersion: versions written around the CLI
// that cannot be trusted: the content of the version the edges run
// corrupted in the store, a new version whose content does not match its
// SHA-256, and one that fails validation. None locks writers out: the
// next write builds on the copy an edge saved, or on the last good
// version, and says so; history marks the bad ones; no edge applies them
// or lifts a block, and every edge applies the next good version.
func TestFleetCorruptAndInvalidVersion(t *testing.T) {
	f := startFaultFleet(t, "seed.example\n")
	ctx := context.Background()
	raw := f.r.Client()
	// Version 2, applied by the edges, then corrupted in the store.
	f.cmd(0, []string{`added: c.example .*version 2`, "applied: by all 3 live edges"}, "block", "c.example")
	if err := raw.HSet(ctx, "edgeblock:list:v:2", "content", "other.example\n").Err(); err != nil {
		t.Fatal(err)
	}
	f.cmd(0, []string{`added: a.example .*version 3`, "version 2's content in the store is corrupt; built on the copy an edge running it saved", "applied: by all 3 live edges"}, "block", "a.example")
	f.blocking("after corrupting the version in effect", "seed.example", "c.example", "a.example")

	// Version 4, new and corrupt: never applied by an edge.
	if err := raw.HSet(ctx, "edgeblock:list:v:4", "content", "seed.example\n", "sha256", strings.Repeat("0", 64), "version", 4,
		"actor", "raw", "comment", "", "time", "0", "parent", "", "parent_version", "3", "kind", "edit").Err(); err != nil {
		t.Fatal(err)
	}
	raw.ZAdd(ctx, "edgeblock:list:versions", redis.Z{Score: 4, Member: "4"})
	raw.Set(ctx, "edgeblock:list:version", 4, 0)
	raw.Publish(ctx, "edgeblock:list:notify", "4")
	f.waitAll("edgeblock_fleet_version_latest", "4")
	f.cmd(1, []string{"bad version 4: .*does not match its sha256", "BEHIND"}, "fleet", "status")
	f.cmd(0, []string{`(?s)version 4 .*\n  BAD: .*content hashes to.*version 3 `}, "history")
	f.cmd(0, []string{`added: b.example .*version 5`, "version 4 skipped .*sha256.*built on version 3", "applied: by all 3 live edges"}, "block", "b.example")
	f.blocking("after the corrupt version", "seed.example", "c.example", "a.example", "b.example")

	// Version 6, invalid: edges refuse it.
	if _, err := f.store.Publish(ctx, []byte("seed.example\nbad.example status=999\n"), fleet.Meta{Actor: "raw"}, 5); err != nil {
		t.Fatal(err)
	}
	f.waitAll("edgeblock_fleet_version_latest", "6")
	f.cmd(1, []string{"bad version 6: .*fails validation", "BEHIND"}, "fleet", "status")
	f.cmd(0, []string{`added: d.example .*version 7`, "version 6 skipped .*fails validation", "applied: by all 3 live edges"}, "block", "d.example")
	f.cmd(0, []string{`removed: a.example \(version 8`, "applied: by all 3 live edges"}, "unblock", "a.example")
	f.cmd(0, []string{`(?s)version 7 .*\(builds on version 5\)\n  \+ d.example.*version 6 .*\n  fails validation \(edges refuse it\)`}, "history", "-n", "0")
	f.cmd(0, []string{"published: version 9 with the content of version 7"}, "rollback", "7")
	f.blocking("after the writes", "seed.example", "c.example", "a.example", "b.example", "d.example")
	f.cmd(0, nil, "fleet", "status")
}

// TestFleetTwoPublishers: two operators pulled the same version and each
// publishes their edit at the same moment: exactly one wins; the other
// is refused with a non-zero exit naming the rule its list would remove.
// With -force it replaces, and says what it removes.
func TestFleetTwoPublishers(t *testing.T) {
	f := startFaultFleet(t, "seed.example\n")
	dir := t.TempDir()
	for round := range 3 {
		base := f.current()
		cur, err := f.store.Get(context.Background(), base)
		if err != nil {
			t.Fatal(err)
		}
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for _, who := range []string{"ann", "bob"} {
			file := filepath.Join(dir, fmt.Sprintf("%s-%d.txt", who, round))
			edgetest.WriteFile(t, file, string(cur.Content)+fmt.Sprintf("%s-%d.example\n", who, round))
			c := exec.Command(f.bin, "publish", "-config", f.cli, file)
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			cmds, outs = append(cmds, c), append(outs, &out)
		}
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		won := 0
		for i, c := range cmds {
			err := c.Wait()
			switch {
			case err == nil && strings.Contains(outs[i].String(), "published: version"):
				won++
			case err != nil && c.ProcessState.ExitCode() == 1 && regexp.MustCompile(`not published: .*removes 1 rules: (ann|bob)-\d\.example`).MatchString(outs[i].String()):
			default:
				t.Errorf("round %d publisher %d: %v\n%s", round, i, err, outs[i])
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d publishers won, want exactly 1\n%s\n%s", round, won, outs[0], outs[1])
		}
		if n := f.current(); n != base+1 {
			t.Errorf("round %d: version %d, want %d (one new version)", round, n, base+1)
		}
	}
	// -base names the version started from: another one newest is refused.
	cur, err := f.store.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(cur.Content), "\n"), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	file := filepath.Join(dir, "late.txt")
	edgetest.WriteFile(t, file, strings.Join(lines[:len(lines)-1], "")+"late.example\n")
	f.cmd(1, []string{`you started from version 1, but version 4 is the newest`, "-force"}, "publish", "-base", "1", file)
	f.cmd(1, []string{`removes 1 rules: ` + regexp.QuoteMeta(last)}, "publish", file)
	f.cmd(0, []string{`published: version 5`, `replaced version 4; the replacement removes 1 rules: ` + regexp.QuoteMeta(last), "applied: by all 3 live edges"}, "publish", "-force", file)
	f.cmd(0, []string{`(?s)version 5 .* force`}, "history", "-n", "1")
}

// TestFleetWriteWithNoEdgeBack: every write is applied or refused, also
// when no edge reports within -wait. Redis restarts empty and the edges
// stay away (SIGSTOP) for longer than the write waits: the store knows no
// edge, but this machine's earlier write saw three, so the block on the
// emptied store is NOT APPLIED (exit 3, naming them) rather than "done".
// Edges the store knows but that are silent make a write NOT APPLIED too;
// a fleet that never had an edge takes a write with exit 0.
func TestFleetWriteWithNoEdgeBack(t *testing.T) {
	f := startFaultFleet(t, "seed.example\n")
	f.cmd(0, []string{`added: a.example .*version 2`, "applied: by all 3 live edges"}, "block", "a.example")
	for _, e := range f.edges {
		e.cmd.Process.Signal(syscall.SIGSTOP)
	}
	t.Cleanup(func() {
		for _, e := range f.edges {
			e.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	f.r.Stop()
	os.Remove(filepath.Join(f.r.Dir(), "dump.rdb"))
	f.r.Start()
	f.cmd(exitNotApplied, []string{`added: b.example .*version 1`, "NOT APPLIED: no live edge applied it: the store knows no edge, but edge-0, edge-1, edge-2 \\(3 edges\\)",
		"fleet reseed"}, "block", "-wait", "1s", "b.example")
	for _, e := range f.edges {
		e.cmd.Process.Signal(syscall.SIGCONT)
	}
	f.waitAll("edgeblock_fleet_divergent", "1")
	f.blocking("after the write no edge was back for", "seed.example", "a.example")
	f.cmd(0, []string{`reseeded: version 3 `, "applied: by all 3 live edges"}, "fleet", "reseed")

	// Known to the store, silent: their heartbeats made older than
	// fleet.LiveAfter (and the edges stopped, so they stay old).
	for _, e := range f.edges {
		e.cmd.Process.Signal(syscall.SIGSTOP)
	}
	raw := f.r.Client()
	old := time.Now().Add(-time.Hour).UnixMicro()
	for _, e := range f.edges {
		if err := raw.HSet(context.Background(), "edgeblock:nodes:time", e.name, old).Err(); err != nil {
			t.Fatal(err)
		}
	}
	f.cmd(exitNotApplied, []string{`added: c.example .*version 4`, `NOT APPLIED: no live edge applied it: none of the 3 edges the store knows \(edge-0, edge-1, edge-2\)`},
		"block", "-wait", "1s", "c.example")
	for _, e := range f.edges {
		e.cmd.Process.Signal(syscall.SIGCONT)
	}
	f.waitAll("edgeblock_fleet_version_applied", "4")
	f.blocking("after the edges came back", "seed.example", "a.example", "c.example")

	// A fleet that never had an edge (another Redis, another cache).
	r := fleettest.Start(t)
	cli := fleetCLIConfig(t, r.Addr())
	code, out, errOut := runCmd("block", "-config", cli, "-wait", "1s", "d.example")
	if code != 0 || !strings.Contains(out, "applied: by no edge: no edge has ever reported to this store") {
		t.Errorf("block on a fleet with no edge ever: exit %d, want 0 and 'no edge has ever reported':\n%s%s", code, out, errOut)
	}
}
