package blocklist

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkSameList fails unless got and want, two lists of the same content,
// answer every question the same: rules in order with their lines,
// attributes, expiry and annotation, the attribute sets, unblock records,
// the allow-drop marker, Match of every rule's name and a name under it,
// and the expiry index.
func checkSameList(t *testing.T, got, want *List) {
	t.Helper()
	if got.File() != want.File() || got.SHA256() != want.SHA256() || got.Len() != want.Len() || got.AllowsDrop() != want.AllowsDrop() {
		t.Fatalf("file %q sha %s len %d allowDrop %v, want %q %s %d %v", got.File(), got.SHA256(), got.Len(), got.AllowsDrop(),
			want.File(), want.SHA256(), want.Len(), want.AllowsDrop())
	}
	gr, wr := slices.Collect(got.Rules()), slices.Collect(want.Rules())
	if len(gr) != len(wr) {
		t.Fatalf("Rules yields %d, want %d", len(gr), len(wr))
	}
	ga, wa := got.Attrs(), want.Attrs()
	for i := range wr {
		g, w := gr[i], wr[i]
		if got.Attrs()[g.AttrsID] != g.Attrs || want.Attrs()[w.AttrsID] != w.Attrs {
			t.Fatalf("rule %d: Attrs not Attrs()[AttrsID]", i)
		}
		g.AttrsID, w.AttrsID = 0, 0
		if !g.Expires.Equal(w.Expires) {
			t.Fatalf("rule %d: %s expires %v, want %v", i, w.Pattern(), g.Expires, w.Expires)
		}
		g.Expires, w.Expires = time.Time{}, time.Time{}
		if g != w {
			t.Fatalf("rule %d:\n got %+v\nwant %+v", i, g, w)
		}
		gn, gok := got.Note(gr[i])
		wn, wok := want.Note(wr[i])
		if gok != wok || !gn.equal(wn) {
			t.Fatalf("rule %s: note %+v %v, want %+v %v", w.Pattern(), gn, gok, wn, wok)
		}
		if i := got.find(w.Name, w.Wildcard, w.Scope); i < 0 || int(got.lineOf(i)) != w.Line {
			t.Fatalf("find(%s, %v) = %d, want line %d", w.Pattern(), w.Scope, i, w.Line)
		}
		gl, gok := got.Lookup(w.Pattern())
		wl, wok := want.Lookup(w.Pattern())
		if gok != wok || gl.Line != wl.Line {
			t.Fatalf("Lookup(%s) = %v %v, want %v %v", w.Pattern(), gl, gok, wl, wok)
		}
	}
	// Every attribute set of want is one of got's (got may keep sets no
	// rule uses any more; IDs are the list's own).
	for _, a := range wa {
		if !slices.Contains(ga, a) {
			t.Fatalf("attribute set %+v missing", a)
		}
	}
	gu, wu := got.unblockRecords(), want.unblockRecords()
	if len(gu) != len(wu) {
		t.Fatalf("unblock records %v, want %v", gu, wu)
	}
	for p, w := range wu {
		if g, ok := gu[p]; !ok || !g.equal(w) {
			t.Fatalf("unblock record of %s: %+v, want %+v", p, g, w)
		}
		if g, ok := got.UnblockNote(p); !ok || !g.equal(w) {
			t.Fatalf("UnblockNote(%s) = %+v, want %+v", p, g, w)
		}
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if got.HasScoped() != want.HasScoped() {
		t.Fatalf("HasScoped = %v, want %v", got.HasScoped(), want.HasScoped())
	}
	wheres := []Where{{}, {Country: "FR"}, {Country: "DE"}, {UnknownBlocks: true}}
	for _, r := range wr {
		for _, h := range []string{r.Name, "www." + r.Name} {
			if g, w := got.ScopedFor(h), want.ScopedFor(h); g != w {
				t.Fatalf("ScopedFor(%s) = %v, want %v", h, g, w)
			}
			for _, wh := range wheres {
				g, gok := got.MatchWhere(h, wh, now)
				w, wok := want.MatchWhere(h, wh, now)
				if gok != wok || g.Pattern() != w.Pattern() || g.Line != w.Line {
					t.Fatalf("MatchWhere(%s, %+v) = %v %v, want %v %v", h, wh, g, gok, w, wok)
				}
			}
			for _, at := range []time.Time{now, r.Expires.Add(-time.Nanosecond), r.Expires} {
				g, gok := got.Match(h, at)
				w, wok := want.Match(h, at)
				if gok != wok || g.Pattern() != w.Pattern() || g.Line != w.Line {
					t.Fatalf("Match(%s, %v) = %v %v, want %v %v", h, at, g, gok, w, wok)
				}
			}
		}
	}
	for _, at := range []time.Time{{}, now, now.AddDate(10, 0, 0)} {
		g, gok := got.NextExpiry(at)
		w, wok := want.NextExpiry(at)
		if gok != wok || !g.Equal(w) {
			t.Fatalf("NextExpiry(%v) = %v %v, want %v %v", at, g, gok, w, wok)
		}
	}
	ge, we := got.ExpiredBetween(time.Time{}, maxExpiry), want.ExpiredBetween(time.Time{}, maxExpiry)
	if len(ge) != len(we) {
		t.Fatalf("ExpiredBetween: %d rules, want %d", len(ge), len(we))
	}
	for i := range we {
		if ge[i].Pattern() != we[i].Pattern() || ge[i].Line != we[i].Line {
			t.Fatalf("ExpiredBetween[%d] = %v, want %v", i, ge[i], we[i])
		}
	}
	if g, w := got.BlockRules(now), want.BlockRules(now); g != w {
		t.Fatalf("BlockRules = %d, want %d", g, w)
	}
}

// checkSameChanges fails unless next.Changes(prev), Diff and DroppedBlocks
// say what they say for lists parsed whole from the same contents.
func checkSameChanges(t *testing.T, next, prev, wantNext, wantPrev *List) {
	t.Helper()
	show := func(l, old *List) []string {
		var out []string
		for c := range l.Changes(old) {
			s := fmt.Sprintf("%s %s line %d %v", c.Kind, c.Rule.Pattern(), c.Rule.Line, c.Attrs)
			if c.HasNote {
				s += " note " + c.Note.Line()
			}
			out = append(out, s)
		}
		return out
	}
	if g, w := show(next, prev), show(wantNext, wantPrev); !slices.Equal(g, w) {
		t.Fatalf("Changes:\n got %q\nwant %q", g, w)
	}
	ga, gr := next.Diff(prev)
	wa, wr := wantNext.Diff(wantPrev)
	if !slices.Equal(ga, wa) || !slices.Equal(gr, wr) {
		t.Fatalf("Diff = %v %v, want %v %v", ga, gr, wa, wr)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	gd, gt := next.DroppedBlocks(prev, now)
	wd, wt := wantNext.DroppedBlocks(wantPrev, now)
	if gd != wd || gt != wt {
		t.Fatalf("DroppedBlocks = %d of %d, want %d of %d", gd, gt, wd, wt)
	}
	for _, max := range []float64{0.01, 0.5, 1} {
		ge := CheckDrop(next, prev, max, now)
		we := CheckDrop(wantNext, wantPrev, max, now)
		if (ge == nil) != (we == nil) {
			t.Fatalf("CheckDrop(max %v) = %v, want %v", max, ge, we)
		}
	}
}

// checkReparse reparses next against the list of prev and fails unless
// the result is what Parse makes of next, errors included. It returns the
// reparsed list (nil on a parse error).
func checkReparse(t *testing.T, prevList *List, prev, next []byte) *List {
	t.Helper()
	want, werr := Parse("f.txt", next)
	got, gerr := Reparse(prevList, "f.txt", slices.Clone(next))
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("Reparse error %v, Parse error %v\nprev:\n%s\nnext:\n%s", gerr, werr, prev, next)
	}
	if werr != nil {
		var pe *ParseError
		if !errors.As(gerr, &pe) || gerr.Error() != werr.Error() {
			t.Fatalf("Reparse error\n%v\nwant\n%v", gerr, werr)
		}
		return nil
	}
	checkSameList(t, got, want)
	if prevList != nil {
		wantPrev, err := Parse("f.txt", prev)
		if err != nil {
			t.Fatal(err)
		}
		checkSameChanges(t, got, prevList, want, wantPrev)
	}
	return got
}

// reparseBase is a list with every kind of line: annotations, unblock
// records, expiries, report mode, attributes, comments, CRLF.
const reparseBase = `# edge list
#@ 2026-11-26T10:00:00Z by alice: T-1
forum.example status=451 reason="Court order"
*.pages.example
#@ 2026-11-26T11:00:00Z by bob unblocked gone.example: lifted
staging.example mode=report expires=2027-01-01
old.example expires=2020-01-01
#@ 2026-11-27T10:00:00Z by carol
soon.example expires=2026-12-01T00:30:00Z
mid.example policy=https://blog.example.com/p # why
crlf.example` + "\r\n" + `
last.example reason.de="Gesperrt"
forum.example countries=FR status=451
forum.example except_countries=FR,DE unknown=block
`

func TestReparseEdits(t *testing.T) {
	lines := strings.SplitAfter(reparseBase, "\n")
	join := func(ls ...[]string) []byte { return []byte(strings.Join(slices.Concat(ls...), "")) }
	tests := []struct {
		name string
		next []byte
	}{
		{"same", []byte(reparseBase)},
		{"append", []byte(reparseBase + "new.example\n")},
		{"append annotated", []byte(reparseBase + "#@ 2026-12-01T00:00:00Z by dave: T-9\nnew.example status=451\n")},
		{"append unblock record", []byte(reparseBase + "#@ 2026-12-01T00:00:00Z by dave unblocked forum.example\n")},
		{"append unblock record again", []byte(reparseBase + "#@ 2026-12-01T00:00:00Z by dave unblocked gone.example: again\n")},
		{"append marker", []byte(reparseBase + AllowDropMarker + "\n")},
		{"append no newline", []byte(reparseBase + "x.example")},
		{"prepend", []byte("first.example\n" + reparseBase)},
		{"remove first rule", join(lines[:1], lines[3:])},
		{"remove annotation only", join(lines[:1], lines[2:])},
		{"remove unblock record", join(lines[:4], lines[5:])},
		{"change rule", join(lines[:2], []string{"forum.example status=403\n"}, lines[3:])},
		{"change annotation", join(lines[:1], []string{"#@ 2026-12-01T00:00:00Z by erin: T-2\n"}, lines[2:])},
		{"annotate unannotated", join(lines[:3], []string{"#@ 2026-12-01T00:00:00Z by erin\n"}, lines[3:])},
		{"mode to block", join(lines[:5], []string{"staging.example expires=2027-01-01\n"}, lines[6:])},
		{"drop all", []byte("# empty\n")},
		{"empty", nil},
		{"remove last", join(lines[:len(lines)-2])},
		{"duplicate", []byte(reparseBase + "forum.example\n")},
		{"duplicate earlier", []byte("last.example\n" + reparseBase)},
		{"bad line", join(lines[:3], []string{"bad_host!.example\n"}, lines[3:])},
		{"bad expiry", []byte(reparseBase + "x.example expires=soon\n")},
		{"cut last newline", []byte(strings.TrimSuffix(reparseBase, "\n"))},
		{"CR only change", []byte(strings.Replace(reparseBase, "\r\n", "\n", 1))},
		{"move rule", join(lines[:2], lines[3:], lines[2:3])},
		{"same expiry twice", []byte(reparseBase + "again.example expires=2026-12-01T00:30:00Z\n")},
		// Several regions: what unblock writes (a rule and its annotation
		// go, a record comes at the end), an edit at both ends, three.
		{"unblock", join(lines[:1], lines[3:], []string{"#@ 2026-12-01T00:00:00Z by dave unblocked forum.example: lifted\n"})},
		{"block and unblock", join(lines[:8], lines[9:], []string{"#@ 2026-12-01T00:00:00Z by dave: T-9\nnew.example\n"})},
		{"both ends", join([]string{"# edge list v2\n"}, lines[1:13], []string{"forum.example except_countries=FR unknown=block\n"})},
		{"three places", join(lines[:2], []string{"forum.example status=403\n"}, lines[3:6], lines[7:11], []string{"last.example\n"}, lines[12:], []string{"z.example\n"})},
		{"annotation and append", join(lines[:7], []string{"#@ 2026-12-01T00:00:00Z by erin: moved\n"}, lines[8:], []string{"z.example\n"})},
		{"duplicate in second region", join(lines[:1], lines[3:], []string{"staging.example\n"})},
		{"bad line in second region", join(lines[:1], lines[3:], []string{"bad name.example\n"})},
	}
	prev := mustParse(t, reparseBase)
	prev.file = "f.txt"
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			name := tt.name
			if split {
				name += "/split"
			}
			t.Run(name, func(t *testing.T) {
				if split {
					splitSmall(t)
				}
				got := checkReparse(t, prev, []byte(reparseBase), tt.next)
				if got == nil {
					return
				}
				// And back again, from the reparsed list.
				checkReparse(t, got, tt.next, []byte(reparseBase))
			})
		}
	}
	// No previous list: a full parse.
	checkReparse(t, nil, nil, []byte(reparseBase))
	// The next version of a list under a new name (as the fleet names
	// its versions) is reparsed, and named as asked.
	v1, err := Parse("fleet:v1", []byte(reparseBase))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Reparse(v1, "fleet:v2", []byte(reparseBase+"x.example\n"))
	if err != nil || v2.File() != "fleet:v2" || v2.ov == nil || v2.Len() != v1.Len()+1 {
		t.Fatalf("Reparse of the next version under a new name: %v (overlay %v)", err, v2 != nil && v2.ov != nil)
	}
	if same, err := Reparse(v1, "fleet:v3", []byte(reparseBase)); err != nil || same.File() != "fleet:v3" {
		t.Fatalf("Reparse of the same content under a new name: %v, %v", same, err)
	}
	other, err := Parse("other.txt", []byte(reparseBase))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := Reparse(other, "f.txt", []byte(reparseBase+"x.example\n")); err != nil || l.File() != "f.txt" || l.Len() != other.Len()+1 {
		t.Fatalf("Reparse of another file's list: %v, %v", l, err)
	}
}

