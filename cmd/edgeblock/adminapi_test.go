package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
)

// TestAdminAPIWithBlockCommands runs the real binary as the edge, and at
// the same time block commands (separate processes) and API writes to its
// admin listener: the file keeps every rule (the API and the command take
// the same lock), each with its actor, and the edge blocks them all.
func TestAdminAPIWithBlockCommands(t *testing.T) {
	bin := edgeblockBin(t)
	f := newEdgeFiles(t, "seed.example\n")
	const token = "api-token-0123456789abcdef"
	sum := sha256.Sum256([]byte(token))
	os.WriteFile(filepath.Join(f.dir, "tokens"), []byte("deploy-bot:write:"+hex.EncodeToString(sum[:])+"\n"), 0o600)
	cfg, _ := os.ReadFile(f.config)
	os.WriteFile(f.config, append(cfg, "admin:\n  tokens_file: tokens\n"...), 0o644)
	p := startProc(t, bin, "serve", "-config", f.config)
	p.waitReady(f.admin)

	const n = 15
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	for i := range n {
		wg.Go(func() {
			var out bytes.Buffer
			cmd := exec.Command(bin, "block", "-config", f.config, fmt.Sprintf("cli%d.example", i), "-comment", "T-cli")
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				errs <- fmt.Sprintf("block cli%d: %v\n%s", i, err, out.String())
			}
		})
		wg.Go(func() {
			body := fmt.Sprintf(`{"pattern":"api%d.example","attrs":{"status":451},"comment":"T-api"}`, i)
			req, _ := http.NewRequest("POST", "http://"+f.admin+"/v1/block", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- fmt.Sprintf("api%d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			if resp.StatusCode != 200 || m["applied"] != true {
				errs <- fmt.Sprintf("api%d: %d %v", i, resp.StatusCode, m)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	l, err := blocklist.Load(f.list)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 2*n+1 {
		t.Errorf("%d rules in the file, want %d", l.Len(), 2*n+1)
	}
	for i := range n {
		for name, by := range map[string]string{fmt.Sprintf("api%d.example", i): "token:deploy-bot", fmt.Sprintf("cli%d.example", i): ""} {
			r, ok := l.Lookup(name)
			note, _ := l.Note(r)
			if !ok || (by != "" && note.By != by) || note.By == "" {
				t.Errorf("%s: kept %v, note by %q", name, ok, note.By)
			}
		}
	}
	// Every write, of the commands and of the API, is in the file's edit
	// history, each with its actor.
	var hist []historyJSON
	code, stdout, _ := runCmd("history", "-json", "-n", "0", "-config", f.config)
	decodeJSON(t, "history -json", stdout, &hist)
	byActor := map[string]int{}
	for _, h := range hist {
		if len(h.Changes) == 1 && h.Changes[0].Kind == blocklist.Added {
			byActor[h.Actor]++
		}
	}
	if code != 0 || len(hist) != 2*n || byActor["token:deploy-bot"] != n {
		t.Errorf("history: exit %d, %d entries (%v), want %d, %d of them by token:deploy-bot", code, len(hist), byActor, 2*n, n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := range n {
		for name, status := range map[string]int{fmt.Sprintf("api%d.example", i): 451, fmt.Sprintf("cli%d.example", i): 403} {
			code, _ := hostGet(f.http, name, "/", "")
			for code != status && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				code, _ = hostGet(f.http, name, "/", "")
			}
			if code != status {
				t.Errorf("%s: %d, want %d", name, code, status)
			}
		}
	}
	p.stop()
	if !strings.Contains(p.stderr.String(), `"event":"admin_write"`) {
		t.Errorf("no admin_write log line:\n%s", p.stderr.String())
	}
}

// TestExplainWithAuthReads: with admin.auth_reads, explain asks the
// running edge only with $EDGEBLOCK_ADMIN_TOKEN, and without it says why
// it fell back to the files.
func TestExplainWithAuthReads(t *testing.T) {
	bin := edgeblockBin(t)
	f := newEdgeFiles(t, "seed.example\n")
	const token = "reader-token-0123456789abcdef"
	os.WriteFile(filepath.Join(f.dir, "tokens"), []byte("grafana read "+token+"\n"), 0o600)
	cfg, _ := os.ReadFile(f.config)
	os.WriteFile(f.config, append(cfg, "admin:\n  tokens_file: tokens\n  auth_reads: true\n"...), 0o644)
	p := startProc(t, bin, "serve", "-config", f.config)
	p.waitReady(f.admin)

	t.Setenv(adminTokenEnv, "")
	code, out, errOut := runCmd("explain", "-config", f.config, "seed.example")
	if code != 0 || !strings.Contains(out, "source: the files") || !strings.Contains(out, "set "+adminTokenEnv) {
		t.Errorf("explain without a token: exit %d\n%s%s", code, out, errOut)
	}
	t.Setenv(adminTokenEnv, token)
	code, out, errOut = runCmd("explain", "-config", f.config, "seed.example")
	if code != 0 || !strings.Contains(out, "source: the running edge at "+f.admin) {
		t.Errorf("explain with a token: exit %d\n%s%s", code, out, errOut)
	}
	p.stop()
}
