package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// TestMain silences the Redis client's own messages (failed dials while a
// test's Redis is stopped), which go-redis prints to standard error, as the
// commands themselves do (fleet.SetClientLogger), and removes the binary
// edgeblockBin made. A copy of this test binary named edgeblock (what
// edgeblockBin makes under -short) runs as the edgeblock command.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "edgeblock" {
		main()
		return
	}
	fleet.SetClientLogger(func(string) {})
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// edgeblockBin returns the path of an edgeblock binary, made once per
// test run: the real build (go build), or under -short a copy of this
// test binary, whose TestMain runs main when it is called edgeblock (the
// same command, without the 5-10 seconds of a link on a loaded 2-core
// machine). The directory is readable by other users: a test runs it as
// another uid.
func edgeblockBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "edgeblock-bin-"); binErr != nil {
			return
		}
		os.Chmod(binDir, 0o755) // other users run it too
		bin := filepath.Join(binDir, "edgeblock")
		if testing.Short() {
			binErr = copyExecutable(bin)
			return
		}
		var out []byte
		if out, binErr = exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); binErr != nil {
			binErr = fmt.Errorf("%v\n%s", binErr, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "edgeblock")
}

// copyExecutable copies the running test binary to path, executable by
// everyone.
func copyExecutable(path string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying the test binary: %w", err)
	}
	return out.Close()
}