// TestReparseChain applies many random edits one after another, each to
// the list the previous Reparse returned, so that the overlay grows, is
// compacted and keeps answering as a full parse does.
func TestReparseChain(t *testing.T) {
	for _, split := range []bool{false, true} {
		t.Run(map[bool]string{false: "one region", true: "split"}[split], func(t *testing.T) {
			if split {
				splitSmall(t)
			}
			reparseChain(t)
		})
	}
}

func reparseChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := genList(500)
	l, err := Parse("f.txt", data)
	if err != nil {
		t.Fatal(err)
	}
	steps := 300
	if testing.Short() {
		steps = 60
	}
	// A small overlay bound, so that the chain also goes through the
	// full parse that makes a new base.
	defer func(o, p int) { maxOverlay, maxPieces = o, p }(maxOverlay, maxPieces)
	maxOverlay, maxPieces = 100, 40
	overlays, bases := 0, 0
	for i := range steps {
		next := randomEdit(rng, data, i)
		if rng.IntN(2) == 0 {
			// A second edit elsewhere, as unblock makes.
			next = randomEdit(rng, next, i)
		}
		got := checkReparse(t, l, data, next)
		if got != nil {
			l, data = got, next
			if l.ov != nil {
				overlays++
			} else {
				bases++
			}
		}
	}
	t.Logf("%d lists with an overlay, %d parsed whole", overlays, bases)
	if overlays < steps/2 || bases == 0 {
		t.Errorf("%d lists with an overlay, %d parsed whole: want most with one, and some without", overlays, bases)
	}
}

