package proxy

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/reload"
)

func seriesCount(scrape string) int {
	n := 0
	for _, l := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(l, "edgeblock_") {
			n++
		}
	}
	return n
}

func TestMetricsScrape(t *testing.T) {
	o := echoOrigin(t)
	down := "http://" + refusedAddr(t)
	e := startEnv(t, routeConfig("app.example", `"`+o.URL+`"`, "down.example", `"`+down+`"`, "*.report.example", `"`+o.URL+`"`),
		"blocked.example policy=https://blog.example.com/why\ncourt.example status=451\nx.report.example mode=report\n")
	for range 3 {
		e.get("GET", "app.example", "/", nil)
	}
	e.get("POST", "app.example", "/", nil)
	e.get("GET", "blocked.example", "/", nil)
	e.get("HEAD", "www.blocked.example", "/", nil)
	e.get("GET", "court.example", "/", nil)
	e.get("GET", "x.report.example", "/", nil)
	e.get("GET", "nothing.example", "/", nil)
	e.get("GET", "down.example", "/", nil)
	e.get("BREW", "app.example", "/", nil)
	m := e.scrape()
	want := map[string]string{
		`edgeblock_requests_total{code="200",method="GET",outcome="proxied"}`:                                  "3",
		`edgeblock_requests_total{code="200",method="POST",outcome="proxied"}`:                                 "1",
		`edgeblock_requests_total{code="200",method="OTHER",outcome="proxied"}`:                                "1",
		`edgeblock_requests_total{code="403",method="GET",outcome="blocked"}`:                                  "1",
		`edgeblock_requests_total{code="403",method="HEAD",outcome="blocked"}`:                                 "1",
		`edgeblock_requests_total{code="451",method="GET",outcome="blocked"}`:                                  "1",
		`edgeblock_requests_total{code="200",method="GET",outcome="report"}`:                                   "1",
		`edgeblock_requests_total{code="404",method="GET",outcome="unknown"}`:                                  "1",
		`edgeblock_requests_total{code="502",method="GET",outcome="error"}`:                                    "1",
		`edgeblock_blocked_requests_total{mode="block",policy="https://blog.example.com/why",status="403"}`:    "2",
		`edgeblock_blocked_requests_total{mode="block",policy="https://policy.example/default",status="451"}`:  "1",
		`edgeblock_blocked_requests_total{mode="report",policy="https://policy.example/default",status="403"}`: "1",
		`edgeblock_request_duration_seconds_count{outcome="proxied"}`:                                          "5",
		`edgeblock_request_duration_seconds_count{outcome="blocked"}`:                                          "3",
		`edgeblock_requests_in_flight`:                                                                         "0",
		`edgeblock_blocklist_entries`:                                                                          "3",
		`edgeblock_blocklist_reloads_total{result="success"}`:                                                  "1",
		`edgeblock_blocklist_last_reload_successful`:                                                           "1",
		`edgeblock_config_last_reload_successful`:                                                              "1",
		fmt.Sprintf(`edgeblock_upstream_requests_total{code="200",origin="%s",route="app.example"}`, o.URL):    "5",
		fmt.Sprintf(`edgeblock_upstream_errors_total{kind="refused",origin="%s",route="down.example"}`, down):  "1",
		fmt.Sprintf(`edgeblock_upstream_up{origin="%s",route="down.example"}`, down):                           "0",
		`edgeblock_tls_handshake_refused_total{reason="not_covered"}`:                                          "0",
	}
	for series, v := range want {
		if got := edgetest.MetricValue(m, series); got != v {
			t.Errorf("%s = %q, want %s", series, got, v)
		}
	}
	for _, name := range []string{"edgeblock_build_info{", "go_goroutines", "process_resident_memory_bytes", "edgeblock_blocklist_last_reload_success_timestamp_seconds"} {
		if !strings.Contains(m, name) {
			t.Errorf("scrape lacks %s", name)
		}
	}

	// promtool lints the real scrape.
	cmd := exec.Command(requireBinary(t, "promtool", "prometheus"), "check", "metrics")
	cmd.Stdin = strings.NewReader(m)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// A thousand made-up hosts add no series.
	before := seriesCount(e.scrape())
	for i := range 1000 {
		e.get("GET", fmt.Sprintf("made-up-%d.example", i), fmt.Sprintf("/%d", i), nil)
	}
	after := e.scrape()
	if n := seriesCount(after); n != before {
		t.Errorf("1000 made-up hosts changed the series count from %d to %d", before, n)
	}
	if got := edgetest.MetricValue(after, `edgeblock_requests_total{code="404",method="GET",outcome="unknown"}`); got != "1001" {
		t.Errorf("unknown requests = %s, want 1001", got)
	}
}

