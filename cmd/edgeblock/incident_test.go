package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
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

// decodeJSON parses out into v, failing the test with the output if it is
// not one JSON document.
func decodeJSON(t *testing.T, what, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: not the documented JSON: %v\n%s", what, err, out)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON document:\n%s", what, out)
	}
}

// fleetOnlyConfig writes a config holding only a fleet: section.
func fleetOnlyConfig(t *testing.T, addr string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "fleet.yaml")
	edgetest.WriteFile(t, cfg, fmt.Sprintf("fleet:\n  redis:\n    addr: %s\n  node: ops-laptop\n", addr))
	return cfg
}

// TestFleetOnlyConfig drives every fleet command from a config of only
// fleet: against a real redis-server, with the JSON outputs parsed, and
// shows that serving still needs the whole config (validation is per
// command).
func TestFleetOnlyConfig(t *testing.T) {
	r := fleettest.Start(t)
	store := fleet.NewStore(r.Client(), fleet.Config{})
	cfg := fleetOnlyConfig(t, r.Addr())
	dir := filepath.Dir(cfg)
	t.Setenv("SUDO_USER", "carol")
	edgetest.WriteFile(t, filepath.Join(dir, "list.txt"), "a.example\nb.example\n")
	ctx := context.Background()
	// A node stuck on version 1 (it beats once, then applies nothing):
	// written after the writes, which would otherwise wait for it and
	// exit 3 (not applied by every live edge).
	beat := func() {
		if err := store.Beat(ctx, fleet.Heartbeat{Node: "edge-1", Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		args []string
		code int
		out  string // regexp on stdout
	}{
		{[]string{"publish", "-config", cfg, "-comment", "first", filepath.Join(dir, "list.txt")}, 0, `published: version 1 `},
		{[]string{"block", "-fleet", "-config", cfg, "c.example", "status=451"}, 0, `added: c.example status=451 \(version 2`},
		{[]string{"unblock", "-fleet", "-config", cfg, "a.example"}, 0, `removed: a.example \(version 3`},
		{[]string{"history", "-config", cfg}, 0, `(?s)version 3 .*by carol.*version 2 .*version 1 .*"first"`},
		{[]string{"rollback", "-config", cfg, "1"}, 0, `published: version 4 with the content of version 1`},
		{[]string{"pull", "-config", cfg, "-o", "-"}, 0, `\Aa.example\nb.example\n\z`},
		{[]string{"pull", "-config", cfg, "-version", "2", "-o", "-"}, 0, `\Aa.example\nb.example\n#@ \S+ by carol\nc.example status=451\n\z`},
		{[]string{"pull", "-config", cfg, "-version", "2", "-o", filepath.Join(dir, "v2.txt")}, 0, `pulled: version 2 `},
		{[]string{"fleet", "status", "-config", cfg}, 1, `(?m)^edge-1 +1 .*BEHIND$`},
		{[]string{"fleet", "forget", "-config", cfg, "edge-1"}, 0, `forgotten: edge-1`},
		{[]string{"fleet", "status", "-config", cfg}, 0, `published version: 4\nno node has sent a heartbeat`},
		{[]string{"fleet", "forget", "-config", cfg, "edge-9"}, 1, ``},
	}
	for i, st := range steps {
		if st.args[0] == "fleet" && i == 8 {
			beat()
		}
		code, stdout, stderr := runCmd(st.args...)
		if code != st.code || !regexp.MustCompile(st.out).MatchString(stdout) {
			t.Errorf("step %d %v: exit %d (want %d), stdout does not match %q:\n%s%s", i, st.args, code, st.code, st.out, stdout, stderr)
		}
		if strings.Contains(stderr, "no public listener") || strings.Contains(stderr, "blocklist.file: required") {
			t.Errorf("step %d %v: refused for a part of the config fleet tools do not use:\n%s", i, st.args, stderr)
		}
	}
	if got := readFile(t, filepath.Join(dir, "v2.txt")); !strings.Contains(got, "c.example status=451") {
		t.Errorf("pull -version 2 wrote %q", got)
	}

	// The JSON outputs, parsed with unknown fields refused: the names are
	// the documented ones.
	code, stdout, stderr := runCmd("block", "-fleet", "-json", "-config", cfg, "d.example", "reason=x", "-comment", "T-9")
	var e editJSON
	decodeJSON(t, "block -fleet -json", stdout, &e)
	if code != 0 || e.Result != "added" || e.Rule != "d.example" || e.Version != 5 || !strings.Contains(e.Note, "by carol: T-9") {
		t.Errorf("block -fleet -json: exit %d, %+v\n%s", code, e, stderr)
	}
	code, stdout, _ = runCmd("unblock", "-fleet", "-json", "-config", cfg, "d.example")
	e = editJSON{}
	decodeJSON(t, "unblock -fleet -json", stdout, &e)
	if code != 0 || e.Result != "removed" || e.Rule != "d.example" || e.Version != 6 {
		t.Errorf("unblock -fleet -json: exit %d, %+v", code, e)
	}
	var hist []historyJSON
	code, stdout, _ = runCmd("history", "-json", "-n", "3", "-config", cfg)
	decodeJSON(t, "history -json", stdout, &hist)
	if code != 0 || len(hist) != 3 || hist[0].Version != 6 || hist[0].Actor != "carol" || len(hist[0].Changes) != 1 ||
		hist[0].Changes[0].Kind != blocklist.Removed || hist[0].Changes[0].Rule != "d.example" ||
		hist[1].Changes[0].Kind != blocklist.Added || hist[1].Comment != "T-9" {
		t.Errorf("history -json: exit %d, %+v", code, hist)
	}
	v6, err := store.Get(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	store.Beat(ctx, fleet.Heartbeat{Node: "edge-2", Version: 6, SHA256: v6.SHA256})
	var st fleetStatusJSON
	code, stdout, _ = runCmd("fleet", "status", "-json", "-config", cfg)
	decodeJSON(t, "fleet status -json", stdout, &st)
	if code != 0 || st.Version != 6 || len(st.Nodes) != 1 || st.Nodes[0].Node != "edge-2" || st.Nodes[0].Behind || st.Bad != 0 {
		t.Errorf("fleet status -json: exit %d, %+v", code, st)
	}

	// block without -fleet edits the file, which needs the whole config:
	// refused, with the way to the fleet named.
	if code, _, stderr := runCmd("block", "-config", cfg, "e.example"); code != 1 || !strings.Contains(stderr, "give -fleet") {
		t.Errorf("block without -fleet on a fleet-only config: exit %d:\n%s", code, stderr)
	}
	// Serving needs the whole config: the same file is refused by check,
	// with the listener named.
	if code, _, stderr := runCmd("check", "-config", cfg); code != 1 || !strings.Contains(stderr, "no public listener") {
		t.Errorf("check of a fleet-only config: exit %d, want 1 with the listener named:\n%s", code, stderr)
	}
	// A problem of the fleet section still stops the fleet tools.
	bad := filepath.Join(dir, "bad.yaml")
	edgetest.WriteFile(t, bad, "fleet:\n  redis:\n    addr: nope\n")
	if code, _, stderr := runCmd("history", "-config", bad); code != 1 || !strings.Contains(stderr, "fleet.redis.addr") {
		t.Errorf("history with a bad fleet.redis.addr: exit %d:\n%s", code, stderr)
	}
}

// TestRollbackAllowDrop undoes a mass block: the rollback is refused by
// the drop guard, then by a too small -allow-drop, then published with
// the allow-drop line so that edges apply it.
func TestRollbackAllowDrop(t *testing.T) {
	r := fleettest.Start(t)
	store := fleet.NewStore(r.Client(), fleet.Config{})
	cfg := fleetOnlyConfig(t, r.Addr())
	ctx := context.Background()
	var mass strings.Builder
	mass.WriteString("a.example\n")
	for i := range 100 {
		fmt.Fprintf(&mass, "mass%d.example\n", i)
	}
	if _, err := store.Publish(ctx, []byte("a.example\n"), fleet.Meta{Actor: "x"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Publish(ctx, []byte(mass.String()), fleet.Meta{Actor: "bot"}, 1); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args    []string
		code    int
		out     string
		version int64
	}{
		{[]string{"rollback", "-config", cfg, "1"}, 1, `would drop 100 of 101 block rules`, 2},
		{[]string{"rollback", "-config", cfg, "-allow-drop", "50", "1"}, 1, `would drop 100 of 101 block rules, more than -allow-drop 50`, 2},
		{[]string{"rollback", "-config", cfg, "-allow-drop", "100", "-comment", "undo bot", "1"}, 0, `published: version 3 with the content of version 1(?s).*#! allow-drop`, 3},
	}
	for i, st := range steps {
		code, stdout, stderr := runCmd(st.args...)
		if code != st.code || !regexp.MustCompile(st.out).MatchString(stdout+stderr) {
			t.Errorf("step %d %v: exit %d (want %d), output does not match %q:\n%s%s", i, st.args, code, st.code, st.out, stdout, stderr)
		}
		if n, _ := store.CurrentNumber(ctx); n != st.version {
			t.Errorf("step %d: version %d, want %d", i, n, st.version)
		}
	}
	v, err := store.Get(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	l, err := blocklist.Parse("v3", v.Content)
	if err != nil || !l.AllowsDrop() || l.Len() != 1 || !strings.HasPrefix(v.Comment, "rollback to version 1: undo bot (allow-drop 100: drops 100 of 101") {
		t.Errorf("version 3: %q, comment %q, %v: want version 1's rule with the allow-drop line", v.Content, v.Comment, err)
	}
	// What the edges do with it: their guard (CheckDrop) accepts it.
	prev, _ := blocklist.Parse("v2", []byte(mass.String()))
	if d, n := l.DroppedBlocks(prev, time.Now()); d != 100 || n != 101 {
		t.Errorf("DroppedBlocks = %d of %d", d, n)
	}
}

// TestFileHistory: block and unblock record every edit in the list's
// history, even several within one second by one actor, and history reads
// it in file mode, as text and as JSON.
func TestFileHistory(t *testing.T) {
	cfg, list := editEnv(t)
	t.Setenv("SUDO_USER", "alice")
	edits := [][]string{
		{"block", "-config", cfg, "x.example", "-comment", "T-1"},
		{"block", "-config", cfg, "x.example", "status=451"},
		{"block", "-config", cfg, "x.example", "reason=again"},
		{"unblock", "-config", cfg, "x.example", "-comment", "lifted"},
	}
	start := time.Now()
	var sums []string // the SHA-256 of the file after each edit, newest first
	for _, args := range edits {
		if code, stdout, stderr := runCmd(args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		data, err := os.ReadFile(list)
		if err != nil {
			t.Fatal(err)
		}
		sums = append([]string{blocklist.SHA256Hex(data)}, sums...)
	}
	if took := time.Since(start); took > time.Second {
		t.Logf("the edits took %v: not all within one second on this machine", took)
	}
	var hist []historyJSON
	code, stdout, _ := runCmd("history", "-json", "-config", cfg)
	decodeJSON(t, "history -json (file)", stdout, &hist)
	if code != 0 || len(hist) != 4 {
		t.Fatalf("history -json: exit %d, %d entries, want 4:\n%s", code, len(hist), stdout)
	}
	want := []struct {
		command, kind, attr, comment string
	}{
		{"unblock", "removed", "", "lifted"},
		{"block", "changed", "reason", ""},
		{"block", "changed", "status", ""},
		{"block", "added", "", "T-1"},
	}
	for i, w := range want {
		h := hist[i]
		if h.Command != w.command || h.Actor != "alice" || h.Comment != w.comment || len(h.Changes) != 1 ||
			string(h.Changes[0].Kind) != w.kind || h.Changes[0].Rule != "x.example" || h.SHA256 != sums[i] {
			t.Errorf("entry %d = %+v, want %+v", i, h, w)
			continue
		}
		if w.attr != "" && (len(h.Changes[0].Attrs) != 1 || h.Changes[0].Attrs[0].Key != w.attr) {
			t.Errorf("entry %d: attrs %+v, want %s", i, h.Changes[0].Attrs, w.attr)
		}
	}
	code, stdout, _ = runCmd("history", "-n", "2", "-config", cfg)
	if code != 0 || !regexp.MustCompile(`(?s)\A\S+  unblock  by alice  sha256 [0-9a-f]{12}  "lifted"\n  - x.example reason=again status=451\n\S+  block  by alice .*\n  ~ x.example: reason \(none\)→again\n\z`).MatchString(stdout) {
		t.Errorf("history -n 2: exit %d:\n%s", code, stdout)
	}
	if !strings.HasSuffix(blocklist.HistoryPath(list), "blocklist.txt.history") {
		t.Errorf("history path %s", blocklist.HistoryPath(list))
	}
}

// TestFileEditJSONAndApplied: block -json and unblock -json in file mode
// parse, and say whether the running edge applied the edit: no edge, an
// edge that applies it, an edge that refuses it.
func TestFileEditJSONAndApplied(t *testing.T) {
	cfg, _ := editEnv(t)
	noEdge := freeAddr(t)
	code, stdout, stderr := runCmd("block", "-json", "-admin", noEdge, "-config", cfg, "y.example", "status=451")
	var e editJSON
	decodeJSON(t, "block -json", stdout, &e)
	if code != 0 || e.Result != "added" || e.Rule != "y.example" || e.File == "" || e.Line == 0 || e.Applied != nil ||
		!strings.Contains(e.EdgeError, "no edge answered at "+noEdge) {
		t.Errorf("block -json: exit %d, %+v\n%s", code, e, stderr)
	}
	code, stdout, _ = runCmd("block", "-json", "-admin", noEdge, "-config", cfg, "y.example", "status=451")
	e = editJSON{}
	decodeJSON(t, "block -json (unchanged)", stdout, &e)
	if code != 0 || e.Result != "unchanged" {
		t.Errorf("block -json again: exit %d, %+v", code, e)
	}
	code, stdout, _ = runCmd("block", "-json", "-admin", noEdge, "-config", cfg, "y.example", "status=403")
	e = editJSON{}
	decodeJSON(t, "block -json (changed)", stdout, &e)
	if code != 0 || e.Result != "changed" || len(e.Attrs) != 1 || e.Attrs[0] != (blocklist.AttrChange{Key: "status", Old: "451", New: "403"}) {
		t.Errorf("block -json change: exit %d, %+v", code, e)
	}
	code, stdout, _ = runCmd("unblock", "-json", "-admin", noEdge, "-config", cfg, "y.example")
	e = editJSON{}
	decodeJSON(t, "unblock -json", stdout, &e)
	if code != 0 || e.Result != "removed" || e.Rule != "y.example" || !strings.Contains(e.Note, "unblocked y.example") {
		t.Errorf("unblock -json: exit %d, %+v", code, e)
	}
}

// TestExplainAndCheckJSON: check -json and explain -json parse, with the
// documented fields, for a good config, a bad one, and a route covered by
// a block rule (a warning).
func TestExplainAndCheckJSON(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "blocklist.txt")
	edgetest.WriteFile(t, list, "forum.example\n*.spam.example mode=report\n")
	cfg := filepath.Join(dir, "edgeblock.yaml")
	edgetest.WriteFile(t, cfg, "listen:\n  http: 127.0.0.1:0\n  admin: off\nblocklist:\n  file: "+list+"\nroutes:\n"+
		"  - host: app.example\n    origins: [\"http://127.0.0.1:9\"]\n"+
		"  - host: www.forum.example\n    origins: [\"http://127.0.0.1:9\"]\n"+
		"  - host: \"*.forum.example\"\n    origins: [\"http://127.0.0.1:9\"]\n"+
		"  - host: x.spam.example\n    origins: [\"http://127.0.0.1:9\"]\n")
	code, stdout, stderr := runCmd("check", "-json", "-state-dir", "off", "-config", cfg)
	var c checkJSON
	decodeJSON(t, "check -json", stdout, &c)
	if code != 0 || !c.OK || c.Routes != 4 || c.Rules != 2 || len(c.Problems) != 0 || c.Running != nil || c.Source == "" {
		t.Errorf("check -json: exit %d, %+v\n%s", code, c, stderr)
	}
	covered := 0
	for _, w := range c.Warnings {
		if strings.Contains(w, "is covered by the block rule forum.example") {
			covered++
		}
		if strings.Contains(w, "spam.example") || strings.Contains(w, "app.example") {
			t.Errorf("warning for a route no block rule covers: %s", w)
		}
	}
	if covered != 2 {
		t.Errorf("want a warning for www.forum.example and *.forum.example, got %q", c.Warnings)
	}
	// In text, the warnings go to standard error and the check passes.
	if code, _, stderr := runCmd("check", "-state-dir", "off", "-config", cfg); code != 0 || !strings.Contains(stderr, `warning: `+cfg+`: routes[1].host: "www.forum.example" is covered by the block rule forum.example (`+list+`:1)`) {
		t.Errorf("check: exit %d\n%s", code, stderr)
	}

	code, stdout, _ = runCmd("explain", "-json", "-config", cfg, "www.forum.example")
	var ex map[string]any
	decodeJSON(t, "explain -json", stdout, &ex)
	rule, _ := ex["rule"].(map[string]any)
	if code != 0 || ex["input"] != "www.forum.example" || rule["pattern"] != "forum.example" || !strings.HasPrefix(fmt.Sprint(ex["source"]), "the files") {
		t.Errorf("explain -json: exit %d, %v", code, ex)
	}

	edgetest.WriteFile(t, list, "bad.example status=999\n")
	code, stdout, _ = runCmd("check", "-json", "-state-dir", "off", "-config", cfg)
	c = checkJSON{}
	decodeJSON(t, "check -json (bad)", stdout, &c)
	if code != 1 || c.OK || len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "blocklist.txt:1:") {
		t.Errorf("check -json of a bad list: exit %d, %+v", code, c)
	}
}

// TestBlockReportsApplied: block and unblock ask the running edge (the
// real binary) whether the edit is in effect, and say so, in text and JSON.
func TestBlockReportsApplied(t *testing.T) {
	bin := edgeblockBin(t)
	f := newEdgeFiles(t, "a.example\nb.example\n")
	p := startProc(t, bin, "serve", "-config", f.config, "-state-dir", "off")
	p.waitReady(f.admin)
	code, stdout, stderr := runCmd("block", "-config", f.config, "c.example", "-comment", "T-1")
	if code != 0 || !strings.Contains(stdout, "  applied: true (the running edge at "+f.admin+" has it in effect)") {
		t.Errorf("block: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runCmd("unblock", "-json", "-config", f.config, "c.example")
	var e editJSON
	decodeJSON(t, "unblock -json", stdout, &e)
	if code != 0 || e.Applied == nil || !*e.Applied || e.EdgeError != "" {
		t.Errorf("unblock -json: exit %d, %+v", code, e)
	}
	// A hand edit the edge refuses (it drops both rules): the edge keeps
	// a.example and b.example, so the next block, judged against the file,
	// is written but not applied, and block says why.
	edgetest.WriteFile(t, f.list, "x.example\n")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + f.admin + "/blocklist")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "would drop 2 of 2") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the edge did not refuse the hand edit")
		}
	}
	code, stdout, _ = runCmd("block", "-config", f.config, "e.example")
	if code != 0 || !strings.Contains(stdout, "  applied: the edge at "+f.admin+" did not apply it: ") || !strings.Contains(stdout, "would drop 2 of 2 block rules") {
		t.Errorf("block the edge refuses: exit %d\n%s", code, stdout)
	}
	p.stop()
	code, stdout, _ = runCmd("block", "-config", f.config, "d.example")
	if code != 0 || !strings.Contains(stdout, "  applied: no edge answered at "+f.admin) {
		t.Errorf("block with the edge stopped: exit %d\n%s", code, stdout)
	}
}