// TestReparseHunks checks, at the default bounds, that an edit in two or
// more places far apart in a list (past one region's budget) is applied
// as those regions, without a full parse, and gives what Parse gives; and
// that too many regions fall back to a full parse.
func TestReparseHunks(t *testing.T) {
	data := string(genList(20000)) // 300 KB: a region is at most 64 KiB
	lines := strings.SplitAfter(data, "\n")
	n := len(lines) - 1 // the last is empty
	join := func(ls ...[]string) []byte { return []byte(strings.Join(slices.Concat(ls...), "")) }
	record := "#@ 2026-12-01T00:00:00Z by dave unblocked site2003.example: lifted\n"
	many := slices.Clone(lines)
	for k := 1; k <= 20; k++ {
		many[k*900] = fmt.Sprintf("many%d.example\n", k)
	}
	tests := []struct {
		name    string
		next    []byte
		regions int // 0: a full parse
	}{
		{"unblock", join(lines[:2004], lines[2005:], []string{record}), 2},
		{"unblock annotated", join(lines[:2003], []string{"#@ 2026-11-30T00:00:00Z by carol: T-1\n"}, lines[2003:2004], lines[2005:], []string{record}), 2},
		{"block and unblock", join(lines[:5000], lines[5001:], []string{"#@ 2026-12-01T00:00:00Z by dave: T-9\nnew.example\n"}), 2},
		{"both ends", join([]string{"site0.example\n"}, lines[2:n-1], []string{"site19999.example status=451\n"}), 2},
		{"three places", join(lines[:10], []string{"ten.example\n"}, lines[10:9000], lines[9001:15000], []string{"x.example mode=report\n"}, lines[15001:]), 3},
		{"insert and delete", join(lines[:100], []string{"#@ 2026-12-01T00:00:00Z by erin\n", "ins.example\n"}, lines[100:12000], lines[12003:]), 2},
		{"annotate far apart", join(lines[:300], []string{"#@ 2026-12-01T00:00:00Z by erin: a\n"}, lines[300:18000], []string{"#@ 2026-12-01T00:00:00Z by erin: b\n"}, lines[18000:]), 2},
		{"too many regions", []byte(strings.Join(many, "")), 0},
	}
	prev, err := Parse("f.txt", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := changedHunks(data, string(tt.next))
			if len(hs) != tt.regions {
				t.Fatalf("%d regions %v, want %d", len(hs), hs, tt.regions)
			}
			got := checkReparse(t, prev, []byte(data), tt.next)
			if (got.ov != nil) != (tt.regions > 0) {
				t.Fatalf("overlay %v, want %v", got.ov != nil, tt.regions > 0)
			}
			if tt.regions == 0 {
				return
			}
			// Each region costs its own bytes, not the list's.
			for _, h := range hs {
				if h.oe-h.os > 4096 || h.ne-h.ns > 4096 {
					t.Errorf("region %+v: want a few lines", h)
				}
			}
			back := checkReparse(t, got, tt.next, []byte(data))
			if back.ov == nil {
				t.Errorf("back again: a full parse")
			}
		})
	}
}

