package blocklist

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

const editBase = `# Customer blocks
forum.example reason="Imminent threat" policy=https://blog.example.com/why # keep me
*.pages.example
#@ 2026-01-02T03:04:05Z by carol: T-7
court.example status=451
`

func TestBlock(t *testing.T) {
	note := NewNote(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), "alice", "TICKET-42 spam")
	tests := []struct {
		name    string
		data    string
		pattern string
		args    []string
		opt     blockOptions
		kind    ChangeKind
		attrs   string // "key:old→new" joined by ", "
		want    string // the whole file; "" when nothing is written
	}{
		{
			name: "merge keeps the other attributes and the trailing comment", pattern: "forum.example", args: []string{"status=451"},
			kind: Changed, attrs: "status:403→451",
			want: strings.Replace(editBase, "why # keep me", "why status=451 # keep me", 1),
		},
		{
			name: "raw spelling is normalized and merged", pattern: "FORUM.example.", args: []string{"reason=Updated"},
			kind: Changed, attrs: "reason:Imminent threat→Updated",
			want: strings.Replace(editBase, `forum.example reason="Imminent threat"`, `forum.example reason=Updated`, 1),
		},
		{
			name: "an empty value removes the attribute", pattern: "forum.example", args: []string{"policy="},
			kind: Changed, attrs: "policy:https://blog.example.com/why→(default)",
			want: strings.Replace(editBase, " policy=https://blog.example.com/why", "", 1),
		},
		{
			name: "replace rewrites the line", pattern: "forum.example", args: []string{"status=451"}, opt: blockOptions{Replace: true},
			kind: Changed, attrs: "policy:https://blog.example.com/why→(default), reason:Imminent threat→(none), status:403→451",
			want: strings.Replace(editBase, `forum.example reason="Imminent threat" policy=https://blog.example.com/why # keep me`, "forum.example status=451", 1),
		},
		{
			name: "the same attributes change nothing", pattern: "Forum.Example", args: []string{`reason=Imminent threat`},
		},
		{
			name: "a note goes above the rule", pattern: "forum.example", args: []string{"mode=report"}, opt: blockOptions{Note: &note},
			kind: Changed, attrs: "mode:block→report",
			want: strings.Replace(editBase, "forum.example reason=\"Imminent threat\" policy=https://blog.example.com/why # keep me",
				"#@ 2026-11-26T10:00:00Z by alice: TICKET-42 spam\nforum.example reason=\"Imminent threat\" policy=https://blog.example.com/why mode=report # keep me", 1),
		},
		{
			name: "a note replaces the rule's note", pattern: "court.example", args: []string{"status="}, opt: blockOptions{Note: &note},
			kind: Changed, attrs: "status:451→403",
			want: strings.Replace(editBase, "#@ 2026-01-02T03:04:05Z by carol: T-7\ncourt.example status=451", "#@ 2026-11-26T10:00:00Z by alice: TICKET-42 spam\ncourt.example", 1),
		},
		{
			name: "wildcard added, normalized", pattern: "*.Foo.Example", args: []string{"reason=spam wave"}, opt: blockOptions{Note: &note},
			kind: Added, want: editBase + "#@ 2026-11-26T10:00:00Z by alice: TICKET-42 spam\n*.foo.example reason=\"spam wave\"\n",
		},
		{
			name: "Unicode written as punycode", pattern: "Bücher.example", kind: Added,
			want: editBase + "xn--bcher-kva.example\n",
		},
		{
			name: "added to a file without a final line break", data: "a.example", pattern: "b.example", kind: Added,
			want: "a.example\nb.example\n",
		},
		{
			name: "added to a missing file", data: "-", pattern: "b.example", kind: Added, want: "b.example\n",
		},
		{
			name: "blocking again drops the unblock record", data: "a.example\n#@ 2026-01-02T03:04:05Z by bob unblocked b.example: oops\n",
			pattern: "b.example", kind: Added, want: "a.example\nb.example\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(editBase)
			switch tt.data {
			case "":
			case "-":
				data = nil
			default:
				data = []byte(tt.data)
			}
			before := string(data)
			out, res, err := testBlock("test.txt", data, tt.pattern, tt.args, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != before {
				t.Error("Block modified its input")
			}
			if res.Kind != tt.kind {
				t.Errorf("Kind = %q, want %q", res.Kind, tt.kind)
			}
			var attrs []string
			for _, a := range res.Attrs {
				attrs = append(attrs, a.Key+":"+a.String())
			}
			if got := strings.Join(attrs, ", "); got != tt.attrs {
				t.Errorf("Attrs = %s, want %s", got, tt.attrs)
			}
			if string(out) != tt.want {
				t.Errorf("file:\n%s\nwant:\n%s", out, tt.want)
			}
			if out == nil {
				return
			}
			l := mustParse(t, string(out))
			r, ok := l.Lookup(res.Pattern)
			if !ok || r.Line != res.Line {
				t.Errorf("rule %s not on line %d: %v %v", res.Pattern, res.Line, r, ok)
			}
			if n, ok := l.Note(r); tt.opt.Note != nil && (!ok || !n.equal(note)) {
				t.Errorf("note of %s = %+v, %v", res.Pattern, n, ok)
			}
		})
	}
}

