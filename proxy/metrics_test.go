package proxy

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
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
		`edgeblock_tls_handshake_refused_total`:                                                                "0",
	}
	for series, v := range want {
		if got := metricValue(t, m, series); got != v {
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
	if got := metricValue(t, after, `edgeblock_requests_total{code="404",method="GET",outcome="unknown"}`); got != "1001" {
		t.Errorf("unknown requests = %s, want 1001", got)
	}
}

func TestAdminEndpoints(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/b.txt", "x.example\n")
	writeFile(t, dir+"/c.yaml", "listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:0\nadmin:\n  pprof: true\nblocklist:\n  file: b.txt\n")
	b, err := LoadBundle(dir + "/c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), dir+"/c.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	admin := srv.adminHandler(srv.reg, true)
	serve := func(path string) (int, string) {
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
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
	o := echoOrigin(t)
	e := startEnv(t, "log:\n  access: false\n"+routeConfig("app.example", `"`+o.URL+`"`), "")
	e.get("GET", "app.example", "/", nil)
	if n := len(e.logs.logLines(t, "request")); n != 0 {
		t.Errorf("access: false still wrote %d access lines", n)
	}
	e2 := startEnv(t, "log:\n  access_sample: 0.1\n"+routeConfig("app.example", `"`+o.URL+`"`), "")
	for range 400 {
		e2.get("GET", "app.example", "/", nil)
	}
	if n := len(e2.logs.logLines(t, "request")); n < 10 || n > 100 {
		t.Errorf("access_sample 0.1 of 400 requests wrote %d lines", n)
	}
}
