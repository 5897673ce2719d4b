package blocklist

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// EditResult says what ApplyEdit did to a list.
type EditResult struct {
	// Kind is Added, Changed or Removed; "" when the rule was already as
	// asked and nothing was written.
	Kind ChangeKind
	// Pattern is the normalized pattern of the rule.
	Pattern string
	// OldLine and NewLine are the rule's line before and after the edit;
	// "" where there is none.
	OldLine, NewLine string
	// Line is the rule's line number: in the new file, or for Removed in
	// the old one.
	Line int
	// Attrs lists, for Changed, the attributes that changed.
	Attrs []AttrChange
}

// blockOptions modify block.
type blockOptions struct {
	// Replace rewrites an existing rule with only the given attributes,
	// instead of merging them into it.
	Replace bool
	// Note, if not nil, is written as the rule's annotation line, replacing
	// the one it had.
	Note *Note
	// InPlace: see Edit.InPlace.
	InPlace bool
}

// noteRoom is the room the line of n takes (none for nil).
func noteRoom(n *Note) int {
	if n == nil {
		return 0
	}
	return len(n.Line()) + 1
}

// NoRuleError is returned by ApplyEdit for an unblock when the list has no rule with the
// pattern.
type NoRuleError struct {
	File, Pattern string
	// CoveredBy is the rule that applies to the name now, if any (a rule of
	// a parent name or a wildcard).
	CoveredBy *Rule
	// Other is the rule of the same name with the other form ("*.name"
	// for "name" and the reverse), if any.
	Other *Rule
}

// Error describes what the list has instead, and what to do.
func (e *NoRuleError) Error() string {
	s := fmt.Sprintf("%s has no rule of its own in %s", e.Pattern, e.File)
	switch {
	case e.CoveredBy != nil:
		c := e.CoveredBy
		verb := "blocked"
		if c.Mode == ModeReport {
			verb = "reported (mode=report)"
		}
		s += fmt.Sprintf("; it is %s by %s (line %d): unblock that rule instead (edgeblock unblock '%s'), then block again the names under it that should stay blocked (no rule can make an exception to a block)",
			verb, c.Pattern(), c.Line, c.Pattern())
	case e.Other != nil:
		s += fmt.Sprintf("; there is a rule %s (line %d)", e.Other.Pattern(), e.Other.Line)
	default:
		s += "; no rule applies to it, so it is not blocked"
	}
	return s
}

// kv is one attribute as written: key and unquoted value.
type kv struct{ key, val string }

// parseArgs parses "key=value" arguments. An empty value is kept: it means
// "remove the attribute".
func parseArgs(args []string) ([]kv, error) {
	var out []kv
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("attribute %q: want key=value", a)
		}
		if tag, ok, err := reasonKey(k); ok {
			if err != nil {
				return nil, err
			}
			k = reasonPrefix + tag
		} else if !slices.Contains(attrKeys[:], k) {
			return nil, unknownAttr(k)
		}
		if slices.ContainsFunc(out, func(x kv) bool { return x.key == k }) {
			return nil, fmt.Errorf("attribute %s given twice", k)
		}
		if err := checkControl(k, v); err != nil {
			return nil, err
		}
		out = append(out, kv{k, v})
	}
	return out, nil
}

// formatLine returns a rule line: pattern, the attributes with a value
// (quoted as needed), and the trailing comment.
func formatLine(pattern string, attrs []kv, comment string) string {
	var b strings.Builder
	b.WriteString(pattern)
	for _, a := range attrs {
		if a.val != "" {
			b.WriteByte(' ')
			b.WriteString(formatAttr(a.key, a.val))
		}
	}
	if comment != "" {
		b.WriteByte(' ')
		b.WriteString(comment)
	}
	return b.String()
}

