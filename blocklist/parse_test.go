package blocklist

import (
	"errors"
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
		{`a.example reason="x"y`, "white space after the closing quote"},
		{"a.example policy=/relative", "absolute http or https URL"},
		{"a.example policy=ftp://x.example/", "absolute http or https URL"},
		{"a.example expires=tomorrow", "RFC 3339"},
		{"a.example expires=0000-01-01", "out of range"},
		{"a.example expires=1970-01-01T00:00:00Z", "out of range"},
		{"a.example expires=2262-04-12", "out of range"},
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
	f.Add([]byte("#@ 2026-11-26T10:00:00Z by alice: T-1\na.example\n#@ 2026-11-26T11:00:00Z by bob unblocked b.example: gone\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error %v is not a *ParseError with problems", err)
			}
			return
		}
		// Every rule is found again by its own pattern and matches its name.
		for r := range l.Rules() {
			got, ok := l.Lookup(r.Pattern())
			if !ok || got.Line != r.Line {
				t.Fatalf("rule %v not found by Lookup", r)
			}
			host := r.Name
			if r.Wildcard {
				host = "x." + host
			}
			if _, ok := l.Match(host, r.Expires.Add(-time.Second)); !ok {
				t.Fatalf("rule %v does not match %q", r, host)
			}
		}
	})
}
