package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// fleetCLIConfig writes a config in fleet mode against the Redis at addr,
// with blocklist.file pulled.txt, and returns its path.
func fleetCLIConfig(t *testing.T, addr string) string {
	t.Helper()
	// The CLI remembers a fleet's edges (knownEdgesFile) under the cache
	// directory: one per test, so that no test sees another's edges.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edgeblock.yaml")
	edgetest.WriteFile(t, cfg, fmt.Sprintf("listen:\n  http: 127.0.0.1:0\nblocklist:\n  source: fleet\n  file: pulled.txt\nfleet:\n  redis:\n    addr: %s\n  node: cli\n"+
		"routes:\n  - host: app.example\n    origins: [\"http://127.0.0.1:9\"]\n", addr))
	return cfg
}

// TestFleetCommands runs the fleet commands as an operator would, one step
// after another on one Redis: each step's exit code and output, and the
// published versions.
func TestFleetCommands(t *testing.T) {
	r := fleettest.Start(t)
	store := fleet.NewStore(r.Client(), fleet.Config{})
	cfg := fleetCLIConfig(t, r.Addr())
	dir := filepath.Dir(cfg)
	t.Setenv("SUDO_USER", "alice")
	files := map[string]string{
		"bad.txt":      "a.example\nb.example status=999\n",
		"good.txt":     "a.example\nb.example reason=\"Court order\"\n",
		"drop.txt":     "d.example\n",
		"nofleet.yaml": "listen:\n  http: 127.0.0.1:0\nblocklist:\n  file: good.txt\nroutes:\n  - host: app.example\n    origins: [\"http://127.0.0.1:9\"]\n",
	}
	for name, text := range files {
		edgetest.WriteFile(t, filepath.Join(dir, name), text)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	steps := []struct {
		args    []string
		code    int
		out     []string // regexps on stdout+stderr
		version int64    // the current version afterwards
	}{
		{args: []string{"history", "-config", cfg}, out: []string{"no version published yet"}},
		{args: []string{"publish", "-config", cfg, p("bad.txt")}, code: 1,
			out: []string{regexp.QuoteMeta(p("bad.txt")) + `:2: .*status="999": want 403 or 451`, "not published"}},
		{args: []string{"publish", "-config", cfg, "-comment", "initial", p("good.txt")},
			out: []string{`published: version 1 \(sha256 [0-9a-f]{64}, 2 rules\)`}, version: 1},
		{args: []string{"publish", "-config", cfg, p("good.txt")},
			out: []string{"unchanged: version 1 already has this content"}, version: 1},
		{args: []string{"block", "-fleet", "-config", cfg, "c.example", "reason=x", "-comment", "T-1"},
			out: []string{`added: c.example reason=x \(version 2, line 4\)`, "note: #@ .* by alice: T-1"}, version: 2},
		// blocklist.source fleet implies -fleet.
		{args: []string{"block", "-config", cfg, "c.example", "status=451"},
			out: []string{`changed: c.example \(version 3`, "status: 403→451"}, version: 3},
		{args: []string{"block", "-config", cfg, "c.example", "status=451"},
			out: []string{`unchanged: c.example reason=x status=451 \(version 3`}, version: 3},
		{args: []string{"unblock", "-config", cfg, "-comment", "false positive", "a.example"},
			out: []string{`removed: a.example \(version 4; was line 1\)`, "unblocked a.example: false positive"}, version: 4},
		{args: []string{"unblock", "-config", cfg, "nothing.example"}, code: 1,
			out: []string{"no rule applies to it"}, version: 4},
		{args: []string{"publish", "-config", cfg, p("drop.txt")}, code: 1,
			out: []string{"would drop 2 of 2 block rules of version 4 \\(all of them\\)", "#! allow-drop"}, version: 4},
		{args: []string{"history", "-config", cfg, "-n", "3"},
			out: []string{`(?s)version 4  \S+  by alice  sha256 [0-9a-f]{12}  "false positive"\n  - a.example  \(\S+ by alice: false positive\)\n` +
				`version 3 .*\n  ~ c.example: status 403→451  \(\S+ by alice\)\n` +
				`version 2 .*"T-1"\n  \+ c.example reason=x  \(\S+ by alice: T-1\)\n\z`}, version: 4},
		{args: []string{"history", "-config", cfg, "-n", "0"},
			out: []string{`(?s)version 1 .*"initial"\n  \+ a.example\n  \+ b.example reason="Court order"\n\z`}, version: 4},
		{args: []string{"rollback", "-config", cfg, "-comment", "undo", "1"},
			out: []string{`published: version 5 with the content of version 1 \(sha256 [0-9a-f]{64}, 2 rules\)`}, version: 5},
		{args: []string{"rollback", "-config", cfg, "9"}, code: 1, out: []string{"version 9: fleet: version not found"}, version: 5},
		{args: []string{"pull", "-config", cfg}, out: []string{"pulled: version 5 \\(sha256 [0-9a-f]{64}\\) to " + regexp.QuoteMeta(p("pulled.txt"))}, version: 5},
		{args: []string{"pull", "-config", cfg, "-o", "-"}, out: []string{`\Aa.example\nb.example reason="Court order"\n\z`}, version: 5},
		{args: []string{"publish", "-config", p("nofleet.yaml"), p("good.txt")}, code: 1, out: []string{"has no fleet section"}, version: 5},
		{args: []string{"fleet", "status", "-config", cfg}, out: []string{"published version: 5\nno node has sent a heartbeat"}, version: 5},
		// check and explain read the published list in fleet mode.
		{args: []string{"check", "-config", cfg, "-admin", freeAddr(t), "-state-dir", "off"},
			out: []string{`ok: .*edgeblock.yaml: 1 routes; fleet:v5: 2 rules`}, version: 5},
		{args: []string{"explain", "-config", cfg, "-admin", freeAddr(t), "b.example"},
			out: []string{`source: the files`, `fleet:v5`}, version: 5},
	}
	for i, st := range steps {
		code, stdout, stderr := runCmd(st.args...)
		out := stdout + stderr
		if code != st.code {
			t.Errorf("step %d %v: exit %d, want %d\n%s", i, st.args, code, st.code, out)
		}
		for _, re := range st.out {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("step %d %v: output does not match %q:\n%s", i, st.args, re, out)
			}
		}
		if n, err := store.CurrentNumber(context.Background()); err != nil || n != st.version {
			t.Errorf("step %d %v: current version %d (%v), want %d", i, st.args, n, err, st.version)
		}
	}
	if got, want := readFile(t, p("pulled.txt")), files["good.txt"]; got != want {
		t.Errorf("pulled.txt = %q, want version 1's content %q", got, want)
	}
	v, err := store.Get(context.Background(), 5)
	if err != nil || v.Actor != "alice" || v.Comment != "rollback to version 1: undo" {
		t.Errorf("version 5: %+v, %v; want by alice, comment %q", v.Meta, err, "rollback to version 1: undo")
	}
}

