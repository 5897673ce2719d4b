package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// editWriter makes one edit (block or unblock, HOST, key=value ...) of a
// list that holds initial, and reports whether it was accepted, the list
// afterwards and what the writer said.
type editWriter func(t *testing.T, initial string, edit []string) (accepted bool, after, said string)

// TestSameEditAllWriters runs one table of edits through the three
// writers — the block and unblock commands on a file, the same commands
// with -fleet against a real redis-server, and the admin API of a running
// edge over its real listener — and expects each row to be accepted or
// refused alike, leaving the same rules.
func TestSameEditAllWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and an edge")
	}
	now := time.Now()
	at := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }
	rows := []struct {
		name    string
		initial string
		edit    []string
		accept  bool
	}{
		{"block, new rule", "only.example\n", []string{"block", "new.example"}, true},
		{"block, already so", "only.example\n", []string{"block", "only.example"}, true},
		{"report mode on the only block rule", "only.example\n", []string{"block", "only.example", "mode=report"}, false},
		{"report mode on one of three", "a.example\nb.example\nc.example\n", []string{"block", "a.example", "mode=report"}, true},
		{"report mode, the list allows the drop", "#! allow-drop\nonly.example\n", []string{"block", "only.example", "mode=report"}, true},
		{"expiry two seconds ahead on the only rule", "only.example\n", []string{"block", "only.example", "expires=+2s"}, false},
		{"expiry within the horizon on the only rule", "only.example\n", []string{"block", "only.example", "expires=" + at(blocklist.GuardHorizon/2)}, false},
		{"expiry beyond the horizon", "only.example\n", []string{"block", "only.example", "expires=" + at(blocklist.GuardHorizon+time.Hour)}, true},
		{"expiry moved earlier within the horizon", "only.example expires=" + at(40*time.Minute) + "\n", []string{"block", "only.example", "expires=" + at(20*time.Minute)}, false},
		{"a rule's own expiry within the horizon", "only.example expires=" + at(40*time.Minute) + "\n", []string{"block", "other.example"}, true},
		{"bad status", "only.example\n", []string{"block", "only.example", "status=999"}, false},
		{"unblock the only rule", "only.example\n", []string{"unblock", "only.example"}, false},
		{"unblock one of two", "a.example\nb.example\n", []string{"unblock", "a.example"}, true},
		{"unblock one of three", "a.example\nb.example\nc.example\n", []string{"unblock", "b.example"}, true},
		{"unblock the only rule, the list allows the drop", "#! allow-drop\nonly.example\n", []string{"unblock", "only.example"}, true},
		{"unblock a name without a rule", "only.example\n", []string{"unblock", "none.example"}, false},
	}
	writers := []struct {
		name string
		w    editWriter
	}{
		{"file", fileWriter(t)},
		{"fleet", fleetWriter(t)},
		{"api", apiWriter(t)},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var first []string
			for i, wr := range writers {
				accepted, after, said := wr.w(t, row.initial, relativeExpiry(row.edit))
				if accepted != row.accept {
					t.Errorf("%s writer: accepted %v, want %v; it said:\n%s", wr.name, accepted, row.accept, said)
				}
				rules := ruleLines(t, after)
				if !accepted {
					if want := ruleLines(t, row.initial); !slices.Equal(rules, want) {
						t.Errorf("%s writer refused, but the rules changed to %q", wr.name, rules)
					}
				}
				if i == 0 {
					first = rules
				} else if !slices.Equal(rules, first) {
					t.Errorf("%s writer left rules %q; the %s writer %q", wr.name, rules, writers[0].name, first)
				}
			}
		})
	}
}

// relativeExpiry returns edit with an "expires=+DURATION" argument made
// absolute from the time of the call.
func relativeExpiry(edit []string) []string {
	out := slices.Clone(edit)
	for i, a := range out {
		if d, ok := strings.CutPrefix(a, "expires=+"); ok {
			dur, err := time.ParseDuration(d)
			if err != nil {
				panic(err)
			}
			out[i] = "expires=" + time.Now().Add(dur).UTC().Format(time.RFC3339Nano)
		}
	}
	return out
}

