package blocklist

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, path string) *List {
	t.Helper()
	l, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return l
}

func mustParse(t *testing.T, text string) *List {
	t.Helper()
	l, err := Parse("test.txt", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return l
}

func TestParseAttributes(t *testing.T) {
	l := mustLoad(t, "testdata/example.txt")
	if l.Len() != 7 {
		t.Fatalf("Len = %d, want 7", l.Len())
	}
	tests := []struct {
		pattern string
		want    Rule
	}{
		{"forum.example", Rule{Name: "forum.example", Line: 2, Attrs: Attrs{Policy: "https://blog.example.com/why", Reason: "Imminent threat to human life", Status: 403}}},
		{"*.user-pages.example", Rule{Name: "user-pages.example", Wildcard: true, Line: 3, Attrs: Attrs{Status: 403}}},
		{"court.example", Rule{Name: "court.example", Line: 4, Attrs: Attrs{Policy: "https://lumendatabase.org/notices/1", Reason: "Court order 123", Status: 451}}},
		{"staging.example", Rule{Name: "staging.example", Line: 5, Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), Attrs: Attrs{Status: 403, Mode: ModeReport}}},
		{"xn--bcher-kva.example", Rule{Name: "xn--bcher-kva.example", Line: 7, Attrs: Attrs{Status: 403}}},
		{"old.example", Rule{Name: "old.example", Line: 8, Expires: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Attrs: Attrs{Status: 403}}},
		{"quoted.example", Rule{Name: "quoted.example", Line: 9, Attrs: Attrs{Policy: "https://blog.example.com/p#frag", Reason: `He said "no" # not a comment`, Status: 403}}},
	}
	for _, tt := range tests {
		got, ok := l.Lookup(tt.pattern)
		if !ok {
			t.Errorf("Lookup(%q): not found", tt.pattern)
			continue
		}
		got.AttrsID = 0
		if !got.Expires.Equal(tt.want.Expires) {
			t.Errorf("%s: Expires = %v, want %v", tt.pattern, got.Expires, tt.want.Expires)
		}
		got.Expires, tt.want.Expires = time.Time{}, time.Time{}
		if got != tt.want {
			t.Errorf("Lookup(%q) = %+v\nwant %+v", tt.pattern, got, tt.want)
		}
	}
	// Rules with equal attributes share one Attrs entry.
	a, _ := l.Lookup("*.user-pages.example")
	b, _ := l.Lookup("xn--bcher-kva.example")
	if a.AttrsID != b.AttrsID {
		t.Errorf("equal attributes got different AttrsIDs %d and %d", a.AttrsID, b.AttrsID)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{"bad..example", "empty label"},
		{"bad host.example", `invalid host name "bad host.example": a name with a space`},
		{"bad host.example reason=x", `invalid host name "bad host.example": a name with a space`},
		{"a.example 403", `attribute "403": want key=value`},
		{"-lead.example", `label "-lead" starts with '-'`},
		{"*.trail-.example", `label "trail-" ends with '-'`},
		{"a.example status=404", `status="404": want 403 or 451`},
		{"a.example mode=audit", `mode="audit": want block or report`},
		{"a.example color=red", `unknown attribute "color"`},
		{`a.example reason="open`, "missing closing quote"},
		{`a.example reason="a\nb"`, `bad escape`},
		{`a.example reason=""`, "empty"},
		{"a.example reason=\"x\x01y\"", "control character (U+0001)"},
		{"a.example reason=x\x7fy", "control character (U+007F)"},
		{`a.example reason="x"y`, "white space after the closing quote"},
		{"a.example policy=/relative", "absolute http or https URL"},
		{"a.example policy=ftp://x.example/", "absolute http or https URL"},
		{"a.example expires=tomorrow", "RFC 3339"},
		{"a.example expires=0000-01-01", "out of range"},
		{"a.example expires=0001-01-01T00:00:00Z", "out of range"},
		{"a.example expires=9999-12-31T23:59:59-01:00", "out of range"},
		{"a.example status=403 status=451", "given twice"},
		{"a.example reason", `"reason": want key=value`},
		{"a.example:80", "no ports"},
		{"a.*.example", "inner wildcards"},
		{"*.10.0.0.1", "not an IP address"},
		{"a.example/path", "no ports, paths"},
		{"a.example\na.example", "duplicate rule \"a.example\": already on line 1"},
	}
	for _, tt := range tests {
		_, err := Parse("f.txt", []byte(tt.line))
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "f.txt:") {
			t.Errorf("Parse(%q) error = %v; want f.txt:N: ...%s", tt.line, err, tt.want)
		}
	}
}

