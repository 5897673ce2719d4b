package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// internalEnvAt starts a server in internal TLS mode on storage, with the
// routes app.example and *.apps.example, extra lines under tls: and list.
func internalEnvAt(t *testing.T, storage, extra, list string) (*testEnv, *x509.CertPool) {
	t.Helper()
	o := echoOrigin(t)
	return internalTLSEnv(t, storage, extra, routeConfig("app.example", `"`+o.URL+`"`, "*.apps.example", `"`+o.URL+`"`), list)
}

// handshake opens a TLS connection for name and returns the error, "" on
// success.
func handshake(t *testing.T, e *testEnv, pool *x509.CertPool, name string) string {
	t.Helper()
	c, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pool, ServerName: name})
	if err != nil {
		return err.Error()
	}
	c.Close()
	return ""
}

// obtainedNames returns how many certificates were obtained for names
// under suffix, from the log.
func obtainedNames(t *testing.T, e *testEnv, suffix string) int {
	t.Helper()
	n := 0
	for _, l := range e.logs.Lines(t, "certificate obtained") {
		if strings.HasSuffix(fmt.Sprint(l["name"]), suffix) {
			n++
		}
	}
	return n
}

const unrecognizedName = "tls: unrecognized name"

// TestOnDemandBudgetInternal makes up names under a wildcard route, as a
// stranger would: with max_new_per_hour 3, the internal CA signs three
// certificates and the fourth and later names get the unrecognized_name
// alert and no certificate. Names that have one keep working; a restart
// counts the stored names towards max_names.
func TestOnDemandBudgetInternal(t *testing.T) {
	storage := edgetest.RemovedDir(t, "edgeblock-certs-")
	e, pool := internalEnvAt(t, storage, "  on_demand:\n    max_new_per_hour: 3\n    max_names: 4\n", "forum.example\nreported.example mode=report\n")
	for i := range 6 {
		name := fmt.Sprintf("made-up-%d.apps.example", i)
		want := ""
		if i >= 3 {
			want = unrecognizedName
		}
		if got := handshake(t, e, pool, name); !strings.Contains(got, want) || (want == "" && got != "") {
			t.Errorf("%s: handshake error %q, want %q", name, got, want)
		}
	}
	// Known names are not charged.
	for i := range 3 {
		if got := handshake(t, e, pool, fmt.Sprintf("made-up-%d.apps.example", i)); got != "" {
			t.Errorf("known name %d: %s", i, got)
		}
	}
	// A zone rule has its own budget; a report-mode rule covers nothing.
	if got := handshake(t, e, pool, "x.forum.example"); got != "" {
		t.Errorf("x.forum.example: %s", got)
	}
	if got := handshake(t, e, pool, "reported.example"); !strings.Contains(got, unrecognizedName) {
		t.Errorf("report-mode name without a route: %q, want %s", got, unrecognizedName)
	}
	issued := obtainedNames(t, e, ".apps.example")
	if issued != 3 {
		t.Errorf("certificates issued under *.apps.example: %d, want 3", issued)
	}
	t.Logf("internal CA: 6 made-up names under *.apps.example, max_new_per_hour 3: %d certificates issued", issued)
	m := e.scrape()
	for series, want := range map[string]string{
		`edgeblock_tls_handshake_refused_total{reason="budget"}`:                           "3",
		`edgeblock_tls_handshake_refused_total{reason="not_covered"}`:                      "1",
		`edgeblock_tls_obtain_by_pattern_total{pattern="*.apps.example",result="success"}`: "3",
		`edgeblock_tls_obtain_by_pattern_total{pattern="forum.example",result="success"}`:  "2", // ahead and x.
		`edgeblock_tls_issuance_budget_remaining{pattern="*.apps.example"}`:                "0",
		`edgeblock_tls_issuance_budget_remaining{pattern="forum.example"}`:                 "2",
	} {
		if got := edgetest.MetricValue(m, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	refused := 0
	for _, l := range e.logs.Lines(t, "certificate refused") {
		if l["reason"] == "budget" {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("%d refusals logged with reason budget, want 3", refused)
	}
	e.srv.Shutdown(t.Context())

	// After a restart the three stored names are known (and served from
	// storage without a new certificate); with max_names 4 one more new
	// name fits, then max_names refuses.
	e2, pool := internalEnvAt(t, storage, "  on_demand:\n    max_new_per_hour: 3\n    max_names: 4\n", "forum.example\n")
	for _, tt := range []struct{ name, want string }{
		{"made-up-0.apps.example", ""},
		{"made-up-3.apps.example", ""},
		{"made-up-4.apps.example", unrecognizedName},
	} {
		if got := handshake(t, e2, pool, tt.name); (tt.want == "" && got != "") || !strings.Contains(got, tt.want) {
			t.Errorf("after restart, %s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if n := obtainedNames(t, e2, ".apps.example"); n != 1 {
		t.Errorf("after restart %d certificates issued under *.apps.example, want 1", n)
	}
	if got := edgetest.MetricValue(e2.scrape(), `edgeblock_tls_handshake_refused_total{reason="max_names"}`); got != "1" {
		t.Errorf("max_names refusals = %q, want 1", got)
	}
}

// TestOnDemandAsk runs a real ask endpoint on loopback: it allows names
// starting with "ok", denies others, and is never asked about a name no
// route or rule covers.
func TestOnDemandAsk(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := r.URL.Query().Get("domain")
		mu.Lock()
		asked = append(asked, d)
		mu.Unlock()
		if r.URL.Path != "/check" || !strings.HasPrefix(d, "ok") {
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	defer ask.Close()
	e, pool := internalEnvAt(t, edgetest.RemovedDir(t, "edgeblock-certs-"), "  on_demand:\n    ask: "+ask.URL+"/check\n", "")
	for _, tt := range []struct{ name, want string }{
		{"ok-1.apps.example", ""},
		{"no-1.apps.example", unrecognizedName},
		{"stranger.example", unrecognizedName},
		{"ok-2.apps.example", ""},
	} {
		if got := handshake(t, e, pool, tt.name); (tt.want == "" && got != "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	mu.Lock()
	got := strings.Join(asked, " ")
	mu.Unlock()
	if got != "ok-1.apps.example no-1.apps.example ok-2.apps.example" {
		t.Errorf("ask endpoint asked about %q", got)
	}
	if n := obtainedNames(t, e, ".apps.example"); n != 2 {
		t.Errorf("%d certificates issued under *.apps.example, want 2", n)
	}
	m := e.scrape()
	for series, want := range map[string]string{
		`edgeblock_tls_handshake_refused_total{reason="ask_denied"}`:  "1",
		`edgeblock_tls_handshake_refused_total{reason="not_covered"}`: "1",
		`edgeblock_tls_handshake_refused_total{reason="ask_error"}`:   "0",
	} {
		if got := edgetest.MetricValue(m, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	// The endpoint gone: no answer denies.
	ask.Close()
	if got := handshake(t, e, pool, "ok-3.apps.example"); !strings.Contains(got, unrecognizedName) {
		t.Errorf("ask endpoint down: %q, want %s", got, unrecognizedName)
	}
	edgetest.WaitFor(t, 5*time.Second, "ask_error counted", func() bool {
		return edgetest.MetricValue(e.scrape(), `edgeblock_tls_handshake_refused_total{reason="ask_error"}`) == "1"
	})
}

// TestOnDemandBudgetPebble makes up names under a wildcard route against
// a real ACME server: with max_new_per_hour 2 and an ask endpoint that
// denies "deny-" names, pebble receives exactly two orders; the denied
// name and the third new name get none.
func TestOnDemandBudgetPebble(t *testing.T) {
	pe := startPebble(t)
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Query().Get("domain"), "deny") {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer ask.Close()
	o := echoOrigin(t)
	e := startEnv(t, pe.tlsConfig(edgetest.RemovedDir(t, "edgeblock-certs-"), "http-01")+"  on_demand:\n    max_new_per_hour: 2\n    ask: "+ask.URL+"\n"+
		routeConfig("*.apps.edgeblock.test", `"`+o.URL+`"`), "")
	before := pe.orders()
	for _, tt := range []struct{ name, want string }{
		{"made-up-1.apps.edgeblock.test", ""},
		{"deny-1.apps.edgeblock.test", unrecognizedName},
		{"made-up-2.apps.edgeblock.test", ""},
		{"made-up-3.apps.edgeblock.test", unrecognizedName},
		{"made-up-1.apps.edgeblock.test", ""},
		{"stranger.edgeblock.test", unrecognizedName},
	} {
		if got := handshake(t, e, pe.roots, tt.name); (tt.want == "" && got != "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	orders := pe.orders() - before
	t.Logf("pebble: 3 new names under *.apps.edgeblock.test allowed by ask, max_new_per_hour 2: %d orders", orders)
	if orders != 2 {
		t.Errorf("pebble received %d orders, want 2", orders)
	}
	m := e.scrape()
	for series, want := range map[string]string{
		`edgeblock_tls_handshake_refused_total{reason="budget"}`:                                  "1",
		`edgeblock_tls_handshake_refused_total{reason="ask_denied"}`:                              "1",
		`edgeblock_tls_handshake_refused_total{reason="not_covered"}`:                             "1",
		`edgeblock_tls_obtain_by_pattern_total{pattern="*.apps.edgeblock.test",result="success"}`: "2",
		`edgeblock_tls_issuance_budget_remaining{pattern="*.apps.edgeblock.test"}`:                "0",
	} {
		if got := edgetest.MetricValue(m, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
}
