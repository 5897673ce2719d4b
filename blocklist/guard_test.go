package blocklist

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAllowsDrop(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"a.example\n", false},
		{"#! allow-drop\n", true},
		{"  #! allow-drop  \r\na.example\n", true},
		{"a.example\n#! allow-drop\n", true},
		{"# allow-drop\n", false},
		{"#! allow-drop please\n", false},
		{"a.example #! allow-drop\n", false}, // a trailing comment is not the marker line
		{"", false},
	}
	for _, tt := range tests {
		if got := mustParse(t, tt.text).AllowsDrop(); got != tt.want {
			t.Errorf("AllowsDrop(%q) = %v, want %v", tt.text, got, tt.want)
		}
	}
}

func TestDroppedBlocks(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	old := "a.example\nb.example\n*.c.example\nd.example mode=report\ne.example expires=2026-01-01\nf.example\n"
	tests := []struct {
		name           string
		next           string
		dropped, total int
	}{
		{"same", old, 0, 4},
		{"empty", "", 4, 4},
		{"only comments", "# nothing\n#! allow-drop\n", 4, 4},
		{"one removed", "a.example\nb.example\n*.c.example\n", 1, 4},
		{"switched to report", "a.example mode=report\nb.example\n*.c.example\nf.example\n", 1, 4},
		{"wildcard is not the zone", "a.example\nb.example\nc.example\nf.example\n", 1, 4},
		{"expires before now", "a.example expires=2026-05-01\nb.example\n*.c.example\nf.example\n", 1, 4},
		{"attributes changed, still blocking", "a.example status=451\nb.example reason=x\n*.c.example\nf.example policy=https://p.example/\n", 0, 4},
		{"report and expired rules do not count", "a.example\nb.example\n*.c.example\nf.example\n", 0, 4},
	}
	o := mustParse(t, old)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, n := mustParse(t, tt.next).DroppedBlocks(o, now)
			if d != tt.dropped || n != tt.total {
				t.Errorf("DroppedBlocks = %d of %d, want %d of %d", d, n, tt.dropped, tt.total)
			}
		})
	}
	if d, n := o.DroppedBlocks(nil, now); d != 0 || n != 0 {
		t.Errorf("against nil: %d of %d", d, n)
	}
	if got := o.BlockRules(now); got != 4 {
		t.Errorf("BlockRules = %d, want 4", got)
	}
}

func TestRuleFormatRoundTrip(t *testing.T) {
	l := mustLoad(t, "testdata/example.txt")
	var b strings.Builder
	for r := range l.Rules() {
		fmt.Fprintln(&b, r.Format())
	}
	back := mustParse(t, b.String())
	if back.Len() != l.Len() {
		t.Fatalf("round trip: %d rules, want %d\n%s", back.Len(), l.Len(), b.String())
	}
	checkSameRules(t, l, back)
}

// checkSameRules fails unless a and b have the same rules with the same
// attributes and expiry.
func checkSameRules(t *testing.T, a, b *List) {
	t.Helper()
	for r := range a.Rules() {
		got, ok := b.Lookup(r.Pattern())
		if !ok {
			t.Errorf("%s lost", r.Pattern())
			continue
		}
		if got.Attrs != r.Attrs || !got.Expires.Equal(r.Expires) {
			t.Errorf("%s: %+v %v, want %+v %v", r.Pattern(), got.Attrs, got.Expires, r.Attrs, r.Expires)
		}
	}
}

func FuzzRuleFormat(f *testing.F) {
	f.Add([]byte("forum.example reason=\"x # y \\\"z\\\"\" policy=https://p.example/#f\n*.a.example status=451 mode=report expires=2027-01-01T10:00:00.5Z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		var b strings.Builder
		for r := range l.Rules() {
			b.WriteString(r.Format())
			b.WriteByte('\n')
		}
		back, err := Parse("formatted", []byte(b.String()))
		if err != nil {
			t.Fatalf("formatted rules do not parse: %v\n%s", err, b.String())
		}
		if back.Len() != l.Len() {
			t.Fatalf("%d rules formatted, %d read back", l.Len(), back.Len())
		}
		checkSameRules(t, l, back)
	})
}

// BenchmarkDroppedBlocks1M measures the drop guard's comparison of two
// 1,000,000-rule lists, which every reload that changes the list runs.
func BenchmarkDroppedBlocks1M(b *testing.B) {
	var x, y strings.Builder
	for i := range 1_000_000 {
		fmt.Fprintf(&x, "host-%d.example\n", i)
		fmt.Fprintf(&y, "host-%d.example\n", i+1000)
	}
	old, err := Parse("old", []byte(x.String()))
	if err != nil {
		b.Fatal(err)
	}
	next, err := Parse("next", []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		if d, _ := next.DroppedBlocks(old, now); d != 1000 {
			b.Fatalf("dropped %d, want 1000", d)
		}
	}
}
