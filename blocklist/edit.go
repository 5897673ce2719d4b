package blocklist

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
)

// EditResult says what Block or Unblock did to a list.
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

// BlockOptions modify Block.
type BlockOptions struct {
	// Replace rewrites an existing rule with only the given attributes,
	// instead of merging them into it.
	Replace bool
	// Note, if not nil, is written as the rule's annotation line, replacing
	// the one it had.
	Note *Note
}

// NoRuleError is returned by Unblock when the list has no rule with the
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

// Block returns data with a rule for pattern set to the given "key=value"
// attributes. pattern is written in normalized form. If the list has a
// rule with that pattern, the given attributes are merged into it: they
// replace the values it has, "key=" (an empty value) removes the attribute
// so its default applies, and the others stay; with opt.Replace the rule
// gets exactly the given attributes. Otherwise the rule is added at the
// end. Comments and the order of the other lines are kept. An unblock
// record of the pattern is dropped. When the rule already has those
// attributes, out is nil and res.Kind is "". The old and the new file are
// parsed whole, so a bad value (or a file that was already bad) is
// reported as it would be on load.
func Block(file string, data []byte, pattern string, args []string, opt BlockOptions) (out []byte, res EditResult, err error) {
	pat, err := NormalizePattern(pattern)
	if err != nil {
		return nil, res, err
	}
	res.Pattern = pat
	given, err := parseArgs(args)
	if err != nil {
		return nil, res, err
	}
	old, err := Parse(file, data)
	if err != nil {
		return nil, res, err
	}
	cur, exists := old.Lookup(pat)
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
		return nil, res, fmt.Errorf("%s: %v", pattern, err)
	}
	if exists {
		res.Attrs = AttrChanges(cur, nr)
		if len(res.Attrs) == 0 {
			res.NewLine, res.Line = res.OldLine, cur.Line
			return nil, res, nil
		}
		res.Kind = Changed
		from := start
		if opt.Note != nil {
			from = ruleNoteAbove(data, start)
		}
		out = append(out, data[:from]...)
		if opt.Note != nil {
			out = append(out, opt.Note.Line()+"\n"...)
		}
		out = append(out, res.NewLine...)
		out = append(out, data[end:]...)
	} else {
		res.Kind = Added
		out = slices.Clip(data)
		if opt.Note != nil {
			out = appendLine(out, opt.Note.Line())
		}
		out = appendLine(out, res.NewLine)
	}
	out = dropUnblockNote(out, pat)
	l, err := Parse(file, out)
	if err != nil {
		return nil, res, err
	}
	r, _ := l.Lookup(pat)
	res.Line = r.Line
	return out, res, nil
}

// Unblock returns data without the rule whose pattern is pattern ("name"
// or "*.name", normalized first) and without its annotation line. If note
// is not nil, an unblock record (see NotePrefix) is appended at the end,
// replacing any earlier one of the same pattern. When the list has no such
// rule, the error is a *NoRuleError that names the rule that covers the
// name at time now, if any.
func Unblock(file string, data []byte, pattern string, note *Note, now time.Time) (out []byte, res EditResult, err error) {
	pat, err := NormalizePattern(pattern)
	if err != nil {
		return nil, res, err
	}
	res.Pattern = pat
	old, err := Parse(file, data)
	if err != nil {
		return nil, res, err
	}
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
		return nil, res, e
	}
	res.Kind, res.Line = Removed, cur.Line
	start, end := lineSpan(data, cur.Line)
	res.OldLine = strings.TrimSuffix(string(data[start:end]), "\r")
	if end < len(data) {
		end++ // the line break
	}
	out = append(append(out, data[:ruleNoteAbove(data, start)]...), data[end:]...)
	out = dropUnblockNote(out, pat)
	if note != nil {
		out = appendLine(out, note.UnblockLine(pat))
	}
	if _, err := Parse(file, out); err != nil {
		return nil, res, err
	}
	return out, res, nil
}
