package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"github.com/edgeblock/edgeblock/proxy/reload"
)

// TestShutdownFlushesAccessLog: the line of the last request before
// Shutdown is in the output once Shutdown returns, with no flush asked.
func TestShutdownFlushesAccessLog(t *testing.T) {
	e := startEnv(t, "routes: []\n", "blocked.example\n")
	e.logs.Flush = nil // no help from the test's reads
	for i := range 3 {
		e.get("GET", "blocked.example", "/n"+string(rune('0'+i)), nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	lines := e.logs.Lines(t, "request")
	if len(lines) != 3 || lines[2]["path"] != "/n2" || lines[2]["outcome"] != metrics.OutcomeBlocked {
		t.Fatalf("access lines after Shutdown: %v", lines)
	}
}

// TestAccessLogDroppedMetric: the dropped counter is exported from start.
func TestAccessLogDroppedMetric(t *testing.T) {
	e := startEnv(t, "routes: []\n", "blocked.example\n")
	if got := e.metric("edgeblock_access_log_dropped_total"); got != "0" {
		t.Errorf("edgeblock_access_log_dropped_total = %q, want 0", got)
	}
}

// TestAccessLogTextFormat: with a text logger the access lines go through
// the queue in logfmt, with the same fields.
func TestAccessLogTextFormat(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "edgeblock.yaml")
	edgetest.WriteFile(t, config, "listen:\n  http: 127.0.0.1:0\n  admin: off\nblocklist:\n  file: blocklist.txt\nroutes: []\n")
	edgetest.WriteFile(t, filepath.Join(dir, "blocklist.txt"), "blocked.example\n")
	b, err := reload.LoadBundle(config)
	if err != nil {
		t.Fatal(err)
	}
	var out edgetest.LogBuffer
	srv, err := NewServer(NewLogger(&out, "text", slog.LevelInfo), config, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(b); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+srv.Addr("http")+"/x?y", nil)
	req.Host = "blocked.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	var line string
	for l := range strings.SplitSeq(out.String(), "\n") {
		if strings.Contains(l, "msg=request") {
			line = l
		}
	}
	for _, want := range []string{"level=INFO", "host=blocked.example", "path=/x", "status=403", "outcome=blocked", "rule=blocked.example", "mode=block", "proto=HTTP/1.1"} {
		if !strings.Contains(line, " "+want) {
			t.Errorf("text access line %q lacks %q", line, want)
		}
	}
}
