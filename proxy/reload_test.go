package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// status returns the status code a visitor to host gets.
func (e *testEnv) status(host string) int {
	e.t.Helper()
	resp, _ := e.get("GET", host, "/", nil)
	return resp.StatusCode
}

// waitStatus waits until a visitor to host gets want, and returns how long
// that took.
func (e *testEnv) waitStatus(host string, want int, what string) time.Duration {
	e.t.Helper()
	return edgetest.WaitFor(e.t, 5*time.Second, what, func() bool { return e.status(host) == want })
}

const reloadRoutes = `
routes:
  - host: "*.example"
    origins: ["%s"]
`

func startReloadEnv(t *testing.T, list string, extra string) *testEnv {
	t.Helper()
	o := echoOrigin(t)
	return startEnv(t, extra+fmt.Sprintf(reloadRoutes, o.URL), list)
}

func TestReloadWaysOfWriting(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, path, text string)
	}{
		{"in place, in chunks", func(t *testing.T, path, text string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			half := len(text) / 2
			f.WriteString(text[:half])
			time.Sleep(20 * time.Millisecond)
			f.WriteString(text[half:])
			f.Close()
		}},
		{"temp file renamed over", func(t *testing.T, path, text string) {
			tmp := path + ".tmp"
			edgetest.WriteFile(t, tmp, text)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"vim style", func(t *testing.T, path, text string) {
			backup := path + "~"
			if err := os.Rename(path, backup); err != nil {
				t.Fatal(err)
			}
			edgetest.WriteFile(t, path, text)
			os.Remove(backup)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// kept.example stays, so that the edit drops half of the
			// block rules, within the drop guard's default.
			e := startReloadEnv(t, "old.example\nkept.example\n", "")
			if e.status("old.example") != 403 || e.status("new.example") != 200 {
				t.Fatal("initial list not in effect")
			}
			tt.write(t, e.list, "# edited\nkept.example\nnew.example reason=\"edited\"\n")
			d := e.waitStatus("new.example", 403, "the new block")
			if e.status("old.example") != 200 {
				t.Error("old.example still blocked after it was removed")
			}
			t.Logf("change to effect: %v", d)
			// The audit line is written just after the list is swapped in.
			var applied []map[string]any
			edgetest.WaitFor(t, 5*time.Second, "the audit line", func() bool {
				applied = e.logs.Lines(t, "blocklist applied")
				return len(applied) >= 2 // start, then this edit
			})
			last := applied[len(applied)-1]
			if last["added_total"] != 1.0 || last["removed_total"] != 1.0 || fmt.Sprint(last["added"]) != "[map[rule:new.example]]" || fmt.Sprint(last["removed"]) != "[map[rule:old.example]]" {
				t.Errorf("audit line = %v", last)
			}
		})
	}
}

func TestReloadDeletedThenCreated(t *testing.T) {
	e := startReloadEnv(t, "gone.example\n", "")
	if err := os.Remove(e.list); err != nil {
		t.Fatal(err)
	}
	edgetest.WaitFor(t, 5*time.Second, "the failed reload", func() bool {
		return edgetest.MetricValue(e.scrape(), `edgeblock_blocklist_reloads_total{result="failure"}`) == "1"
	})
	if e.status("gone.example") != 403 {
		t.Fatal("a deleted blocklist lifted the block")
	}
	if v := edgetest.MetricValue(e.scrape(), "edgeblock_blocklist_last_reload_successful"); v != "0" {
		t.Errorf("last_reload_successful = %q after a failure", v)
	}
	edgetest.WriteFile(t, e.list, "gone.example\nback.example\n")
	e.waitStatus("back.example", 403, "the recreated file")
	if v := edgetest.MetricValue(e.scrape(), "edgeblock_blocklist_last_reload_successful"); v != "1" {
		t.Errorf("last_reload_successful = %q after recovery", v)
	}
}

