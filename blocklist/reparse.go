package blocklist

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"unsafe"
)

// maxOverlay bounds the rules a list built by Reparse keeps beside its
// base (rules parsed since, plus base rules they replaced); past it, or
// past maxPieces pieces of the base, Reparse parses the file whole, which
// makes a new base. It keeps matching and the per-edit copy of the
// overlay cheap.
var (
	maxOverlay = 4096
	maxPieces  = 1024
)

// Reparse returns the list for data, the new content of the file prev was
// built from (named file in errors), as Parse(file, data) does: the same
// rules, lines, annotations, unblock records and errors (a *ParseError
// naming file:line). It costs in proportion to what differs between data
// and prev's content, not to the size of the list: the lines outside the
// changed region (from the first to the last byte that differs) are not
// parsed again, but only compared, counted and hashed. When the region is
// large, prev's overlay is full (see NeedsCompaction), prev is nil, or the
// new content does not parse, it is a full Parse. file may differ from
// prev's name: a new version of the same list under a new name (the fleet
// names each version fleet:vN) is reparsed like a new content of one file. The result of a Reparse of prev also makes Changes, Diff,
// DroppedBlocks and CheckDrop against prev cost in proportion to the
// change.
//
// Reparse keeps data (it becomes the new list's content, which the next
// Reparse compares with): the caller must not change data afterwards.
// prev is not changed and stays usable; both lists are immutable.
func Reparse(prev *List, file string, data []byte) (*List, error) {
	return reparseSum(prev, file, data, nil)
}

// ReparseSum is Reparse for content whose SHA-256 the caller has computed
// and checked already (sum, in hex as List.SHA256 reports it; the fleet
// checks every version it reads against its record): the list takes sum
// as its SHA256 instead of hashing data again, which on a large list is
// most of the cost of a small change. The caller vouches for sum: it
// becomes the identity the list reports. A sum that is not 64 hex digits
// is not used (data is hashed).
func ReparseSum(prev *List, file string, data []byte, sum string) (*List, error) {
	var s [sha256.Size]byte
	if n, err := hex.Decode(s[:], []byte(sum)); err != nil || n != sha256.Size || len(sum) != 2*sha256.Size {
		return reparseSum(prev, file, data, nil)
	}
	return reparseSum(prev, file, data, &s)
}

// reparseSum is Reparse; sum, if not nil, is the SHA-256 of data.
func reparseSum(prev *List, file string, data []byte, sum *[sha256.Size]byte) (*List, error) {
	if prev == nil {
		return parse(file, data, sum)
	}
	next := unsafe.String(unsafe.SliceData(data), len(data))
	if next == prev.src && prev.file == file {
		return prev, nil
	}
	if l := reparse(prev, file, next, sum); l != nil {
		return l, nil
	}
	return parse(file, data, sum)
}

