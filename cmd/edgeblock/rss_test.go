package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestEdgeRSSAfterEdits runs a real edge (the built binary, in its own
// process) on a 1,000,000-rule list, makes 20 one-rule edits with the
// real block command, and requires the edge's RSS, once the edits have
// paused, to be at most 1.5 times its heap in use: the garbage of
// applying a large list is returned to the OS (proxy/reload/memory.go),
// not kept at twice the live heap.
func TestEdgeRSSAfterEdits(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test (a real edge with 1,000,000 rules): runs in .ci/run")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc for the edge's RSS")
	}
	bin := edgeblockBin(t)
	dir := t.TempDir()
	addr, admin := freeAddr(t), freeAddr(t)
	list := filepath.Join(dir, "blocklist.txt")
	writeBigList(t, list, 1_000_000, 0)
	cfg := filepath.Join(dir, "edgeblock.yaml")
	edgetest.WriteFile(t, cfg, fmt.Sprintf("listen:\n  http: %s\n  admin: %s\nblocklist:\n  file: blocklist.txt\nroutes:\n  - host: \"*.example\"\n    origins: [\"http://127.0.0.1:9\"]\n", addr, admin))
	edge := exec.Command(bin, "serve", "-config", cfg)
	var log edgetest.LogBuffer
	edge.Stdout, edge.Stderr = &log, &log
	if err := edge.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { edge.Process.Kill(); edge.Wait() })
	deadline := time.Now().Add(120 * time.Second)
	for code, _ := hostGet(addr, "hot.example", "/", ""); code != 403; code, _ = hostGet(addr, "hot.example", "/", "") {
		if time.Now().After(deadline) {
			t.Fatalf("the edge does not block hot.example after 120s:\n%s", log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// measure returns the edge's RSS, its live heap as of its last
	// collection (the heap goal the collection set, less the GOGC share:
	// reading it collects nothing) and the time of that collection.
	measure := func() (rss, live float64, lastGC time.Time) {
		t.Helper()
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", edge.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				rss = kb / 1024
			}
		}
		m := func(series string) float64 {
			v, err := strconv.ParseFloat(metricOrEmpty(admin, series), 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return v
		}
		live = m("go_memstats_next_gc_bytes") / (1 + m("go_gc_gogc_percent")/100) / (1 << 20)
		return rss, live, time.Unix(0, int64(m("go_memstats_last_gc_time_seconds")*1e9))
	}
	rss, live, _ := measure()
	t.Logf("after the load: RSS %.0f MiB, live heap %.0f MiB", rss, live)
	for i := range 20 {
		out, err := exec.Command(bin, "block", "-config", cfg, fmt.Sprintf("new%d.example", i), "-comment", "rss").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "applied: true") {
			t.Fatalf("block %d: %v\n%s", i, err, out)
		}
	}
	edited := time.Now()
	rss, live, _ = measure()
	t.Logf("right after 20 edits: RSS %.0f MiB, live heap %.0f MiB", rss, live)
	// The release follows a pause in the applies (a second) and collects
	// the whole heap first: on a loaded machine, some seconds. Without
	// it, an idle edge collects no more and keeps its RSS.
	for {
		time.Sleep(250 * time.Millisecond)
		var gc time.Time
		rss, live, gc = measure()
		if gc.After(edited) && rss <= 1.5*live {
			break
		}
		if time.Since(edited) > 60*time.Second {
			t.Fatalf("60s after the edits the edge's RSS is %.0f MiB, %.2f times its live heap (%.0f MiB, at a collection %v after the edits): want at most 1.5", rss, rss/live, live, gc.Sub(edited).Round(time.Millisecond))
		}
	}
	t.Logf("%v after the edits: RSS %.0f MiB, live heap %.0f MiB (%.2fx)", time.Since(edited).Round(time.Millisecond), rss, live, rss/live)
	if code, _ := hostGet(addr, "new19.example", "/", ""); code != 403 {
		t.Errorf("new19.example: %d, want 403", code)
	}
}
