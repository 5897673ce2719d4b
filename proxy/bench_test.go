package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/accesslog"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

func genBlocklist(n, version int) []byte {
	var b strings.Builder
	b.Grow(n * 24)
	fmt.Fprintf(&b, "hot.example reason=\"version %d\" policy=https://blog.example.com/why\n", version)
	for i := range n - 1 {
		fmt.Fprintf(&b, "site%d-%d.example\n", i, version%2)
	}
	return []byte(b.String())
}

func benchProxy(b *testing.B, list *blocklist.List) *Proxy {
	b.Helper()
	cfg, err := config.ParseConfig("bench.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\n  policy: https://policy.example/\nlog:\n  access: false\nroutes:\n  - host: app.example\n    origins: [\"http://127.0.0.1:1\"]\n"))
	if err != nil {
		b.Fatal(err)
	}
	rd, _ := pages.NewRenderer(pages.Options{BlockedBy: "https://edge.example.com"})
	p := NewProxy(slogDiscard(), metrics.New(newRegistry(), "b", "b"), cfg)
	if err := p.Apply(cfg, list, rd); err != nil {
		b.Fatal(err)
	}
	return p
}

// percentile returns the p-th percentile (0..100) of d, sorting it.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p/100))]
}

// load serves block-page and unknown-host requests on 2 goroutines until
// stop is set, and returns their latencies.
func load(p *Proxy, stop *atomic.Bool) []time.Duration {
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host := "hot.example"
			if w == 1 {
				host = "unlisted.example.net"
			}
			req := httptest.NewRequest("GET", "/", nil) // origin-form: absolute-form targets get a 400
			req.Host = host
			var mine []time.Duration
			for !stop.Load() {
				rec := httptest.NewRecorder()
				start := time.Now()
				p.ServeHTTP(rec, req)
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

// BenchmarkReload1M reloads a 1,000,000-rule list (parse and swap) while
// requests are served, and reports the reload time, request latency p99
// while idle and during reloads, and the heap with one list loaded.
func BenchmarkReload1M(b *testing.B) {
	const rules = 1_000_000
	data := [2][]byte{genBlocklist(rules, 0), genBlocklist(rules, 1)}
	list, err := blocklist.Parse("bench", data[0])
	if err != nil {
		b.Fatal(err)
	}
	p := benchProxy(b, list)

	// Idle: requests alone, for one second.
	var stop atomic.Bool
	go func() { time.Sleep(time.Second); stop.Store(true) }()
	idle := load(p, &stop)

	// Reloads: the same requests while the list is parsed and swapped.
	stop.Store(false)
	var busy []time.Duration
	done := make(chan struct{})
	go func() { busy = load(p, &stop); close(done) }()
	var reloads []time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		start := time.Now()
		l, err := blocklist.Parse("bench", data[i%2])
		if err != nil {
			b.Fatal(err)
		}
		st := p.state.Load()
		if err := p.Apply(st.cfg.Config, l, st.renderer); err != nil {
			b.Fatal(err)
		}
		reloads = append(reloads, time.Since(start))
	}
	b.StopTimer()
	stop.Store(true)
	<-done
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(percentile(reloads, 50).Milliseconds()), "reload-p50-ms")
	b.ReportMetric(float64(percentile(idle, 99).Microseconds()), "idle-p99-µs")
	b.ReportMetric(float64(percentile(busy, 99).Microseconds()), "reload-p99-µs")
	b.ReportMetric(float64(percentile(busy, 99))/float64(max(percentile(idle, 99), 1)), "p99-ratio")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	runtime.KeepAlive(p)
}