// randomEdit returns data with a few lines changed, inserted or removed
// near one random place: what an edit by hand or by edgeblock block does.
func randomEdit(rng *rand.Rand, data []byte, i int) []byte {
	lines := strings.SplitAfter(string(data), "\n")
	at := rng.IntN(len(lines) + 1)
	if rng.IntN(4) == 0 {
		at = len(lines) // at the end, as block does
	}
	del := 0
	if rng.IntN(2) == 0 {
		del = min(rng.IntN(3), len(lines)-at)
	}
	var ins []string
	for range rng.IntN(3) {
		ins = append(ins, randomLine(rng, i))
	}
	lines = slices.Replace(lines, at, at+del, ins...)
	return []byte(strings.Join(lines, ""))
}

// randomLine returns a line of one of the kinds a list has, now and then
// a bad one or a duplicate of an existing rule.
func randomLine(rng *rand.Rand, i int) string {
	n := rng.IntN(700)
	switch rng.IntN(12) {
	case 0:
		return fmt.Sprintf("#@ 2026-12-01T00:00:%02dZ by fuzz: edit %d\n", i%60, i)
	case 1:
		return fmt.Sprintf("#@ 2026-12-01T00:00:%02dZ by fuzz unblocked site%d.example\n", i%60, n)
	case 2:
		return "# a comment\n"
	case 3:
		return fmt.Sprintf("site%d.example expires=2026-12-%02dT00:00:00Z\n", n, 1+rng.IntN(28))
	case 4:
		return fmt.Sprintf("site%d.example mode=report\n", n)
	case 5:
		return fmt.Sprintf("*.pages%d.example reason=\"r %d\"\n", n, n%3)
	case 6:
		if rng.IntN(2) == 0 {
			return fmt.Sprintf("site%d.example countries=%s\n", n%50, []string{"FR", "DE", "FR,DE", "US"}[rng.IntN(4)])
		}
		return "\n"
	case 7:
		if rng.IntN(8) == 0 {
			return AllowDropMarker + "\n"
		}
		return fmt.Sprintf("new%d-%d.example\n", i, n)
	case 8:
		if rng.IntN(4) == 0 {
			return "bad name.example\n"
		}
		return fmt.Sprintf("new%d-%d.example status=451\r\n", i, n)
	default:
		return fmt.Sprintf("new%d-%d.example\n", i, n)
	}
}