// editEnv copies the testdata config and blocklist into a directory and
// returns the config and list paths.
func editEnv(t *testing.T) (cfg, list string) {
	t.Helper()
	dir := copyTestdata(t, "edgeblock.yaml", "blocklist.txt")
	return filepath.Join(dir, "edgeblock.yaml"), filepath.Join(dir, "blocklist.txt")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// editConfig returns a minimal config naming the blocklist file.
func editConfig(list string) string {
	return "listen:\n  http: 127.0.0.1:0\nblocklist:\n  file: " + list + "\nroutes:\n  - host: app.example\n    origins: [\"http://127.0.0.1:9\"]\n"
}

var noteRE = `#@ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z by `

// TestBlockUnblock runs block and unblock as an operator would, one step
// after another on one file: each step's exit code, output and the file.
func TestBlockUnblock(t *testing.T) {
	cfg, list := editEnv(t)
	t.Setenv("SUDO_USER", "alice")
	steps := []struct {
		args      []string
		code      int
		out       []string // substrings of stdout+stderr
		file      []string // regexps the file must match afterwards
		notInFile []string
	}{
		{
			args: []string{"block", "-config", cfg, "New.Example.", `reason=Spam "wave" #3`, "status=451", "-comment", "TICKET-1 spam"},
			out:  []string{`added: new.example reason="Spam \"wave\" #3" status=451 (` + list + ":7)", "note: #@ "},
			file: []string{`(?m)^` + noteRE + `alice: TICKET-1 spam\nnew\.example reason="Spam \\"wave\\" #3" status=451\n\z`},
		},
		{
			// The case: a reason for an existing rule keeps its policy.
			args: []string{"block", "-config", cfg, "forum.example", "reason=Updated", "--comment=T-2"},
			out: []string{"changed: forum.example (" + list + ":3)",
				`old: forum.example reason="Imminent threat to human life" policy=https://blog.example.com/why`,
				"new: forum.example reason=Updated policy=https://blog.example.com/why",
				"reason: Imminent threat to human life→Updated"},
			file: []string{`# Customer blocks, newest last.\n` + noteRE + `alice: T-2\nforum\.example reason=Updated policy=https://blog\.example\.com/why\n`},
		},
		{
			// The raw spelling finds the rule; the status merges in.
			args:      []string{"block", "-config", cfg, "FORUM.example.", "status=451"},
			out:       []string{"changed: forum.example", "status: 403→451"},
			file:      []string{`\n` + noteRE + `alice\nforum\.example reason=Updated policy=https://blog\.example\.com/why status=451\n`},
			notInFile: []string{"FORUM", "T-2"},
		},
		{
			args: []string{"block", "-config", cfg, "forum.example", "status=451"},
			out:  []string{"unchanged: forum.example reason=Updated policy=https://blog.example.com/why status=451 (" + list + ":3)"},
		},
		{
			args: []string{"block", "-config", cfg, "--replace", "forum.example", "status=451"},
			out:  []string{"changed: forum.example", "policy: https://blog.example.com/why→(default)", "reason: Updated→(none)"},
			file: []string{`\nforum\.example status=451\n`},
		},
		{
			args: []string{"block", "-config", cfg, "forum.example", "status="},
			out:  []string{"status: 451→403"},
			file: []string{`\nforum\.example\n`},
		},
		{
			// A bad attribute changes nothing.
			args: []string{"block", "-config", cfg, "x.example", "status=999"},
			code: 1, out: []string{`status="999": want 403 or 451`}, notInFile: []string{"x.example"},
		},
		{
			args: []string{"block", "-config", cfg, "x.example", "colour=red"},
			code: 1, out: []string{`unknown attribute "colour"`}, notInFile: []string{"x.example"},
		},
		{
			args: []string{"unblock", "-config", cfg, "www.forum.example"},
			code: 1, out: []string{"www.forum.example has no rule of its own", "blocked by forum.example (line 3)", "edgeblock unblock 'forum.example'"},
		},
		{
			args: []string{"unblock", "-config", cfg, "nothing.example"},
			code: 1, out: []string{"no rule applies to it, so it is not blocked"},
		},
		{
			args:      []string{"unblock", "-config", cfg, "NEW.example", "-comment", "false positive"},
			out:       []string{"removed: new.example reason=", "unblocked new.example: false positive"},
			file:      []string{`(?m)^` + noteRE + `alice unblocked new\.example: false positive\n\z`},
			notInFile: []string{"TICKET-1", `reason="Spam`},
		},
		{
			args: []string{"unblock", "-config", cfg, "new.example"},
			code: 1, out: []string{"new.example has no rule of its own"},
		},
		{
			args: []string{"block", "-config", cfg, "-replace"},
			code: 2, out: []string{"usage: edgeblock block"},
		},
	}
	for i, s := range steps {
		before := readFile(t, list)
		code, out, errOut := runCmd(s.args...)
		all := out + errOut
		if code != s.code {
			t.Fatalf("step %d %v: exit %d, want %d\n%s", i, s.args, code, s.code, all)
		}
		for _, w := range s.out {
			if !strings.Contains(all, w) {
				t.Errorf("step %d %v: output lacks %q:\n%s", i, s.args, w, all)
			}
		}
		after := readFile(t, list)
		if (code != 0 || strings.Contains(out, "unchanged:")) && after != before {
			t.Errorf("step %d %v: the file changed:\n%s", i, s.args, after)
		}
		for _, re := range s.file {
			if !regexp.MustCompile(re).MatchString(after) {
				t.Errorf("step %d %v: file does not match %s:\n%s", i, s.args, re, after)
			}
		}
		for _, n := range s.notInFile {
			if strings.Contains(after, n) {
				t.Errorf("step %d %v: file still has %q:\n%s", i, s.args, n, after)
			}
		}
		if _, err := blocklist.Load(list); err != nil {
			t.Errorf("step %d: the file no longer parses: %v", i, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(list)); len(entries) != 4 {
		t.Errorf("want the config, the list, its lock file and its edit history; have %v", entries)
	}
}

// TestBlockConcurrentProcesses runs 50 block commands at once, as separate
// processes of the real binary, on a list with another owner, group and
// mode: every rule is kept, and so are owner, group and mode.
func TestBlockConcurrentProcesses(t *testing.T) {
	bin := edgeblockBin(t)
	cfg, list := editEnv(t)
	root := os.Geteuid() == 0
	if root {
		if err := os.Chown(list, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(list, 0o640); err != nil {
		t.Fatal(err)
	}
	const n = 50
	cmds := make([]*exec.Cmd, n)
	outs := make([]bytes.Buffer, n)
	for i := range cmds {
		cmds[i] = exec.Command(bin, "block", "-config", cfg, fmt.Sprintf("site%d.example", i), "-comment", fmt.Sprintf("T-%d", i))
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
	l, err := blocklist.Load(list)
	if err != nil {
		t.Fatal(err)
	}
	kept, noted := 0, 0
	for i := range n {
		r, ok := l.Lookup(fmt.Sprintf("site%d.example", i))
		if !ok {
			continue
		}
		kept++
		if note, ok := l.Note(r); ok && note.Comment == fmt.Sprintf("T-%d", i) {
			noted++
		}
	}
	t.Logf("%d of %d concurrent block commands kept", kept, n)
	if kept != n || noted != n || l.Len() != n+2 {
		t.Errorf("%d of %d rules kept, %d with their note, %d rules in all; want %d, %d, %d", kept, n, noted, l.Len(), n, n, n+2)
	}
	fi, err := os.Stat(list)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || (root && (st.Uid != 1234 || st.Gid != 5678)) {
		t.Errorf("owner %d:%d mode %v after the edits; want 1234:5678 -rw-r-----", st.Uid, st.Gid, fi.Mode().Perm())
	}
}

// TestBlockRefusesConfigMap points the config at a file mounted from a
// ConfigMap: block and unblock refuse, naming the ConfigMap.
func TestBlockRefusesConfigMap(t *testing.T) {
	bin := edgeblockBin(t)
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_11_26_10_00_00.123456789")
	os.Mkdir(ts, 0o755)
	os.WriteFile(filepath.Join(ts, "blocklist.txt"), []byte("forum.example\n"), 0o644)
	os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data"))
	os.Symlink("..data/blocklist.txt", filepath.Join(dir, "blocklist.txt"))
	cfg := filepath.Join(t.TempDir(), "edgeblock.yaml")
	os.WriteFile(cfg, []byte(editConfig(filepath.Join(dir, "blocklist.txt"))), 0o644)
	for _, args := range [][]string{{"block", "new.example"}, {"unblock", "forum.example"}} {
		out, err := exec.Command(bin, append([]string{args[0], "-config", cfg}, args[1:]...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "ConfigMap volume") || !strings.Contains(string(out), "kubectl edit configmap") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if got := readFile(t, filepath.Join(dir, "blocklist.txt")); got != "forum.example\n" {
		t.Errorf("the ConfigMap file changed: %q", got)
	}
}

// TestBlockAsAnotherUser runs block as an unprivileged user with no
// passwd entry, in a directory it may write: on a file it owns the note
// names it by uid; on a root-owned file block refuses rather than hand the
// file over to that user.
func TestBlockAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a command as another user")
	}
	bin := edgeblockBin(t)
	dir, err := os.MkdirTemp("", "edgeblock-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	cfg := filepath.Join(dir, "edgeblock.yaml")
	list := filepath.Join(dir, "blocklist.txt")
	os.WriteFile(cfg, []byte(editConfig("blocklist.txt")), 0o644)
	block := func(name string) (string, error) {
		c := exec.Command(bin, "block", "-config", cfg, name)
		c.Env = []string{"PATH=/usr/bin:/bin"}
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4321, Gid: 4321}}
		out, err := c.CombinedOutput()
		return string(out), err
	}
	os.WriteFile(list, []byte("first.example\n"), 0o666)
	os.Chown(list, 4321, 4321)
	if out, err := block("mine.example"); err != nil {
		t.Fatalf("block as the owner: %v\n%s", err, out)
	}
	if got := readFile(t, list); !regexp.MustCompile(noteRE + `uid4321\nmine\.example\n`).MatchString(got) {
		t.Errorf("file:\n%s", got)
	}
	os.Chown(list, 0, 0)
	os.Chmod(list, 0o666)
	before := readFile(t, list)
	out, err := block("other.example")
	if err == nil || !strings.Contains(out, "cannot keep owner 0 and group 0") {
		t.Errorf("block of a root-owned file as uid 4321: %v\n%s", err, out)
	}
	if readFile(t, list) != before {
		t.Error("the file changed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 { // config, list, lock, history
		t.Errorf("files left behind: %v", entries)
	}
	if fi, err := os.Stat(blocklist.HistoryPath(list)); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 4321 {
		t.Errorf("edit history: %v, %v: want it created by uid 4321", fi, err)
	}
}

// TestEditRespectsDropGuard checks that block and unblock refuse an edit
// that the running edge's drop guard would refuse, so that the file on
// disk never holds a list the edge will not apply, and that the marker
// line lets a deliberate drop through.
func TestEditRespectsDropGuard(t *testing.T) {
	dir := t.TempDir()
	cfg, list := filepath.Join(dir, "edgeblock.yaml"), filepath.Join(dir, "blocklist.txt")
	edgetest.WriteFile(t, cfg, editConfig(list))
	tests := []struct {
		list string
		args []string
		code int
		want string
	}{
		{"only.example\n", []string{"unblock", "only.example"}, 1, "would drop 1 of 1 block rules (all of them)"},
		{"only.example\n", []string{"block", "only.example", "mode=report"}, 1, "nothing written: the running edge would refuse"},
		{"a.example\nb.example\n", []string{"unblock", "a.example"}, 0, "removed: a.example"},
		{"#! allow-drop\nonly.example\n", []string{"unblock", "only.example"}, 0, "removed: only.example"},
	}
	for _, tt := range tests {
		edgetest.WriteFile(t, list, tt.list)
		code, out, errOut := runCmd(append([]string{tt.args[0], "-config", cfg}, tt.args[1:]...)...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%v on %q: exit %d, output %q; want exit %d with %q", tt.args, tt.list, code, out+errOut, tt.code, tt.want)
		}
		if after := readFile(t, list); tt.code != 0 && after != tt.list {
			t.Errorf("%v: refused, but the file changed to %q", tt.args, after)
		}
	}
}