func TestBlockRejects(t *testing.T) {
	tests := []struct {
		data, pattern string
		args          []string
		want          string
	}{
		{editBase, "x.example", []string{"status=999"}, `status="999": want 403 or 451`},
		{editBase, "forum.example", []string{"status=200"}, `want 403 or 451`},
		{editBase, "x.example", []string{"colour=red"}, `unknown attribute "colour"`},
		{editBase, "x.example", []string{"status=451", "status=403"}, "given twice"},
		{editBase, "x.example", []string{"451"}, "want key=value"},
		{editBase, "x.example", []string{"policy=ftp://x"}, "absolute http or https URL"},
		{editBase, "x.example", []string{"expires=soon"}, "RFC 3339"},
		{editBase, "x.example", []string{"reason=x\nevil.example"}, "attribute reason: contains a line break"},
		{editBase, "x.example", []string{"reason=x\revil.example"}, "attribute reason: contains a line break"},
		{editBase, "x.example", []string{"reason=bell\a"}, "control character"},
		{editBase, "a/b.example", nil, "invalid pattern"},
		{editBase, "*.1.2.3.4", nil, "wildcard needs a name"},
		{"ok.example\nbad..example\n", "x.example", nil, "test.txt:2:"},
	}
	for _, tt := range tests {
		out, _, err := testBlock("test.txt", []byte(tt.data), tt.pattern, tt.args, blockOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) || out != nil {
			t.Errorf("testBlock(%s %v) = %q, %v; want an error with %q", tt.pattern, tt.args, out, err, tt.want)
		}
	}
}

func TestUnblock(t *testing.T) {
	note := NewNote(time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC), "bob", "court order lifted")
	now := time.Now()
	out, res, err := testUnblock("test.txt", []byte(editBase), "Court.Example.", &note, now)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Customer blocks\nforum.example reason=\"Imminent threat\" policy=https://blog.example.com/why # keep me\n*.pages.example\n" +
		"#@ 2026-11-26T11:00:00Z by bob unblocked court.example: court order lifted\n"
	if string(out) != want || res.Kind != Removed || res.Line != 5 || res.OldLine != "court.example status=451" {
		t.Errorf("Unblock = %+v\n%s\nwant:\n%s", res, out, want)
	}
	l := mustParse(t, string(out))
	if n, ok := l.UnblockNote("court.example"); !ok || !n.equal(note) {
		t.Errorf("UnblockNote = %+v, %v", n, ok)
	}
	// A second record of the same pattern replaces the first.
	out2, _, err := testBlock("test.txt", out, "court.example", nil, blockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out3, _, err := testUnblock("test.txt", out2, "court.example", &note, now)
	if err != nil || strings.Count(string(out3), "unblocked court.example") != 1 {
		t.Errorf("second unblock: %v\n%s", err, out3)
	}
	// Without a note, only the rule goes.
	out, _, err = testUnblock("test.txt", []byte(editBase), "*.pages.example", nil, now)
	if want := strings.Replace(editBase, "*.pages.example\n", "", 1); err != nil || string(out) != want {
		t.Errorf("unblock *.pages.example: %v\n%s", err, out)
	}
}

