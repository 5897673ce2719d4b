package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// TestLargeConfigProblems: problems at the end of a config of 20,000
// routes are reported as in a config of 10, with the same messages (the
// did-you-mean, the type in words) and the right line and index, also
// after a route of the wrong type (which the decoder used to drop,
// shifting the indexes after it).
func TestLargeConfigProblems(t *testing.T) {
	for _, n := range []int{10, 20_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			head := routesConfigFile(n, 0, "")
			l := strings.Count(string(head), "\n") // the line before the appended routes
			data := string(head) + `  - host: site5.example
    origins: ["http://127.0.0.1:1"]
  - host: extra.example
    orgins: ["http://127.0.0.1:1"]
  - host: typed.example
    origins: [{url: "http://127.0.0.1:1", weight: heavy}]
  - just-a-name
  - host: a..example
    origins: ["http://127.0.0.1:1"]
`
			_, err := config.ParseConfig("big.yaml", []byte(data))
			ce, ok := err.(*config.ConfigError)
			if !ok {
				t.Fatalf("ParseConfig = %v, want *ConfigError", err)
			}
			want := []string{
				fmt.Sprintf(`big.yaml:%d: routes[%d].host: "site5.example" is also routes[5]`, l+1, n),
				fmt.Sprintf(`big.yaml:%d: routes[%d].origins: at least one origin is required`, l+3, n+1),
				fmt.Sprintf(`big.yaml:%d: routes[%d].orgins: unknown key (did you mean origins?)`, l+4, n+1),
				fmt.Sprintf(`big.yaml:%d: routes[%d].origins[0].weight: want a whole number, got "heavy"`, l+6, n+2),
				// A route of the wrong type keeps its place: the next
				// one is checked under its own index.
				fmt.Sprintf(`big.yaml:%d: routes[%d]: want a mapping of keys, got "just-a-name"`, l+7, n+3),
				fmt.Sprintf(`big.yaml:%d: routes[%d].host: invalid host name "a..example": empty label`, l+8, n+4),
			}
			if !slices.Equal(ce.Problems, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(ce.Problems, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestReloadKeepsUnchangedRoutes: a reload takes over a route whose
// settings did not change whole, its health checks running on (no new
// probe), and builds a new pool, with new checks, for a route that
// changed, or for every route when the origins: defaults changed.
func TestReloadKeepsUnchangedRoutes(t *testing.T) {
	parallelPlain(t)
	type origin struct {
		srv    *httptest.Server
		probes atomic.Int32
	}
	var keep, change origin
	for _, o := range []*origin{&keep, &change} {
		o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/health") {
				o.probes.Add(1)
			}
			w.Write([]byte("ok"))
		}))
		t.Cleanup(o.srv.Close)
	}
	configWith := func(changeWeight int, healthPath string) *config.Config {
		t.Helper()
		cfg, err := config.ParseConfig("c.yaml", fmt.Appendf(nil, `listen:
  http: 127.0.0.1:0
blocklist:
  file: b
log:
  access: false
origins:
  health: {path: %s, interval: 1h}
routes:
  - host: keep.example
    origins: ["%s"]
  - host: "*.change.example"
    origins: [{url: "%s", weight: %d}]
`, healthPath, keep.srv.URL, change.srv.URL, changeWeight))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	list, err := blocklist.Parse("b", []byte("blocked.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := pages.NewRenderer(pages.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := configWith(1, "/health")
	p := NewProxy(slogDiscard(), metrics.New(newRegistry(), "t", "t"), cfg)
	t.Cleanup(p.Close)
	apply := func(cfg *config.Config) (keepRoute, changeRoute *route) {
		t.Helper()
		if err := p.Apply(cfg, list, rd); err != nil {
			t.Fatal(err)
		}
		for _, host := range []string{"keep.example", "a.change.example"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			req.Host = host
			p.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Fatalf("GET %s: status %d after the reload", host, rec.Code)
			}
		}
		rt := p.state.Load().routes
		return rt.byPattern("keep.example"), rt.byPattern("*.change.example")
	}
	probes := func(wantKeep, wantChange int32) {
		t.Helper()
		edgetest.WaitFor(t, 5*time.Second, fmt.Sprintf("probes %d, %d (now %d, %d)", wantKeep, wantChange, keep.probes.Load(), change.probes.Load()), func() bool {
			return keep.probes.Load() >= wantKeep && change.probes.Load() >= wantChange
		})
		time.Sleep(50 * time.Millisecond) // no more than that
		if k, c := keep.probes.Load(), change.probes.Load(); k != wantKeep || c != wantChange {
			t.Fatalf("probes: keep.example %d, *.change.example %d; want %d, %d", k, c, wantKeep, wantChange)
		}
	}

	k1, c1 := apply(cfg)
	probes(1, 1)

	k2, c2 := apply(configWith(2, "/health")) // *.change.example's weight
	if k2 != k1 {
		t.Error("the unchanged route was rebuilt")
	}
	if c2 == c1 {
		t.Error("the changed route was taken over")
	}
	probes(1, 2) // the new pool checks at once; the kept one runs on

	k3, c3 := apply(configWith(2, "/health")) // the same again: a new Config, nothing changed
	if k3 != k2 || c3 != c2 {
		t.Error("an unchanged config rebuilt routes")
	}
	probes(1, 2)

	k4, c4 := apply(configWith(2, "/health/")) // the origins: defaults
	if k4 == k3 || c4 == c3 {
		t.Error("a change of the origins: defaults kept routes")
	}
	probes(2, 3)
}

// TestRoutesHeap: the heap a loaded config of 20,000 routes holds after
// GC stays under 2 KiB per route (the parsed YAML nodes of the routes, some
// 900 bytes each, are not kept; a route's pool, reverse proxy and config
// are the rest), across reloads.
func TestRoutesHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("heap of 20,000 routes: runs in .ci/run")
	}
	const n = 20_000
	dir := t.TempDir()
	path := filepath.Join(dir, "edgeblock.yaml")
	data := [2][]byte{routesConfigFile(n, 0, ""), routesConfigFile(n, 1, "")}
	edgetest.WriteFile(t, path, string(data[0]))
	edgetest.WriteFile(t, filepath.Join(dir, "blocklist.txt"), "hot.example\n")
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	b, err := reload.LoadBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(newRegistry(), "t", "t")
	p := NewProxy(slogDiscard(), m, b.Config)
	r := reload.NewReloader(p, slogDiscard(), m, path)
	if err := r.Start(b); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer p.Close()
	b = nil
	for i := range 3 {
		edgetest.WriteFile(t, path, string(data[(i+1)%2]))
		r.Reload("test")
		if st := r.Status().Config; st.SHA256 != reload.HashOf(data[(i+1)%2]) {
			t.Fatalf("reload %d not applied: %s", i, st.LastError)
		}
		// Signed: the heap may have shrunk below before, when garbage of
		// earlier tests was collected meanwhile.
		perRoute := float64(int64(heap())-int64(before)) / n
		t.Logf("after reload %d: %.0f bytes per route", i, perRoute)
		if perRoute > 2048 {
			t.Errorf("after reload %d: %.0f bytes of heap per route, want at most 2048", i, perRoute)
		}
	}
	runtime.KeepAlive(r)
}
