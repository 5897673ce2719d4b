package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/accesslog"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// discardWriter stands in for net/http's response: a fresh header map per
// request (as net/http makes one), deadlines and flushes that do nothing,
// body bytes counted and dropped. What the handler chain costs on top is
// what these benchmarks measure.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header              { return w.h }
func (w *discardWriter) WriteHeader(code int)             { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error)      { w.n += len(p); return len(p), nil }
func (w *discardWriter) Flush()                           {}
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }

// blockPageRig is the rig's edgeblock (default access log on, into a queue
// that discards) behind the public chain, beside the bare handler of
// deploy/bench/bare serving the same bytes.
type blockPageRig struct {
	edge, bare http.Handler
	access     *accesslog.Log
}

// blockPageSide is one of the two handlers a block page benchmark runs.
type blockPageSide struct {
	name string
	h    http.Handler
}

// sides returns the bare handler and edgeblock's, in that order.
func (r *blockPageRig) sides() []blockPageSide {
	return []blockPageSide{{"bare", r.bare}, {"edgeblock", r.edge}}
}

func newBlockPageRig(tb testing.TB) *blockPageRig {
	tb.Helper()
	cfg, err := config.ParseConfig("bench.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\n  policy: https://example.com/abuse-policy\n"+
		"  blocked_by: https://edge.example.com\nroutes:\n  - host: app.example\n    origins: [\"http://127.0.0.1:1\"]\n"+
		"limits:\n  max_conns_per_client: 1000000\n  max_requests_per_client: 1000000\n"))
	if err != nil {
		tb.Fatal(err)
	}
	list, err := blocklist.Parse("bench", []byte("hot.example reason=\"Benchmark block\" policy=https://blog.example.com/why\n"))
	if err != nil {
		tb.Fatal(err)
	}
	rd, err := pages.NewRenderer(pages.Options{BlockedBy: "https://edge.example.com"})
	if err != nil {
		tb.Fatal(err)
	}
	m := metrics.New(newRegistry(), "b", "b")
	p := NewProxy(NewLogger(io.Discard, "json", slog.LevelInfo), m, cfg)
	if err := p.Apply(cfg, list, rd); err != nil {
		tb.Fatal(err)
	}
	a, err := accesslog.New(io.Discard, "", nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	p.access = accesslog.NewWriter(a, "json")
	rig := &blockPageRig{access: a,
		edge: publicChain(p, cfg, newClientCounter(cfg.Limits.MaxRequestsPerClient), p.config, m, newQUICMetrics(newRegistry()), new(atomic.Bool))}

	// The bare handler serves what edgeblock served.
	rec := httptest.NewRecorder()
	rig.edge.ServeHTTP(rec, blockPageRequest())
	if rec.Code != http.StatusForbidden {
		tb.Fatalf("edgeblock answered %d, want 403", rec.Code)
	}
	header, body := rec.Header().Clone(), bytes.Clone(rec.Body.Bytes())
	rig.bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "hot.example" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		w.WriteHeader(http.StatusForbidden)
		w.Write(body)
	})
	return rig
}

func blockPageRequest() *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "hot.example"
	r.RemoteAddr = "192.0.2.7:40000"
	r.Header.Set("User-Agent", "wrk")
	// As a public listener's ConnContext does: the request's connection,
	// which keeps its peer (one per call, as each of the rig's
	// connections is its own; all of them from one client, as wrk's).
	return r.WithContext(withConn(r.Context(), &limitConn{peer: netip.MustParseAddr("192.0.2.7")}))
}

// BenchmarkBlockPage measures the block page through the public chain
// (per-client request cap, deadlines, the proxy, the access line into
// its queue) against the bare net/http handler of deploy/bench/bare that
// serves the same bytes: per request time and allocations beyond what
// net/http itself costs. Run with -cpu 1,2,4 for contention (RunParallel).
func BenchmarkBlockPage(b *testing.B) {
	rig := newBlockPageRig(b)
	for _, side := range rig.sides() {
		b.Run(side.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := blockPageRequest()
				w := &discardWriter{}
				for pb.Next() {
					w.h, w.status, w.n = make(http.Header), 0, 0
					side.h.ServeHTTP(w, r)
					if w.status != http.StatusForbidden {
						b.Fatalf("status %d", w.status)
					}
				}
			})
		})
	}
}

// BenchmarkBlockPageNewGoroutine serves each block page on a goroutine of
// its own, as net/http's HTTP/2 server runs every stream's handler: a new
// goroutine starts with a small stack, which grows by copying every frame
// when a request goes deeper. Against BenchmarkBlockPage it shows what
// the request path's frames cost on HTTP/2 beyond their work.
func BenchmarkBlockPageNewGoroutine(b *testing.B) {
	rig := newBlockPageRig(b)
	for _, side := range rig.sides() {
		b.Run(side.name, func(b *testing.B) {
			b.ReportAllocs()
			r := blockPageRequest()
			w := &discardWriter{}
			done := make(chan struct{})
			for b.Loop() {
				w.h, w.status, w.n = make(http.Header), 0, 0
				go func() {
					side.h.ServeHTTP(w, r)
					done <- struct{}{}
				}()
				<-done
				if w.status != http.StatusForbidden {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}