func TestUnblockNoRule(t *testing.T) {
	tests := []struct {
		pattern       string
		covered, want string
	}{
		{"www.forum.example", "forum.example", "it is blocked by forum.example (line 2): unblock that rule instead"},
		{"a.pages.example", "*.pages.example", "blocked by *.pages.example (line 3)"},
		{"pages.example", "", "there is a rule *.pages.example (line 3)"},
		{"*.court.example", "", "there is a rule court.example (line 5)"},
		{"nothing.example", "", "no rule applies to it, so it is not blocked"},
	}
	for _, tt := range tests {
		out, _, err := testUnblock("test.txt", []byte(editBase), tt.pattern, nil, time.Now())
		var nr *NoRuleError
		if !errors.As(err, &nr) || out != nil {
			t.Errorf("testUnblock(%s) = %v; want a *NoRuleError", tt.pattern, err)
			continue
		}
		got := ""
		if nr.CoveredBy != nil {
			got = nr.CoveredBy.Pattern()
		}
		if got != tt.covered || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("testUnblock(%s): covered by %q, error %q; want %q, %q", tt.pattern, got, err, tt.covered, tt.want)
		}
	}
}

func TestNoteLines(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		line      string
		ok        bool
		by, com   string
		unblocked string
	}{
		{"#@ 2026-11-26T10:00:00Z by alice: TICKET-42 spam network", true, "alice", "TICKET-42 spam network", ""},
		{"#@ 2026-11-26T10:00:00Z by alice", true, "alice", "", ""},
		{"#@ 2026-11-26T10:00:00Z by alice:", true, "alice", "", ""},
		{"#@ 2026-11-26T10:00:00Z by alice: a: b\r", true, "alice", "a: b", ""},
		{"#@ 2026-11-26T10:00:00Z by bob unblocked *.x.example: lifted", true, "bob", "lifted", "*.x.example"},
		{"#@ 2026-11-26T11:00:00+01:00 by alice", true, "alice", "", ""},
		{"#@ yesterday by alice", false, "", "", ""},
		{"#@ 2026-11-26T10:00:00Z alice", false, "", "", ""},
		{"#@ 2026-11-26T10:00:00Z by ", false, "", "", ""},
		{"#@ 2026-11-26T10:00:00Z by bob deleted x.example", false, "", "", ""},
		{"# 2026-11-26T10:00:00Z by alice", false, "", "", ""},
	}
	for _, tt := range tests {
		n, u, ok := parseNote(tt.line)
		if ok != tt.ok || (ok && (!n.At.Equal(at) || n.By != tt.by || n.Comment != tt.com || u != tt.unblocked)) {
			t.Errorf("parseNote(%q) = %+v, %q, %v", tt.line, n, u, ok)
		}
	}
	// NewNote cleans what would break the line.
	for _, tt := range []struct{ actor, line string }{
		{"ali ce:x", "#@ 2026-11-26T10:00:00.5Z by ali_ce:x: two lines"},
		{"token:deploy-bot", "#@ 2026-11-26T10:00:00.5Z by token:deploy-bot: two lines"},
		{"bob:", "#@ 2026-11-26T10:00:00.5Z by bob_: two lines"},
		{"bob: x", "#@ 2026-11-26T10:00:00.5Z by bob:_x: two lines"},
	} {
		n := NewNote(at.Add(500*time.Millisecond), tt.actor, "two\nlines\t")
		if got := n.Line(); got != tt.line {
			t.Errorf("Line = %q, want %q", got, tt.line)
		}
		back, _, ok := parseNote(n.Line())
		if !ok || back.By != n.By || back.Comment != "two lines" || !back.At.Equal(n.At) {
			t.Errorf("%q reads back as %+v, %v", n.Line(), back, ok)
		}
	}
}

