package certs

import (
	"slices"
	"testing"
	"time"
)

// TestPatternsWith: a set made by With from another holds, for every name,
// the patterns NewPatterns puts there when given the patterns of the
// replaced names instead of the old ones; the set it was made from is not
// changed, and Replaced counts the names replaced along the way.
func TestPatternsWith(t *testing.T) {
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	base := []Pattern{
		{Name: "a.example", Kind: Exact},
		{Name: "a.example", Kind: Zone},
		{Name: "b.example", Kind: Wildcard, WildcardCert: true},
		{Name: "c.example", Kind: Zone, Until: until},
		{Name: "d.example", Kind: Zone},
	}
	tests := []struct {
		name   string
		steps  []map[string][]Pattern
		want   []Pattern // what NewPatterns is given for the same set
		replac int
	}{
		{"nothing", []map[string][]Pattern{{}}, base, 0},
		{"add a name", []map[string][]Pattern{{"e.example": {{Name: "e.example", Kind: Zone}}}},
			append(slices.Clone(base), Pattern{Name: "e.example", Kind: Zone}), 1},
		{"remove a name", []map[string][]Pattern{{"c.example": nil}},
			slices.Delete(slices.Clone(base), 3, 4), 1},
		{"change one of two", []map[string][]Pattern{{"a.example": {{Name: "a.example", Kind: Exact}, {Name: "a.example", Kind: Wildcard}}}},
			[]Pattern{base[0], {Name: "a.example", Kind: Wildcard}, base[2], base[3], base[4]}, 1},
		{"two steps, same name", []map[string][]Pattern{{"d.example": nil}, {"d.example": {{Name: "d.example", Kind: Wildcard, Until: until}}}},
			[]Pattern{base[0], base[1], base[2], base[3], {Name: "d.example", Kind: Wildcard, Until: until}}, 1},
		{"two steps, two names", []map[string][]Pattern{{"b.example": nil}, {"f.example": {{Name: "f.example", Kind: Exact}}}},
			[]Pattern{base[0], base[1], base[3], base[4], {Name: "f.example", Kind: Exact}}, 2},
	}
	names := []string{"a.example", "b.example", "c.example", "d.example", "e.example", "f.example", "x.example"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := NewPatterns(base)
			s := orig
			for _, st := range tt.steps {
				s = s.With(st)
			}
			want := NewPatterns(tt.want)
			for _, n := range names {
				for _, at := range []bool{true, false} {
					if g, w := s.lookup(n, at), want.lookup(n, at); !slices.Equal(g, w) {
						t.Errorf("lookup(%s, %v) = %v, want %v", n, at, g, w)
					}
				}
				for _, q := range []string{n, "www." + n} {
					for _, now := range []time.Time{until.Add(-time.Hour), until} {
						g, gok := s.Match(q, now)
						w, wok := want.Match(q, now)
						if g != w || gok != wok {
							t.Errorf("Match(%s, %v) = %v %v, want %v %v", q, now, g, gok, w, wok)
						}
					}
				}
				if g, w := orig.lookup(n, true), NewPatterns(base).lookup(n, true); !slices.Equal(g, w) {
					t.Errorf("the set With was called on changed: %s: %v, want %v", n, g, w)
				}
			}
			if s.Replaced() != tt.replac {
				t.Errorf("Replaced = %d, want %d", s.Replaced(), tt.replac)
			}
		})
	}
	var none *Patterns
	if s := none.With(map[string][]Pattern{"a.example": {{Name: "a.example", Kind: Zone}}}); s.Replaced() != 1 {
		t.Errorf("With on nil: Replaced = %d", s.Replaced())
	} else if _, ok := s.Match("www.a.example", time.Now()); !ok {
		t.Errorf("With on nil: no match")
	}
}