// FuzzReparse checks that Reparse of a random edit of a random list is
// what Parse makes of the edited list: one edit, or two at different
// places (as unblock makes), the second looked for as its own region.
func FuzzReparse(f *testing.F) {
	f.Add([]byte(reparseBase), uint(0), uint(1), []byte("new.example\n"), uint(0), uint(0), []byte(""))
	f.Add([]byte(reparseBase), uint(40), uint(0), []byte("#@ 2026-12-01T00:00:00Z by x\n"), uint(0), uint(0), []byte(""))
	f.Add([]byte(reparseBase), uint(100), uint(30), []byte(""), uint(0), uint(0), []byte(""))
	f.Add([]byte("a.example\nb.example\n"), uint(2), uint(0), []byte("a.example\n"), uint(0), uint(0), []byte(""))
	f.Add([]byte(reparseBase), uint(44), uint(66), []byte(""), uint(1000), uint(0), []byte("#@ 2026-12-01T00:00:00Z by dave unblocked forum.example\n"))
	f.Add([]byte(reparseBase), uint(0), uint(13), []byte("x.example\n"), uint(1000), uint(14), []byte("y.example\n"))
	f.Fuzz(func(t *testing.T, data []byte, at, del uint, ins []byte, at2, del2 uint, ins2 []byte) {
		prev, err := Parse("f.txt", data)
		if err != nil {
			return
		}
		a := int(at % uint(len(data)+1))
		d := int(del % uint(len(data)-a+1))
		// The second edit is in what follows the first.
		rest := data[a+d:]
		a2 := int(at2 % uint(len(rest)+1))
		d2 := int(del2 % uint(len(rest)-a2+1))
		next := slices.Concat(data[:a], ins, rest[:a2], ins2, rest[a2+d2:])
		for _, split := range []bool{false, true} {
			if split {
				splitSmall(t)
			}
			got := checkReparse(t, prev, data, next)
			if got != nil {
				checkReparse(t, got, next, data)
			}
		}
	})
}

