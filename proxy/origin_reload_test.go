package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// reloadConfig rewrites the env's config with old replaced by new and
// applies it.
func (e *testEnv) reloadConfig(old, new string) {
	e.t.Helper()
	text, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.Contains(string(text), old) {
		e.t.Fatalf("config lacks %q", old)
	}
	n := len(e.logs.Lines(e.t, "config applied"))
	edgetest.WriteFile(e.t, e.config, strings.Replace(string(text), old, new, 1))
	e.srv.Reloader().Reload("test")
	start := time.Now()
	for len(e.logs.Lines(e.t, "config applied")) <= n {
		if time.Since(start) > 5*time.Second {
			for _, l := range strings.Split(e.logs.String(), "\n") {
				if strings.Contains(l, "config") {
					e.t.Log(l)
				}
			}
			e.t.Fatal("timed out waiting for the config reload")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadKeepsOrigins: a reload keeps a surviving origin's passive
// health (an origin out stays out), its counters and its single health
// checker; a removed origin gets no new requests while those in flight on
// it finish.
func TestReloadKeepsOrigins(t *testing.T) {
	parallelPlain(t)
	down := "http://" + refusedAddr(t)
	good := newSwitchOrigin(t, "good")
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	leaving := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") == "edgeblock-health-check" {
			return
		}
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		io.WriteString(w, "leaving")
	}))
	t.Cleanup(leaving.Close)
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(free) // runs before leaving.Close, should the test stop early
	// The probe's timeout is not the interval's 100ms: on a loaded
	// machine the good origin's probe took longer, it went out, and
	// every request tried the refusing origin first (6 refused, not 1).
	cfg := "origins:\n  lb: first\n  fail_timeout: 1m\n  max_idle_conns: 50\n  health: {interval: 100ms, timeout: 10s, path: /health}\n" +
		routeConfig("keep.example", fmt.Sprintf("%q, %q", down, good.URL), "drain.example", fmt.Sprintf("%q, %q", leaving.URL, good.URL))
	e := startEnv(t, cfg, "")

	// down refuses once and is out; the request went on to good.
	if resp, body := e.get("GET", "keep.example", "/", nil); resp.StatusCode != 200 || body != "good" {
		t.Fatalf("first request: %d %q", resp.StatusCode, body)
	}
	// A request in flight on the origin that the reload removes.
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", e.url("http")+"/", nil)
		req.Host = "drain.example"
		// It is answered once the reloads and checks below are done,
		// which take over 10s (noRedirect's bound) beside other tests
		// with -race at load 14.
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- fmt.Sprint(resp.StatusCode, " ", string(body))
	}()
	<-entered

	for i := range 5 {
		e.reloadConfig(fmt.Sprintf("max_idle_conns: %d\n", 50+i), fmt.Sprintf("max_idle_conns: %d\n", 51+i))
		if i == 0 {
			e.reloadConfig(fmt.Sprintf("%q, %q", leaving.URL, good.URL), fmt.Sprintf("%q", good.URL))
		}
	}
	// Each reload changed max_idle_conns, so each built a transport; only
	// the one in use is kept.
	tc := &e.srv.proxy.transports
	tc.mu.Lock()
	if n := len(tc.m); n != 1 {
		t.Errorf("%d origin transports kept after the reloads, want 1", n)
	}
	tc.mu.Unlock()
	if v := upValue(t, e, "keep.example", down); v != "0" {
		t.Errorf("after reloads, upstream_up of the refusing origin = %q, want 0 (still out)", v)
	}
	for range 5 {
		if resp, body := e.get("GET", "keep.example", "/", nil); resp.StatusCode != 200 || body != "good" {
			t.Fatalf("after reload: %d %q", resp.StatusCode, body)
		}
	}
	m := e.scrape()
	if v := edgetest.MetricValue(m, fmt.Sprintf(`edgeblock_upstream_errors_total{kind="refused",origin="%s",route="keep.example"}`, down)); v != "1" {
		t.Errorf("refused errors = %q, want 1: the reload forgot that the origin was out", v)
	}
	if v := edgetest.MetricValue(m, fmt.Sprintf(`edgeblock_upstream_requests_total{code="200",origin="%s",route="keep.example"}`, good.URL)); v != "6" {
		t.Errorf("good origin's responses = %q, want 6 counted across the reloads", v)
	}
	// The removed origin gets nothing new; its request in flight ends well.
	if resp, body := e.get("GET", "drain.example", "/", nil); body != "good" {
		t.Errorf("drain.example after the reload: %d %q, want the remaining origin", resp.StatusCode, body)
	}
	free()
	if got := <-done; got != "200 leaving" {
		t.Errorf("request in flight on the removed origin: %q, want 200 leaving", got)
	}
	// One checker per origin, not one per reload: about 10 probes a second.
	before := good.probes.Load()
	time.Sleep(time.Second)
	// good is in both routes' pools until the second reload, and in
	// keep.example and drain.example after it: two checkers.
	if n := good.probes.Load() - before; n < 10 || n > 26 {
		t.Errorf("good got %d probes in 1s at interval 100ms in two routes, want about 20", n)
	}
}
