package proxy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestDeployedQueriesMatchMetrics checks the alerting rules and the Grafana
// dashboard against a real scrape: every edgeblock_ metric they query is
// one the server exports, and every dashboard query parses as PromQL.
func TestDeployedQueriesMatchMetrics(t *testing.T) {
	promtool := requireBinary(t, "promtool", "prometheus")
	o := echoOrigin(t)
	e := startEnv(t, fmt.Sprintf("listen:\n  http: 127.0.0.1:0\n  https: 127.0.0.1:0\n  admin: 127.0.0.1:0\ntls:\n  mode: internal\n  storage: %s\n  redirect_http: false\n", edgetest.RemovedDir(t, "edgeblock-certs-"))+
		routeConfig("app.example", `"`+o.URL+`"`, "down.example", `"http://`+refusedAddr(t)+`"`), "blocked.example\n")
	e.get("GET", "app.example", "/", nil)
	e.get("GET", "down.example", "/", nil)
	e.get("GET", "blocked.example", "/", nil)
	edgetest.WaitFor(t, 10*time.Second, "a certificate expiry series", func() bool {
		return strings.Contains(e.scrape(), "edgeblock_tls_certificate_expiry_timestamp_seconds{")
	})
	exported := map[string]bool{}
	for _, line := range strings.Split(e.scrape(), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_count", "_sum"} {
					exported[f[2]+s] = true
				}
			}
		}
	}

	var exprs []string
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	data, err := os.ReadFile("../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	data, err = os.ReadFile("../deploy/grafana/edgeblock.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	var recording strings.Builder
	recording.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			n++
			exprs = append(exprs, tg.Expr)
			q, _ := json.Marshal(grafana.Replace(tg.Expr)) // a JSON string is a YAML string
			fmt.Fprintf(&recording, "      - record: dashboard:query%d\n        expr: %s\n", n, q)
		}
	}
	if n < 10 || len(exprs) < n+5 {
		t.Fatalf("found %d dashboard queries and %d alert expressions", n, len(exprs)-n)
	}
	metric := regexp.MustCompile(`\bedgeblock_[a-z0-9_]+`)
	for _, ex := range exprs {
		for _, m := range metric.FindAllString(ex, -1) {
			if !exported[m] {
				t.Errorf("query uses %s, which the server does not export:\n%s", m, ex)
			}
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	edgetest.WriteFile(t, f, recording.String())
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("dashboard queries do not parse: %v\n%s", err, out)
	}
}