func TestReloadBrokenThenFixed(t *testing.T) {
	parallelPlain(t)
	e := startReloadEnv(t, "kept.example\n", "")
	edgetest.WriteFile(t, e.list, "kept.example\nbad..example\nnew.example colour=red\n")
	edgetest.WaitFor(t, 5*time.Second, "the failed reload", func() bool {
		return len(e.logs.Lines(t, "blocklist not applied; keeping the last good list")) > 0
	})
	line := e.logs.Lines(t, "blocklist not applied; keeping the last good list")[0]
	msg := fmt.Sprint(line["error"])
	if !strings.Contains(msg, e.list+":2: ") || !strings.Contains(msg, e.list+":3: ") {
		t.Errorf("failure log does not name both bad lines: %s", msg)
	}
	if e.status("kept.example") != 403 {
		t.Error("a bad file replaced the last good list")
	}
	st := e.srv.reloader.Status()
	if st.Blocklist.LastError == "" || st.Blocklist.ErrorAt == nil {
		t.Errorf("status does not show the error: %+v", st.Blocklist)
	}
	edgetest.WriteFile(t, e.list, "kept.example\nnew.example\n")
	e.waitStatus("new.example", 403, "the fixed file")
}

func TestReloadConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	swap := func(n int, text string) {
		ts := filepath.Join(dir, fmt.Sprintf("..2026_11_25_%02d", n))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		edgetest.WriteFile(t, filepath.Join(ts, "blocklist.txt"), text)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		var old string
		if n > 0 {
			old, _ = os.Readlink(filepath.Join(dir, "..data"))
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if old != "" {
			os.RemoveAll(filepath.Join(dir, old))
		}
	}
	swap(0, "first.example\n")
	if err := os.Symlink("..data/blocklist.txt", filepath.Join(dir, "blocklist.txt")); err != nil {
		t.Fatal(err)
	}
	o := echoOrigin(t)
	e := startEnv(t, fmt.Sprintf(reloadRoutes, o.URL)+"blocklist:\n  file: "+filepath.Join(dir, "blocklist.txt")+"\n", "")
	if e.status("first.example") != 403 {
		t.Fatal("initial ConfigMap list not in effect")
	}
	for i, host := range []string{"second.example", "third.example"} {
		swap(i+1, "#! allow-drop\n"+host+"\n") // every swap drops all the rules
		e.waitStatus(host, 403, fmt.Sprintf("ConfigMap swap %d", i+1))
		if e.status("first.example") != 200 {
			t.Errorf("swap %d: first.example still blocked", i+1)
		}
	}
}

func TestReloadSymlinkedFileSwap(t *testing.T) {
	dir := t.TempDir()
	edgetest.WriteFile(t, filepath.Join(dir, "v1.txt"), "v1.example\nkept.example\n")
	edgetest.WriteFile(t, filepath.Join(dir, "v2.txt"), "v2.example\nkept.example\n")
	link := filepath.Join(dir, "current.txt")
	if err := os.Symlink("v1.txt", link); err != nil {
		t.Fatal(err)
	}
	o := echoOrigin(t)
	e := startEnv(t, fmt.Sprintf(reloadRoutes, o.URL)+"blocklist:\n  file: "+link+"\n", "")
	tmp := filepath.Join(dir, "current.tmp")
	os.Symlink("v2.txt", tmp)
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("v2.example", 403, "the symlink swap")
	// An edit of the new target in place applies too: its directory and
	// name are watched after the swap.
	edgetest.WriteFile(t, filepath.Join(dir, "v2.txt"), "v2.example\nkept.example\nv3.example\n")
	e.waitStatus("v3.example", 403, "an edit of the new link target")
}

func TestReloadIdenticalContentChangesNothing(t *testing.T) {
	e := startReloadEnv(t, "same.example\n", "")
	before := len(e.logs.Lines(t, "blocklist applied"))
	edgetest.WriteFile(t, e.list, "same.example\n")
	edgetest.WaitFor(t, 5*time.Second, "the unchanged reload", func() bool {
		return edgetest.MetricValue(e.scrape(), `edgeblock_blocklist_reloads_total{result="unchanged"}`) != "0"
	})
	if after := len(e.logs.Lines(t, "blocklist applied")); after != before {
		t.Errorf("identical content was applied again (%d -> %d audit lines)", before, after)
	}
	if v := edgetest.MetricValue(e.scrape(), `edgeblock_blocklist_reloads_total{result="success"}`); v != "1" {
		t.Errorf("success count = %q, want 1 (the start)", v)
	}
}

