package blocklist

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"testing"
)

// TestReparseChainKeepsOneContent: a chain of reparses (an edge applying
// one-rule edits, each to the list the last built) keeps the content of
// the list in effect, not of every version before it: the rules parsed
// from a changed region used to hold strings of that version's whole
// content (each version's content stayed reachable: +16 MB per edit of a
// 1M-rule list).
func TestReparseChainKeepsOneContent(t *testing.T) {
	const rules, edits = 200_000, 30
	var b bytes.Buffer
	for i := range rules {
		fmt.Fprintf(&b, "h%07d.example\n", i)
	}
	data := b.Bytes()
	l, err := Parse("fleet:v1", data)
	if err != nil {
		t.Fatal(err)
	}
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := heap()
	for i := range edits {
		data = fmt.Appendf(bytes.Clone(data), "more%d.example\n", i)
		if l, err = Reparse(l, fmt.Sprintf("fleet:v%d", i+2), data); err != nil {
			t.Fatal(err)
		}
		if l.ov == nil {
			t.Fatalf("edit %d parsed whole", i)
		}
	}
	grown := heap() - before
	runtime.KeepAlive(l)
	// The buggy chain kept edits x the content (30 x 3 MB); one more
	// content and the overlays are well under 4 contents.
	if limit := int64(4 * len(data)); grown > limit {
		t.Fatalf("heap grew by %d MB over %d reparses of a %d MB list; want at most %d MB", grown>>20, edits, len(data)>>20, limit>>20)
	}
	t.Logf("heap grew by %.1f MB over %d reparses of a %.1f MB list", float64(grown)/(1<<20), edits, float64(len(data))/(1<<20))
}

// TestReparseChainKeepsOneContentNotes: the strings a Reparse takes from
// outside the changed lines (the annotation above them, the unblock
// records it reads again from the whole content) are copies, so that a
// list does not keep an earlier version's content alive.
func TestReparseChainKeepsOneContentNotes(t *testing.T) {
	const rules, edits = 200_000, 30
	var b bytes.Buffer
	b.WriteString("#@ 2026-12-01T00:00:00Z by alice: T-1\nfirst.example\n")
	for i := range rules {
		fmt.Fprintf(&b, "h%07d.example\n", i)
	}
	data := b.Bytes()
	l, err := Parse("f", data)
	if err != nil {
		t.Fatal(err)
	}
	// The first edit adds an unblock record, which the later ones share.
	data = append(bytes.Clone(data), "#@ 2026-12-01T00:00:00Z by bob unblocked gone.example: lifted\n"...)
	if l, err = Reparse(l, "f", data); err != nil {
		t.Fatal(err)
	}
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := heap()
	for i := range edits {
		// The rule under the annotation changes, the annotation does not.
		next := bytes.Clone(data)
		at := bytes.Index(next, []byte("first.example")) + len("first.example")
		next = slices.Concat(next[:at], []byte(fmt.Sprintf(" reason=r%d", i)), next[bytes.IndexByte(next[at:], '\n')+at:])
		data = next
		if l, err = Reparse(l, "f", data); err != nil {
			t.Fatal(err)
		}
		if l.ov == nil {
			t.Fatalf("edit %d parsed whole", i)
		}
	}
	grown := heap() - before
	if n, ok := l.UnblockNote("gone.example"); !ok || n.By != "bob" {
		t.Fatalf("unblock record lost: %+v %v", n, ok)
	}
	r, _ := l.Lookup("first.example")
	if n, ok := l.Note(r); !ok || n.By != "alice" {
		t.Fatalf("annotation lost: %+v %v", n, ok)
	}
	runtime.KeepAlive(l)
	// Without the copies the list kept two more contents (its parent's,
	// through the annotation, and the first edit's, through the records).
	if limit := int64(len(data) / 2); grown > limit {
		t.Fatalf("heap grew by %.1f MB over %d reparses of a %.1f MB list; want at most %.1f MB", float64(grown)/(1<<20), edits, float64(len(data))/(1<<20), float64(limit)/(1<<20))
	}
	t.Logf("heap grew by %.1f MB over %d reparses of a %.1f MB list", float64(grown)/(1<<20), edits, float64(len(data))/(1<<20))
}