func TestParseListsEveryBadLine(t *testing.T) {
	_, err := Load("testdata/bad.txt")
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Load(bad.txt) error = %v, want *ParseError", err)
	}
	var lines []int
	for _, p := range pe.Problems {
		lines = append(lines, p.Line)
		if p.File != "testdata/bad.txt" {
			t.Errorf("problem file = %q", p.File)
		}
	}
	want := []int{2, 3, 4, 5, 6, 7}
	if len(lines) != len(want) {
		t.Fatalf("bad lines = %v, want %v\n%v", lines, want, err)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("bad lines = %v, want %v", lines, want)
		}
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != len(want) {
		t.Errorf("error text has %d lines, want %d:\n%v", got, len(want), err)
	}
}

func TestParseEmptyAndComments(t *testing.T) {
	l := mustParse(t, "# nothing\n\n   \n\t# indented comment\r\n")
	if l.Len() != 0 {
		t.Errorf("Len = %d, want 0", l.Len())
	}
	if _, ok := l.Match("example.com", time.Now()); ok {
		t.Error("empty list matched")
	}
	if l.SHA256() == "" || len(l.SHA256()) != 64 {
		t.Errorf("SHA256 = %q", l.SHA256())
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("forum.example reason=\"x\" policy=https://p.example/\n*.a.example status=451\n"))
	f.Add([]byte("# c\nb.example mode=report expires=2027-01-01\n"))
	f.Add([]byte("bad..x color=1\n"))
	f.Add([]byte("c.example reason.de=\"Grund\" reason.PT-br=x contact=mailto:a@b.example appeal=https://a.example/\n"))
	f.Add([]byte("#@ 2026-11-26T10:00:00Z by alice: T-1\na.example\n#@ 2026-11-26T11:00:00Z by bob unblocked b.example: gone\n"))
	f.Add([]byte("a.example\na.example countries=fr,DE status=451 publish=yes notice=https://lumendatabase.org/n/1\n*.a.example except_countries=US unknown=allow\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error %v is not a *ParseError with problems", err)
			}
			return
		}
		// Every rule is found again by its own pattern and matches its name,
		// and its Format reads back with the same attributes.
		for r := range l.Rules() {
			if back, err := Parse("fuzz", []byte(r.Format()+"\n")); err != nil {
				t.Fatalf("Format %q of %v does not parse: %v", r.Format(), r, err)
			} else if b, _ := back.Lookup(r.Pattern()); b.Attrs != r.Attrs {
				t.Fatalf("Format %q reads back as %+v, want %+v", r.Format(), b.Attrs, r.Attrs)
			}
			if i := l.find(r.Name, r.Wildcard, r.Scope); i < 0 || l.rule(i).Line != r.Line {
				t.Fatalf("rule %v not found by its pattern and scope", r)
			}
			if _, ok := l.Lookup(r.Pattern()); !ok {
				t.Fatalf("rule %v not found by Lookup", r)
			}
			host := r.Name
			if r.Wildcard {
				host = "x." + host
			}
			// A visitor inside the rule's scope.
			w := Where{UnknownBlocks: true}
			if cs := r.Scope.Countries(); len(cs) > 0 && !r.Scope.Except() {
				w.Country = cs[0]
			} else if r.Scope.Except() {
				for _, c := range Countries() {
					if !slices.Contains(cs, c) {
						w.Country = c
						break
					}
				}
			}
			if _, ok := l.MatchWhere(host, w, r.Expires.Add(-time.Second)); !ok {
				t.Fatalf("rule %v does not match %q for %+v", r, host, w)
			}
			if r.Scope.IsZero() {
				if _, ok := l.Match(host, r.Expires.Add(-time.Second)); !ok {
					t.Fatalf("rule %v does not match %q", r, host)
				}
			}
		}
	})
}

