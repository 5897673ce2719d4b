package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series returns the series of the metric name in reg, each as its labels
// ("k=v,k=v") mapped to its value (a counter's, a gauge's, or a
// histogram's sample count).
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l []string
			for _, lp := range m.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			out[strings.Join(l, ",")] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

// TestRegistryPassedIn: each Metrics registers on its own registry only,
// so two edges in one process (tests) never collide.
func TestRegistryPassedIn(t *testing.T) {
	a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
	New(a, "v1", "r1")
	New(b, "v2", "r2") // would panic on a shared registry
	got := series(t, a, "edgeblock_build_info")
	if len(got) != 1 || !strings.Contains(fmt.Sprint(got), "version=v1") {
		t.Fatalf("edgeblock_build_info on registry a: %v; want one series of v1", got)
	}
}

// TestSeriesStartAtZero: the fixed label sets are exported before any
// event, so rate() and absent() work from the first scrape.
func TestSeriesStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, "v", "r")
	for _, tt := range []struct {
		name string
		want int
	}{
		{"edgeblock_blocked_connections_closed_total", 3},
		{"edgeblock_admin_writes_total", 2 * len(AdminWriteResults)},
		{"edgeblock_admin_auth_failures_total", 5},
		{"edgeblock_blocklist_reloads_total", 4},
		{"edgeblock_config_reloads_total", 4},
		{"edgeblock_connections_refused_total", 1},
		{"edgeblock_requests_refused_total", 1},
		{"edgeblock_fleet_explicit_applied_total", 3},
	} {
		got := series(t, reg, tt.name)
		if len(got) != tt.want {
			t.Errorf("%s: %d series %v; want %d", tt.name, len(got), got, tt.want)
		}
		for l, v := range got {
			if v != 0 {
				t.Errorf("%s{%s} = %v before any event, want 0", tt.name, l, v)
			}
		}
	}
}

// TestServedAndBlocklist: Served counts by outcome, code and method (an
// unknown method as OTHER), and SetBlocklist keeps one info series.
func TestServedAndBlocklist(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "v", "r")
	m.Served(OutcomeBlocked, 403, "GET", time.Millisecond)
	m.Served(OutcomeBlocked, 403, "GET", time.Millisecond)
	m.Served(OutcomeProxied, 200, "BREW", time.Second)
	m.Served(OutcomeProxied, 1234, "GET", time.Second)
	if got, want := fmt.Sprint(series(t, reg, "edgeblock_requests_total")), "map[code=200,method=OTHER,outcome=proxied:1 code=403,method=GET,outcome=blocked:2 code=other,method=GET,outcome=proxied:1]"; got != want {
		t.Errorf("edgeblock_requests_total = %s\nwant %s", got, want)
	}
	if got := series(t, reg, "edgeblock_request_duration_seconds"); got["outcome=proxied"] != 2 || got["outcome=blocked"] != 2 {
		t.Errorf("edgeblock_request_duration_seconds counts = %v, want 2 proxied and 2 blocked", got)
	}
	m.SetBlocklist(3, "aaa")
	m.SetBlocklist(4, "bbb")
	if got := fmt.Sprint(series(t, reg, "edgeblock_blocklist_info")); got != "map[sha256=bbb:1]" {
		t.Errorf("edgeblock_blocklist_info = %s, want the one series of bbb", got)
	}
	if got := series(t, reg, "edgeblock_blocklist_entries")[""]; got != 4 {
		t.Errorf("edgeblock_blocklist_entries = %v, want 4", got)
	}
}

// TestRequestSeriesCache counts requests of many outcome, code and method
// combinations — more than the cache has slots, so keys share slots and
// replace each other — from several goroutines in an interleaved order,
// and checks every series of edgeblock_requests_total against the counts
// made here: the cache in front of the registry never hands out another
// key's series.
func TestRequestSeriesCache(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "v", "r")
	outcomes := []string{OutcomeProxied, OutcomeBlocked, OutcomeReport, OutcomeUnknown, OutcomeError, OutcomeCanceled, OutcomeRejected, OutcomeTransparency}
	methods := []string{"GET", "HEAD", "POST", "BREW", "PUT"}
	codes := []int{200, 204, 301, 403, 404, 429, 499, 502, 503, 1234}
	type key struct {
		outcome, method string
		code            int
	}
	var keys []key
	for _, o := range outcomes {
		for _, me := range methods {
			for _, c := range codes {
				keys = append(keys, key{o, me, c})
			}
		}
	}
	want := map[string]float64{}
	for i, k := range keys {
		code := codeLabel(k.code)
		want[fmt.Sprintf("code=%s,method=%s,outcome=%s", code, methodLabel(k.method), k.outcome)] += float64(4 * (1 + i%3))
	}
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for round := range 3 {
				for j := range keys {
					i := (j*7 + g*13 + round*31) % len(keys) // each goroutine its own order
					if round <= i%3 {
						k := keys[i]
						m.Served(k.outcome, k.code, strings.Clone(k.method), time.Millisecond)
					}
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	got := series(t, reg, "edgeblock_requests_total")
	if len(got) != len(want) {
		t.Errorf("%d series, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