// lookupScoped returns the rule a block of pattern with the attributes
// given edits: with countries= or except_countries= among them, the rule
// of the pattern with that scope (a French order beside a worldwide rule
// is a rule of its own); otherwise the one Lookup returns.
func (l *List) lookupScoped(pattern string, given []kv) (Rule, bool) {
	var a Attrs
	for _, g := range given {
		if (g.key == "countries" || g.key == "except_countries") && g.val != "" {
			if setAttr(&a, new(time.Time), g.key, g.val) != nil {
				return l.Lookup(pattern)
			}
		}
	}
	if a.Scope.IsZero() {
		return l.Lookup(pattern)
	}
	name, wild := strings.CutPrefix(pattern, "*.")
	if i := l.find(name, wild, a.Scope); i >= 0 {
		return l.rule(i), true
	}
	return Rule{}, false
}

// parseRule parses one rule line on its own.
func parseRule(line string) (Rule, error) {
	l := &List{nodes: map[string]node{}}
	p := parser{list: l, attrIDs: map[Attrs]uint32{}}
	if err := p.line(line, 1); err != nil {
		return Rule{}, err
	}
	if len(l.rules) != 1 {
		return Rule{}, fmt.Errorf("%q is not a rule", line)
	}
	return l.rule(0), nil
}

// lineSpan returns the byte range of line n (1-based) of data, without
// its line break.
func lineSpan(data []byte, n int) (start, end int) {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data[start:], '\n')
		if j < 0 {
			return len(data), len(data)
		}
		start += j + 1
	}
	end = len(data)
	if j := bytes.IndexByte(data[start:], '\n'); j >= 0 {
		end = start + j
	}
	return start, end
}

// ruleNoteAbove returns the start of the rule annotation line directly
// above the line starting at start, or start if there is none.
func ruleNoteAbove(data []byte, start int) int {
	if start == 0 {
		return start
	}
	prev := bytes.LastIndexByte(data[:start-1], '\n') + 1
	if _, unblocked, ok := parseNote(string(data[prev : start-1])); ok && unblocked == "" {
		return prev
	}
	return start
}

// dropUnblockNote returns data without the unblock records of pattern.
func dropUnblockNote(data []byte, pattern string) []byte {
	if !bytes.Contains(data, []byte(" unblocked "+pattern)) {
		return data
	}
	out := data[:0:0]
	rest := data
	for len(rest) > 0 {
		line := rest
		next := len(rest)
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, next = rest[:i], i+1
		}
		keep := true
		if bytes.HasPrefix(line, []byte(NotePrefix)) {
			if _, u, ok := parseNote(string(line)); ok && u == pattern {
				keep = false
			}
		}
		if keep {
			out = append(out, rest[:next]...)
		}
		rest = rest[next:]
	}
	return out
}

// appendLine appends line and a line break to data, adding the line break
// a last line may lack first.
func appendLine(data []byte, line string) []byte {
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	return append(append(data, line...), '\n')
}