// TestNotesAttach checks which rules get which annotation: only the line
// directly above counts, and an annotation is still a comment.
func TestNotesAttach(t *testing.T) {
	l := mustParse(t, "#@ 2026-11-26T10:00:00Z by alice: one\na.example\n"+
		"#@ 2026-11-26T10:00:00Z by bob: two\n\nb.example\n"+
		"#@ 2026-11-26T10:00:00Z by carol: three\n# plain\nc.example\n"+
		"#@ not a note\nd.example\n")
	want := map[string]string{"a.example": "alice: one"}
	for r := range l.Rules() {
		n, ok := l.Note(r)
		got := ""
		if ok {
			got = n.By + ": " + n.Comment
		}
		if got != want[r.Name] {
			t.Errorf("note of %s = %q, want %q", r.Name, got, want[r.Name])
		}
	}
	if l.Len() != 4 || l.notes == nil || len(l.notes) != 1 {
		t.Errorf("Len = %d, notes = %v", l.Len(), l.notes)
	}
	if l := mustParse(t, "a.example\n"); l.notes != nil || l.unblocks != nil {
		t.Error("a list without annotations allocated their maps")
	}
}

func FuzzNote(f *testing.F) {
	f.Add("alice", "TICKET-42 spam: network")
	f.Add("dom\\user", "a\nb")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, actor, comment string) {
		n := NewNote(time.Unix(1_800_000_000, 0), actor, comment)
		for _, line := range []string{n.Line(), n.UnblockLine("x.example")} {
			got, _, ok := parseNote(line)
			if !ok || !got.equal(n) {
				t.Fatalf("%q parsed back as %+v, %v; want %+v", line, got, ok, n)
			}
			if l, err := Parse("fuzz", []byte(line+"\nx.example\n")); err != nil || l.Len() != 1 {
				t.Fatalf("%q broke the list: %v", line, err)
			}
		}
	})
}

