package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// routesConfig returns a config of n routes, every tenth a wildcard.
func routesConfig(n int) []byte { return routesConfigFile(n, 0, "") }

// routesConfigFile returns a config of n routes, every tenth a wildcard,
// for a blocklist file named blocklist.txt. version changes the origin of
// route 0 (so that two versions differ in content), and origin, if set,
// is the origin of routes site1.example and *.wild9.example, the hosts
// requests are sent to.
func routesConfigFile(n, version int, origin string) []byte {
	var b strings.Builder
	b.Grow(n * 72)
	b.WriteString("listen:\n  http: 127.0.0.1:0\n  admin: \"off\"\nblocklist:\n  file: blocklist.txt\n  watch: false\n  poll_interval: -1s\nlog:\n  access: false\nroutes:\n")
	for i := range n {
		o := fmt.Sprintf("http://127.0.0.1:%d", 1+i%60000)
		if i == 0 {
			o = fmt.Sprintf("http://127.0.0.1:%d", 60001+version%2)
		} else if origin != "" && (i == 1 || i == 9) {
			o = origin
		}
		if i%10 == 9 {
			fmt.Fprintf(&b, "  - host: \"*.wild%d.example\"\n    origins: [\"%s\"]\n", i, o)
		} else {
			fmt.Fprintf(&b, "  - host: site%d.example\n    origins: [\"%s\"]\n", i, o)
		}
	}
	return []byte(b.String())
}

