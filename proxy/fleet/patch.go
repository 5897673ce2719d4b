package fleet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
)

// A patch turns one content into another by whole lines: a list of hunks,
// each replacing a run of lines of the old content (a byte range that
// starts and ends on a line boundary) with new lines. The package is blind
// to what the lines mean.
//
// Encoding (all integers unsigned varints):
//
//	"EBP1" oldLen newLen hunks { gap removed insertedLen inserted-bytes }
//
// gap is the number of old bytes kept before the hunk (counted from the
// end of the previous hunk), removed the number of old bytes the hunk
// replaces. Applying checks that the old content has oldLen bytes, that
// every range lies inside it, and that the result has newLen bytes; the
// caller checks the result's SHA-256.
const patchMagic = "EBP1"

// errBadPatch is wrapped by every error of applyPatch.
var errBadPatch = errors.New("malformed patch")

// hunk replaces old[off:off+del] with ins.
type hunk struct {
	off, del int
	ins      []byte
}

// diffMaxEdits bounds the line edits the line diff looks for in the part
// of the contents between their common prefix and suffix; beyond it, that
// whole part is one hunk (correct, only larger).
const diffMaxEdits = 2000

// makePatch returns a patch that turns old into new.
func makePatch(old, new []byte) []byte {
	hs := diffLines(old, new)
	n := len(patchMagic) + 3*binary.MaxVarintLen64
	for _, h := range hs {
		n += 3*binary.MaxVarintLen64 + len(h.ins)
	}
	out := make([]byte, 0, n)
	out = append(out, patchMagic...)
	out = binary.AppendUvarint(out, uint64(len(old)))
	out = binary.AppendUvarint(out, uint64(len(new)))
	out = binary.AppendUvarint(out, uint64(len(hs)))
	at := 0
	for _, h := range hs {
		out = binary.AppendUvarint(out, uint64(h.off-at))
		out = binary.AppendUvarint(out, uint64(h.del))
		out = binary.AppendUvarint(out, uint64(len(h.ins)))
		out = append(out, h.ins...)
		at = h.off + h.del
	}
	return out
}

// applyPatch returns old with patch applied, in a new slice. It returns
// an error wrapping errBadPatch when the patch is malformed or was made
// for a content of another length; it never panics.
func applyPatch(old, patch []byte) ([]byte, error) {
	newLen, hs, err := decodePatch(patch, len(old))
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, newLen)
	at := 0
	for _, h := range hs {
		out = append(out, old[at:h.off]...)
		out = append(out, h.ins...)
		at = h.off + h.del
	}
	return append(out, old[at:]...), nil
}

// decodePatch returns the length of the result and the hunks of patch,
// made for a content of oldLen bytes (offsets absolute, inserted bytes
// shared with patch), after checking that every hunk lies inside that
// content, in order, and that the result has the recorded length.
func decodePatch(patch []byte, oldLen int) (int, []hunk, error) {
	p, ok := bytes.CutPrefix(patch, []byte(patchMagic))
	if !ok {
		return 0, nil, fmt.Errorf("%w: no %q header", errBadPatch, patchMagic)
	}
	next := func(what string) (int, error) {
		v, n := binary.Uvarint(p)
		if n <= 0 || v > 1<<40 {
			return 0, fmt.Errorf("%w: bad %s", errBadPatch, what)
		}
		p = p[n:]
		return int(v), nil
	}
	recorded, err := next("old length")
	if err != nil {
		return 0, nil, err
	}
	if recorded != oldLen {
		return 0, nil, fmt.Errorf("%w: made for a content of %d bytes, not %d", errBadPatch, recorded, oldLen)
	}
	newLen, err := next("new length")
	if err != nil {
		return 0, nil, err
	}
	count, err := next("hunk count")
	if err != nil {
		return 0, nil, err
	}
	if count > len(p) {
		return 0, nil, fmt.Errorf("%w: %d hunks in %d bytes", errBadPatch, count, len(p))
	}
	hs := make([]hunk, 0, count)
	at, size := 0, 0
	for i := 0; i < count; i++ {
		gap, err := next("gap")
		if err != nil {
			return 0, nil, err
		}
		del, err := next("removed length")
		if err != nil {
			return 0, nil, err
		}
		insLen, err := next("inserted length")
		if err != nil {
			return 0, nil, err
		}
		if gap > oldLen-at || del > oldLen-at-gap || insLen > len(p) {
			return 0, nil, fmt.Errorf("%w: hunk %d lies outside the content", errBadPatch, i+1)
		}
		hs = append(hs, hunk{off: at + gap, del: del, ins: p[:insLen:insLen]})
		size += gap + insLen
		at += gap + del
		p = p[insLen:]
	}
	if len(p) != 0 {
		return 0, nil, fmt.Errorf("%w: %d bytes after the last hunk", errBadPatch, len(p))
	}
	if size += oldLen - at; size != newLen {
		return 0, nil, fmt.Errorf("%w: result has %d bytes, recorded %d", errBadPatch, size, newLen)
	}
	return newLen, hs, nil
}

