package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// patchCases are contents before and after, with the number of line
// hunks a minimal patch has.
var patchCases = []struct {
	name     string
	old, new string
	hunks    int
}{
	{"same", "a\nb\n", "a\nb\n", 0},
	{"empty to empty", "", "", 0},
	{"from empty", "", "a\nb\n", 1},
	{"to empty", "a\nb\n", "", 1},
	{"append", "a\nb\n", "a\nb\nc\n", 1},
	{"prepend", "b\nc\n", "a\nb\nc\n", 1},
	{"remove middle", "a\nb\nc\n", "a\nc\n", 1},
	{"change middle", "a\nb\nc\n", "a\nB\nc\n", 1},
	{"two far apart", "a\nb\nc\nd\ne\nf\ng\n", "A\nb\nc\nd\ne\nf\nG\n", 2},
	{"no final newline", "a\nb", "a\nb\nc", 1},
	{"add final newline", "a\nb", "a\nb\n", 1},
	{"same prefix inside a line", "abc.example\n", "abd.example\n", 1},
	{"same suffix inside a line", "x.example\nb\n", "yy.example\nb\n", 1},
	{"suffix not on a boundary in new", "x\nb\n", "yb\n", 1},
	{"repeated lines", "a\na\na\n", "a\na\n", 1},
	{"swap", "a\nb\n", "b\na\n", 2},
}

func TestPatchRoundTrip(t *testing.T) {
	for _, c := range patchCases {
		t.Run(c.name, func(t *testing.T) {
			hs := diffLines([]byte(c.old), []byte(c.new))
			if len(hs) != c.hunks {
				t.Errorf("%d hunks, want %d: %+v", len(hs), c.hunks, hs)
			}
			p := makePatch([]byte(c.old), []byte(c.new))
			got, err := applyPatch([]byte(c.old), p)
			if err != nil {
				t.Fatalf("applyPatch: %v", err)
			}
			if string(got) != c.new {
				t.Fatalf("applyPatch = %q, want %q", got, c.new)
			}
		})
	}
}

// TestPatchRefusesWrongBase: a patch applied to a content it was not made
// for, or cut short, or with trailing bytes, is an error, not a panic or
// a wrong result.
func TestPatchRefusesWrongBase(t *testing.T) {
	old, new := []byte("a\nb\nc\n"), []byte("a\nB\nc\n")
	p := makePatch(old, new)
	bad := []struct {
		name       string
		base, data []byte
	}{
		{"other base length", []byte("a\nb\n"), p},
		{"no header", old, p[4:]},
		{"cut short", old, p[:len(p)-1]},
		{"trailing bytes", old, append(bytes.Clone(p), 'x')},
		{"empty", old, nil},
	}
	for _, c := range bad {
		if _, err := applyPatch(c.base, c.data); !errors.Is(err, errBadPatch) {
			t.Errorf("%s: got %v, want errBadPatch", c.name, err)
		}
	}
}

// randomEdit returns lines with a few random lines removed, changed and
// inserted.
func randomEdit(r *rand.Rand, lines []string, edits int) []string {
	out := append([]string(nil), lines...)
	for range edits {
		i := r.IntN(len(out) + 1)
		switch r.IntN(3) {
		case 0:
			if i < len(out) {
				out = append(out[:i], out[i+1:]...)
			}
		case 1:
			if i < len(out) {
				out[i] = fmt.Sprintf("changed-%d.example\n", r.IntN(1000))
			}
		default:
			out = append(out[:i], append([]string{fmt.Sprintf("new-%d.example\n", r.IntN(1000))}, out[i:]...)...)
		}
	}
	return out
}

