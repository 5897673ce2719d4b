package proxy

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/prometheus/client_golang/prometheus"
)

// testEnv is a running edgeblock on loopback with its files in a temp dir.
type testEnv struct {
	t      *testing.T
	dir    string
	config string
	list   string
	srv    *Server
	logs   *edgetest.LogBuffer
}

// startEnv writes config (with the listeners on loopback ports from :0
// unless it sets its own) and blocklist into a temp dir and starts a server.
func startEnv(t *testing.T, config, list string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, config: filepath.Join(dir, "edgeblock.yaml"), list: filepath.Join(dir, "blocklist.txt"), logs: &edgetest.LogBuffer{}}
	if !strings.Contains(config, "listen:") {
		config = "listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:0\n" + config
	}
	if !strings.Contains(config, "blocklist:") {
		config += "\nblocklist:\n  file: blocklist.txt\n  policy: https://policy.example/default\n  blocked_by: https://edge.example.com\n"
	}
	edgetest.WriteFile(t, e.config, config)
	edgetest.WriteFile(t, e.list, list)
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
	checkTLSNames(e.t, b)
	srv, err := NewServer(NewLogger(e.logs, "json", slog.LevelDebug), e.config, b)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(b); err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.logs.Flush = srv.FlushAccessLog
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

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// tlsNames holds a lock per certificate name base (parallelTLS), made on
// first use; tlsDeclared maps a running parallel TLS test's name to the
// bases it declared, which startEnv checks its edges against.
var tlsNames, tlsDeclared sync.Map

// plainTurns holds a place for each parallel test without TLS that runs
// now (parallelPlain): three at once, beside the one serving TLS.
var plainTurns = make(chan struct{}, 3)

// parallelPlain marks a test as parallel with the others that start their
// own edge and origins on :0, serve no TLS and change no package state.
// A test that bounds its edge's reaction time tightly (TestActiveHealth,
// TestDrain, TestBlockClosesOpenRequests) or whose writes must each come
// within the watcher's debounce (TestReloadWaysOfWriting) stays
// sequential: it was measured at load with nothing beside it.
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
// the other tests, and names the certificates its edges may obtain. Tests
// that share a name take turns: certmagic keeps process-wide state keyed
// by name (certificate jobs and on-demand obtains are deduplicated by
// name across all its configs), so two edges of one process that obtain
// a certificate for app.example at once, each from its own CA, would
// leave one of them without its own. A name counts by its base, its last
// two labels (x.app.example is app.example's), since a rule or route for
// a name covers the names under it. an edge the test starts (testEnv.serve)
// fails it when it has a route or rule whose base the test did not name.
func parallelTLS(t *testing.T, names ...string) {
	t.Helper()
	if len(names) == 0 {
		t.Fatal("parallelTLS: name the certificate names the test's edges serve")
	}
	t.Parallel()
	bases := map[string]bool{}
	for _, n := range names {
		b, ok := certBase(n)
		if !ok {
			t.Fatalf("parallelTLS: %q has no base of two labels", n)
		}
		bases[b] = true
	}
	for _, b := range slices.Sorted(maps.Keys(bases)) { // one order: no deadlock
		mu, _ := tlsNames.LoadOrStore(b, new(sync.Mutex))
		mu.(*sync.Mutex).Lock()
		t.Cleanup(mu.(*sync.Mutex).Unlock)
	}
	tlsDeclared.Store(t.Name(), bases)
	t.Cleanup(func() { tlsDeclared.Delete(t.Name()) })
}

// certBase returns the last two labels of name ("app.example" for
// "*.x.app.example"), and false when it has fewer; an IP address is its
// own base.
func certBase(name string) (string, bool) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if a, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return a.String(), true
	}
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return "", false
	}
	j := strings.LastIndexByte(name[:i], '.')
	if base := name[j+1:]; !strings.HasPrefix(base, "*") {
		return base, true
	}
	return "", false
}

// checkTLSNames fails t when b's routes or rules name a certificate base
// that t's parallelTLS call did not: such an edge could obtain a
// certificate while another test's edge obtains the same one.
func checkTLSNames(t *testing.T, b *reload.Bundle) {
	t.Helper()
	top, _, _ := strings.Cut(t.Name(), "/")
	declared, ok := tlsDeclared.Load(top)
	if !ok {
		return
	}
	names := []string{}
	for _, r := range b.Config.Routes {
		names = append(names, r.Host)
	}
	for r := range b.List.Rules() {
		names = append(names, r.Name)
	}
	for _, n := range names {
		if base, ok := certBase(n); !ok || !declared.(map[string]bool)[base] {
			t.Fatalf("parallelTLS: the edge serves %s, whose certificate base the test did not name", n)
		}
	}
}

func TestCertBase(t *testing.T) {
	for _, tt := range []struct {
		name, base string
		ok         bool
	}{
		{"app.example", "app.example", true},
		{"*.x.App.example.", "app.example", true},
		{"ok.customer.example", "customer.example", true},
		{"192.0.2.7", "192.0.2.7", true},
		{"[2001:db8::1]", "2001:db8::1", true},
		{"example", "", false},
		{"*.example", "", false},
	} {
		if base, ok := certBase(tt.name); base != tt.base || ok != tt.ok {
			t.Errorf("certBase(%q) = %q, %v; want %q, %v", tt.name, base, ok, tt.base, tt.ok)
		}
	}
}
