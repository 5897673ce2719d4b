package blocklist

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// describe renders a change as "kind pattern [key:old→new ...] [by X: C]".
func describe(c Change) string {
	s := string(c.Kind) + " " + c.Rule.Pattern()
	for _, a := range c.Attrs {
		s += fmt.Sprintf(" %s:%s", a.Key, a)
	}
	if c.HasNote {
		s += " by " + c.Note.By
		if c.Note.Comment != "" {
			s += ": " + c.Note.Comment
		}
	}
	return s
}

func TestChanges(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // old "-" means no old list
		want     []string
	}{
		{
			name: "added, removed, changed in file order",
			old:  "a.example\n*.b.example\nc.example status=451 policy=https://p.example/\n",
			new:  "c.example reason=x\na.example\nd.example\n",
			want: []string{
				"changed c.example policy:https://p.example/→(default) reason:(none)→x status:451→403",
				"added d.example",
				"removed *.b.example",
			},
		},
		{
			name: "moved lines and respelled patterns are no change",
			old:  "a.example\nb.example status=451\n",
			new:  "# moved\nB.Example. status=451\n\na.example\n",
		},
		{
			name: "every attribute",
			old:  "x.example mode=report expires=2027-01-01\n",
			new:  "x.example expires=2027-01-02T00:00:00Z\n",
			want: []string{"changed x.example mode:report→block expires:2027-01-01T00:00:00Z→2027-01-02T00:00:00Z"},
		},
		{
			name: "expiry removed",
			old:  "x.example expires=2027-01-01\n",
			new:  "x.example\n",
			want: []string{"changed x.example expires:2027-01-01T00:00:00Z→(never)"},
		},
		{
			name: "notes of added, changed and unblocked rules",
			old:  "#@ 2026-11-01T00:00:00Z by carol: old\nc.example\nr.example\nkeep.example\n",
			new: "#@ 2026-11-26T10:00:00Z by alice: T-1\na.example\n#@ 2026-11-26T10:00:00Z by alice: T-2\nc.example status=451\n" +
				"keep.example\n#@ 2026-11-26T10:00:00Z by bob unblocked r.example: lifted\n",
			want: []string{"added a.example by alice: T-1", "changed c.example status:403→451 by alice: T-2", "removed r.example by bob: lifted"},
		},
		{
			name: "a changed rule under its old note has no note",
			old:  "#@ 2026-11-01T00:00:00Z by carol: old\nc.example\n",
			new:  "#@ 2026-11-01T00:00:00Z by carol: old\nc.example status=451\n",
			want: []string{"changed c.example status:403→451"},
		},
		{
			name: "no old list: everything added",
			old:  "-",
			new:  "a.example\n*.a.example\n",
			want: []string{"added a.example", "added *.a.example"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var old *List
			if tt.old != "-" {
				old = mustParse(t, tt.old)
			}
			var got []string
			for c := range mustParse(t, tt.new).Changes(old) {
				got = append(got, describe(c))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Changes =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestChangesStopsEarly(t *testing.T) {
	n := 0
	for range mustParse(t, "a.example\nb.example\nc.example\n").Changes(nil) {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("iterated %d times", n)
	}
}
