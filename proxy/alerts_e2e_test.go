package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// hungOrigin accepts connections and never answers.
func hungOrigin(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// TestAlertsOnRealMetrics drives a real server through twenty "minutes" of
// traffic (a dead origin visited every 15 seconds, a hung origin twice a
// minute, an origin answering 500 itself), takes a scrape per minute, and
// runs the alerting rules over those scrapes with promtool: the dead and
// the hung origin page, the origin's own 500s do not.
func TestAlertsOnRealMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("promtool over twenty minutes of scrapes: runs in .ci/run")
	}
	promtool := requireBinary(t, "promtool", "prometheus")
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "origin bug", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	dead, hung := "http://"+refusedAddr(t), hungOrigin(t)
	e := startEnv(t, routeConfig("dead.example", `"`+dead+`"`, "broken.example", `"`+broken.URL+`"`)+
		fmt.Sprintf("  - host: hung.example\n    origins: [%q]\n    timeouts:\n      response_header: 100ms\n", hung), "")

	const minutes = 20
	series := map[string][]string{} // series -> value per minute
	for m := range minutes + 1 {
		for _, line := range strings.Split(e.scrape(), "\n") {
			if !strings.HasPrefix(line, "edgeblock_upstream_errors_total{") && !strings.HasPrefix(line, "edgeblock_upstream_requests_total{") {
				continue
			}
			name, value, _ := strings.Cut(line, " ")
			if series[name] == nil {
				series[name] = slices.Repeat([]string{"_"}, minutes+1)
			}
			series[name][m] = value
		}
		for range 4 {
			e.get("GET", "dead.example", "/", nil)
		}
		for range 2 {
			e.get("GET", "hung.example", "/", nil)
			e.get("GET", "broken.example", "/", nil)
		}
	}

	var b strings.Builder
	rules, err := filepath.Abs("../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "rule_files: [%q]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n", rules)
	for name, values := range series {
		fmt.Fprintf(&b, "      - series: '%s'\n        values: '%s'\n", strings.Replace(name, "{", `{instance="a",`, 1), strings.Join(values, " "))
	}
	b.WriteString("    alert_rule_test:\n")
	originAlert := func(route, origin string) string {
		return fmt.Sprintf(`          - exp_labels: {severity: critical, route: %q, origin: %q}
            exp_annotations:
              runbook_url: "https://github.com/edgeblock/edgeblock/blob/main/cmd/edgeblock/help/metrics.md#edgeblockoriginfailing"
              summary: "Origin %s of %s fails 100%% of attempts"
              description: "Connections to the origin are refused, time out or are reset; visitors of %s get 502/504 pages unless another origin answers. See edgeblock_upstream_errors_total by kind and the error_kind of the request log lines."
`, route, origin, origin, route, route)
	}
	routeAlert := func(route string) string {
		return fmt.Sprintf(`          - exp_labels: {severity: warning, route: %q}
            exp_annotations:
              runbook_url: "https://github.com/edgeblock/edgeblock/blob/main/cmd/edgeblock/help/metrics.md#edgeblockrouteerrorratio"
              summary: "100%% of origin attempts for %s fail at the edge"
              description: "The edge answers 502/504 pages for part of this route's traffic; see edgeblock_upstream_errors_total by origin and kind."
`, route, route)
	}
	fmt.Fprintf(&b, "      - eval_time: %dm\n        alertname: EdgeblockOriginFailing\n        exp_alerts:\n%s%s", minutes, originAlert("dead.example", dead), originAlert("hung.example", hung))
	fmt.Fprintf(&b, "      - eval_time: %dm\n        alertname: EdgeblockRouteErrorRatio\n        exp_alerts:\n%s%s", minutes, routeAlert("dead.example"), routeAlert("hung.example"))

	f := filepath.Join(t.TempDir(), "real_test.yaml")
	edgetest.WriteFile(t, f, b.String())
	if out, err := exec.Command(promtool, "test", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules on real scrapes: %v\n%s\n%s", err, out, b.String())
	}
	// The scrapes held what the alerts need: both kinds of failure, and
	// the origin's own 500s as responses.
	var kinds []string
	for name := range series {
		for _, k := range []string{`kind="refused"`, `kind="timeout"`, `code="500"`} {
			if strings.Contains(name, k) {
				kinds = append(kinds, k)
			}
		}
	}
	slices.Sort(kinds)
	if want := []string{`code="500"`, `kind="refused"`, `kind="timeout"`}; !slices.Equal(kinds, want) {
		t.Errorf("series kinds = %v, want %v", kinds, want)
	}
}