// BenchmarkChangeToEffect measures, through the real watcher and server,
// the time from renaming a new blocklist into place to the first request
// that sees it, with the default debounce.
func BenchmarkChangeToEffect(b *testing.B) {
	dir := b.TempDir()
	list := dir + "/blocklist.txt"
	os.WriteFile(list, []byte("v0.example\n"), 0o644)
	os.WriteFile(dir+"/c.yaml", []byte("listen:\n  http: 127.0.0.1:0\n  admin: \"off\"\nlog:\n  access: false\nblocklist:\n  file: blocklist.txt\n"), 0o644)
	bundle, err := reload.LoadBundle(dir + "/c.yaml")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(slogDiscard(), dir+"/c.yaml", bundle)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(bundle); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(b.Context())
	url := "http://" + srv.Addr("http") + "/"
	status := func(host string) int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var lat []time.Duration
	n := 0
	for b.Loop() {
		n++
		host := fmt.Sprintf("v%d.example", n)
		os.WriteFile(list+".tmp", []byte(host+"\n"), 0o644)
		start := time.Now()
		os.Rename(list+".tmp", list)
		for status(host) != 403 {
			if time.Since(start) > 5*time.Second {
				b.Fatalf("change %d not applied in 5s", n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(float64(percentile(lat, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(lat, 100).Microseconds())/1000, "max-ms")
}

// BenchmarkServe measures the handler alone for the block page (the
// hottest path when a popular site is blocked) and the unknown-host page.
func BenchmarkServe(b *testing.B) {
	list, _ := blocklist.Parse("bench", genBlocklist(100_000, 0))
	p := benchProxy(b, list)
	for _, tt := range []struct {
		host   string
		status int
		lang   string // Accept-Language, as a German browser sends it
	}{{"hot.example", 403, ""}, {"unlisted.example.net", 404, ""}, {"hot.example", 403, "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"}} {
		name := tt.host
		if tt.lang != "" {
			name += "/lang=" + tt.lang[:2]
		}
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/", nil) // origin-form: absolute-form targets get a 400
			req.Host = tt.host
			if tt.lang != "" {
				req.Header.Set("Accept-Language", tt.lang)
			}
			w := httptest.NewRecorder()
			if p.ServeHTTP(w, req); w.Code != tt.status {
				b.Fatalf("%s: status %d, want %d", tt.host, w.Code, tt.status)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

// BenchmarkServeProxied measures the handler for a proxied request to a
// loopback origin, the path that registers the request in flight so that
// a reload can close it (inflight.go); run it on a commit before the
// registry to compare. The parallel case shows the sharded registry does
// not serialize requests.
func BenchmarkServeProxied(b *testing.B) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer o.Close()
	cfg, err := config.ParseConfig("bench.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\nlog:\n  access: false\nroutes:\n  - host: app.example\n    origins: [\""+o.URL+"\"]\n"))
	if err != nil {
		b.Fatal(err)
	}
	list, _ := blocklist.Parse("bench", genBlocklist(100_000, 0))
	rd, _ := pages.NewRenderer(pages.Options{})
	p := NewProxy(slogDiscard(), metrics.New(newRegistry(), "b", "b"), cfg)
	if err := p.Apply(cfg, list, rd); err != nil {
		b.Fatal(err)
	}
	// Like http.Server, give each request a context canceled when it ends,
	// derived from one of its connection.
	conn, stop := context.WithCancel(context.Background())
	defer stop()
	serve := func() {
		ctx, cancel := context.WithCancel(conn)
		defer cancel()
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(ctx, "GET", "/", nil) // origin-form: absolute-form targets get a 400
		req.Host = "app.example"
		p.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serve()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				serve()
			}
		})
	})
}

// BenchmarkTrack measures registering and removing one request in flight
// alone, from many goroutines at once.
func BenchmarkTrack(b *testing.B) {
	list, _ := blocklist.Parse("bench", genBlocklist(1000, 0))
	p := benchProxy(b, list)
	st := p.state.Load()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			info := &reqInfo{host: "app.example", st: st}
			p.track(ctx, info)
			p.untrack(info, nil, nil)
		}
	})
}

// BenchmarkCloseBlocked measures the walk Apply makes after a list swap
// with 100,000 requests in flight against a 100,000-rule list, none of
// them blocked (the walk's full cost: one Match each).
func BenchmarkCloseBlocked(b *testing.B) {
	lists := [2]*blocklist.List{}
	for i := range lists {
		l, err := blocklist.Parse("bench", genBlocklist(100_000, i))
		if err != nil {
			b.Fatal(err)
		}
		lists[i] = l
	}
	p := benchProxy(b, lists[0])
	st := p.state.Load()
	ctx := context.Background()
	for i := range 100_000 {
		p.track(ctx, &reqInfo{host: fmt.Sprintf("www.app%d.customer.example.net", i), st: st})
	}
	states := [2]*state{st, {list: lists[1]}}
	i := 0
	for b.Loop() {
		p.closeBlocked(states[i%2], states[(i+1)%2])
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/walk")
}

// BenchmarkServeAccessLog measures the handler with the access log on,
// for the block page and a proxied request: "slog" is the logger's
// synchronous JSON path (what every request took before the queue),
// "queue" the hand-encoded line into the asynchronous queue. Both write
// to io.Discard, so the difference is the line's cost on the request path.
func BenchmarkServeAccessLog(b *testing.B) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer o.Close()
	cfg, err := config.ParseConfig("bench.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\nroutes:\n  - host: app.example\n    origins: [\""+o.URL+"\"]\n"))
	if err != nil {
		b.Fatal(err)
	}
	list, _ := blocklist.Parse("bench", genBlocklist(1000, 0))
	rd, _ := pages.NewRenderer(pages.Options{})
	for _, mode := range []string{"slog", "queue"} {
		p := NewProxy(NewLogger(io.Discard, "json", slog.LevelInfo), metrics.New(newRegistry(), "b", "b"), cfg)
		if err := p.Apply(cfg, list, rd); err != nil {
			b.Fatal(err)
		}
		if mode == "queue" {
			a, err := accesslog.New(io.Discard, "", nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			p.access = accesslog.NewWriter(a, "json")
		}
		for _, host := range []string{"hot.example", "app.example"} {
			b.Run(mode+"/"+host, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest("GET", "/", nil)
					req.Host = host
					p.ServeHTTP(httptest.NewRecorder(), req)
				}
			})
		}
	}
}
