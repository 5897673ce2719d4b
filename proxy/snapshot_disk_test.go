package proxy

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// smallDisk mounts a tmpfs of the given size on a new temp dir and
// unmounts it at the end of the test; it skips the test where mounting is
// not allowed (not root, no mount namespace rights).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a %s tmpfs (needs root): %v %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// TestSnapshotFullDisk: on a real full disk (a 64 KiB tmpfs), a snapshot
// write that fails is a metric (failures counted, stale 1) and the old
// snapshot is marked stale; a later start with a bad blocklist file is
// refused, naming the stale snapshot, instead of starting from the old
// list and lifting the blocks applied since.
func TestSnapshotFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	state := smallDisk(t, "64k")
	dir, config := stateFiles(t, numberedList(3))
	list := filepath.Join(dir, "blocklist.txt")
	b, err := reload.LoadBundleForStart(config, state, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	logs := &edgetest.LogBuffer{}
	srv, err := NewServer(NewLogger(logs, "json", -4), config, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(b); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	scrape := func(series string) string {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr("admin") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return edgetest.MetricValue(string(body), series)
	}
	if _, err := reload.ReadSnapshot(state); err != nil {
		t.Fatalf("snapshot at start: %v", err)
	}
	if got := scrape("edgeblock_snapshot_write_failures_total"); got != "0" {
		t.Errorf("failures at start = %q, want 0", got)
	}

	// A list too big for the disk: applied, its snapshot not written.
	big := numberedList(6000, "late-block.example")
	if len(big) < 64<<10 {
		t.Fatalf("list of %d bytes fits the disk", len(big))
	}
	edgetest.WriteFile(t, list, big)
	srv.Reloader().Reload("test")
	if !hasRule(srv.Reloader().Current().List, "late-block.example") {
		t.Fatal("the big list is not applied")
	}
	if got := scrape("edgeblock_snapshot_write_failures_total"); got == "0" || got == "" {
		t.Errorf("failures after a write on a full disk = %q, want > 0", got)
	}
	if got := scrape("edgeblock_snapshot_stale"); got != "1" {
		t.Errorf("snapshot_stale = %q, want 1", got)
	}
	if !strings.Contains(logs.String(), `"event":"snapshot","result":"failure"`) {
		t.Errorf("no snapshot failure line:\n%s", logs.String())
	}
	srv.Shutdown(context.Background())

	// A restart with a bad file: not from the stale snapshot, which
	// lacks late-block.example.
	edgetest.WriteFile(t, list, "bad.example status=999\n")
	b2, err := reload.LoadBundleForStart(config, state, time.Now())
	if err == nil {
		t.Fatalf("start with a bad file and a stale snapshot: started, with late-block.example blocked %v; want a refusal", hasRule(b2.List, "late-block.example"))
	}
	if !strings.Contains(err.Error(), "stale") {
		t.Errorf("refusal %q does not say the snapshot is stale", err)
	}
	if _, serr := os.Stat(filepath.Join(state, reload.SnapshotDir, "manifest.stale.json")); serr != nil {
		t.Errorf("stale manifest kept for inspection: %v", serr)
	}

	// Space again: the next write makes the snapshot current.
	edgetest.WriteFile(t, list, numberedList(3, "late-block.example"))
	runOnce(t, config, state, nil)
	snap, err := reload.ReadSnapshot(state)
	if err != nil || !strings.Contains(string(snap.Blocklist.Data), "late-block.example") {
		t.Fatalf("snapshot after a good write: %v", err)
	}
}

func hasRule(l interface {
	Lookup(string) (blocklist.Rule, bool)
}, pattern string) bool {
	_, ok := l.Lookup(pattern)
	return ok
}