func TestReloadOnSignalOnly(t *testing.T) {
	parallelPlain(t)
	e2 := startReloadEnv(t, "a.example\nkept.example\n", "blocklist:\n  file: blocklist.txt\n  watch: false\n  poll_interval: -1s\n")
	edgetest.WriteFile(t, e2.list, "b.example\nkept.example\n")
	time.Sleep(400 * time.Millisecond)
	if e2.status("b.example") != 200 {
		t.Fatal("watch: false still reloaded on a file event")
	}
	e2.srv.Reloader().Reload("sighup")
	if e2.status("b.example") != 403 {
		t.Fatal("Reload did not apply the edit")
	}
	if l := e2.logs.Lines(t, "blocklist applied"); l[len(l)-1]["trigger"] != "sighup" {
		t.Errorf("audit trigger = %v", l[len(l)-1]["trigger"])
	}
}

func TestRuleExpiresWithoutReload(t *testing.T) {
	parallelPlain(t)
	// 4s: an edge starts in over 1.5s on a loaded machine (load 24), and
	// the rule must still be in effect when it has.
	exp := time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339Nano)
	e := startReloadEnv(t, "temp.example expires="+exp+"\n", "")
	if e.status("temp.example") != 403 {
		t.Fatal("rule not in effect before its expiry")
	}
	e.waitStatus("temp.example", 200, "the expiry")
	edgetest.WaitFor(t, 3*time.Second, "the expiry audit line", func() bool {
		return len(e.logs.Lines(t, "blocklist rule expired")) == 1
	})
	if l := e.logs.Lines(t, "blocklist rule expired")[0]; l["rule"] != "temp.example" || l["line"] != 1.0 {
		t.Errorf("expiry line = %v", l)
	}
}

func TestConfigReload(t *testing.T) {
	parallelPlain(t)
	o1, o2 := echoOrigin(t), echoOrigin(t)
	e := startEnv(t, "blocklist:\n  file: blocklist.txt\n"+routeConfig("app.example", `"`+o1.URL+`"`), "")
	cfg, _ := os.ReadFile(e.config)
	edgetest.WriteFile(t, e.config, strings.Replace(string(cfg), o1.URL, o2.URL, 1)+"  - host: added.example\n    origins: [\""+o2.URL+"\"]\n")
	e.waitStatus("added.example", 200, "the new route")
	// A bad config keeps the last good one, and says where the problem is.
	edgetest.WriteFile(t, e.config, string(cfg)+"bogus_key: 1\n")
	edgetest.WaitFor(t, 5*time.Second, "the failed config reload", func() bool {
		return len(e.logs.Lines(t, "config not applied; keeping the last good config")) > 0
	})
	if l := e.logs.Lines(t, "config not applied; keeping the last good config")[0]; !strings.Contains(fmt.Sprint(l["error"]), "bogus_key: unknown key") ||
		!strings.Contains(fmt.Sprint(l["error"]), e.config+":") {
		t.Errorf("failure line = %v", l)
	}
	if e.status("added.example") != 200 {
		t.Error("a bad config replaced the last good one")
	}
	// A change that needs a restart is logged and otherwise ignored.
	edgetest.WriteFile(t, e.config, strings.Replace(string(cfg), "admin: 127.0.0.1:0", "admin: 127.0.0.1:1", 1))
	edgetest.WaitFor(t, 5*time.Second, "the restart-needed line", func() bool {
		return len(e.logs.Lines(t, "config change needs a restart; ignored until then")) > 0
	})
	e.waitStatus("added.example", 404, "the rest of the config change")
}

