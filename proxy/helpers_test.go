package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/prometheus/client_golang/prometheus"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// keep, when above zero, bounds what is kept: a write that would
	// take the buffer past it is counted in dropped and discarded. A
	// flood test sets it so that its own record of the access lines
	// (hundreds of thousands of them) is not what its heap bound
	// measures.
	keep, dropped int
	// flush, when set, writes out the server's queued access lines;
	// String (and so logLines) calls it first.
	flush func()
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keep > 0 && s.b.Len()+len(p) > s.keep {
		s.dropped += len(p)
		return len(p), nil
	}
	return s.b.Write(p)
}

// keepAtMost bounds what s keeps from now on to n bytes (see keep).
func (s *syncBuffer) keepAtMost(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = n
}

func (s *syncBuffer) String() string {
	if s.flush != nil {
		s.flush()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines returns the JSON log lines whose msg is msg.
func (s *syncBuffer) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// testEnv is a running edgeblock on loopback with its files in a temp dir.
type testEnv struct {
	t      *testing.T
	dir    string
	config string
	list   string
	srv    *Server
	logs   *syncBuffer
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startEnv writes config (with the listeners on loopback ports from :0
// unless it sets its own) and blocklist into a temp dir and starts a server.
func startEnv(t *testing.T, config, list string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, config: filepath.Join(dir, "edgeblock.yaml"), list: filepath.Join(dir, "blocklist.txt"), logs: &syncBuffer{}}
	if !strings.Contains(config, "listen:") {
		config = "listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:0\n" + config
	}
	if !strings.Contains(config, "blocklist:") {
		config += "\nblocklist:\n  file: blocklist.txt\n  policy: https://policy.example/default\n  blocked_by: https://edge.example.com\n"
	}
	writeFile(t, e.config, config)
	writeFile(t, e.list, list)
	b, err := reload.LoadBundle(e.config)
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	e.serve(b)
	return e
}

// serve starts a server on bundle b, logging into e.logs, and shuts it
// down when the test ends.
func (e *testEnv) serve(b *reload.Bundle) {
	e.t.Helper()
	srv, err := NewServer(NewLogger(e.logs, "json", slog.LevelDebug), e.config, b)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(b); err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.logs.flush = srv.FlushAccessLog
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

// url returns the base URL of a listener.
func (e *testEnv) url(listener string) string {
	scheme := "http"
	if listener == "https" {
		scheme = "https"
	}
	return scheme + "://" + e.srv.Addr(listener)
}

// get sends a request for host to the HTTP listener.
func (e *testEnv) get(method, host, path string, header map[string]string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url("http")+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// scrape returns the admin listener's /metrics text.
func (e *testEnv) scrape() string {
	e.t.Helper()
	resp, err := http.Get(e.url("admin") + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls cond every 10ms until it holds or timeout passes, and
// returns how long that took.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// storageDir returns a certificate storage directory. certmagic may still
// be finishing a write in the background when the server has stopped, so
// removal is retried for a while instead of failing the test as
// t.TempDir would.
func storageDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "edgeblock-certs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir
}

// tlsTurn is held by the parallel test that serves TLS now (parallelTLS).
var tlsTurn sync.Mutex

// plainTurns holds a place for each parallel test without TLS that runs
// now (parallelPlain): three at once, beside the one serving TLS.
var plainTurns = make(chan struct{}, 3)

// parallelPlain marks a test as parallel with the others that start their
// own edge and origins on :0, serve no TLS and change no package state.
// A test that bounds its edge's reaction time tightly (TestActiveHealth,
// TestDrain, TestBlockClosesOpenRequests) stays sequential: it was
// measured at load with nothing beside it.
// Up to three of them run at once (plainTurns). The places are taken
// here rather than left to -parallel, so that TLS tests waiting for
// their turn (parallelTLS) do not hold the places these tests run in.
func parallelPlain(t *testing.T) {
	t.Helper()
	t.Parallel()
	plainTurns <- struct{}{}
	t.Cleanup(func() { <-plainTurns })
}

// parallelTLS marks a test that starts edges serving TLS as parallel with
// the tests that serve none. Such tests take turns among themselves:
// certmagic keeps process-wide state keyed by name (certificate jobs and
// on-demand obtains are deduplicated by name across all its configs), so
// two edges of one process that obtain a certificate for app.example at
// once, each from its own CA, would leave one of them without its own.
func parallelTLS(t *testing.T) {
	t.Helper()
	t.Parallel()
	tlsTurn.Lock()
	t.Cleanup(tlsTurn.Unlock)
}