// FuzzBlock checks Block and Unblock on any valid list: the result parses,
// the rule has the given attributes, the others are unchanged in number,
// and unblocking removes it again.
func FuzzBlock(f *testing.F) {
	f.Add([]byte(editBase), "forum.example", "status=451", "policy=", false)
	f.Add([]byte(editBase), "*.New.Example.", `reason=a "b" #c`, "expires=2027-01-01", true)
	f.Add([]byte("a.example # x\r\nb.example"), "A.example", "mode=report", "reason=", false)
	f.Add([]byte("a.example reason.DE=x\n"), "a.example", "reason.de=", "appeal=https://x.example/", false)
	note := NewNote(time.Unix(1_800_000_000, 0), "fuzz", "why")
	f.Fuzz(func(t *testing.T, data []byte, pattern, a1, a2 string, replace bool) {
		old, err := Parse("f", data)
		if err != nil {
			return
		}
		var args []string
		for _, a := range []string{a1, a2} {
			if a != "" {
				args = append(args, a)
			}
		}
		out, res, err := testBlock("f", data, pattern, args, blockOptions{Replace: replace, Note: &note})
		if err != nil {
			return
		}
		l := old
		if out != nil {
			if l, err = Parse("f", out); err != nil {
				t.Fatalf("Block wrote a list that does not parse: %v\n%s", err, out)
			}
		}
		r, ok := l.Lookup(res.Pattern)
		if !ok || r.Line != res.Line {
			t.Fatalf("rule %s not on line %d:\n%s", res.Pattern, res.Line, out)
		}
		want := old.Len()
		if res.Kind == Added {
			want++
		}
		if l.Len() != want {
			t.Fatalf("%d rules after %s, want %d", l.Len(), res.Kind, want)
		}
		vals := attrValues(r)
		for _, a := range args {
			k, v, _ := strings.Cut(a, "=")
			if tag, ok, _ := reasonKey(k); ok {
				if got, _ := r.Reasons.Get(tag); got != v {
					t.Fatalf("%s = %q after block %v, want %q", k, got, args, v)
				}
				continue
			}
			i := slices.Index(attrKeys[:], k)
			switch {
			case v == "" && k == "status":
				v = "403"
			case v == "" && k == "mode":
				v = "block"
			case v != "" && k == "expires":
				e, _ := ParseExpiry(v)
				v = e.UTC().Format(time.RFC3339)
			}
			if vals[i] != v {
				t.Fatalf("%s = %q after block %v, want %q", k, vals[i], args, v)
			}
		}
		if out == nil {
			return
		}
		if n, ok := l.Note(r); !ok || !n.equal(note) {
			t.Fatalf("note = %+v, %v", n, ok)
		}
		out2, _, err := testUnblock("f", out, res.Pattern, &note, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		l2, err := Parse("f", out2)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := l2.Lookup(res.Pattern); ok || l2.Len() != l.Len()-1 {
			t.Fatalf("unblock %s left %d rules:\n%s", res.Pattern, l2.Len(), out2)
		}
	})
}

// testBlock is block on data as it is parsed, without the drop guard. It
// fails t unless block on the list of the pattern's lines alone (what
// ApplyEdit's scan does) says the same.
func testBlock(file string, data []byte, pattern string, args []string, opt blockOptions) ([]byte, EditResult, error) {
	old, err := Parse(file, data)
	if err != nil {
		return nil, EditResult{}, err
	}
	out, _, res, err := block(data, old, pattern, args, opt, func(out []byte) (*List, error) { return Reparse(old, file, out) })
	if pat, perr := NormalizePattern(pattern); perr == nil {
		mini, lines, merr := patternListLines(file, data, pat)
		if merr != nil {
			panic(fmt.Sprintf("patternList of a good list: %v", merr))
		}
		sout, _, sres, serr := block(data, mini, pattern, args, opt, func(out []byte) (*List, error) { return patternListAfter(file, data, out, lines, pat) })
		sameEdit("block", out, res, err, sout, sres, serr)
	}
	return out, res, err
}

// testUnblock is unblock on data as it is parsed, without the drop guard,
// and checks the scan's unblock as testBlock does.
func testUnblock(file string, data []byte, pattern string, note *Note, now time.Time) ([]byte, EditResult, error) {
	old, err := Parse(file, data)
	if err != nil {
		return nil, EditResult{}, err
	}
	out, _, res, err := unblock(file, data, old, pattern, note, now, func(out []byte) (*List, error) { return Reparse(old, file, out) })
	if pat, perr := NormalizePattern(pattern); perr == nil {
		if _, found := old.Lookup(pat); found {
			mini, lines, merr := patternListLines(file, data, pat)
			if merr != nil {
				panic(fmt.Sprintf("patternList of a good list: %v", merr))
			}
			sout, _, sres, serr := unblock(file, data, mini, pattern, note, now, func(out []byte) (*List, error) { return patternListAfter(file, data, out, lines, pat) })
			sameEdit("unblock", out, res, err, sout, sres, serr)
		}
	}
	return out, res, err
}

// sameEdit panics unless the scan's edit (s...) is the whole list's.
func sameEdit(what string, out []byte, res EditResult, err error, sout []byte, sres EditResult, serr error) {
	if (err == nil) != (serr == nil) || !bytes.Equal(out, sout) || (out == nil) != (sout == nil) ||
		res.Kind != sres.Kind || res.Pattern != sres.Pattern || res.OldLine != sres.OldLine || res.NewLine != sres.NewLine ||
		res.Line != sres.Line || !slices.Equal(res.Attrs, sres.Attrs) {
		panic(fmt.Sprintf("%s on the pattern's lines differs from the whole list's:\n whole %+v %v\n scan  %+v %v\n%q\n%q", what, res, err, sres, serr, out, sout))
	}
}

// TestApplyEdit: the guarded edit's errors are typed by cause, and a
// refused edit returns no content.
func TestApplyEdit(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	note := NewNote(now, "alice", "T-1")
	tests := []struct {
		name string
		data string
		edit Edit
		want any // nil, or a pointer to the error type wanted
		kind ChangeKind
	}{
		{"add", "a.example\n", Edit{Pattern: "b.example", Note: &note}, nil, Added},
		{"unchanged", "a.example\n", Edit{Pattern: "a.example"}, nil, ""},
		{"bad list", "a..example\n", Edit{Pattern: "b.example"}, new(*ListError), ""},
		{"no rule", "a.example\n", Edit{Unblock: true, Pattern: "b.example"}, new(*NoRuleError), ""},
		{"drop: unblock the last rule", "a.example\n", Edit{Unblock: true, Pattern: "a.example"}, new(*DropError), ""},
		{"drop: expiry within the horizon", "a.example\n", Edit{Pattern: "a.example", Args: []string{"expires=2026-06-01T00:00:02Z"}}, new(*DropError), Changed},
		{"no drop: expiry beyond the horizon", "a.example\n", Edit{Pattern: "a.example", Args: []string{"expires=2026-06-01T02:00:00Z"}}, nil, Changed},
		{"allow-drop", "#! allow-drop\na.example\n", Edit{Unblock: true, Pattern: "a.example", Note: &note}, nil, Removed},
	}
	// Each case twice: parsing the list whole, and by the scan that lists
	// of scanEditMin bytes and more get, which answers the same except
	// that it does not parse the lines of other patterns: a list bad
	// elsewhere is edited, and the edge refuses it on reload.
	defer func(m int) { scanEditMin = m }(scanEditMin)
	for _, scan := range []bool{false, true} {
		scanEditMin = 1 << 20
		if scan {
			scanEditMin = 0
			tests[2].want, tests[2].kind = nil, Added
		}
		testApplyEdit(t, scan, tests, now)
	}
}

func testApplyEdit(t *testing.T, scan bool, tests []struct {
	name string
	data string
	edit Edit
	want any
	kind ChangeKind
}, now time.Time) {
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/scan=%v", tt.name, scan), func(t *testing.T) {
			out, res, err := ApplyEdit("f.txt", []byte(tt.data), tt.edit, 0.5, now)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("error %v", err)
			case tt.want != nil && !errors.As(err, tt.want):
				t.Fatalf("error %T %v, want %T", err, err, tt.want)
			case err != nil && out != nil:
				t.Errorf("refused, but content returned: %q", out)
			case err == nil && res.Kind != tt.kind:
				t.Errorf("kind %q, want %q", res.Kind, tt.kind)
			case err == nil && (out == nil) != (tt.kind == ""):
				t.Errorf("content %q for kind %q", out, res.Kind)
			}
		})
	}
}

