package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
)

// routesConfig returns a config of n routes, every tenth a wildcard.
func routesConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("listen:\n  http: :0\nblocklist:\n  file: b\nlog:\n  access: false\nroutes:\n")
	for i := range n {
		if i%10 == 9 {
			fmt.Fprintf(&b, "  - host: \"*.wild%d.example\"\n    origins: [\"http://127.0.0.1:%d\"]\n", i, 1+i%60000)
		} else {
			fmt.Fprintf(&b, "  - host: site%d.example\n    origins: [\"http://127.0.0.1:%d\"]\n", i, 1+i%60000)
		}
	}
	return []byte(b.String())
}

// BenchmarkRoutes measures the route lookup of a request with 10, 10,000
// and 100,000 routes (exact, wildcard and no match: the cost must not grow
// with the count), and what a config of that many routes costs to load
// and apply (parse, validate, build the state), the work of a reload.
func BenchmarkRoutes(b *testing.B) {
	list, _ := blocklist.Parse("bench", []byte("hot.example\n"))
	rd, _ := pages.NewRenderer(pages.Options{})
	for _, n := range []int{10, 10_000, 100_000} {
		data := routesConfig(n)
		cfg, err := ParseConfig("bench.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		p := NewProxy(slogDiscard(), NewMetrics(newRegistry(), "b", "b"), cfg)
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
				cfg, err := ParseConfig("bench.yaml", data)
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
