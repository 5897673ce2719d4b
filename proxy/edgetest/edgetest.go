// Package edgetest holds the test setup that tests of several packages
// share: a log buffer safe for the server and the test at once, waiting
// for a condition, reading a metric from a scrape, files in a temporary
// directory, and the internal CA's root as a certificate pool.
//
// It imports nothing of edgeblock's, so that every package's own tests
// (the root proxy package's in-package tests included) can use it; what
// needs a running edge stays beside the tests of the package that has it.
package edgetest

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer is a log destination safe for concurrent writes and reads:
// the server's logger writes, the test reads. The zero value is an empty
// buffer that keeps everything.
type LogBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	keep    int // when above zero, the most bytes kept (KeepAtMost)
	dropped int

	// Flush, when set, is called by String (and so Lines) before it
	// reads: a server's queued access lines are written out first.
	Flush func()
}

// Write appends p, unless that would take the buffer past KeepAtMost's
// bound: then p is counted in Dropped and discarded. It never fails.
func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keep > 0 && s.b.Len()+len(p) > s.keep {
		s.dropped += len(p)
		return len(p), nil
	}
	return s.b.Write(p)
}

// KeepAtMost bounds what s keeps from now on to n bytes: a flood test sets
// it so that its own record of the access lines is not what its heap
// bound measures. Zero or less keeps everything.
func (s *LogBuffer) KeepAtMost(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = n
}

// Dropped returns how many bytes KeepAtMost's bound discarded.
func (s *LogBuffer) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// String returns everything kept, after Flush.
func (s *LogBuffer) String() string {
	if s.Flush != nil {
		s.Flush()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines returns the JSON log lines whose msg is msg, in order. A line
// that is not JSON fails the test.
func (s *LogBuffer) Lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(s.String(), "\n") {
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

// WaitFor polls cond every 10ms until it holds, and returns how long that
// took; after timeout it fails the test, naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
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

// MetricValue returns the value of series (its name and labels exactly as
// exposed, as `name{a="b"}`) in a Prometheus text scrape, or "" when the
// scrape has no such series.
func MetricValue(scrape, series string) string {
	for line := range strings.SplitSeq(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// Scrape returns the text of a GET of url (an admin listener's /metrics).
func Scrape(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return string(b)
}

// WriteFile writes text to path (mode 0644) or fails the test.
func WriteFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// RemovedDir returns a new temporary directory named after prefix that is
// removed when the test ends, retrying for up to 5s: certmagic may still
// be finishing a write in it in the background after the server stopped,
// which would fail t.TempDir's cleanup. A directory still there after
// that fails the test.
func RemovedDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for range 50 {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("directory %s could not be removed: %v", dir, err)
	})
	return dir
}

// InternalCAPool returns a pool with the root certificate of the internal
// CA kept in the certificate storage directory storage (tls.storage), as
// a client of an edge with tls.mode internal trusts it.
func InternalCAPool(t testing.TB, storage string) *x509.CertPool {
	t.Helper()
	pemData, err := os.ReadFile(filepath.Join(storage, "internal-ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatalf("no certificate in %s/internal-ca/root.crt", storage)
	}
	return pool
}