// TestApplyEditScanSameAsWhole makes random edits of random lists by the
// scan and by a whole parse, and wants the same content, result and
// refusal from both, drop guard included.
func TestApplyEditScanSameAsWhole(t *testing.T) {
	defer func(m int) { scanEditMin = m }(scanEditMin)
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	note := NewNote(now, "alice", "T-1")
	argSets := [][]string{nil, {"status=451"}, {"mode=report"}, {"expires=2026-12-01T00:10:00Z"}, {"reason=x y"}, {"countries=FR"}, {"countries=DE,FR"}, {"status="}}
	scanned := 0
	for i := range 400 {
		data := genList(20 + rng.IntN(30))
		for range rng.IntN(4) {
			data = randomEdit(rng, data, i)
		}
		if _, err := Parse("f.txt", data); err != nil {
			continue
		}
		e := Edit{Pattern: fmt.Sprintf("site%d.example", rng.IntN(60)), Args: argSets[rng.IntN(len(argSets))], Replace: rng.IntN(4) == 0}
		if rng.IntN(3) == 0 {
			e = Edit{Unblock: true, Pattern: e.Pattern}
		}
		if rng.IntN(2) == 0 {
			e.Note = &note
		}
		maxDrop := []float64{0, 0.05, 0.5, 1}[rng.IntN(4)]
		scanEditMin = 1 << 30
		out, res, err := ApplyEdit("f.txt", data, e, maxDrop, now)
		scanEditMin = 0
		sout, sres, serr := ApplyEdit("f.txt", data, e, maxDrop, now)
		if _, _, _, ok := scanEdit("f.txt", data, e, maxDrop, now); ok {
			scanned++
		}
		if fmt.Sprint(err) != fmt.Sprint(serr) || !bytes.Equal(out, sout) || fmt.Sprint(res) != fmt.Sprint(sres) {
			t.Fatalf("edit %+v (max_drop %v) of\n%s\nwhole: %+v %v\n%s\nscan:  %+v %v\n%s", e, maxDrop, data, res, err, out, sres, serr, sout)
		}
		if err == nil && out != nil {
			// The history records what the lists before and after say.
			got, err := EditChanges(res)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := Parse("f.txt", data)
			after, _ := Parse("f.txt", out)
			if want := HistoryChanges(after, before); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("edit %+v: EditChanges %+v, HistoryChanges %+v", e, got, want)
			}
		}
	}
	t.Logf("%d of 400 edits answered by the scan", scanned)
	if scanned < 100 {
		t.Errorf("only %d edits answered by the scan", scanned)
	}
}

