package blocklist

import (
	"fmt"
	"slices"
	"testing"
)

// TestNamed: the rules about one name, worldwide and scoped, zone and
// wildcard, in file order, on a list parsed whole and on one reparsed.
func TestNamed(t *testing.T) {
	base := "x.example\n*.forum.example\nforum.example countries=FR\nforum.example\nother.example\n*.forum.example except_countries=DE\n"
	// forum.example moves to the top, with another status.
	moved := "forum.example status=451\nx.example\n*.forum.example\nforum.example countries=FR\nother.example\n*.forum.example except_countries=DE\n"
	reparsed, err := Reparse(mustParse(t, base), "f.txt", []byte(moved))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		l    *List
		ask  string
		want []string // pattern@line
	}{
		{"whole", mustParse(t, base), "forum.example", []string{"*.forum.example@2", "forum.example@3", "forum.example@4", "*.forum.example@6"}},
		{"one rule", mustParse(t, base), "x.example", []string{"x.example@1"}},
		{"none", mustParse(t, base), "y.example", nil},
		{"not under", mustParse(t, base), "www.forum.example", nil},
		{"reparsed", reparsed, "forum.example", []string{"forum.example@1", "*.forum.example@3", "forum.example@4", "*.forum.example@6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range tt.l.Named(tt.ask) {
				got = append(got, fmt.Sprintf("%s@%d", r.Pattern(), r.Line))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Named(%s) = %v, want %v", tt.ask, got, tt.want)
			}
		})
	}
}

// TestTouched: the names whose rules may differ are known for a list
// reparsed from the other (those of the changed lines), and for the same
// content (none); not for unrelated lists.
func TestTouched(t *testing.T) {
	base := "a.example\nb.example\n#@ 2026-12-01T00:00:00Z by x\nc.example\nd.example\n"
	prev := mustParse(t, base)
	edit := func(next string) *List {
		t.Helper()
		l, err := Reparse(prev, "f.txt", []byte(next))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tests := []struct {
		name   string
		l, old *List
		want   []string
		ok     bool
	}{
		{"append", edit(base + "e.example\n"), prev, []string{"e.example"}, true},
		{"change", edit("a.example\nb.example mode=report\n#@ 2026-12-01T00:00:00Z by x\nc.example\nd.example\n"), prev, []string{"b.example"}, true},
		{"annotation", edit("a.example\nb.example\n#@ 2026-12-02T00:00:00Z by y\nc.example\nd.example\n"), prev, []string{"c.example"}, true},
		{"same list", prev, prev, nil, true},
		{"same content", mustParse(t, base), prev, nil, true},
		{"unrelated", mustParse(t, base+"e.example\n"), prev, nil, false},
		{"reparsed, not from old", edit(base + "e.example\n"), mustParse(t, "q.example\n"), nil, false},
		{"no old", prev, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.l.Touched(tt.old)
			slices.Sort(got)
			if ok != tt.ok || !slices.Equal(got, tt.want) {
				t.Errorf("Touched = %v %v, want %v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