// TestConcurrentRequestsDuringReloads swaps the list 120 times (30 under
// -short) while requests run, and checks that no request fails, that a
// host every version blocks is never let through, and that no request sees
// the rule of one version with the page of another.
func TestConcurrentRequestsDuringReloads(t *testing.T) {
	reloads := 120
	if testing.Short() {
		reloads = 30
	}
	version := func(n int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "always.example reason=\"v%d\" policy=https://policy.example/v%d\n", n, n)
		for i := range n % 7 { // lists of varying shape and attribute count
			fmt.Fprintf(&b, "filler%d.example reason=\"f%d\"\n", i, i)
		}
		return b.String()
	}
	// max_drop 1: the versions drop up to 6 of 7 rules; only dropping
	// all of them would be refused.
	e := startReloadEnv(t, version(0), "blocklist:\n  file: blocklist.txt\n  debounce: 5ms\n  max_drop: 1\n")
	var stop atomic.Bool
	var failures atomic.Int64
	var served atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				host, want := "always.example", 403
				if w%2 == 1 {
					host, want = "never.example", 200
				}
				resp, body := e.get("GET", host, "/", map[string]string{"Accept": "text/plain"})
				served.Add(1)
				if resp.StatusCode != want {
					failures.Add(1)
					t.Errorf("%s: status %d during reloads", host, resp.StatusCode)
					continue
				}
				if want == 403 {
					var r, p string
					for _, l := range strings.Split(body, "\n") {
						if v, ok := strings.CutPrefix(l, "Reason: "); ok {
							r = v
						}
						if v, ok := strings.CutPrefix(l, "Policy: https://policy.example/"); ok {
							p = v
						}
					}
					if r == "" || r != p {
						failures.Add(1)
						t.Errorf("mixed list: reason %q with policy %q", r, p)
					}
				}
			}
		}()
	}
	for n := 1; n <= reloads; n++ {
		tmp := e.list + ".tmp"
		edgetest.WriteFile(t, tmp, version(n))
		os.Rename(tmp, e.list)
		want := fmt.Sprintf("Reason: v%d\n", n)
		edgetest.WaitFor(t, 5*time.Second, fmt.Sprintf("version %d", n), func() bool {
			_, body := e.get("GET", "always.example", "/", map[string]string{"Accept": "text/plain"})
			return strings.Contains(body, want)
		})
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of %d requests failed or saw a mixed list", failures.Load(), served.Load())
	}
	if v := edgetest.MetricValue(e.scrape(), `edgeblock_blocklist_reloads_total{result="success"}`); v != fmt.Sprint(reloads+1) {
		t.Errorf("success reloads = %s, want %d", v, reloads+1)
	}
	t.Logf("%d requests during %d reloads, none failed", served.Load(), reloads)
}

func TestBlocklistStatusJSON(t *testing.T) {
	e := startReloadEnv(t, "a.example\nb.example\n", "")
	resp, err := http.Get(e.url("admin") + "/blocklist")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st["file"] != e.list || st["rules"] != 2.0 || len(fmt.Sprint(st["sha256"])) != 64 || st["loaded_at"] == nil || st["last_error"] != nil {
		t.Errorf("GET /blocklist = %v", st)
	}
	if cfg, _ := st["config"].(map[string]any); cfg["file"] != e.config || cfg["routes"] != 1.0 {
		t.Errorf("config part = %v", st["config"])
	}
}

// TestFarExpiry checks rules that expire after 2262, where Unix nanoseconds
// overflow: they block. (reload.TestFarExpiryTimer checks that the expiry
// timer of one past 2318 does not spin.)
func TestFarExpiry(t *testing.T) {
	e := startReloadEnv(t, "far.example expires=9999-12-31T23:59:59Z\nmid.example expires=2300-01-01\nsoon.example expires=2263-01-01\n", "")
	for _, host := range []string{"far.example", "mid.example", "www.soon.example"} {
		if got := e.status(host); got != 403 {
			t.Errorf("%s: status %d, want 403", host, got)
		}
	}
}

// TestReloadCompactsInBackground: a file-mode reload that leaves the list
// with a large overlay (blocklist.Reparse of many changed lines in a big
// file) is followed, off the reload, by the same list parsed whole, with
// the same rules in effect all along.
func TestReloadCompactsInBackground(t *testing.T) {
	var base strings.Builder
	for i := range 30_000 {
		fmt.Fprintf(&base, "s%d.example\n", i)
	}
	e := startReloadEnv(t, base.String(), "")
	// 2,500 new rules at the end: a region well under an eighth of the file,
	// an overlay past half of what Reparse keeps before parsing whole.
	var more strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&more, "n%d.example\n", i)
	}
	edgetest.WriteFile(t, e.list, base.String()+more.String())
	e.waitStatus("n2499.example", 403, "the new rules in effect")
	edgetest.WaitFor(t, 10*time.Second, "the compacted list", func() bool {
		l := e.srv.reloader.Current().List
		return !l.NeedsCompaction() && l.Len() == 32_500
	})
	for _, h := range []string{"s0.example", "s29999.example", "n0.example", "n2499.example"} {
		if got := e.status(h); got != 403 {
			t.Errorf("%s: status %d after compaction, want 403", h, got)
		}
	}
}
