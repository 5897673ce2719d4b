package blocklist

import (
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	l := mustParse(t, `
example.org
*.wild.example
zone.example status=451
deep.zone.example
report.example mode=report
blocked.report.example
*.r2.example mode=report
r2.example
expired.example expires=2020-01-01
sub.expired.example expires=2020-01-01
expired2.example
sub.expired2.example expires=2020-01-01
10.1.2.3
`)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		host, want string // want is the matching pattern, "" for none
		mode       Mode
	}{
		{"example.org", "example.org", ModeBlock},
		{"www.example.org", "example.org", ModeBlock},
		{"a.b.c.example.org", "example.org", ModeBlock},
		{"notexample.org", "", 0},
		{"org", "", 0},
		{"wild.example", "", 0},
		{"a.wild.example", "*.wild.example", ModeBlock},
		{"a.b.wild.example", "*.wild.example", ModeBlock},
		{"zone.example", "zone.example", ModeBlock},
		{"deep.zone.example", "deep.zone.example", ModeBlock},
		{"x.deep.zone.example", "deep.zone.example", ModeBlock},
		{"other.zone.example", "zone.example", ModeBlock},
		{"report.example", "report.example", ModeReport},
		{"a.report.example", "report.example", ModeReport},
		{"blocked.report.example", "blocked.report.example", ModeBlock},
		// A block rule higher up wins over a more specific report rule.
		{"x.r2.example", "r2.example", ModeBlock},
		{"expired.example", "", 0},
		{"sub.expired.example", "", 0},
		{"sub.expired2.example", "expired2.example", ModeBlock},
		{"10.1.2.3", "10.1.2.3", ModeBlock},
	}
	for _, tt := range tests {
		r, ok := l.Match(tt.host, now)
		got := ""
		if ok {
			got = r.Pattern()
		}
		if got != tt.want || (ok && r.Mode != tt.mode) {
			t.Errorf("Match(%q) = %q mode %v; want %q mode %v", tt.host, got, r.Mode, tt.want, tt.mode)
		}
	}
}

func TestExpiry(t *testing.T) {
	l := mustParse(t, "a.example expires=2027-01-01T00:00:00Z\nb.example expires=2027-06-01\nc.example\n")
	before := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	if _, ok := l.Match("a.example", before); !ok {
		t.Error("a.example not blocked before its expiry")
	}
	if _, ok := l.Match("a.example", before.Add(time.Second)); ok {
		t.Error("a.example still blocked at its expiry")
	}
	next, ok := l.NextExpiry(before)
	if !ok || !next.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("NextExpiry = %v, %v", next, ok)
	}
	next, ok = l.NextExpiry(next)
	if !ok || !next.Equal(time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("second NextExpiry = %v, %v", next, ok)
	}
	if _, ok := l.NextExpiry(next); ok {
		t.Error("NextExpiry after the last expiry reported one")
	}
	exp := l.ExpiredBetween(before, before.Add(time.Hour))
	if len(exp) != 1 || exp[0].Name != "a.example" {
		t.Errorf("ExpiredBetween = %v", exp)
	}
}

func TestDiff(t *testing.T) {
	old := mustParse(t, "a.example\n*.b.example\nc.example\n")
	cur := mustParse(t, "a.example\nb.example\nd.example\n")
	added, removed := cur.Diff(old)
	if want := []string{"b.example", "d.example"}; !equal(added, want) {
		t.Errorf("added = %v, want %v", added, want)
	}
	if want := []string{"*.b.example", "c.example"}; !equal(removed, want) {
		t.Errorf("removed = %v, want %v", removed, want)
	}
	added, removed = cur.Diff(nil)
	if len(added) != 3 || len(removed) != 0 {
		t.Errorf("Diff(nil) = %v, %v", added, removed)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMatchDoesNotAllocate(t *testing.T) {
	l := mustParse(t, "example.org reason=\"x\"\n")
	now := time.Now()
	n := testing.AllocsPerRun(100, func() {
		if _, ok := l.Match("a.b.example.org", now); !ok {
			t.Fatal("no match")
		}
		l.Match("a.b.example.net", now)
	})
	if n != 0 {
		t.Errorf("Match allocates %v times; want 0", n)
	}
}