// block returns data, the list old as written, with a rule for pattern
// set to the given "key=value" attributes (see ApplyEdit). pattern is written in normalized form. If the list has a
// rule with that pattern, the given attributes are merged into it: they
// replace the values it has, "key=" (an empty value) removes the attribute
// so its default applies, and the others stay; with opt.Replace the rule
// gets exactly the given attributes. Otherwise the rule is added at the
// end. Comments and the order of the other lines are kept. An unblock
// record of the pattern is dropped. When the rule already has those
// attributes, out is nil, next is old and res.Kind is "". The new file is
// parsed by parse (next), so a bad value is reported as it would be on
// load; ApplyEdit says how.
func block(data []byte, old *List, pattern string, args []string, opt blockOptions, parse func([]byte) (*List, error)) (out []byte, next *List, res EditResult, err error) {
	pat, err := NormalizePattern(pattern)
	if err != nil {
		return nil, nil, res, err
	}
	res.Pattern = pat
	given, err := parseArgs(args)
	if err != nil {
		return nil, nil, res, err
	}
	cur, exists := old.lookupScoped(pat, given)
	attrs := given
	comment := ""
	var start, end int
	if exists {
		start, end = lineSpan(data, cur.Line)
		res.OldLine = strings.TrimSuffix(string(data[start:end]), "\r")
		if !opt.Replace {
			_, rest := nextField(res.OldLine)
			attrs = nil
			comment, _ = scanAttrs(rest, func(k, v string) error {
				if tag, ok, err := reasonKey(k); ok && err == nil {
					k = reasonPrefix + tag // reason.DE and reason.de are one key
				}
				attrs = append(attrs, kv{k, v})
				return nil
			})
			for _, g := range given {
				if i := slices.IndexFunc(attrs, func(a kv) bool { return a.key == g.key }); i >= 0 {
					attrs[i].val = g.val
				} else {
					attrs = append(attrs, g)
				}
			}
		}
	}
	res.NewLine = formatLine(pat, attrs, comment)
	nr, err := parseRule(res.NewLine)
	if err != nil {
		return nil, nil, res, fmt.Errorf("%s: %v", pattern, err)
	}
	if exists {
		res.Attrs = AttrChanges(cur, nr)
		if len(res.Attrs) == 0 {
			res.NewLine, res.Line = res.OldLine, cur.Line
			return nil, old, res, nil
		}
		res.Kind = Changed
		from := start
		if opt.Note != nil {
			from = ruleNoteAbove(data, start)
		}
		// Sized once: the list is copied once, not grown by copies.
		out = make([]byte, 0, len(data)+noteRoom(opt.Note)+len(res.NewLine)+1)
		out = append(out, data[:from]...)
		if opt.Note != nil {
			out = append(out, opt.Note.Line()+"\n"...)
		}
		out = append(out, res.NewLine...)
		out = append(out, data[end:]...)
	} else {
		res.Kind = Added
		// A new rule goes at the end: into data's spare capacity when the
		// caller gave it (opt.InPlace), else into a copy.
		out = data
		if !opt.InPlace || cap(data)-len(data) < len(res.NewLine)+noteRoom(opt.Note)+2 {
			out = slices.Clip(data)
		}
		if opt.Note != nil {
			out = appendLine(out, opt.Note.Line())
		}
		out = appendLine(out, res.NewLine)
	}
	out = dropUnblockNote(out, pat)
	next, err = parse(out)
	if err != nil {
		return nil, nil, res, err
	}
	r, _ := next.lookupScoped(pat, given)
	res.Line = r.Line
	return out, next, res, nil
}

// unblock returns data, the list old as written, without the rule whose
// pattern is pattern ("name" or "*.name", normalized first) and without its annotation line. If note
// is not nil, an unblock record (see NotePrefix) is appended at the end,
// replacing any earlier one of the same pattern. When the list has no such
// rule, the error is a *NoRuleError that names the rule that covers the
// name at time now, if any. The new file is parsed by parse (next).
func unblock(file string, data []byte, old *List, pattern string, note *Note, now time.Time, parse func([]byte) (*List, error)) (out []byte, next *List, res EditResult, err error) {
	pat, err := NormalizePattern(pattern)
	if err != nil {
		return nil, nil, res, err
	}
	res.Pattern = pat
	cur, ok := old.Lookup(pat)
	if !ok {
		e := &NoRuleError{File: file, Pattern: pat}
		name, wild := strings.CutPrefix(pat, "*.")
		other := "*." + name
		if wild {
			other = name
		} else if r, ok := old.Match(name, now); ok {
			e.CoveredBy = &r
		}
		if r, ok := old.Lookup(other); ok {
			e.Other = &r
		}
		return nil, nil, res, e
	}
	res.Kind, res.Line = Removed, cur.Line
	start, end := lineSpan(data, cur.Line)
	res.OldLine = strings.TrimSuffix(string(data[start:end]), "\r")
	if end < len(data) {
		end++ // the line break
	}
	record := ""
	if note != nil {
		record = note.UnblockLine(pat)
	}
	// Sized once, with room for the record: the list is copied once.
	out = make([]byte, 0, len(data)+len(record)+2) // not nil when empty: nil means unchanged
	out = append(append(out, data[:ruleNoteAbove(data, start)]...), data[end:]...)
	out = dropUnblockNote(out, pat)
	if note != nil {
		out = appendLine(out, record)
	}
	if next, err = parse(out); err != nil {
		return nil, nil, res, err
	}
	return out, next, res, nil
}