// reparse is Reparse's incremental path; nil means a full Parse is needed.
func reparse(prev *List, file, next string, sum *[sha256.Size]byte) *List {
	old := prev.src
	hs := changedHunks(old, next)
	if hs == nil {
		return nil
	}

	base := prev
	var po overlay
	if prev.ov != nil {
		po = *prev.ov
	} else {
		po.pieces = []piece{{base: 1, cur: 1, n: prev.lines}}
	}
	if len(po.rules)+len(po.dead) > maxOverlay || len(po.pieces) > maxPieces {
		return nil
	}

	region := &List{nodes: map[string]node{}, attrs: slices.Clip(prev.attrs)}
	ps := parser{list: region, baseIDs: prev.attrIDs, attrIDs: cloneMap(po.attrIDs)}
	o := &overlay{parent: prev.id, attrIDs: ps.attrIDs, pieces: po.pieces, rules: po.rules, notes: po.notes, hasNote: po.hasNote}
	o.dead = slices.Clip(po.dead)
	lines := prev.lines
	rescanUnblocks, rescanDrop := false, false
	// The hunks are applied in file order, each to the file as the ones
	// before it left it: lines before a hunk are numbered as in next.
	after, done := uint32(0), 0 // lines of next before hunk h; next[:done] counted
	for _, h := range hs {
		after += uint32(strings.Count(next[done:h.ns], "\n"))
		// The region's rules keep strings of what they were parsed from:
		// a copy of the region, not the whole new content, which would
		// keep every version's content alive along a chain of reparses.
		oldRegion, newRegion := old[h.os:h.oe], strings.Clone(next[h.ns:h.ne])
		oldLines, newLines := countLines(oldRegion), countLines(newRegion)

		// Parse the region's new lines, knowing the annotation above them.
		ps.note, ps.noteLine = Note{}, 0
		if after > 0 {
			// A copy: the annotation's strings go into the new list, which
			// must not keep the whole content alive.
			above := strings.Clone(next[strings.LastIndexByte(next[:h.ns-1], '\n')+1 : h.ns-1])
			seed := parser{list: &List{nodes: map[string]node{}}, attrIDs: map[Attrs]uint32{}}
			seed.line(above, int(after))
			ps.note, ps.noteLine = seed.note, seed.noteLine
		}
		r0 := len(region.rules)
		if _, problems := ps.lines(file, newRegion, after); len(problems) > 0 {
			return nil
		}
		o.apply(prev, region, r0, after+1, after+oldLines, int64(newLines)-int64(oldLines))
		lines = lines + newLines - oldLines
		after += newLines
		done = h.ne
		rescanUnblocks = rescanUnblocks || strings.Contains(oldRegion, "unblocked ") || strings.Contains(newRegion, "unblocked ")
		rescanDrop = rescanDrop || strings.Contains(oldRegion, AllowDropMarker) || strings.Contains(newRegion, AllowDropMarker)
	}

	if sum == nil {
		s := sha256.Sum256(unsafe.Slice(unsafe.StringData(next), len(next)))
		sum = &s
	}
	l := &List{file: file, sum: *sum, src: next,
		lines: lines, id: listIDs.Add(1),
		rules: base.rules, attrs: region.attrs, attrIDs: base.attrIDs, nodes: base.nodes,
		expiries: base.expiries, notes: base.notes, unblocks: prev.unblocks, allowDrop: prev.allowDrop,
		scoped: base.scoped, nScoped: base.nScoped, ov: o}
	nb := int32(len(base.rules))

	// The nodes of the names the overlay touches: the base's, without its
	// dead rules, with the overlay's rules; the same for scoped rules.
	// Two rules of one pattern (and scope) are a duplicate, which Parse
	// reports.
	o.nodes = make(map[string]node, len(o.dead)+len(o.rules))
	o.nScoped = base.nScoped
	for _, i := range o.dead {
		r := &base.rules[i]
		if !l.attrs[r.attrs].Scope.IsZero() {
			sc, ok := o.scoped[r.name]
			if !ok {
				sc = slices.Clone(base.scoped[r.name])
			}
			if o.scoped == nil {
				o.scoped = map[string]scopedRules{}
			}
			o.scoped[r.name] = slices.DeleteFunc(sc, func(k int32) bool { return k == i })
			o.nScoped--
			continue
		}
		n, ok := o.nodes[r.name]
		if !ok {
			n = base.nodes[r.name]
		}
		*n.slot(r.wildcard) = -1
		o.nodes[r.name] = n
	}
	for k := range o.rules {
		r := &o.rules[k]
		ref := nb + int32(k)
		if r.hasExpiry() {
			o.expiries = append(o.expiries, ref)
		}
		if s := l.attrs[r.attrs].Scope; !s.IsZero() {
			sc, ok := o.scoped[r.name]
			if !ok {
				sc = slices.Clone(base.scoped[r.name])
			}
			for _, x := range sc {
				if y := l.at(x); y.wildcard == r.wildcard {
					if _, clash := s.overlaps(l.attrs[y.attrs].Scope); clash {
						return nil
					}
				}
			}
			if o.scoped == nil {
				o.scoped = map[string]scopedRules{}
			}
			o.scoped[r.name] = append(sc, ref)
			o.nScoped++
			continue
		}
		n, ok := o.nodes[r.name]
		if !ok {
			if n, ok = base.nodes[r.name]; !ok {
				n = node{zone: -1, wild: -1}
			}
		}
		if *n.slot(r.wildcard) >= 0 {
			return nil
		}
		*n.slot(r.wildcard) = ref
		o.nodes[r.name] = n
	}
	for _, sc := range o.scoped {
		slices.SortFunc(sc, func(a, b int32) int { return cmp.Compare(l.lineOf(a), l.lineOf(b)) })
	}
	slices.SortStableFunc(o.expiries, func(a, b int32) int { return cmpExpiry(l.at(a), l.at(b)) })

	// Unblock records and the allow-drop marker are about the whole file:
	// when the region has or had one, look for them again (a byte search).
	if rescanUnblocks {
		l.unblocks = scanUnblocks(next)
	}
	if rescanDrop {
		l.allowDrop = scanAllowDrop(next)
	}
	return l
}

