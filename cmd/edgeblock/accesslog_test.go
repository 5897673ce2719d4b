package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestAccessFileRotation runs the real binary with log.access_file: a
// request's line reaches the file within the flush interval; after a
// rename (what logrotate does) and SIGUSR1 the next lines go to a new
// file at the configured path; the line of the last request before SIGTERM
// is in the file after exit; and no access line goes to stderr.
func TestAccessFileRotation(t *testing.T) {
	bin := edgeblockBin(t)
	f := newEdgeFiles(t, "blocked.example\n")
	access := filepath.Join(f.dir, "access.log")
	cfg, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.config, append(cfg, []byte("log:\n  access_file: "+access+"\n")...), 0o644)
	p := startProc(t, bin, "serve", "-config", f.config, "-state-dir", "off")
	p.waitReady(f.admin)

	hostGet(f.http, "blocked.example", "/before-rotation", "")
	waitFileHas(t, access, "/before-rotation") // flushed within a second, no signal needed

	rotated := access + ".1"
	if err := os.Rename(access, rotated); err != nil {
		t.Fatal(err)
	}
	hostGet(f.http, "blocked.example", "/during-rotation", "") // still goes to the renamed file
	p.cmd.Process.Signal(syscall.SIGUSR1)
	// Reopened once the edge says so: the new file exists a moment
	// before the writer takes it, and a line queued in that moment
	// still goes to the old file (it did at load 10).
	edgetest.WaitFor(t, 30*time.Second, "the reopen logged", func() bool {
		return strings.Contains(p.stderr.String(), `"event":"access_log_reopen"`)
	})
	waitFileHas(t, access, "") // the file exists again
	hostGet(f.http, "blocked.example", "/after-rotation", "")
	p.stop() // the last line must be flushed at shutdown

	old, now := readFile(t, rotated), readFile(t, access)
	for _, c := range []struct {
		text, path string
		want       bool
	}{
		{old, "/before-rotation", true}, {old, "/during-rotation", true}, {old, "/after-rotation", false},
		{now, "/after-rotation", true}, {now, "/before-rotation", false},
	} {
		if got := strings.Contains(c.text, `"path":"`+c.path+`"`); got != c.want {
			t.Errorf("line of %s in the file: %v, want %v\nrotated:\n%s\nnew:\n%s", c.path, got, c.want, old, now)
		}
	}
	if strings.Contains(p.stderr.String(), `"msg":"request"`) {
		t.Errorf("access lines on stderr with log.access_file set:\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), `"event":"access_log_reopen"`) {
		t.Errorf("the reopen was not logged:\n%s", p.stderr.String())
	}
}

// waitFileHas waits up to 5 s for path to exist and contain s.
func waitFileHas(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not contain %q after 5s (err %v):\n%s", path, s, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