func TestAdminEndpoints(t *testing.T) {
	dir := t.TempDir()
	edgetest.WriteFile(t, dir+"/b.txt", "x.example\n")
	edgetest.WriteFile(t, dir+"/c.yaml", "listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:0\nadmin:\n  pprof: true\nblocklist:\n  file: b.txt\n")
	b, err := reload.LoadBundle(dir + "/c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), dir+"/c.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	admin := srv.adminHandler()
	serve := func(path string) (int, string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", path, nil)
		r.Host = "127.0.0.1:9090" // the listener's own address (httptest's example.com gets 421)
		admin.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	if code, _ := serve("/readyz"); code != 503 {
		t.Errorf("/readyz before start = %d, want 503", code)
	}
	if code, _ := serve("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if err := srv.Start(b); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	base := "http://" + srv.Addr("admin")
	for _, tt := range []struct {
		path, want string
		code       int
	}{
		{"/readyz", "ready", 200},
		{"/healthz", "ok", 200},
		{"/blocklist", `"rules": 1,`, 200},
		{"/debug/pprof/", "goroutine", 200},
		{"/metrics", "edgeblock_requests_in_flight", 200},
	} {
		resp, err := http.Get(base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !bytes.Contains(body, []byte(tt.want)) {
			t.Errorf("GET %s = %d, body lacks %q", tt.path, resp.StatusCode, tt.want)
		}
	}
	// The admin endpoints are never served on the public listener.
	resp, err := http.Get("http://" + srv.Addr("http") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("public /metrics = %d, want the 404 page", resp.StatusCode)
	}
}

func TestAccessLogSwitches(t *testing.T) {
	parallelPlain(t)
	o := echoOrigin(t)
	e := startEnv(t, "log:\n  access: false\n"+routeConfig("app.example", `"`+o.URL+`"`), "")
	e.get("GET", "app.example", "/", nil)
	if n := len(e.logs.Lines(t, "request")); n != 0 {
		t.Errorf("access: false still wrote %d access lines", n)
	}
	e2 := startEnv(t, "log:\n  access_sample: 0.1\n"+routeConfig("app.example", `"`+o.URL+`"`), "")
	for range 400 {
		e2.get("GET", "app.example", "/", nil)
	}
	if n := len(e2.logs.Lines(t, "request")); n < 10 || n > 100 {
		t.Errorf("access_sample 0.1 of 400 requests wrote %d lines", n)
	}
}

// seriesOf returns the lines of a scrape for metric name (with labels).
func seriesOf(scrape, name string) []string {
	var out []string
	for _, l := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			out = append(out, l)
		}
	}
	return out
}

// TestBlocklistInfoAndRestartNeeded: edgeblock_blocklist_info has one
// series, the hash of the list in use, through reloads;
// edgeblock_config_restart_needed is 1 exactly while the config file
// differs from the running one in a restart-only setting.
func TestBlocklistInfoAndRestartNeeded(t *testing.T) {
	parallelPlain(t)
	o := echoOrigin(t)
	listA, listB := "a.example\n", "a.example\nb.example\n"
	e := startEnv(t, routeConfig("app.example", `"`+o.URL+`"`), listA)
	info := func(list string) string {
		return fmt.Sprintf(`edgeblock_blocklist_info{sha256="%s"} 1`, reload.HashOf([]byte(list)))
	}
	check := func(list, restart string) {
		t.Helper()
		m := e.scrape()
		if got := seriesOf(m, "edgeblock_blocklist_info"); len(got) != 1 || got[0] != info(list) {
			t.Errorf("blocklist info series = %q, want exactly %q", got, info(list))
		}
		if got := edgetest.MetricValue(m, "edgeblock_config_restart_needed"); got != restart {
			t.Errorf("restart needed = %q, want %s", got, restart)
		}
		cmd := exec.Command(requireBinary(t, "promtool", "prometheus"), "check", "metrics")
		cmd.Stdin = strings.NewReader(m)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
	check(listA, "0")

	edgetest.WriteFile(t, e.list, listB)
	edgetest.WaitFor(t, 5*time.Second, "list B in use", func() bool { return strings.Contains(e.scrape(), info(listB)) })
	check(listB, "0")

	// A restart-only change (a timeout) is flagged; taking it back clears it.
	orig, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(orig), "routes:\n", "timeouts:\n  dial: 7s\nroutes:\n", 1)
	edgetest.WriteFile(t, e.config, changed)
	edgetest.WaitFor(t, 5*time.Second, "restart needed", func() bool {
		return edgetest.MetricValue(e.scrape(), "edgeblock_config_restart_needed") == "1"
	})
	check(listB, "1")
	// A further reloadable change keeps the flag: dial is still not 5s.
	edgetest.WriteFile(t, e.config, strings.Replace(changed, "routes:\n", "routes:\n  - host: more.example\n    origins: [\""+o.URL+"\"]\n", 1))
	edgetest.WaitFor(t, 5*time.Second, "the new route", func() bool {
		resp, _ := e.get("GET", "more.example", "/", nil)
		return resp.StatusCode == 200
	})
	check(listB, "1")
	edgetest.WriteFile(t, e.config, string(orig))
	edgetest.WaitFor(t, 5*time.Second, "restart no longer needed", func() bool {
		return edgetest.MetricValue(e.scrape(), "edgeblock_config_restart_needed") == "0"
	})
	check(listB, "0")
}
