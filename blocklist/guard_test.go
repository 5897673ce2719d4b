package blocklist

import (
	"errors"
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

// TestDroppedBlocksHorizon: an expiry that a new list sets (or moves
// earlier) within GuardHorizon counts as a removal; one the rule already
// had in the old list does not, nor does one beyond the horizon.
func TestDroppedBlocksHorizon(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	old := "a.example\nb.example expires=" + at(30*time.Minute) + "\nc.example expires=" + at(3*time.Hour) + "\n"
	tests := []struct {
		name    string
		next    string
		dropped int
	}{
		{"same", old, 0},
		{"expiry two seconds ahead", "a.example expires=" + at(2*time.Second) + "\nb.example expires=" + at(30*time.Minute) + "\nc.example expires=" + at(3*time.Hour) + "\n", 1},
		{"expiry at the horizon", "a.example expires=" + at(GuardHorizon) + "\nb.example expires=" + at(30*time.Minute) + "\nc.example expires=" + at(3*time.Hour) + "\n", 1},
		{"expiry just beyond the horizon", "a.example expires=" + at(GuardHorizon+time.Nanosecond) + "\nb.example expires=" + at(30*time.Minute) + "\nc.example expires=" + at(3*time.Hour) + "\n", 0},
		{"expiry beyond the horizon", "a.example expires=" + at(2*time.Hour) + "\nb.example expires=" + at(30*time.Minute) + "\nc.example expires=" + at(3*time.Hour) + "\n", 0},
		{"own expiry within the horizon kept", "a.example\nb.example expires=" + at(30*time.Minute) + "\nc.example expires=" + at(3*time.Hour) + "\nd.example\n", 0},
		{"own expiry within the horizon extended", "a.example\nb.example expires=" + at(40*time.Minute) + "\nc.example\n", 0},
		{"own expiry within the horizon moved earlier", "a.example\nb.example expires=" + at(20*time.Minute) + "\nc.example expires=" + at(3*time.Hour) + "\n", 1},
		{"later expiry moved into the horizon", "a.example\nb.example expires=" + at(30*time.Minute) + "\nc.example expires=" + at(10*time.Minute) + "\n", 1},
		{"later expiry moved, still beyond", "a.example\nb.example expires=" + at(30*time.Minute) + "\nc.example expires=" + at(90*time.Minute) + "\n", 0},
	}
	o := mustParse(t, old)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, n := mustParse(t, tt.next).DroppedBlocks(o, now)
			if d != tt.dropped || n != 3 {
				t.Errorf("DroppedBlocks = %d of %d, want %d of 3", d, n, tt.dropped)
			}
		})
	}
}

// TestCheckDrop: the guard refuses dropping all block rules, or more than
// maxDrop of them, unless the new list has the marker line.
func TestCheckDrop(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	soon := now.Add(2 * time.Second).Format(time.RFC3339)
	tests := []struct {
		old, next string
		maxDrop   float64
		want      string // "" for no error
	}{
		{"a.example\n", "", 0.5, "would drop 1 of 1 block rules (all of them)"},
		{"a.example\n", "a.example expires=" + soon + "\n", 0.5, "would drop 1 of 1 block rules (all of them)"},
		{"a.example\n", "a.example mode=report\n", 1, "would drop 1 of 1 block rules (all of them)"},
		{"a.example\n", "#! allow-drop\n", 0.5, ""},
		{"a.example\nb.example\n", "a.example\n", 0.5, ""},
		{"a.example\nb.example\nc.example\n", "a.example\n", 0.5, "would drop 2 of 3 block rules (66.7% > max_drop 50%)"},
		{"a.example\nb.example\nc.example\n", "a.example\n", 0.7, ""},
		{"a.example mode=report\n", "", 0.5, ""},
		{"", "a.example\n", 0.5, ""},
	}
	for _, tt := range tests {
		err := CheckDrop(mustParse(t, tt.next), mustParse(t, tt.old), tt.maxDrop, now)
		var de *DropError
		if tt.want == "" && err != nil || tt.want != "" && (!errors.As(err, &de) || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckDrop(%q over %q, %g) = %v; want %q", tt.next, tt.old, tt.maxDrop, err, tt.want)
		}
	}
	if err := CheckDrop(mustParse(t, ""), nil, 0.5, now); err != nil {
		t.Errorf("against no list: %v", err)
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
		i := b.find(r.Name, r.Wildcard, r.Scope) // a pattern's rules differ by scope
		if i < 0 {
			t.Errorf("%s %s lost", r.Pattern(), r.Scope)
			continue
		}
		got := b.rule(i)
		if got.Attrs != r.Attrs || !got.Expires.Equal(r.Expires) {
			t.Errorf("%s: %+v %v, want %+v %v", r.Pattern(), got.Attrs, got.Expires, r.Attrs, r.Expires)
		}
	}
}

func FuzzRuleFormat(f *testing.F) {
	f.Add([]byte("forum.example reason=\"x # y \\\"z\\\"\" policy=https://p.example/#f\n*.a.example status=451 mode=report expires=2027-01-01T10:00:00.5Z\n"))
	f.Add([]byte("a.example\na.example countries=fr status=451 publish=yes\na.example countries=DE notice=https://n.example/1\na.example except_countries=us unknown=block\n"))
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