// TestFleetStatus: nodes are listed from their heartbeats; a node behind
// the published version or silent makes the exit code 1.
func TestFleetStatus(t *testing.T) {
	r := fleettest.Start(t)
	store := fleet.NewStore(r.Client(), fleet.Config{})
	cfg := fleetCLIConfig(t, r.Addr())
	ctx := context.Background()
	v1, err := store.Publish(ctx, []byte("a.example\n"), fleet.Meta{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		beats []fleet.Heartbeat
		args  []string
		code  int
		out   []string
	}{
		{beats: []fleet.Heartbeat{{Node: "edge-1", Version: 1, SHA256: v1.SHA256}, {Node: "edge-2", Version: 1, SHA256: v1.SHA256}},
			out: []string{`(?m)^edge-1 +1 +` + v1.SHA256[:12] + ` +\S+ +ok$`, `(?m)^edge-2 +1 .* ok$`}},
		{beats: []fleet.Heartbeat{{Node: "edge-2", Version: 0}}, code: 1,
			out: []string{`(?m)^edge-1 +1 .* ok$`, `(?m)^edge-2 +0 .* BEHIND$`, "1 of 2 nodes behind or silent"}},
		// Nothing new from edge-1 for longer than -silent.
		{beats: []fleet.Heartbeat{{Node: "edge-2", Version: 1}}, args: []string{"-silent", "1ms"}, code: 1,
			out: []string{`(?m)^edge-1 +1 .* SILENT$`}},
	}
	for i, tt := range tests {
		for _, hb := range tt.beats {
			if err := store.Beat(ctx, hb); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond) // for -silent 1ms
		code, stdout, stderr := runCmd(append([]string{"fleet", "status", "-config", cfg}, tt.args...)...)
		if code != tt.code {
			t.Errorf("case %d: exit %d, want %d\n%s%s", i, code, tt.code, stdout, stderr)
		}
		for _, re := range tt.out {
			if !regexp.MustCompile(re).MatchString(stdout) {
				t.Errorf("case %d: output does not match %q:\n%s", i, re, stdout)
			}
		}
	}
}

// TestFleetBlockConcurrentProcesses: block -fleet from many processes at
// once; every one lands in its own version (compare-and-set, retried on
// conflict), none overwrites another.
func TestFleetBlockConcurrentProcesses(t *testing.T) {
	bin := edgeblockBin(t)
	r := fleettest.Start(t)
	store := fleet.NewStore(r.Client(), fleet.Config{})
	cfg := fleetCLIConfig(t, r.Addr())
	const n = 20
	cmds := make([]*exec.Cmd, n)
	outs := make([]bytes.Buffer, n)
	for i := range cmds {
		cmds[i] = exec.Command(bin, "block", "-fleet", "-config", cfg, fmt.Sprintf("site%d.example", i), "-comment", fmt.Sprintf("T-%d", i))
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil || !strings.HasPrefix(outs[i].String(), "added: ") {
			t.Errorf("block %d: %v\n%s", i, err, outs[i].String())
		}
	}
	v, err := store.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l, err := blocklist.Parse("fleet", v.Content)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r, ok := l.Lookup(fmt.Sprintf("site%d.example", i))
		if note, noted := l.Note(r); !ok || !noted || note.Comment != fmt.Sprintf("T-%d", i) {
			t.Errorf("site%d.example: rule %v, note %v", i, ok, note)
		}
	}
	if v.Number != n || l.Len() != n {
		t.Errorf("version %d with %d rules, want version %d with %d: one version per command", v.Number, l.Len(), n, n)
	}
}