// pieces is a content held as a list of byte slices (a piece table):
// patches applied to it cost in proportion to their hunks and the
// pieces, not to the size of the content, which is copied once at the
// end (bytes).
type pieces struct {
	parts [][]byte
	size  int
}

// patch applies patch to ps, in the manner of applyPatch.
func (ps pieces) patch(patch []byte) (pieces, error) {
	newLen, hs, err := decodePatch(patch, ps.size)
	if err != nil {
		return pieces{}, err
	}
	out := pieces{parts: make([][]byte, 0, len(ps.parts)+2*len(hs)+1), size: newLen}
	i, off := 0, 0 // the next unread byte: ps.parts[i][off]
	// take appends (keep) or skips (!keep) the next n bytes of ps.
	take := func(n int, keep bool) {
		for n > 0 {
			part := ps.parts[i][off:]
			k := min(n, len(part))
			if keep && k > 0 {
				out.parts = append(out.parts, part[:k:k])
			}
			n -= k
			off += k
			if off == len(ps.parts[i]) {
				i, off = i+1, 0
			}
		}
	}
	// Skip empty parts, so that take always finds bytes to take.
	nonEmpty := ps.parts[:0:0]
	for _, p := range ps.parts {
		if len(p) > 0 {
			nonEmpty = append(nonEmpty, p)
		}
	}
	ps.parts = nonEmpty
	at := 0
	for _, h := range hs {
		take(h.off-at, true)
		take(h.del, false)
		if len(h.ins) > 0 {
			out.parts = append(out.parts, h.ins)
		}
		at = h.off + h.del
	}
	take(ps.size-at, true)
	return out, nil
}

// bytes returns the content in one new slice.
func (ps pieces) bytes() []byte {
	if len(ps.parts) == 1 {
		return ps.parts[0]
	}
	out := make([]byte, 0, ps.size)
	for _, p := range ps.parts {
		out = append(out, p...)
	}
	return out
}

// diffLines returns the hunks, in order, that turn old into new, each
// aligned on line boundaries. The common prefix and suffix are found by
// comparing bytes (cheap on a large content with a small change); the
// lines between them are diffed with Myers' algorithm, up to
// diffMaxEdits edits.
func diffLines(old, new []byte) []hunk {
	pre := commonPrefix(old, new)
	// Back to the start of the line the first difference is in.
	pre = bytes.LastIndexByte(old[:pre], '\n') + 1
	suf := commonSuffix(old[pre:], new[pre:])
	// Forward to a line boundary: the suffix starts after a newline
	// (or at the end).
	for suf > 0 && len(old)-suf > pre && old[len(old)-suf-1] != '\n' {
		suf--
	}
	a, b := old[pre:len(old)-suf], new[pre:len(new)-suf]
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	al, bl := splitLines(a), splitLines(b)
	hs, ok := myers(al, bl, diffMaxEdits)
	if !ok {
		return []hunk{{off: pre, del: len(a), ins: b}}
	}
	for i := range hs {
		hs[i].off += pre
	}
	return hs
}

