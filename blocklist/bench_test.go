package blocklist

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
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

// BenchmarkReparse compares, at 10 and 1,000,000 rules, a full Parse of a
// list with one rule appended with a Reparse of it against the list
// before, a Reparse of one rule changed in the middle, and of an unblock
// (a line gone in the middle, a record appended: two regions).
func BenchmarkReparse(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		data := genList(n)
		prev, err := Parse("bench", data)
		if err != nil {
			b.Fatal(err)
		}
		appended := append(slices.Clip(data), "new.example status=451\n"...)
		mid := strings.Replace(string(data), fmt.Sprintf("\nsite%d.example\n", n/2+1), fmt.Sprintf("\nsite%d.example status=451\n", n/2+1), 1)
		// What unblock writes: the rule's line goes, a record comes at the end.
		unblocked, _, err := ApplyEdit("bench", data, Edit{Unblock: true, Pattern: fmt.Sprintf("site%d.example", n/2+1)}, 0.5, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("Parse/%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse("bench", appended); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, c := range []struct {
			name string
			next []byte
		}{{"append", appended}, {"change", []byte(mid)}, {"unblock", unblocked}} {
			sum := sha256.Sum256(c.next)
			for _, known := range []bool{false, true} {
				// Known: the caller has checked the content's SHA-256
				// (ReparseSum), as the fleet has.
				name := map[bool]string{false: "Reparse", true: "ReparseSum"}[known]
				b.Run(fmt.Sprintf("%s/%s/%d", name, c.name, n), func(b *testing.B) {
					b.SetBytes(int64(len(data)))
					for b.Loop() {
						var l *List
						var err error
						if known {
							l, err = ReparseSum(prev, "bench", c.next, hex.EncodeToString(sum[:]))
						} else {
							l, err = Reparse(prev, "bench", c.next)
						}
						if err != nil {
							b.Fatal(err)
						}
						if l.ov == nil && n > 10 {
							b.Fatal("parsed whole")
						}
					}
				})
			}
		}
	}
}

// BenchmarkMatchOverlay matches on a 1,000,000-rule list parsed whole and
// on the same list with an overlay of 100 one-rule edits: the overlay
// adds one small map lookup per label.
func BenchmarkMatchOverlay(b *testing.B) {
	data := genList(1_000_000)
	whole, err := Parse("bench", data)
	if err != nil {
		b.Fatal(err)
	}
	l := whole
	for i := range 100 {
		data = append(slices.Clip(data), fmt.Sprintf("edit%d.example\n", i)...)
		if l, err = Reparse(l, "bench", data); err != nil {
			b.Fatal(err)
		}
	}
	if l.ov == nil {
		b.Fatal("no overlay")
	}
	now := time.Now()
	for _, host := range []string{"site123457.example", "a.b.pages999990.example", "www.shop.customer.example.net", "edit50.example"} {
		for _, c := range []struct {
			name string
			l    *List
		}{{"whole", whole}, {"overlay", l}} {
			b.Run(c.name+"/"+host, func(b *testing.B) {
				for b.Loop() {
					c.l.Match(host, now)
				}
			})
		}
	}
}

// BenchmarkApplyEdit times the guarded edit of a 10-rule and a
// 1,000,000-rule list: a new rule (added at the end), a rule changed in
// the middle, and the unblock of a rule in the middle (which the drop
// guard lets through: one rule of many).
func BenchmarkApplyEdit(b *testing.B) {
	now := time.Now()
	for _, n := range []int{10, 1_000_000} {
		data := genList(n)
		mid := fmt.Sprintf("site%d.example", n/2+1)
		for _, c := range []struct {
			name string
			e    Edit
		}{
			{"add", Edit{Pattern: "new.example", Args: []string{"status=451"}}},
			{"change", Edit{Pattern: mid, Args: []string{"status=451"}}},
			{"unblock", Edit{Unblock: true, Pattern: mid}},
		} {
			b.Run(fmt.Sprintf("%s/%d", c.name, n), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					out, _, err := ApplyEdit("bench", data, c.e, 0.5, now)
					if err != nil || out == nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
