package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// switchOrigin is a loopback origin whose behaviour the test switches:
// "ok" answers its name, "500" answers 500, "hang" answers nothing until
// the request ends. It counts the requests it got, probes apart.
type switchOrigin struct {
	*httptest.Server
	mode   atomic.Value // string
	hits   atomic.Int64
	probes atomic.Int64
	// probeHeader is the X-Probe header of the last probe.
	probeHeader atomic.Value
}

func newSwitchOrigin(t *testing.T, name string) *switchOrigin {
	t.Helper()
	o := &switchOrigin{}
	o.mode.Store("ok")
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") == "edgeblock-health-check" {
			o.probes.Add(1)
			o.probeHeader.Store(r.Header.Get("X-Probe") + " " + r.URL.Path)
		} else {
			o.hits.Add(1)
		}
		switch o.mode.Load() {
		case "500":
			w.WriteHeader(500)
		case "hang":
			<-r.Context().Done()
		default:
			io.WriteString(w, name)
		}
	}))
	t.Cleanup(o.Server.Close)
	return o
}

func upValue(t *testing.T, e *testEnv, route, origin string) string {
	t.Helper()
	return edgetest.MetricValue(e.scrape(), fmt.Sprintf(`edgeblock_upstream_up{origin="%s",route="%s"}`, origin, route))
}

// TestPassiveHealth: 5xx statuses listed in passive.unhealthy_statuses
// count as failures; max_fails of them within the window take the origin
// out for fail_timeout, then one trial request decides: a failed trial
// keeps it out, a good one brings it back.
func TestPassiveHealth(t *testing.T) {
	parallelPlain(t)
	bad, good := newSwitchOrigin(t, "bad"), newSwitchOrigin(t, "good")
	bad.mode.Store("500")
	e := startEnv(t, "origins:\n  passive: {max_fails: 2, window: 10s, fail_timeout: 400ms, unhealthy_statuses: [500, 503]}\n  retries: {max_tries: 1}\n"+
		routeConfig("p.example", fmt.Sprintf("%q, %q", bad.URL, good.URL)), "")
	codes := map[int]int{}
	for range 10 {
		resp, _ := e.get("GET", "p.example", "/", nil)
		codes[resp.StatusCode]++
	}
	// Round robin: bad, good, bad (second failure: out), then good only.
	if bad.hits.Load() != 2 || codes[500] != 2 || codes[200] != 8 {
		t.Fatalf("bad origin got %d requests, visitors got %v; want 2 and 8 answers of 200", bad.hits.Load(), codes)
	}
	if v := upValue(t, e, "p.example", bad.URL); v != "0" {
		t.Errorf("upstream_up of the failing origin = %q, want 0", v)
	}
	// After fail_timeout: exactly one trial request; it fails, so the
	// origin is out again.
	time.Sleep(500 * time.Millisecond)
	for range 10 {
		e.get("GET", "p.example", "/", nil)
	}
	if n := bad.hits.Load(); n != 3 {
		t.Errorf("bad origin got %d requests after its fail timeout, want 1 trial", n-2)
	}
	// Fixed: the next trial succeeds and it takes full traffic again.
	bad.mode.Store("ok")
	time.Sleep(500 * time.Millisecond)
	c := countOrigins(t, e, "p.example", 100, 1, nil)
	if c["bad"] < 49 || c["good"] < 49 {
		t.Errorf("after recovery: %v, want both origins in turn", c)
	}
	if v := upValue(t, e, "p.example", bad.URL); v != "1" {
		t.Errorf("upstream_up after recovery = %q, want 1", v)
	}
	var ups []string
	for _, l := range e.logs.Lines(t, "origin up") {
		ups = append(ups, fmt.Sprint(l["origin"], " ", l["by"]))
	}
	if len(ups) != 1 || ups[0] != bad.URL+" passive" {
		t.Errorf("origin up lines %q, want one for the recovered origin by passive", ups)
	}
}

