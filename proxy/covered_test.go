package proxy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/certs"
)

// TestCoveredIncremental: along a chain of one-rule edits (added,
// removed, to report mode and back, expiry, scope, a rule of a name a
// route has, an unblock's two places), the covered set built from the one
// before answers every name as the set built whole does, and is built
// from the one before (not whole) while the config stays; a new config
// builds it whole.
func TestCoveredIncremental(t *testing.T) {
	cfg := &config.Config{Routes: []config.RouteConfig{{Host: "site3.example"}, {Host: "*.site5.example"}, {Host: "app.example"}}}
	cfg.Routes[1].TLS.Wildcard = true
	var b strings.Builder
	for i := range 200 {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "site%d.example\n", i)
		case 1:
			fmt.Fprintf(&b, "*.site%d.example expires=2027-0%d-01\n", i, 1+i%9)
		case 2:
			fmt.Fprintf(&b, "site%d.example mode=report\n", i)
		case 3:
			fmt.Fprintf(&b, "site%d.example countries=FR\nsite%d.example\n", i, i)
		default:
			fmt.Fprintf(&b, "#@ 2026-12-01T00:00:00Z by ops\nsite%d.example\n", i)
		}
	}
	data := b.String()
	list, err := blocklist.Parse("f.txt", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	st := &state{cfg: provision(cfg), list: list}
	st.coveredOnce.Do(func() { st.covered = coveredNext(nil, cfg, list) })

	rng := rand.New(rand.NewPCG(3, 4))
	edits := []func(string) string{
		func(s string) string { return s + fmt.Sprintf("new%d.example\n", rng.IntN(1000)) },
		func(s string) string { return s + "*.app.example expires=2027-03-01\n" },
		func(s string) string { return s + "app.example mode=report\n" },
		func(s string) string {
			return strings.Replace(s, fmt.Sprintf("site%d.example\n", 5*rng.IntN(40)), "", 1)
		},
		func(s string) string {
			n := 5*rng.IntN(40) + 2
			return strings.Replace(s, fmt.Sprintf("site%d.example mode=report\n", n), fmt.Sprintf("site%d.example\n", n), 1)
		},
		func(s string) string {
			n := 5*rng.IntN(40) + 1
			return strings.Replace(s, fmt.Sprintf("*.site%d.example expires=", n), fmt.Sprintf("*.site%d.example mode=block expires=", n), 1)
		},
		func(s string) string {
			n := 5*rng.IntN(40) + 3
			return strings.Replace(s, fmt.Sprintf("site%d.example countries=FR\n", n), fmt.Sprintf("site%d.example countries=DE expires=2027-06-01\n", n), 1)
		},
		func(s string) string { // unblock: a line goes, a record comes
			n := 5*rng.IntN(40) + 4
			return strings.Replace(s, fmt.Sprintf("site%d.example\n", n), "", 1) + fmt.Sprintf("#@ 2026-12-02T00:00:00Z by ops unblocked site%d.example\n", n)
		},
	}
	applied, incremental := 0, 0
	for i := range 150 {
		next := edits[i%len(edits)](data)
		l, err := blocklist.Reparse(st.list, "f.txt", []byte(next))
		if err != nil {
			continue // a duplicate: the same rule appended again
		}
		ns := &state{cfg: provision(cfg), list: l}
		ns.coveredOnce.Do(func() { ns.covered = coveredNext(st, cfg, l) })
		applied++
		if ns.covered.Replaced() > 0 || ns.covered == st.covered {
			incremental++
		} else {
			t.Errorf("step %d: built whole", i)
		}
		sameCovered(t, ns.covered, coveredPatterns(cfg, l), l, cfg)
		st, data = ns, next
	}
	if applied < 100 || incremental != applied {
		t.Errorf("%d of %d edits applied, %d sets built from the one before: want most applied, all from the one before", applied, 150, incremental)
	}
	// A new config: built whole.
	cfg2 := &config.Config{Routes: slices.Clone(cfg.Routes)}
	if c := coveredNext(st, cfg2, st.list); c.Replaced() != 0 {
		t.Errorf("a new config: a set with %d names replaced, want one built whole", c.Replaced())
	}
	// Past the bound of replaced names: built whole.
	defer func(m int) { maxCoveredReplaced = m }(maxCoveredReplaced)
	maxCoveredReplaced = st.covered.Replaced()
	l, err := blocklist.Reparse(st.list, "f.txt", []byte(data+"last.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := coveredNext(st, cfg, l); c.Replaced() != 0 {
		t.Errorf("past the bound: a set with %d names replaced, want one built whole", c.Replaced())
	}
}

// sameCovered fails unless got and want answer Match alike for every
// name of the list and the routes, a name under each, and a parent, at
// times around every expiry.
func sameCovered(t *testing.T, got, want *certs.Patterns, l *blocklist.List, cfg *config.Config) {
	t.Helper()
	names := []string{"example", "zzz.example"}
	times := []time.Time{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	for r := range l.Rules() {
		names = append(names, r.Name, "www."+r.Name)
		if !r.Expires.IsZero() {
			times = append(times, r.Expires.Add(-time.Nanosecond), r.Expires)
		}
	}
	for _, r := range cfg.Routes {
		h := strings.TrimPrefix(r.Host, "*.")
		names = append(names, h, "www."+h)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	times = slices.CompactFunc(times, time.Time.Equal)
	for _, n := range names {
		for _, at := range times {
			g, gok := got.Match(n, at)
			w, wok := want.Match(n, at)
			if g != w || gok != wok {
				t.Fatalf("Match(%s, %v) = %+v %v, want %+v %v", n, at, g, gok, w, wok)
			}
		}
	}
}

// BenchmarkCovered compares, on a 1,000,000-rule list with one rule
// appended, the covered set built whole with the one built from the set
// before (what a reload with TLS on does).
func BenchmarkCovered(b *testing.B) {
	var sb strings.Builder
	for i := range 1_000_000 {
		fmt.Fprintf(&sb, "site%d.example\n", i)
	}
	cfg := &config.Config{Routes: []config.RouteConfig{{Host: "app.example"}}}
	list, err := blocklist.Parse("f.txt", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	prev := &state{cfg: provision(cfg), list: list}
	prev.coveredOnce.Do(func() { prev.covered = coveredPatterns(cfg, list) })
	l, err := blocklist.Reparse(list, "f.txt", []byte(sb.String()+"new.example\n"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("whole", func(b *testing.B) {
		for b.Loop() {
			coveredPatterns(cfg, l)
		}
	})
	b.Run("from the set before", func(b *testing.B) {
		for b.Loop() {
			if coveredNext(prev, cfg, l).Replaced() != 1 {
				b.Fatal("built whole")
			}
		}
	})
}