// Is reports whether l was built from file with content data: a byte
// comparison, cheaper than hashing data to compare with SHA256.
func (l *List) Is(file string, data []byte) bool {
	return l.file == file && string(data) == l.src
}

// Size is the length in bytes of the content l was built from.
func (l *List) Size() int { return len(l.src) }

// NeedsCompaction reports whether the list is a base with an overlay big
// enough that the next Reparse will parse the file whole. A caller that
// keeps a list for long can, off the request path, replace it with
// Compact's result before that happens.
func (l *List) NeedsCompaction() bool {
	return l.ov != nil && (len(l.ov.rules)+len(l.ov.dead) > maxOverlay/2 || len(l.ov.pieces) > maxPieces/2)
}

// Compact returns the list parsed whole from its content: the same rules,
// without an overlay. It is l itself when l has none.
func (l *List) Compact() *List {
	if l.ov == nil {
		return l
	}
	c, err := Parse(l.file, unsafe.Slice(unsafe.StringData(l.src), len(l.src)))
	if err != nil {
		// The content parsed as l was built; a difference is a bug.
		panic("blocklist: compacting a list that does not parse: " + err.Error())
	}
	return c
}

// commonPrefix returns the length of the common prefix of a and b.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	// Compare in blocks, which the runtime does with vector instructions.
	i := 0
	for blk := 4096; i+blk <= n && a[i:i+blk] == b[i:i+blk]; i += blk {
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix returns the length of the common suffix of a and b, at most
// limit.
func commonSuffix(a, b string, limit int) int {
	i := 0
	for blk := 4096; i+blk <= limit && a[len(a)-i-blk:len(a)-i] == b[len(b)-i-blk:len(b)-i]; i += blk {
	}
	for i < limit && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	return i
}

// countLines returns the number of lines of s as Parse counts them: a last
// line without a line break counts.
func countLines(s string) uint32 {
	n := strings.Count(s, "\n")
	if s != "" && s[len(s)-1] != '\n' {
		n++
	}
	return uint32(n)
}

// scanUnblocks returns the unblock records of text, as Parse finds them,
// by a byte search for the lines that can be one.
func scanUnblocks(text string) map[string]Note {
	var out map[string]Note
	for off := 0; ; {
		i := strings.Index(text[off:], " unblocked ")
		if i < 0 {
			return out
		}
		i += off
		ls := strings.LastIndexByte(text[:i], '\n') + 1
		le := len(text)
		if k := strings.IndexByte(text[i:], '\n'); k >= 0 {
			le = i + k
		}
		off = le
		line := strings.TrimSuffix(text[ls:le], "\r")
		if !strings.HasPrefix(line, NotePrefix) {
			continue
		}
		// A copy of the line: the map outlives this content (the next
		// Reparse shares it) and must not keep it alive.
		if n, unblocked, ok := parseNote(strings.Clone(line)); ok && unblocked != "" {
			if out == nil {
				out = map[string]Note{}
			}
			out[unblocked] = n
		}
	}
}

// scanAllowDrop reports whether text has the AllowDropMarker line.
func scanAllowDrop(text string) bool {
	for off := 0; ; {
		i := strings.Index(text[off:], AllowDropMarker)
		if i < 0 {
			return false
		}
		i += off
		ls := strings.LastIndexByte(text[:i], '\n') + 1
		le := len(text)
		if k := strings.IndexByte(text[i:], '\n'); k >= 0 {
			le = i + k
		}
		if isAllowDropMarker(text[ls:le]) {
			return true
		}
		off = le
	}
}

// cloneMap returns a copy of m, never nil.
func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// apply changes o, the overlay of a list, for one hunk: the current lines
// first..last (none when last < first) become the rules region.rules[r0:],
// whose lines are already numbered as in the new content, and the lines
// after the hunk move by shift. The base rules of the lines removed become
// dead. Every rule that goes or comes is touched. region.attrs holds every
// attribute set the rules refer to.
func (o *overlay) apply(base, region *List, r0 int, first, last uint32, shift int64) {
	pieces := make([]piece, 0, len(o.pieces)+1)
	for _, pc := range o.pieces {
		end := pc.cur + pc.n // exclusive
		if pc.cur < first {
			pieces = append(pieces, piece{base: pc.base, cur: pc.cur, n: min(end, first) - pc.cur})
		}
		if lo, hi := max(pc.cur, first), min(end, last+1); lo < hi {
			b0, b1 := pc.base+lo-pc.cur, pc.base+hi-pc.cur
			i := sort.Search(len(base.rules), func(i int) bool { return base.rules[i].line >= b0 })
			for ; i < len(base.rules) && base.rules[i].line < b1; i++ {
				o.dead = append(o.dead, int32(i))
				o.touched = append(o.touched, region.key(&base.rules[i]))
			}
		}
		if end > last+1 {
			from := max(pc.cur, last+1)
			pieces = append(pieces, piece{base: pc.base + from - pc.cur, cur: uint32(int64(from) + shift), n: end - from})
		}
	}
	o.pieces = pieces

	// The overlay's rules: those before the hunk stay, those in it are
	// replaced by the region's, those after it move.
	added := len(region.rules) - r0
	rules := make([]rule, 0, len(o.rules)+added)
	notes := make([]Note, 0, len(o.rules)+added)
	hasNote := make([]bool, 0, len(o.rules)+added)
	keep := func(j int, line uint32) {
		r := o.rules[j]
		r.line = line
		rules = append(rules, r)
		notes = append(notes, o.notes[j])
		hasNote = append(hasNote, o.hasNote[j])
	}
	j := 0
	for ; j < len(o.rules) && o.rules[j].line < first; j++ {
		keep(j, o.rules[j].line)
	}
	for ; j < len(o.rules) && o.rules[j].line <= last; j++ {
		o.touched = append(o.touched, region.key(&o.rules[j]))
	}
	for _, r := range region.rules[r0:] {
		n, has := region.notes[r.line]
		rules = append(rules, r)
		notes = append(notes, n)
		hasNote = append(hasNote, has)
		o.touched = append(o.touched, region.key(&r))
	}
	for ; j < len(o.rules); j++ {
		keep(j, uint32(int64(o.rules[j].line)+shift))
	}
	o.rules, o.notes, o.hasNote = rules, notes, hasNote
}

// hunk says that old[os:oe] became next[ns:ne]: whole lines.
type hunk struct {
	os, oe, ns, ne int
}

// Bounds of the change detection. minRegion is the least budget of
// changed bytes (the budget is an eighth of the new content, at least
// this); past it Reparse parses whole. maxHunks bounds the separate
// changed regions, resyncWindow how far (bytes) a changed region may
// reach when several are looked for, and resyncTries the lines tried as
// anchors on each side to find where the contents agree again.
var (
	minRegion    = 1 << 16
	maxHunks     = 16
	resyncWindow = 1 << 16
	resyncTries  = 64
)

// changedHunks returns the regions of old that differ in next, in file
// order, as whole lines, each with the line after it (whose annotation
// may be in the region): a single region from the first to the last
// differing byte when that is small, else up to maxHunks regions found
// between the lines the two contents share (a line removed in the middle
// and a record appended at the end, as unblock writes, are two). nil
// means the change is too large: more than the budget of bytes of next,
// or more regions. Outside the regions old and next are equal.
func changedHunks(old, next string) []hunk {
	budget := max(minRegion, len(next)/8)
	p := commonPrefix(old, next)
	start := strings.LastIndexByte(old[:p], '\n') + 1
	s := commonSuffix(old, next, min(len(old), len(next))-p)
	so := len(old)
	if i := strings.IndexByte(old[len(old)-s:], '\n'); i >= 0 {
		so = len(old) - s + i + 1
	}
	sn := so + len(next) - len(old)
	// old[so:] == next[sn:], and both begin a line (or are empty).
	var hs []hunk
	if sn-start <= budget {
		hs = []hunk{{start, so, start, sn}}
	} else {
		hs = splitHunks(old, next, start, so, sn, budget)
		if hs == nil {
			return nil
		}
	}
	// Each region with the line after it, which is the same in both;
	// regions that then meet are one.
	out := hs[:0]
	for _, h := range hs {
		if h.oe < len(old) {
			e := len(old)
			if i := strings.IndexByte(old[h.oe:], '\n'); i >= 0 {
				e = h.oe + i + 1
			}
			h.ne += e - h.oe
			h.oe = e
		}
		if k := len(out) - 1; k >= 0 && out[k].oe >= h.os {
			out[k].oe, out[k].ne = h.oe, h.ne
			continue
		}
		out = append(out, h)
	}
	return out
}

// splitHunks splits the differing middle old[i:so], next[i:sn] (both
// starting with a line that differs) into regions separated by runs of
// whole lines the two share, within budget bytes of next; nil if it
// cannot.
func splitHunks(old, next string, i, so, sn, budget int) []hunk {
	var hs []hunk
	j, used := i, 0
	for len(hs) < maxHunks {
		if (so-i) <= resyncWindow && (sn-j) <= min(resyncWindow, budget-used) {
			// What is left is small: one region.
			return append(hs, hunk{i, so, j, sn})
		}
		if i == so || j == sn {
			// One side is all consumed: the rest of the other is the region.
			if sn-j > budget-used {
				return nil
			}
			return append(hs, hunk{i, so, j, sn})
		}
		di, dj, ok := resync(old[i:so], next[j:sn], min(resyncWindow, budget-used))
		if !ok {
			return nil
		}
		hs = append(hs, hunk{i, i + di, j, j + dj})
		used += dj
		i, j = i+di, j+dj
		run := commonPrefix(old[i:so], next[j:sn])
		if i+run == so && j+run == sn {
			return hs
		}
		e := strings.LastIndexByte(old[i:i+run], '\n') + 1 // at least the anchor line
		i, j = i+e, j+e
	}
	return nil
}

// resync returns where, within window bytes of their start, o and n agree
// again on a whole line: o[di:] and n[dj:] begin with the same line, the
// lines of o before di and of n before dj being what changed. It tries
// the first resyncTries lines of each side as anchors, nearest first.
// Blank lines are no anchors.
func resync(o, n string, window int) (di, dj int, ok bool) {
	oi, nj := 0, 0
	for t := 0; t < resyncTries && (oi <= window || nj <= window); t++ {
		if nj < len(n) && nj <= window {
			line, end := anchorLine(n, nj)
			if k := indexLine(o, line, window); k >= 0 && (k > 0 || nj > 0) {
				return k, nj, true
			}
			nj = end
		}
		if oi < len(o) && oi <= window {
			line, end := anchorLine(o, oi)
			if k := indexLine(n, line, window); k >= 0 && (k > 0 || oi > 0) {
				return oi, k, true
			}
			oi = end
		}
	}
	return 0, 0, false
}

// anchorLine returns the line of s at i with its line break, or "" if it
// has none or is blank, and where the next line begins.
func anchorLine(s string, i int) (string, int) {
	k := strings.IndexByte(s[i:], '\n')
	if k < 0 {
		return "", len(s)
	}
	line := s[i : i+k+1]
	if strings.TrimRight(line, "\r\n") == "" {
		return "", i + k + 1
	}
	return line, i + k + 1
}

// indexLine returns the offset of the first line of s that is line (with
// its line break) and begins within window bytes of s's start, or -1.
func indexLine(s, line string, window int) int {
	if line == "" {
		return -1
	}
	s = s[:min(len(s), window+len(line))]
	for off := 0; ; {
		k := strings.Index(s[off:], line)
		if k < 0 {
			return -1
		}
		k += off
		if k == 0 || s[k-1] == '\n' {
			return k
		}
		off = k + 1
	}
}

// SameFile reports whether l was built from file and the file named file
// holds l's content now: a byte comparison as the file is read, a chunk
// at a time, so that a reload finding the content in effect costs a read
// and no copy of the list. A file that cannot be read is not the same;
// err says why.
func (l *List) SameFile(file string) (bool, error) {
	if l.file != file {
		return false, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(len(l.src)) {
		return false, err
	}
	buf := make([]byte, 256<<10)
	src := l.src
	for {
		n, err := io.ReadFull(f, buf)
		if n > len(src) || string(buf[:n]) != src[:n] {
			return false, nil
		}
		src = src[n:]
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return len(src) == 0, nil
		case err != nil:
			return false, err
		}
	}
}
