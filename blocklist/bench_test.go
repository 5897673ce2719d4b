package blocklist

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// genList returns a blocklist of n rules shaped like a real one: mostly
// bare names, some wildcards, a few with attributes.
func genList(n int) []byte {
	var b strings.Builder
	b.Grow(n * 40)
	b.WriteString("# generated\n")
	for i := range n {
		switch {
		case i%100 == 0:
			fmt.Fprintf(&b, "site%d.example reason=\"Abuse report %d\" policy=https://blog.example.com/policy-%d\n", i, i%7, i%5)
		case i%10 == 0:
			fmt.Fprintf(&b, "*.pages%d.example\n", i)
		default:
			fmt.Fprintf(&b, "site%d.example\n", i)
		}
	}
	return []byte(b.String())
}

// BenchmarkParse1M parses a 1,000,000-rule list and reports the memory the
// parsed list keeps, per rule.
func BenchmarkParse1M(b *testing.B) {
	runtime.KeepAlive(benchParse(b, genList(1_000_000)))
}

// benchParse times Parse of data and reports, as bytes/rule, the memory the
// parsed list keeps; it returns that list.
func benchParse(b *testing.B, data []byte) *List {
	b.Helper()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("bench", data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	keep, _ := Parse("bench", data)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(keep.Len()), "bytes/rule")
	return keep
}

// BenchmarkMatch1M matches hosts against a 1,000,000-rule list: a blocked
// name, a name under a wildcard, and an unlisted name of five labels.
func BenchmarkMatch1M(b *testing.B) {
	l, err := Parse("bench", genList(1_000_000))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for _, host := range []string{"site123457.example", "a.b.pages999990.example", "www.shop.customer.example.net"} {
		b.Run(host, func(b *testing.B) {
			for b.Loop() {
				l.Match(host, now)
			}
		})
	}
}

// BenchmarkMatchSize shows that match cost does not grow with the list.
func BenchmarkMatchSize(b *testing.B) {
	now := time.Now()
	for _, n := range []int{1_000, 1_000_000} {
		l, err := Parse("bench", genList(n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				l.Match("www.site7.example", now)
			}
		})
	}
}

// BenchmarkParse1MNotes parses a 1,000,000-rule list in which every tenth
// rule has an annotation line, and reports the memory kept per rule: the
// annotations cost only the rules that have one.
func BenchmarkParse1MNotes(b *testing.B) {
	var sb strings.Builder
	for i, line := range strings.SplitAfter(string(genList(1_000_000)), "\n") {
		if i%10 == 1 {
			fmt.Fprintf(&sb, "#@ 2026-11-26T10:00:00Z by alice: TICKET-%d\n", i)
		}
		sb.WriteString(line)
	}
	keep := benchParse(b, []byte(sb.String()))
	if len(keep.notes) != 100_000 {
		b.Fatalf("%d notes, want 100000", len(keep.notes))
	}
	runtime.KeepAlive(keep)
}
