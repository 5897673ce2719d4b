package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// TestFleetScale is TestFleetPropagation with a 1,000,000-rule list: five
// real edges, a one-rule `edgeblock block -fleet` (the binary, as an
// operator runs it) measured from its start to the block page on every
// edge and to its own return; then 100 more one-rule edits, after which
// it reports Redis's used_memory and each edge's RSS and Go heap. Heavy:
// it runs with EDGEBLOCK_SCALE=1, without -short and -race (.ci/run runs
// it once):
//
//	EDGEBLOCK_SCALE=1 go test -count=1 -run TestFleetScale -v ./cmd/edgeblock
func TestFleetScale(t *testing.T) {
	if testing.Short() || raceEnabled || os.Getenv("EDGEBLOCK_SCALE") == "" {
		t.Skip("1M-rule list and five edges: set EDGEBLOCK_SCALE=1, without -short and -race")
	}
	const rules = 1_000_000
	bin := edgeblockBin(t)
	r := fleettest.Start(t)
	cli := fleetCLIConfig(t, r.Addr())
	t.Setenv("SUDO_USER", "alice")
	list := filepath.Join(t.TempDir(), "list.txt")
	f, err := os.Create(list)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range rules {
		fmt.Fprintf(w, "h%07d.example\n", i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command(bin, "publish", "-config", cli, "-wait", "0s", list).CombinedOutput(); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	ctx := context.Background()
	one := redisUsedMemory(t, r)

	// The command alone (the binary, not waiting for edges), before any
	// edge runs: the time it takes to read the head, edit and write.
	var alone []time.Duration
	for i := range 5 {
		start := time.Now()
		out, err := exec.Command(bin, "block", "-fleet", "-config", cli, "-wait", "0s", fmt.Sprintf("alone%d.example", i)).CombinedOutput()
		alone = append(alone, time.Since(start))
		if !strings.Contains(string(out), "added: ") {
			t.Fatalf("block -fleet: %v\n%s", err, out)
		}
	}
	t.Logf("%d rules, block -fleet -wait 0s with no edge running (process start to exit): p50 %v, max %v",
		rules, percentile(alone, 0.5), percentile(alone, 1))

	const n = 5
	edges := make([]*fleetEdge, n)
	for i := range edges {
		// A command timeout that covers reading the 34 MB snapshot at
		// start on a loaded machine.
		edges[i] = launchFleetEdgeTimeout(t, bin, r.Addr(), fmt.Sprintf("edge-%d", i), t.TempDir(), "10s")
	}
	for _, e := range edges {
		deadline := time.Now().Add(3 * time.Minute)
		for strings.Count(e.stderr.String(), `"msg":"listening"`) < 2 {
			select {
			case <-e.done:
				t.Fatalf("%s exited %d:\n%s", e.name, e.code, e.stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not listening after 3 minutes:\n%s", e.name, e.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		e.ready()
		if !e.blocks("h0000001.example") {
			t.Fatalf("%s does not block a published rule", e.name)
		}
	}

	var returns, all []time.Duration
	for round := range 10 {
		host := fmt.Sprintf("scale%d.example", round)
		all = append(all, timeToBlock(t, edges, host, time.Now(), scaleLimit, func() {
			start := time.Now()
			out, err := exec.Command(bin, "block", "-fleet", "-config", cli, host, "-comment", "scale").CombinedOutput()
			returns = append(returns, time.Since(start))
			if err != nil || !strings.Contains(string(out), "applied: by all") {
				t.Errorf("block -fleet %s: %v\n%s", host, err, out)
			}
		})...)
	}
	t.Logf("%d rules, %d edges x %d one-rule edits, block -fleet start to block page: p50 %v, p99 %v, max %v",
		rules, n, len(all)/n, percentile(all, 0.5), percentile(all, 0.99), percentile(all, 1))
	t.Logf("block -fleet returned (after every edge reported it applied): p50 %v, p99 %v, max %v",
		percentile(returns, 0.5), percentile(returns, 0.99), percentile(returns, 1))

	// 100 more one-rule edits, as fast as the CLI makes them.
	start := time.Now()
	for i := range 100 {
		// Exit 3: published, and not waited for (-wait 0s).
		if code, out, errOut := runCmd("block", "-fleet", "-config", cli, "-wait", "0s", fmt.Sprintf("more%d.example", i)); (code != 0 && code != exitNotApplied) || !strings.Contains(out, "added: ") {
			t.Fatalf("block -fleet: exit %d\n%s%s", code, out, errOut)
		}
	}
	t.Logf("100 one-rule edits (in-process CLI, -wait 0s): %v each", time.Since(start)/100)
	for _, e := range edges {
		deadline := time.Now().Add(30 * time.Second)
		for !e.blocks("more99.example") {
			if time.Now().After(deadline) {
				t.Fatalf("%s has not applied the last edit within 30s", e.name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	used := redisUsedMemory(t, r)
	t.Logf("Redis used_memory: %d MB with the list published once, %d MB after %d more one-rule edits (%.1fx)",
		one>>20, used>>20, 115, float64(used)/float64(one))
	memory := func(when string) {
		for _, e := range edges {
			heap, _ := strconv.ParseFloat(metric(t, e.admin, "go_memstats_heap_inuse_bytes"), 64)
			rss, _ := strconv.ParseFloat(metric(t, e.admin, "process_resident_memory_bytes"), 64)
			t.Logf("%s %s: RSS %.0f MB, Go heap in use %.0f MB", e.name, when, rss/(1<<20), heap/(1<<20))
		}
	}
	memory("right after the edits")
	time.Sleep(3 * time.Second) // an edge returns the free heap to the OS a second after the applies pause
	memory("3 s later")
	if limit := 8 * one; used > limit {
		t.Errorf("Redis used_memory %d MB after 115 one-rule edits; want a small multiple of one list (at most %d MB)", used>>20, limit>>20)
	}
	_ = ctx
}

// scaleLimit bounds, in TestFleetScale, the time from `block -fleet` to
// the block page on each edge. The goal is 1 s at p99 (the test logs the
// figures); the bound leaves room for a CI machine shared with other
// jobs, on which five edges and the CLI share two cores.
const scaleLimit = 5 * time.Second

// redisUsedMemory returns used_memory from INFO memory, in bytes.
func redisUsedMemory(t *testing.T, r *fleettest.Server) int64 {
	t.Helper()
	info, err := r.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}