// Edit is one change to a list, as the block and unblock commands and the
// admin API's POST /v1/block and /v1/unblock ask for it.
type Edit struct {
	// Unblock removes the rule of Pattern (and its annotation); else the
	// rule of Pattern is set to Args.
	Unblock bool
	// Pattern is "name" or "*.name", normalized before use.
	Pattern string
	// Args are a block's "key=value" attributes. They are merged into an
	// existing rule: a value replaces the rule's, "key=" (an empty value)
	// removes the attribute so its default applies, and the others stay;
	// with Replace the rule gets exactly Args.
	Args    []string
	Replace bool
	// InPlace lets a block that adds a rule write its lines into data's
	// spare capacity (beyond its length) instead of copying the list, when
	// there is room: out then shares data's array. data up to its length
	// is never changed. Set it only when that room is the caller's own:
	// data is a buffer no one else appends to, given to one edit at a
	// time (as EditFile gives each call of its edit function a new read
	// of the file with room after it).
	InPlace bool
	// Note, if not nil, is recorded with the edit: for a block as the
	// rule's annotation line (replacing the one it had), for an unblock as
	// an unblock record (see NotePrefix) at the end of the list.
	Note *Note
}

// ListError is returned by ApplyEdit when the list as it is does not
// parse: no edit is made to a list that is already bad. Err is the parse
// error; Error returns its text unchanged.
type ListError struct{ Err error }

func (e *ListError) Error() string { return e.Err.Error() }
func (e *ListError) Unwrap() error { return e.Err }

// ApplyEdit is the one guarded edit of a blocklist: the file and fleet
// commands and the admin API all call it, so that they accept and refuse
// the same edits. It parses data (the list as it is, named file in
// errors), applies e, and checks the result against the drop guard
// (CheckDrop with maxDrop at now), the parsed data being the rules in
// effect. It returns the new content, in which comments, blank lines and
// the order of the other lines are kept and the changed rule is written
// in normalized form (added at the end when new), and what changed.
//
// When a block finds the rule already as asked, out is nil and res.Kind
// is "": there is nothing to write. Errors: a *ListError when data does
// not parse; a *NoRuleError for an unblock of a pattern without a rule of
// its own; a *DropError when the guard refuses the result; otherwise the
// edit's own problem (a bad pattern or attribute, or a result that does
// not parse), reported as the parser reports it on load. On any error out
// is nil, and res says what the edit would have done as far as it got.
func ApplyEdit(file string, data []byte, e Edit, maxDrop float64, now time.Time) (out []byte, res EditResult, err error) {
	if len(data) >= scanEditMin {
		if out, res, err, ok := scanEdit(file, data, e, maxDrop, now); ok {
			return out, res, err
		}
	}
	old, err := Parse(file, data)
	if err != nil {
		return nil, res, &ListError{err}
	}
	parse := func(out []byte) (*List, error) { return Reparse(old, file, out) }
	var next *List
	if e.Unblock {
		out, next, res, err = unblock(file, data, old, e.Pattern, e.Note, now, parse)
	} else {
		out, next, res, err = block(data, old, e.Pattern, e.Args, blockOptions{Replace: e.Replace, Note: e.Note, InPlace: e.InPlace}, parse)
	}
	if err != nil || out == nil {
		return nil, res, err
	}
	if err := CheckDrop(next, old, maxDrop, now); err != nil {
		return nil, res, err
	}
	return out, res, nil
}

// scanEditMin is the size from which ApplyEdit edits a list by scanning
// it (scanEdit) rather than parsing it whole.
var scanEditMin = 1 << 20