// splitSmall makes Reparse look for separate changed regions even in a
// small list, until the test ends: the budget of changed bytes is an
// eighth of the list, and a region reaches at most 64 bytes.
func splitSmall(t testing.TB) {
	t.Helper()
	r, w := minRegion, resyncWindow
	t.Cleanup(func() { minRegion, resyncWindow = r, w })
	minRegion, resyncWindow = 0, 64
}

func TestListIs(t *testing.T) {
	l, err := Parse("f.txt", []byte(reparseBase))
	if err != nil {
		t.Fatal(err)
	}
	next, err := Reparse(l, "f.txt", []byte(reparseBase+"x.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		l    *List
		file string
		data string
		want bool
	}{
		{l, "f.txt", reparseBase, true},
		{l, "g.txt", reparseBase, false},
		{l, "f.txt", reparseBase + "\n", false},
		{next, "f.txt", reparseBase + "x.example\n", true},
		{next, "f.txt", reparseBase, false},
	} {
		if got := tt.l.Is(tt.file, []byte(tt.data)); got != tt.want {
			t.Errorf("Is(%s, %d bytes) = %v, want %v", tt.file, len(tt.data), got, tt.want)
		}
	}
}

// TestReparseSum: a list built by ReparseSum is what Reparse builds, and
// takes the SHA-256 it is given rather than hashing the content again (a
// sum that is not the content's shows it), on the incremental path and on
// a full parse alike; a sum that is not one is not used.
func TestReparseSum(t *testing.T) {
	prev := mustParse(t, reparseBase)
	prev.file = "f.txt"
	next := []byte(reparseBase + "x.example\n")
	want, err := Parse("f.txt", next)
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		prev    *List
		sum     string
		wantSum string
		overlay bool
	}{
		{"right sum", prev, want.SHA256(), want.SHA256(), true},
		{"sum taken as given", prev, other, other, true},
		{"sum taken on a full parse", nil, other, other, false},
		{"not hex", prev, strings.Repeat("zz", 32), want.SHA256(), true},
		{"short", prev, "abcd", want.SHA256(), true},
		{"empty", nil, "", want.SHA256(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReparseSum(tt.prev, "f.txt", slices.Clone(next), tt.sum)
			if err != nil {
				t.Fatal(err)
			}
			if got.SHA256() != tt.wantSum || (got.ov != nil) != tt.overlay {
				t.Fatalf("SHA256 %s overlay %v, want %s %v", got.SHA256(), got.ov != nil, tt.wantSum, tt.overlay)
			}
			if tt.wantSum == want.SHA256() {
				checkSameList(t, got, want)
			}
		})
	}
	if _, err := ReparseSum(prev, "f.txt", []byte(reparseBase+"bad name.example\n"), other); err == nil {
		t.Fatal("ReparseSum of a bad line: no error")
	}
}