// TestPatternListAfter: the pattern's lines of an edited list, found by a
// scan of the changed places only, are those a scan of the whole result
// finds (same rules, lines and errors), for random edits in one place and
// in two, also with the small bounds that make several places.
func TestPatternListAfter(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, split := range []bool{false, true} {
		t.Run(map[bool]string{false: "one region", true: "split"}[split], func(t *testing.T) {
			if split {
				splitSmall(t)
			}
			for i := range 400 {
				data := genList(40 + rng.IntN(60))
				for range rng.IntN(3) {
					data = randomEdit(rng, data, i)
				}
				out := randomEdit(rng, data, i+1000)
				if rng.IntN(2) == 0 {
					out = randomEdit(rng, out, i+2000)
				}
				for _, pat := range []string{fmt.Sprintf("site%d.example", rng.IntN(100)), fmt.Sprintf("pages%d.example", 10*rng.IntN(10)), fmt.Sprintf("site%d.example", rng.IntN(700))} {
					_, lines, err := patternListLines("f.txt", data, pat)
					if err != nil {
						continue
					}
					want, werr := patternList("f.txt", out, pat)
					got, gerr := patternListAfter("f.txt", data, out, lines, pat)
					if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
						t.Fatalf("%s: error %v, want %v\n%s\n->\n%s", pat, gerr, werr, data, out)
					}
					if werr != nil {
						continue
					}
					g, w := slices.Collect(got.Rules()), slices.Collect(want.Rules())
					if len(g) != len(w) {
						t.Fatalf("%s: %d rules, want %d", pat, len(g), len(w))
					}
					for k := range w {
						if g[k].Format() != w[k].Format() || g[k].Line != w[k].Line {
							t.Fatalf("%s: rule %d %s line %d, want %s line %d", pat, k, g[k].Format(), g[k].Line, w[k].Format(), w[k].Line)
						}
					}
				}
			}
		})
	}
}