// scanEdit is ApplyEdit without parsing the list whole: it finds the
// lines of the pattern by a scan of the bytes, parses only those (the
// rules an edit of the pattern can meet: itself, its other scopes) and
// the new rule, and checks the drop guard on the change. ok is false when
// that is not enough to answer as ApplyEdit does on the whole list (any
// error, since errors name what the whole list has; a drop that needs the
// count of the list's block rules and a lower bound does not settle it):
// then ApplyEdit parses the list whole. The lines scanEdit does not parse
// are taken to be good: a list that is bad elsewhere gets the edit, and
// the edge refuses the result on reload as it refuses the list already.
func scanEdit(file string, data []byte, e Edit, maxDrop float64, now time.Time) (out []byte, res EditResult, err error, ok bool) {
	pat, err := NormalizePattern(e.Pattern)
	if err != nil {
		return nil, res, nil, false
	}
	old, lines, err := patternListLines(file, data, pat)
	if err != nil {
		return nil, res, nil, false
	}
	// The pattern's lines of the result: a scan of what the edit changed.
	parse := func(out []byte) (*List, error) { return patternListAfter(file, data, out, lines, pat) }
	var next *List
	if e.Unblock {
		if _, found := old.Lookup(pat); !found {
			return nil, res, nil, false // the NoRuleError names what covers the name
		}
		out, next, res, err = unblock(file, data, old, pat, e.Note, now, parse)
	} else {
		out, next, res, err = block(data, old, pat, e.Args, blockOptions{Replace: e.Replace, Note: e.Note, InPlace: e.InPlace}, parse)
	}
	if err != nil {
		return nil, res, nil, false
	}
	if out == nil {
		return nil, res, nil, true
	}
	if d := next.dropped(old, now); d > 0 && !scanAllowDrop(unsafe.String(unsafe.SliceData(out), len(out))) && !manyBlockRules(data, d, maxDrop) {
		return nil, res, nil, false
	}
	return out, res, nil, true
}

// patternList parses the lines of data (named file) whose pattern is pat
// (in any spelling that normalizes to it), with their line numbers, and
// nothing else: a list of pat's rules alone.
func patternList(file string, data []byte, pat string) (*List, error) {
	l, _, err := patternListLines(file, data, pat)
	return l, err
}

// patternListLines is patternList, also returning where the lines are.
func patternListLines(file string, data []byte, pat string) (*List, []patLine, error) {
	lines := scanPatternLines(data, pat)
	l, err := parsePatternLines(file, data, lines)
	return l, lines, err
}

// splitScanMin is the size from which scanPatternLines scans in two
// halves at once.
var splitScanMin = 4 << 20

// scanPatternLines is patternLines of the whole of data. From
// splitScanMin bytes, with more than one CPU to run on, it scans the two
// halves of data (split at a line break) at once: the edit command's scan
// of a large list is most of its CPU time.
func scanPatternLines(data []byte, pat string) []patLine {
	mid := len(data) / 2
	if i := bytes.IndexByte(data[mid:], '\n'); i >= 0 {
		mid += i + 1
	}
	if len(data) < splitScanMin || runtime.GOMAXPROCS(0) < 2 || mid >= len(data) {
		lines, _ := patternLines(nil, data, pat, 0, len(data), 1)
		return lines
	}
	var second []patLine
	done := make(chan struct{})
	go func() {
		defer close(done)
		second, _ = patternLines(nil, data, pat, mid, len(data), 1)
	}()
	first, after := patternLines(nil, data, pat, 0, mid, 1)
	<-done
	for _, l := range second {
		l.no += after - 1
		first = append(first, l)
	}
	return first
}

// patLine is a line of a rule of the pattern: data[off:end] (without the
// line break) is line no.
type patLine struct{ off, end, no int }

// patternLines appends to dst the lines of data[from:to] (whole lines, the
// first numbered first) whose pattern is pat. after is the number the line
// after data[from:to] has.
func patternLines(dst []patLine, data []byte, pat string, from, to, first int) (_ []patLine, after int) {
	lineNo := first - 1
	for off := from; off < to; {
		lineNo++
		end, next := to, to
		if i := bytes.IndexByte(data[off:to], '\n'); i >= 0 {
			end, next = off+i, off+i+1
		}
		if isPatternLine(data[off:end], pat) {
			dst = append(dst, patLine{off, end, lineNo})
		}
		off = next
	}
	return dst, lineNo + 1
}