// ruleLines returns the rules of a list, each in normalized form.
func ruleLines(t *testing.T, text string) []string {
	t.Helper()
	l, err := blocklist.Parse("list", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	var out []string
	for r := range l.Rules() {
		out = append(out, r.Format())
	}
	return out
}

// fileWriter is the block and unblock commands on a blocklist file.
func fileWriter(t *testing.T) editWriter {
	dir := t.TempDir()
	cfg, list := filepath.Join(dir, "edgeblock.yaml"), filepath.Join(dir, "blocklist.txt")
	edgetest.WriteFile(t, cfg, editConfig(list))
	return func(t *testing.T, initial string, edit []string) (bool, string, string) {
		edgetest.WriteFile(t, list, initial)
		code, out, errOut := runCmd(append([]string{edit[0], "-config", cfg}, edit[1:]...)...)
		return code == 0, readFile(t, list), out + errOut
	}
}

// fleetWriter is the block and unblock commands with -fleet on a real
// redis-server.
func fleetWriter(t *testing.T) editWriter {
	r := fleettest.Start(t)
	store := fleet.NewStore(r.Client(), fleet.Config{})
	cfg := fleetCLIConfig(t, r.Addr())
	return func(t *testing.T, initial string, edit []string) (bool, string, string) {
		ctx := context.Background()
		if _, err := store.Update(ctx, func([]byte) ([]byte, error) { return []byte(initial), nil }, fleet.Meta{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCmd(append([]string{edit[0], "-fleet", "-config", cfg}, edit[1:]...)...)
		v, err := store.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return code == 0, string(v.Content), out + errOut
	}
}

// apiWriter is POST /v1/block and /v1/unblock of a running edge (the real
// binary) in file mode. Before each edit the edge is brought to the
// row's list (through an allow-drop list, which its own guard lets
// through), so that the edit is judged and applied as in production.
func apiWriter(t *testing.T) editWriter {
	bin := edgeblockBin(t)
	f := newEdgeFiles(t, "")
	const token = "same-edit-token-0123456789"
	edgetest.WriteFile(t, filepath.Join(f.dir, "tokens"), "writer write "+token+"\n")
	cfg, _ := os.ReadFile(f.config)
	edgetest.WriteFile(t, f.config, string(cfg)+"admin:\n  tokens_file: tokens\n")
	p := startProc(t, bin, "serve", "-config", f.config)
	p.waitReady(f.admin)
	return func(t *testing.T, initial string, edit []string) (bool, string, string) {
		for _, text := range []string{blocklist.AllowDropMarker + "\n", initial} {
			edgetest.WriteFile(t, f.list, text)
			waitApplied(t, f.admin, text)
		}
		path, body := "/v1/block", map[string]any{"pattern": edit[1]}
		if edit[0] == "unblock" {
			path = "/v1/unblock"
		} else {
			attrs := map[string]string{}
			for _, a := range edit[2:] {
				k, v, _ := strings.Cut(a, "=")
				attrs[k] = v
			}
			body["attrs"] = attrs
		}
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", "http://"+f.admin+path, strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		said, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		accepted := resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted
		if !accepted && resp.StatusCode >= 500 {
			t.Errorf("API: %s %s", resp.Status, said)
		}
		return accepted, readFile(t, f.list), fmt.Sprintf("%s %s", resp.Status, said)
	}
}

// waitApplied waits until the edge at admin has the list text in effect.
func waitApplied(t *testing.T, admin, text string) {
	t.Helper()
	sum := sha256.Sum256([]byte(text))
	want := hex.EncodeToString(sum[:])
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/blocklist/rules")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("X-Edgeblock-Blocklist-Sha256") == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edge did not apply %q", text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