// TestPatchMinimalAgainstDiff compares the lines the patch removes and
// inserts with GNU diff --minimal on the same random edits: both are a
// shortest edit script, so the counts agree.
func TestPatchMinimalAgainstDiff(t *testing.T) {
	diffBin, err := exec.LookPath("diff")
	if err != nil {
		t.Skip("no diff binary")
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		var lines []string
		for j := range r.IntN(60) {
			lines = append(lines, fmt.Sprintf("host-%d.example\n", j%(5+i%20)))
		}
		edited := randomEdit(r, lines, r.IntN(8))
		old, new := []byte(strings.Join(lines, "")), []byte(strings.Join(edited, ""))
		hs := diffLines(old, new)
		ours := 0
		for _, h := range hs {
			ours += bytes.Count(old[h.off:h.off+h.del], []byte{'\n'}) + bytes.Count(h.ins, []byte{'\n'})
		}
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		os.WriteFile(a, old, 0o644)
		os.WriteFile(b, new, 0o644)
		out, _ := exec.Command(diffBin, "--minimal", a, b).Output()
		theirs := 0
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "< ") || strings.HasPrefix(l, "> ") {
				theirs++
			}
		}
		if ours != theirs {
			t.Fatalf("case %d: we change %d lines, diff --minimal %d\nold %q\nnew %q\ndiff:\n%s", i, ours, theirs, old, new, out)
		}
		got, err := applyPatch(old, makePatch(old, new))
		if err != nil || !bytes.Equal(got, new) {
			t.Fatalf("case %d: applyPatch = %q, %v; want %q", i, got, err, new)
		}
	}
}

// TestPatchLargeListSmallChange: a one-line change in a large content is
// a patch of about that line, whatever the size.
func TestPatchLargeListSmallChange(t *testing.T) {
	var b strings.Builder
	for i := range 200_000 {
		fmt.Fprintf(&b, "host-%07d.example.com\n", i)
	}
	old := []byte(b.String())
	mid := bytes.Index(old, []byte("host-0100000"))
	for _, c := range []struct {
		name string
		new  []byte
	}{
		{"append", append(bytes.Clone(old), "blocked.example\n"...)},
		{"remove a middle line", append(bytes.Clone(old[:mid]), old[mid+len("host-0100000.example.com\n"):]...)},
		{"two far apart", append(append([]byte("first.example\n"), old[:mid]...), append([]byte("middle.example\n"), old[mid:]...)...)},
	} {
		p := makePatch(old, c.new)
		if len(p) > 100 {
			t.Errorf("%s: patch of %d bytes for a one-line change", c.name, len(p))
		}
		got, err := applyPatch(old, p)
		if err != nil || !bytes.Equal(got, c.new) {
			t.Errorf("%s: applyPatch wrong (%v)", c.name, err)
		}
	}
}

// FuzzPatch: for any two contents the patch turns one into the other;
// applying arbitrary bytes as a patch never panics.
func FuzzPatch(f *testing.F) {
	for _, c := range patchCases {
		f.Add([]byte(c.old), []byte(c.new), makePatch([]byte(c.old), []byte(c.new)))
	}
	f.Fuzz(func(t *testing.T, old, new, junk []byte) {
		got, err := applyPatch(old, makePatch(old, new))
		if err != nil || !bytes.Equal(got, new) {
			t.Fatalf("applyPatch(makePatch) = %q, %v; want %q", got, err, new)
		}
		out, err := applyPatch(old, junk)
		if err == nil && len(out) > len(old)+len(junk) {
			t.Fatalf("a %d-byte patch made %d bytes from %d", len(junk), len(out), len(old))
		}
		// The piece table makes what applyPatch makes, there and back,
		// and refuses what it refuses.
		split := len(old) / 2
		ps := pieces{parts: [][]byte{old[:split], old[split:]}, size: len(old)}
		there, err := ps.patch(makePatch(old, new))
		if err != nil || !bytes.Equal(there.bytes(), new) {
			t.Fatalf("pieces: %q, %v; want %q", there.bytes(), err, new)
		}
		back, err := there.patch(makePatch(new, old))
		if err != nil || !bytes.Equal(back.bytes(), old) {
			t.Fatalf("pieces back: %q, %v; want %q", back.bytes(), err, old)
		}
		pj, jerr := ps.patch(junk)
		_, aerr := applyPatch(old, junk)
		if (jerr == nil) != (aerr == nil) || jerr == nil && !bytes.Equal(pj.bytes(), out) {
			t.Fatalf("pieces and applyPatch disagree on a junk patch: %v, %v", jerr, aerr)
		}
	})
}