// parsePatternLines parses lines of data, in file order, as a list.
func parsePatternLines(file string, data []byte, lines []patLine) (*List, error) {
	l := &List{file: file, nodes: map[string]node{}, attrIDs: map[Attrs]uint32{}}
	p := parser{list: l, attrIDs: l.attrIDs}
	for _, pl := range lines {
		if err := p.line(string(data[pl.off:pl.end]), pl.no); err != nil {
			return nil, &ParseError{Problems: []Problem{{File: file, Line: pl.no, Msg: err.Error()}}}
		}
	}
	return l, nil
}

// patternListAfter is patternList of out, an edit of data whose pattern
// lines are lines: it scans only the places where out differs from data
// (see changedHunks), and takes the pattern's lines elsewhere from lines,
// moved. When the places are too many or too large, it scans out whole.
func patternListAfter(file string, data, out []byte, lines []patLine, pat string) (*List, error) {
	hs := changedHunks(unsafe.String(unsafe.SliceData(data), len(data)), unsafe.String(unsafe.SliceData(out), len(out)))
	if hs == nil {
		return patternList(file, out, pat)
	}
	var next []patLine
	k, bytesBy, linesBy := 0, 0, 0
	oldNo, counted := 1, 0 // line number in data at byte counted
	for _, h := range hs {
		oldNo += bytes.Count(data[counted:h.os], []byte{'\n'})
		counted = h.os
		for ; k < len(lines) && lines[k].off < h.os; k++ {
			next = append(next, patLine{lines[k].off + bytesBy, lines[k].end + bytesBy, lines[k].no + linesBy})
		}
		for ; k < len(lines) && lines[k].off < h.oe; k++ {
		}
		next, _ = patternLines(next, out, pat, h.ns, h.ne, oldNo+linesBy)
		bytesBy += (h.ne - h.ns) - (h.oe - h.os)
		linesBy += int(countLines(string(out[h.ns:h.ne]))) - int(countLines(string(data[h.os:h.oe])))
	}
	for ; k < len(lines); k++ {
		next = append(next, patLine{lines[k].off + bytesBy, lines[k].end + bytesBy, lines[k].no + linesBy})
	}
	return parsePatternLines(file, out, next)
}

// isPatternLine reports whether line is a rule whose pattern normalizes to
// pat, without allocating when its pattern is already in normalized form.
func isPatternLine(line []byte, pat string) bool {
	line = bytes.TrimSuffix(line, []byte("\r"))
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	j, plain := i, true
	for ; j < len(line); j++ {
		k := byteKind[line[j]]
		if k == kindSpace {
			break
		}
		plain = plain && k == kindPlain
	}
	f := line[i:j]
	if len(f) == 0 || f[0] == '#' {
		return false
	}
	if last := f[len(f)-1]; plain && last != '.' && !('0' <= last && last <= '9') && f[0] != '.' {
		return string(f) == pat
	}
	n, err := NormalizePattern(string(f))
	return err == nil && n == pat
}

// byteKind sorts the bytes of a rule's pattern for isPatternLine: white
// space ends it; a pattern of plain bytes alone may be in normalized form.
var byteKind = func() (k [256]uint8) {
	k[' '], k['\t'] = kindSpace, kindSpace
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyz0123456789-.*") {
		k[c] = kindPlain
	}
	return k
}()

const (
	kindOther = iota
	kindPlain
	kindSpace
)

// manyBlockRules reports whether data, a list taken to parse, has so many
// block rules in effect that dropping dropped of them is within maxDrop
// and not all of them: it counts the rule lines that set neither mode= nor
// expires= (each a block rule in effect), and stops when that is enough.
// false means the count did not settle it.
func manyBlockRules(data []byte, dropped int, maxDrop float64) bool {
	n := 0
	enough := func() bool { return n > dropped && float64(dropped)/float64(n) <= maxDrop }
	for off := 0; off < len(data) && !enough(); {
		end, next := len(data), len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			end, next = off+i, off+i+1
		}
		line := bytes.TrimLeft(data[off:end], " \t\r")
		if len(line) > 0 && line[0] != '#' && !bytes.Contains(line, []byte("mode=")) && !bytes.Contains(line, []byte("expires=")) {
			n++
		}
		off = next
	}
	return enough()
}