// TestActiveHealth: a hung origin is taken out by the active check within
// interval × fails (plus one probe timeout), and comes back after passes
// good probes; the probes are logged and counted.
func TestActiveHealth(t *testing.T) {
	a, b := newSwitchOrigin(t, "a"), newSwitchOrigin(t, "b")
	const interval, timeout, fails = 300 * time.Millisecond, 100 * time.Millisecond, 3
	e := startEnv(t, fmt.Sprintf("origins:\n  health: {path: /healthz, interval: %v, timeout: %v, fails: %d, passes: 2, headers: {X-Probe: yes}}\n", interval, timeout, fails)+
		routeConfig("h.example", fmt.Sprintf("%q, %q", a.URL, b.URL)), "")
	edgetest.WaitFor(t, 5*time.Second, "probes", func() bool { return a.probes.Load() >= 2 })
	if h := a.probeHeader.Load(); h != "yes /healthz" {
		t.Errorf("probe had X-Probe and path %q, want \"yes /healthz\"", h)
	}

	a.mode.Store("hang")
	took := edgetest.WaitFor(t, 5*time.Second, "the hung origin out", func() bool { return upValue(t, e, "h.example", a.URL) == "0" })
	// 1.2s of slack for probes scheduled late on a loaded machine (the
	// origin was out 1.31s after the hang at load 16, 1.62s at load 24).
	if limit := interval*fails + timeout + 1200*time.Millisecond; took > limit {
		t.Errorf("hung origin taken out after %v, want within interval × fails + timeout + slack = %v", took, limit)
	}
	t.Logf("hung origin out after %v (interval %v × fails %d)", took, interval, fails)
	// While it is out, visitors never wait for it.
	start := time.Now()
	c := countOrigins(t, e, "h.example", 20, 2, nil)
	if c["b"] != 20 || time.Since(start) > 2*time.Second {
		t.Errorf("with a down: %v in %v, want all on b at once", c, time.Since(start))
	}

	a.mode.Store("ok")
	edgetest.WaitFor(t, 5*time.Second, "the origin back", func() bool { return upValue(t, e, "h.example", a.URL) == "1" })
	c = countOrigins(t, e, "h.example", 20, 1, nil)
	if c["a"] != 10 || c["b"] != 10 {
		t.Errorf("after recovery: %v, want both in turn", c)
	}
	down, up := e.logs.Lines(t, "origin down"), e.logs.Lines(t, "origin up")
	if len(down) != 1 || down[0]["by"] != "health_check" || down[0]["origin"] != a.URL || down[0]["event"] != "origin_down" {
		t.Errorf("origin down lines: %v", down)
	}
	if len(up) != 1 || up[0]["by"] != "health_check" || up[0]["event"] != "origin_up" {
		t.Errorf("origin up lines: %v", up)
	}
	m := e.scrape()
	for _, s := range []string{
		fmt.Sprintf(`edgeblock_upstream_health_checks_total{origin="%s",result="fail",route="h.example"}`, a.URL),
		fmt.Sprintf(`edgeblock_upstream_health_checks_total{origin="%s",result="pass",route="h.example"}`, a.URL),
		fmt.Sprintf(`edgeblock_upstream_health_checks_total{origin="%s",result="pass",route="h.example"}`, b.URL),
	} {
		if v, _ := strconv.Atoi(edgetest.MetricValue(m, s)); v < 2 {
			t.Errorf("%s = %d, want at least 2", s, v)
		}
	}
}

// TestAllDown: with every origin out, all_down 503 answers a 503 page
// with Retry-After at once; least_bad (the default) still tries the
// origin that is least out.
func TestAllDown(t *testing.T) {
	down := "http://" + refusedAddr(t)
	e := startEnv(t, "origins:\n  fail_timeout: 1m\n"+routeConfig("lb.example", `"`+down+`"`, "off.example", `"`+down+`"`)+
		"    all_down: \"503\"\n", "")
	for _, tt := range []struct {
		host       string
		first, now int
	}{
		{"lb.example", 502, 502},
		{"off.example", 502, 503},
	} {
		resp, _ := e.get("GET", tt.host, "/", nil)
		if resp.StatusCode != tt.first {
			t.Errorf("%s first request: %d, want %d", tt.host, resp.StatusCode, tt.first)
		}
		resp, body := e.get("GET", tt.host, "/", nil)
		if resp.StatusCode != tt.now {
			t.Errorf("%s with its origin out: %d, want %d", tt.host, resp.StatusCode, tt.now)
		}
		if tt.now == 503 {
			ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			if ra < 50 || ra > 60 || !strings.Contains(body, "<html") {
				t.Errorf("503 page: Retry-After %q (want about the 1m fail timeout), body %.80q", resp.Header.Get("Retry-After"), body)
			}
		}
	}
	m := e.scrape()
	if v := edgetest.MetricValue(m, fmt.Sprintf(`edgeblock_upstream_errors_total{kind="refused",origin="%s",route="off.example"}`, down)); v != "1" {
		t.Errorf("off.example refused errors = %q, want 1 (the 503 did not try the origin)", v)
	}
}