// commonPrefix returns the length of the longest common prefix.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	const block = 4096
	for i+block <= n && bytes.Equal(a[i:i+block], b[i:i+block]) {
		i += block
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix returns the length of the longest common suffix.
func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	const block = 4096
	for i+block <= n && bytes.Equal(a[len(a)-i-block:len(a)-i], b[len(b)-i-block:len(b)-i]) {
		i += block
	}
	for i < n && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	return i
}

// line is one line of a content with its terminating newline (the last
// may lack one), its offset, and a hash for quick comparison.
type line struct {
	off  int
	text []byte
	h    uint64
}

var lineSeed = maphash.MakeSeed()

func splitLines(b []byte) []line {
	out := make([]line, 0, bytes.Count(b, []byte{'\n'})+1)
	for off := 0; off < len(b); {
		end := bytes.IndexByte(b[off:], '\n')
		if end < 0 {
			end = len(b)
		} else {
			end += off + 1
		}
		out = append(out, line{off: off, text: b[off:end], h: maphash.Bytes(lineSeed, b[off:end])})
		off = end
	}
	return out
}

func (l line) eq(m line) bool { return l.h == m.h && bytes.Equal(l.text, m.text) }

// diffMaxWork bounds the line comparisons of the line diff; beyond it the
// part between the common prefix and suffix is one hunk.
const diffMaxWork = 50_000_000

// myers returns the hunks (offsets relative to the start of a's bytes)
// of a shortest edit script from a to b, or false if it needs more than
// maxEdits line insertions and deletions, or more than diffMaxWork
// comparisons.
func myers(a, b []line, maxEdits int) ([]hunk, bool) {
	n, m := len(a), len(b)
	maxD := min(n+m, maxEdits)
	off := maxD + 1
	v := make([]int, 2*maxD+3)
	// trace[d] is v before step d, for k in [-d-1, d+1] at index k+d+1.
	var trace [][]int
	found, work := -1, 0
	for d := 0; d <= maxD && found < 0; d++ {
		trace = append(trace, append([]int(nil), v[off-d-1:off+d+2]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x].eq(b[y]) {
				x++
				y++
				work++
			}
			work++
			v[off+k] = x
			if x >= n && y >= m {
				found = d
				break
			}
		}
		if work > diffMaxWork {
			return nil, false
		}
	}
	if found < 0 {
		return nil, false
	}
	// Walk back from (n, m): each step d is one insertion or deletion
	// followed by a snake of equal lines.
	type edit struct {
		del  bool
		x, y int // the line of a deleted, or of b inserted before a[x]
	}
	edits := make([]edit, 0, found)
	x, y := n, m
	for d := found; d > 0; d-- {
		pv := trace[d]
		at := func(k int) int { return pv[k+d+1] }
		k := x - y
		var pk int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			pk = k + 1 // came down: an insertion
		} else {
			pk = k - 1 // came right: a deletion
		}
		px := at(pk)
		py := px - pk
		if pk == k+1 {
			edits = append(edits, edit{x: px, y: py})
		} else {
			edits = append(edits, edit{del: true, x: px, y: py})
		}
		x, y = px, py
	}
	// The byte offset in a of line i (the end for i == n).
	aOff := func(i int) int {
		if i < n {
			return a[i].off
		}
		if n == 0 {
			return 0
		}
		return a[n-1].off + len(a[n-1].text)
	}
	// edits are last first; build hunks in order, merging touching ones.
	var hs []hunk
	for i := len(edits) - 1; i >= 0; i-- {
		e := edits[i]
		start, del, ins := aOff(e.x), 0, []byte(nil)
		if e.del {
			del = len(a[e.x].text)
		} else {
			ins = b[e.y].text
		}
		if len(hs) > 0 {
			last := &hs[len(hs)-1]
			if last.off+last.del == start {
				last.del += del
				last.ins = append(last.ins, ins...)
				continue
			}
		}
		hs = append(hs, hunk{off: start, del: del, ins: append([]byte(nil), ins...)})
	}
	return hs, true
}