// TestFleetPublishAfterRefusedVersion: when the newest version fails
// validation (published around the CLI; edges refuse it and stay on the
// one before), publish guards against the version edges apply, and
// history says the newest fails.
func TestFleetPublishAfterRefusedVersion(t *testing.T) {
	r := fleettest.Start(t)
	store := fleet.NewStore(r.Client(), fleet.Config{})
	cfg := fleetCLIConfig(t, r.Addr())
	ctx := context.Background()
	if _, err := store.Publish(ctx, []byte("a.example\nb.example\n"), fleet.Meta{Actor: "x"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Publish(ctx, []byte("a.example status=999\n"), fleet.Meta{Actor: "raw"}, 1); err != nil {
		t.Fatal(err)
	}
	drop := filepath.Join(t.TempDir(), "drop.txt")
	edgetest.WriteFile(t, drop, "d.example\n")
	code, out, errOut := runCmd("publish", "-config", cfg, drop)
	if code != 1 || !strings.Contains(errOut, "would drop 2 of 2 block rules of version 1") {
		t.Errorf("publish over a refused version: exit %d, want 1 and the drop guard against version 1:\n%s%s", code, out, errOut)
	}
	code, out, _ = runCmd("history", "-config", cfg)
	if code != 0 || !regexp.MustCompile(`version 2 .* by raw .*\n  fails validation \(edges refuse it\): fleet:v2:1: `).MatchString(out) {
		t.Errorf("history: exit %d, want version 2 flagged as failing validation:\n%s", code, out)
	}
}
