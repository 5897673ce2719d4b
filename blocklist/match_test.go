package blocklist

import (
	"fmt"
	"testing"
	"time"
	"unsafe"
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

// TestExpiryRange checks expiries across the years a rule can hold,
// including those past 2262, where Unix nanoseconds overflow an int64.
func TestExpiryRange(t *testing.T) {
	tests := []struct {
		expires string
		at      time.Time // an instant at which the rule must apply
		want    time.Time // the expiry
	}{
		{"9999-12-31T23:59:59Z", time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"9999-12-31", time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)},
		{"2263-01-01", time.Date(2262, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2300-01-01", time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2027-01-01T01:00:00+01:00", time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"1970-01-01", time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"1969-12-31", time.Date(1969, 12, 30, 0, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)},
		{"1969-12-31T23:59:59.5Z", time.Date(1969, 12, 31, 23, 59, 59, 499999999, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 5e8, time.UTC)},
		{"0001-01-01T00:00:00.000000001Z", time.Time{}, time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		{"0001-01-02", time.Date(1, 1, 1, 12, 0, 0, 0, time.UTC), time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.expires, func(t *testing.T) {
			l := mustParse(t, fmt.Sprintf("a.example expires=%s\nnever.example\n", tt.expires))
			r, ok := l.Match("www.a.example", tt.at)
			if !ok || !r.Expires.Equal(tt.want) {
				t.Fatalf("Match at %v = %v, %v; want the rule, expiring %v", tt.at, r, ok, tt.want)
			}
			if _, ok := l.Match("a.example", tt.want); ok {
				t.Errorf("rule applies at its expiry %v", tt.want)
			}
			if _, ok := l.Match("a.example", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC).Add(time.Hour)); ok {
				t.Error("rule applies after year 9999")
			}
			if next, ok := l.NextExpiry(tt.at); !ok || !next.Equal(tt.want) {
				t.Errorf("NextExpiry(%v) = %v, %v", tt.at, next, ok)
			}
			if got := l.ExpiredBetween(tt.at, tt.want); len(got) != 1 || got[0].Name != "a.example" {
				t.Errorf("ExpiredBetween = %v", got)
			}
			// A rule without expiry applies at every instant a time.Time can hold.
			for _, at := range []time.Time{{}, tt.want, time.Unix(1<<62, 0), time.Unix(-1<<62, 0)} {
				if _, ok := l.Match("never.example", at); !ok {
					t.Errorf("never.example does not apply at %v", at)
				}
			}
		})
	}
}

// TestExpiryOrder checks NextExpiry and ExpiredBetween with several rules,
// equal expiries and sub-second differences.
func TestExpiryOrder(t *testing.T) {
	l := mustParse(t, `late.example expires=2400-01-01
b.example expires=2027-01-01T00:00:00.5Z
a.example expires=2027-01-01
c.example expires=2027-01-01T01:00:00+01:00
never.example
`)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []time.Time
	for at := t0; ; {
		next, ok := l.NextExpiry(at)
		if !ok {
			break
		}
		got = append(got, next)
		at = next
	}
	want := []time.Time{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 5e8, time.UTC), time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("NextExpiry chain = %v, want %v", got, want)
	}
	var names []string
	for _, r := range l.ExpiredBetween(t0, time.Date(2027, 1, 1, 0, 0, 0, 5e8, time.UTC)) {
		names = append(names, r.Name)
	}
	if want := []string{"b.example", "a.example", "c.example"}; !equal(names, want) {
		t.Errorf("ExpiredBetween = %v, want %v (file order)", names, want)
	}
	if got := l.ExpiredBetween(t0, time.Date(2027, 1, 1, 0, 0, 0, 499999999, time.UTC)); len(got) != 2 {
		t.Errorf("ExpiredBetween up to 0.499999999s = %v, want a and c", got)
	}
	if got := l.ExpiredBetween(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2399, 1, 1, 0, 0, 0, 0, time.UTC)); len(got) != 1 || got[0].Name != "b.example" {
		t.Errorf("ExpiredBetween is not (from, to]: %v", got)
	}
}

// TestRuleSize guards the memory per rule: the expiry in seconds and
// nanoseconds must not grow the stored rule beyond 40 bytes.
func TestRuleSize(t *testing.T) {
	if n := unsafe.Sizeof(rule{}); n > 40 {
		t.Errorf("rule is %d bytes, want at most 40", n)
	}
}