func TestParseExpiry(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time // zero: rejected
		err  string    // part of the error when rejected
	}{
		{"2027-01-01", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"2027-01-01T12:30:00Z", time.Date(2027, 1, 1, 12, 30, 0, 0, time.UTC), ""},
		{"2027-01-01T12:30:00+02:00", time.Date(2027, 1, 1, 10, 30, 0, 0, time.UTC), ""},
		{"2027-01-01T00:30:00-05:30", time.Date(2027, 1, 1, 6, 0, 0, 0, time.UTC), ""},
		{"2027-01-01T00:00:00-00:00", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"2027-01-01T00:00:00+23:59", time.Date(2026, 12, 31, 0, 1, 0, 0, time.UTC), ""},
		{"2027-01-01T00:00:00.5Z", time.Date(2027, 1, 1, 0, 0, 0, 5e8, time.UTC), ""},
		{"2027-01-01T00:00:00.123456789Z", time.Date(2027, 1, 1, 0, 0, 0, 123456789, time.UTC), ""},
		// Beyond what Unix nanoseconds in an int64 can hold (2262-04-11).
		{"2263-01-01", time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"2300-01-01", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"9999-12-31", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), ""},
		{"9999-12-31T23:59:59Z", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), ""},
		{"9999-12-31T23:59:59.999999999Z", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), ""},
		{"9999-12-31T23:59:59+01:00", time.Date(9999, 12, 31, 22, 59, 59, 0, time.UTC), ""},
		// Past dates are valid: the rule has expired.
		{"1970-01-01", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"1969-12-31", time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), ""},
		{"1969-12-31T23:59:59.999999999Z", time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), ""},
		{"0001-01-02", time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC), ""},
		{"0001-01-01T00:00:00.000000001Z", time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), ""},
		{"0001-01-01T00:00:01+00:00", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), ""},
		{"2028-02-29", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC), ""},

		{"0001-01-01", time.Time{}, "zero time"},
		{"0001-01-01T00:00:00Z", time.Time{}, "zero time"},
		{"0001-01-01T01:00:00+01:00", time.Time{}, "zero time"},
		{"0001-01-01T00:00:00+01:00", time.Time{}, "before 0001-01-01"},
		{"0000-12-31", time.Time{}, "before 0001-01-01"},
		{"9999-12-31T23:59:59-01:00", time.Time{}, "after 9999-12-31"},
		{"10000-01-01", time.Time{}, "not a date"},
		{"-0001-01-01", time.Time{}, "not a date"},
		{"+2027-01-01", time.Time{}, "not a date"},
		{"2026-12-31T23:59:60Z", time.Time{}, "leap second"},
		{"2016-12-31T23:59:60+00:00", time.Time{}, "leap second"},
		{"2027-02-29", time.Time{}, "day out of range"},
		{"2027-13-01", time.Time{}, "month out of range"},
		{"2027-01-01T24:00:00Z", time.Time{}, "hour out of range"},
		{"2027-01-01T00:00:00+24:00", time.Time{}, "offset +24:00"},
		{"2027-01-01T00:00:00+01:60", time.Time{}, "offset +01:60"},
		{"2027-01-01T00:00:00+0100", time.Time{}, "offset"},
		{"2027-01-01T00:00:00", time.Time{}, "offset"},
		{"2027-01-01T00:00:00UTC", time.Time{}, "offset"},
		{"2027-01-01t00:00:00z", time.Time{}, "not a date"},
		{"2027-01-01T00:00:00z", time.Time{}, "offset"},
		{"2027-01-01T1:00:00Z", time.Time{}, "HH:MM:SS"},
		{"2027-01-01T00:00Z", time.Time{}, "HH:MM:SS"},
		{"2027-01-01T00:00:00,5Z", time.Time{}, "offset"},
		{"2027-01-01T00:00:00.Z", time.Time{}, "fraction"},
		{"2027-01-01T00:00:00.1234567891Z", time.Time{}, "fraction"},
		{"2027-1-01", time.Time{}, "not a date"},
		{"2027-01-01 ", time.Time{}, "not a date"},
		{"tomorrow", time.Time{}, "not a date"},
		{"", time.Time{}, "not a date"},
		{"1798761600", time.Time{}, "not a date"},
	}
	for _, tt := range tests {
		got, err := ParseExpiry(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "from year 0001 to 9999") {
				t.Errorf("ParseExpiry(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestParseExpiryNamesTheLine checks that an expiry the list cannot hold
// rejects the whole file with file:line.
func TestParseExpiryNamesTheLine(t *testing.T) {
	_, err := Parse("f.txt", []byte("ok.example expires=9999-12-31\nbad.example expires=0001-01-01\nleap.example expires=2016-12-31T23:59:60Z\n"))
	var pe *ParseError
	if !errors.As(err, &pe) || len(pe.Problems) != 2 || pe.Problems[0].Line != 2 || pe.Problems[1].Line != 3 {
		t.Fatalf("error = %v; want problems on lines 2 and 3", err)
	}
	if !strings.HasPrefix(err.Error(), `f.txt:2: attribute expires="0001-01-01": `) {
		t.Errorf("error = %v", err)
	}
}

// FuzzExpiry checks that every expiry the parser accepts is held exactly:
// a rule with it applies just before and not at it, and NextExpiry and
// ExpiredBetween return it. The second and third arguments make a time
// written in RFC 3339, which must be accepted exactly when it lies in the
// years 0001..9999 and is not the zero time.
func FuzzExpiry(f *testing.F) {
	for _, s := range []string{"2027-01-01", "9999-12-31T23:59:59Z", "2263-01-01", "2300-01-01", "0001-01-01", "0001-01-01T00:00:00.000000001Z",
		"1969-12-31T23:59:59.5-01:00", "2016-12-31T23:59:60Z", "2027-01-01T00:00:00+24:00"} {
		f.Add(s, int64(0), uint32(0))
	}
	f.Add("", int64(253402300799), uint32(999999999))
	f.Add("", int64(-62135596800), uint32(0))
	f.Add("", int64(-62135596800), uint32(1))
	f.Add("", int64(9223372036), uint32(854775807))
	f.Fuzz(func(t *testing.T, v string, sec int64, nsec uint32) {
		checkExpiry(t, v)
		tm := time.Unix(sec, int64(nsec%1e9)).UTC()
		s := tm.Format(time.RFC3339Nano)
		got, err := ParseExpiry(s)
		representable := tm.Year() >= 1 && tm.Year() <= 9999 && !tm.IsZero()
		switch {
		case representable && (err != nil || !got.Equal(tm)):
			t.Fatalf("ParseExpiry(%q) = %v, %v; want %v", s, got, err, tm)
		case !representable && err == nil:
			t.Fatalf("ParseExpiry(%q) accepted %v, outside the years 0001..9999", s, got)
		}
		checkExpiry(t, s)
	})
}

// checkExpiry parses a rule with expires=v and, when the parser accepts
// it, checks that the rule lives until exactly that instant.
func checkExpiry(t *testing.T, v string) {
	t.Helper()
	if strings.ContainsAny(v, "\r\n") {
		return // no value of one line holds a line break
	}
	want, err := ParseExpiry(v)
	l, lerr := Parse("fuzz", []byte("x.example "+formatAttr("expires", v)))
	if err != nil {
		if lerr == nil {
			t.Fatalf("ParseExpiry(%q) failed (%v) but a rule with it parsed", v, err)
		}
		return
	}
	if lerr != nil {
		t.Fatalf("ParseExpiry(%q) = %v but the rule is rejected: %v", v, want, lerr)
	}
	if want.IsZero() || want.UTC().Year() < 1 || want.UTC().Year() > 9999 {
		t.Fatalf("ParseExpiry(%q) = %v, outside the years 0001..9999 or zero", v, want)
	}
	r, ok := l.Lookup("x.example")
	if !ok || !r.Expires.Equal(want) {
		t.Fatalf("rule expires %v, want %v", r.Expires, want)
	}
	before := want.Add(-time.Nanosecond)
	if _, ok := l.Match("www.x.example", before); !ok || !r.ActiveAt(before) {
		t.Fatalf("expires=%s: rule not active 1ns before its expiry", v)
	}
	if _, ok := l.Match("www.x.example", want); ok || r.ActiveAt(want) {
		t.Fatalf("expires=%s: rule still active at its expiry", v)
	}
	if next, ok := l.NextExpiry(before); !ok || !next.Equal(want) {
		t.Fatalf("expires=%s: NextExpiry = %v, %v", v, next, ok)
	}
	if _, ok := l.NextExpiry(want); ok {
		t.Fatalf("expires=%s: NextExpiry at the expiry reported one", v)
	}
	if got := l.ExpiredBetween(before, want); len(got) != 1 || got[0].Line != 1 {
		t.Fatalf("expires=%s: ExpiredBetween = %v", v, got)
	}
}
