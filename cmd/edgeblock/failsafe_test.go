package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// edgeProc is a running edgeblock process.
type edgeProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *edgetest.LogBuffer
	done   chan struct{}
	code   int
}

// startProc runs the binary with args.
func startProc(t *testing.T, bin string, args ...string) *edgeProc {
	t.Helper()
	p := &edgeProc{t: t, cmd: exec.Command(bin, args...), stderr: &edgetest.LogBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(os.Environ(), "EDGEBLOCK_STATE_DIR=", "STATE_DIRECTORY=")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns the exit code once the process has exited.
func (p *edgeProc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(15 * time.Second):
		p.t.Fatalf("edgeblock did not exit:\n%s", p.stderr.String())
		return 0
	}
}

// stop sends SIGTERM and checks the exit code is 0.
func (p *edgeProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		p.t.Errorf("exit %d after SIGTERM:\n%s", code, p.stderr.String())
	}
}

// waitReady waits for /readyz on the admin address to answer 200.
func (p *edgeProc) waitReady(admin string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("edgeblock exited %d:\n%s", p.code, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("not ready:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// edgeFiles writes a config and a blocklist on free loopback ports.
type edgeFiles struct {
	dir, config, list, http, admin string
}

func newEdgeFiles(t *testing.T, list string) edgeFiles {
	t.Helper()
	dir := t.TempDir()
	f := edgeFiles{dir: dir, config: filepath.Join(dir, "edgeblock.yaml"), list: filepath.Join(dir, "blocklist.txt"),
		http: freeAddr(t), admin: freeAddr(t)}
	os.WriteFile(f.config, []byte(fmt.Sprintf("listen:\n  http: %s\n  admin: %s\ntimeouts:\n  drain: 0s\nblocklist:\n  file: blocklist.txt\n  debounce: 10ms\nroutes:\n  - host: \"*.example\"\n    origins: [\"http://127.0.0.1:9\"]\n",
		f.http, f.admin)), 0o644)
	os.WriteFile(f.list, []byte(list), 0o644)
	return f
}

// metric returns a series' value from the admin listener's scrape.
func metric(t *testing.T, admin, series string) string {
	t.Helper()
	return edgetest.MetricValue(edgetest.Scrape(t, "http://"+admin+"/metrics"), series)
}

// TestServeStartsFromSnapshot runs the real binary: started once with good
// files, stopped, restarted with a bad or missing file, it serves the
// snapshot's blocks and is ready; with no snapshot it refuses to start.
func TestServeStartsFromSnapshot(t *testing.T) {
	bin := edgeblockBin(t)
	tests := []struct {
		name    string
		break_  func(f edgeFiles)
		problem string
	}{
		{"corrupt list", func(f edgeFiles) { os.WriteFile(f.list, []byte("blocked.example\nbad..example\n"), 0o644) }, "blocklist.txt:2: "},
		{"deleted list", func(f edgeFiles) { os.Remove(f.list) }, "blocklist.txt: no such file"},
		{"empty list", func(f edgeFiles) { os.WriteFile(f.list, nil, 0o644) }, "would drop 2 of 2 block rules"},
		{"corrupt config", func(f edgeFiles) {
			b, _ := os.ReadFile(f.config)
			os.WriteFile(f.config, append(b, "blocklist_typo: 1\n"...), 0o644)
		}, "blocklist_typo: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEdgeFiles(t, "blocked.example\nother.example\n")
			state := t.TempDir()
			p := startProc(t, bin, "serve", "-config", f.config, "-state-dir", state)
			p.waitReady(f.admin)
			p.stop()
			if _, err := os.Stat(filepath.Join(state, "snapshot", "manifest.json")); err != nil {
				t.Fatalf("no snapshot after a good start: %v", err)
			}
			tt.break_(f)

			p = startProc(t, bin, "serve", "-config", f.config, "-state-dir", state)
			p.waitReady(f.admin)
			if code, body := hostGet(f.http, "www.blocked.example", "/", "text/plain"); code != 403 {
				t.Errorf("blocked host from the snapshot: %d %s", code, body)
			}
			if v := metric(t, f.admin, "edgeblock_running_from_snapshot"); v != "1" {
				t.Errorf("edgeblock_running_from_snapshot = %q", v)
			}
			logs := p.stderr.String()
			if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, `"event":"start_from_snapshot"`) || !strings.Contains(logs, tt.problem) {
				t.Errorf("no start_from_snapshot error naming %q:\n%s", tt.problem, logs)
			}
			p.stop()

			// No snapshot: the bad file still stops the start (an empty
			// list is a good file then: there is nothing to drop).
			p = startProc(t, bin, "serve", "-config", f.config, "-state-dir", t.TempDir())
			if tt.name == "empty list" {
				p.waitReady(f.admin)
				p.stop()
				return
			}
			if code := p.wait(); code != 1 || !strings.Contains(p.stderr.String(), tt.problem) ||
				!strings.Contains(p.stderr.String(), "no snapshot to start from") || !strings.Contains(p.stderr.String(), "not started") {
				t.Errorf("with no snapshot: exit %d\n%s", code, p.stderr.String())
			}
		})
	}
}

// TestCheckAndExplainAskTheRunningEdge runs the real binary and checks a
// file against what it runs: the drop, the diff, the live explanation;
// then, the edge stopped, against the snapshot and the files.
func TestCheckAndExplainAskTheRunningEdge(t *testing.T) {
	bin := edgeblockBin(t)
	var rules strings.Builder
	for i := range 10 {
		fmt.Fprintf(&rules, "r%d.example\n", i)
	}
	f := newEdgeFiles(t, rules.String())
	state := t.TempDir()
	p := startProc(t, bin, "serve", "-config", f.config, "-state-dir", state)
	p.waitReady(f.admin)
	running := "the running edge at " + f.admin

	// 6 of 10 rules dropped, one changed, one added.
	os.WriteFile(f.list, []byte("r0.example status=451 reason=\"Court order\"\nr1.example\nr2.example\nr3.example\nnew.example\n"), 0o644)
	code, out, errOut := runCmd("check", "-config", f.config, "-state-dir", state)
	if code != 1 || !strings.Contains(out, "check: would drop 6 of 10 block rules (60% > max_drop 50%) against "+running+`: not applied by the running edge unless the file has "#! allow-drop"`) {
		t.Errorf("check: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCmd("check", "-config", f.config, "-diff", "-state-dir", state)
	for _, want := range []string{"diff against " + running, "+ new.example\n", "- r4.example\n", "- r9.example\n",
		"~ r0.example: reason (none)→Court order, status 403→451\n", "1 added, 6 removed, 1 changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("check -diff lacks %q:\n%s", want, out)
		}
	}
	// The running edge refused the file, so it still blocks r9: explain
	// says so from the live state, and the files say otherwise.
	waitFor := time.Now().Add(5 * time.Second)
	for metric(t, f.admin, `edgeblock_blocklist_reloads_total{result="refused"}`) == "0" && time.Now().Before(waitFor) {
		time.Sleep(20 * time.Millisecond)
	}
	code, out, errOut = runCmd("explain", "-config", f.config, "r9.example")
	if code != 0 || !strings.Contains(out, "source: "+running) || !strings.Contains(out, "rule: r9.example at "+f.list+":10") || !strings.Contains(out, "visitor gets: 403 block page") {
		t.Errorf("explain from the running edge: exit %d\n%s%s", code, out, errOut)
	}
	p.stop()

	code, out, _ = runCmd("explain", "-config", f.config, "r9.example")
	if code != 0 || !strings.Contains(out, "source: the files (no running edge answered at "+f.admin) || !strings.Contains(out, "rule: none") {
		t.Errorf("explain from the files:\n%s", out)
	}
	code, out, _ = runCmd("check", "-config", f.config, "-state-dir", state)
	if code != 1 || !strings.Contains(out, "would drop 6 of 10 block rules") || !strings.Contains(out, "against the snapshot in "+state) {
		t.Errorf("check against the snapshot: exit %d\n%s", code, out)
	}
	other := newEdgeFiles(t, rules.String())
	code, out, _ = runCmd("check", "-config", other.config, "-state-dir", state)
	if code != 0 || !strings.Contains(out, "is of another config, "+f.config) {
		t.Errorf("check of another config against this snapshot: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd("check", "-config", f.config, "-state-dir", "off")
	if code != 0 || !strings.Contains(out, "check: no running list to compare with") {
		t.Errorf("check with nothing to compare: exit %d\n%s", code, out)
	}
	// With the marker the same file passes.
	b, _ := os.ReadFile(f.list)
	os.WriteFile(f.list, append([]byte("#! allow-drop\n"), b...), 0o644)
	if code, out, _ = runCmd("check", "-config", f.config, "-state-dir", state); code != 0 {
		t.Errorf("check with the marker: exit %d\n%s", code, out)
	}
}

// TestResolveStateDir checks where snapshots go: the flag, then the
// environment, then systemd's directory; with none of them, nowhere —
// never the working directory.
func TestResolveStateDir(t *testing.T) {
	if fi, err := os.Stat("/var/lib/edgeblock"); err == nil && fi.IsDir() {
		t.Skip("/var/lib/edgeblock exists on this machine and would be the default")
	}
	tests := []struct {
		flag, env, systemd, want string
	}{
		{"", "", "", ""},
		{"off", "/env", "", ""},
		{"/flag", "/env", "/sd", "/flag"},
		{"", "/env", "/sd", "/env"},
		{"", "", "/sd:/other", "/sd"},
		{"", "off", "/sd", ""},
	}
	for _, tt := range tests {
		t.Setenv("EDGEBLOCK_STATE_DIR", tt.env)
		t.Setenv("STATE_DIRECTORY", tt.systemd)
		if got := resolveStateDir(tt.flag); got != tt.want {
			t.Errorf("resolveStateDir(%q) with EDGEBLOCK_STATE_DIR=%q STATE_DIRECTORY=%q = %q, want %q", tt.flag, tt.env, tt.systemd, got, tt.want)
		}
	}
}