// BenchmarkRoutes measures the route lookup of a request with 10, 10,000
// and 100,000 routes (exact, wildcard and no match: the cost must not grow
// with the count), and what a config of that many routes costs to load
// and apply (parse, validate, build the state).
func BenchmarkRoutes(b *testing.B) {
	list, _ := blocklist.Parse("bench", []byte("hot.example\n"))
	rd, _ := pages.NewRenderer(pages.Options{})
	for _, n := range []int{10, 10_000, 100_000} {
		data := routesConfig(n)
		cfg, err := config.ParseConfig("bench.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		p := NewProxy(slogDiscard(), metrics.New(newRegistry(), "b", "b"), cfg)
		if err := p.Apply(cfg, list, rd); err != nil {
			b.Fatal(err)
		}
		t := p.state.Load().routes
		for _, c := range []struct{ name, host string }{
			{"exact", fmt.Sprintf("site%d.example", n/2)},
			{"wildcard", fmt.Sprintf("a.b.wild%d.example", n-1)},
			{"none", "a.b.c.nothing.example.net"},
		} {
			b.Run(fmt.Sprintf("lookup/%d/%s", n, c.name), func(b *testing.B) {
				if (t.lookup(c.host) == nil) != (c.name == "none") {
					b.Fatalf("lookup(%s) wrong", c.host)
				}
				for b.Loop() {
					t.lookup(c.host)
				}
			})
		}
		b.Run(fmt.Sprintf("load/%d", n), func(b *testing.B) {
			for b.Loop() {
				start := time.Now()
				cfg, err := config.ParseConfig("bench.yaml", data)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Apply(cfg, list, rd); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/load")
			}
		})
	}
}

// BenchmarkReloadRoutes changes a config of 10,000 and 100,000 routes on
// disk and reloads it through the Reloader, the path a changed file takes
// (read, hash, parse, validate, pages, build the routes, swap, snapshot).
// The timed loop reloads alone (reload-p50-s, the time of one reload);
// then requests for routed hosts (forwarded to a loopback origin) and a
// blocked host are served for a second without reloads and during three
// reloads, for their p99s. It also reports the process's CPU time per
// reload (GC included), which a busy machine inflates less than the wall
// time, and the heap after GC with the config loaded.
func BenchmarkReloadRoutes(b *testing.B) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer o.Close()
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "edgeblock.yaml")
			data := [2][]byte{routesConfigFile(n, 0, o.URL), routesConfigFile(n, 1, o.URL)}
			if err := os.WriteFile(path, data[0], 0o644); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "blocklist.txt"), []byte("hot.example\n"), 0o644); err != nil {
				b.Fatal(err)
			}
			bundle, err := reload.LoadBundle(path)
			if err != nil {
				b.Fatal(err)
			}
			bundle.StateDir = filepath.Join(dir, "state")
			m := metrics.New(newRegistry(), "b", "b")
			p := NewProxy(slogDiscard(), m, bundle.Config)
			r := reload.NewReloader(p, slogDiscard(), m, path)
			if err := r.Start(bundle); err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			defer p.Close()
			i := 0
			write := func() {
				i++
				if err := os.WriteFile(path, data[i%2], 0o644); err != nil {
					b.Fatal(err)
				}
			}
			reload := func() time.Duration {
				start := time.Now()
				r.Reload("bench")
				took := time.Since(start)
				if got := r.Status().Config; got.SHA256 != reload.HashOf(data[i%2]) || got.LastError != "" {
					b.Fatalf("reload %d not applied: %s", i, got.LastError)
				}
				return took
			}

			var reloads []time.Duration
			var cpu time.Duration // the process's, GC included: what a busy machine does not inflate
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				write()
				b.StartTimer()
				before := cpuTime()
				reloads = append(reloads, reload())
				cpu += cpuTime() - before
			}
			b.StopTimer()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)

			var stop atomic.Bool
			routeLoad(p, &stop, 100*time.Millisecond) // warm up the origin connections
			idle, err := routeLoad(p, &stop, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			var busy []time.Duration
			done := make(chan error)
			stop.Store(false)
			go func() {
				var err error
				busy, err = routeLoad(p, &stop, time.Hour)
				done <- err
			}()
			var loaded []time.Duration
			for range 3 {
				write()
				loaded = append(loaded, reload())
			}
			stop.Store(true)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(percentile(reloads, 50).Seconds(), "reload-p50-s")
			b.ReportMetric(cpu.Seconds()/float64(len(reloads)), "cpu-s/reload")
			b.ReportMetric(percentile(loaded, 50).Seconds(), "loaded-reload-p50-s")
			b.ReportMetric(float64(percentile(idle, 99).Microseconds()), "idle-p99-µs")
			b.ReportMetric(float64(percentile(busy, 99).Microseconds()), "reload-p99-µs")
			b.ReportMetric(float64(percentile(busy, 99))/float64(max(percentile(idle, 99), 1)), "p99-ratio")
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
			runtime.KeepAlive(r)
		})
	}
}

// routeLoad serves requests on 2 goroutines, one for routed hosts (exact
// and wildcard, forwarded to the loopback origin), one for the blocked
// host, until stop is set or d has passed. It returns their latencies,
// and an error if a request got an unexpected status.
func routeLoad(p *Proxy, stop *atomic.Bool, d time.Duration) ([]time.Duration, error) {
	stop.Store(false)
	t := time.AfterFunc(d, func() { stop.Store(true) })
	defer t.Stop()
	var mu sync.Mutex
	var all []time.Duration
	var errs []error
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			hosts, want := []string{"site1.example", "a.wild9.example"}, 200
			if w == 1 {
				hosts, want = []string{"hot.example"}, 403
			}
			var mine []time.Duration
			var err error
			for i := 0; !stop.Load(); i++ {
				ctx, cancel := context.WithCancel(context.Background())
				req := httptest.NewRequestWithContext(ctx, "GET", "/", nil)
				req.Host = hosts[i%len(hosts)]
				rec := httptest.NewRecorder()
				start := time.Now()
				p.ServeHTTP(rec, req)
				mine = append(mine, time.Since(start))
				cancel()
				if rec.Code != want && err == nil {
					err = fmt.Errorf("%s: status %d, want %d", req.Host, rec.Code, want)
				}
			}
			mu.Lock()
			all = append(all, mine...)
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, errors.Join(errs...)
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
