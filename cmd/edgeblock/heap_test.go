package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// writeBigList writes a blocklist of n rules, their names depending on
// version, so that each version replaces every rule of the last.
func writeBigList(t *testing.T, path string, n, version int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "#! allow-drop\nhot.example reason=\"version %d\"\n", version)
	for i := range n - 1 {
		fmt.Fprintf(w, "site%d-v%d.example\n", i, version)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// liveHeap returns the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestServeHeapAcrossReloads runs serve in this process with a 1,000,000
// rule list (200,000 under the race detector) and reloads it three
// times, each time with all rules replaced: the heap after GC must stay
// near one list's worth, not two (the start-up list kept alive beside the
// current one).
func TestServeHeapAcrossReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test (1,000,000 rules across reloads): runs in .ci/run")
	}
	rules := 1_000_000
	if raceEnabled {
		rules = 200_000
	}
	dir := t.TempDir()
	addr, admin := freeAddr(t), freeAddr(t)
	list := filepath.Join(dir, "blocklist.txt")
	writeBigList(t, list, rules, 0)
	os.WriteFile(filepath.Join(dir, "edgeblock.yaml"), []byte(fmt.Sprintf(
		"listen:\n  http: %s\n  admin: %s\ntimeouts:\n  drain: 0s\nblocklist:\n  file: blocklist.txt\n  watch: false\n  poll_interval: -1s\nroutes:\n  - host: \"*.example\"\n    origins: [\"http://127.0.0.1:9\"]\n",
		addr, admin)), 0o644)
	base := liveHeap()
	done := make(chan int)
	var stderr edgetest.LogBuffer
	go func() {
		done <- run([]string{"serve", "-config", filepath.Join(dir, "edgeblock.yaml"), "-state-dir", t.TempDir(), "-log-level", "debug"}, io.Discard, &stderr)
	}()
	// A reload is over once its snapshot is written, the last step.
	reloads := func() int { return strings.Count(stderr.String(), `"event":"snapshot","result":"success"`) }
	waitReloads := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for reloads() < n {
			if time.Now().After(deadline) {
				t.Fatalf("reload %d not applied within 60s:\n%s", n, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReloads(1) // the start writes one
	if code, _ := hostGet(addr, "hot.example", "/", ""); code != 403 {
		t.Fatalf("hot.example: %d, want 403", code)
	}
	one := liveHeap() - base
	var worst uint64
	for v := 1; v <= 3; v++ {
		writeBigList(t, list, rules, v)
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		waitReloads(1 + v)
		h := liveHeap() - base
		t.Logf("%d rules: live heap %.0f MiB after start, %.0f MiB after reload %d", rules, mib(one), mib(h), v)
		worst = max(worst, h)
	}
	if code, _ := hostGet(addr, "site7-v3.example", "/", ""); code != 403 {
		t.Errorf("the last list is not in effect: site7-v3.example got %d", code)
	}
	if worst > one+one/2 {
		t.Errorf("live heap after reloads %.0f MiB, over 1.5x the %.0f MiB after start: an old list is still reachable", mib(worst), mib(one))
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// metricOrEmpty returns a series' value from the admin listener's scrape,
// or "" while the listener does not answer.
func metricOrEmpty(admin, series string) string {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return edgetest.MetricValue(string(b), series)
}
