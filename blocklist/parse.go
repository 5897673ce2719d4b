package blocklist

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Problem is one bad line of a blocklist file.
type Problem struct {
	File string
	Line int
	Msg  string
}

// String returns "file:line: message".
func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// ParseError lists every bad line of a rejected file.
type ParseError struct {
	Problems []Problem
}

// maxListed bounds how many problems Error spells out; all of them stay in
// Problems.
const maxListed = 1000

// Error returns the problems, one "file:line: message" per line.
func (e *ParseError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i == maxListed {
			fmt.Fprintf(&b, "\n... and %d more problems", len(e.Problems)-maxListed)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Load reads and parses the blocklist file at path.
func Load(path string) (*List, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a blocklist. file names the source in errors. A file with
// any bad line is rejected whole: the returned error is a *ParseError that
// lists every bad line. On success the list holds every rule in file order.
//
// The format is one rule per line, "pattern [key=value ...]", where pattern
// is "name" (the name and every name under it) or "*.name" (only the names
// under it), and the keys are policy, reason, reason.TAG (the reason in the
// language TAG, such as reason.de), contact, appeal, status, mode,
// expires, countries, except_countries, unknown, publish and notice. "#"
// at the start of a line or after white space (outside quotes) starts a
// comment. An annotation line ("#@ ...", see NotePrefix) is a comment
// too; the list remembers it (see List.Note and List.UnblockNote).
func Parse(file string, data []byte) (*List, error) {
	return parse(file, data, nil)
}

// parse is Parse; sum, if not nil, is the SHA-256 of data, known already.
func parse(file string, data []byte, sum *[sha256.Size]byte) (*List, error) {
	// One string for the whole file: names that are already canonical are
	// substrings of it, which saves an allocation per rule.
	text := string(data)
	l := &List{
		file:    file,
		src:     text,
		id:      listIDs.Add(1),
		nodes:   make(map[string]node, bytes.Count(data, []byte{'\n'})+1),
		attrIDs: map[Attrs]uint32{},
	}
	p := parser{list: l, attrIDs: l.attrIDs}
	n, problems := p.lines(file, text, 0)
	if len(problems) > 0 {
		return nil, &ParseError{Problems: problems}
	}
	if sum != nil {
		l.sum = *sum
	} else {
		l.sum = sha256.Sum256(data)
	}
	l.lines = n
	slices.SortStableFunc(l.expiries, func(a, b int32) int { return cmpExpiry(&l.rules[a], &l.rules[b]) })
	return l, nil
}

// lines parses text, whose first line is line after+1 of file, and
// returns the number of its last line and the bad lines.
func (p *parser) lines(file, text string, after uint32) (uint32, []Problem) {
	var problems []Problem
	lineNo := int(after)
	for len(text) > 0 {
		lineNo++
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		if err := p.line(line, lineNo); err != nil {
			problems = append(problems, Problem{File: file, Line: lineNo, Msg: err.Error()})
		}
	}
	return uint32(lineNo), problems
}

type parser struct {
	list *List
	// attrIDs indexes list.attrs; baseIDs, if not nil, indexes the sets
	// before those in attrIDs (a Reparse's base), looked up first.
	attrIDs, baseIDs map[Attrs]uint32
	// note is the last rule annotation seen, on line noteLine.
	note     Note
	noteLine int
}

// comment remembers the annotation on line lineNo, if it is one.
func (p *parser) comment(line string, lineNo int) {
	if !strings.HasPrefix(line, NotePrefix) {
		return
	}
	n, unblocked, ok := parseNote(line)
	switch {
	case !ok:
	case unblocked != "":
		if p.list.unblocks == nil {
			p.list.unblocks = map[string]Note{}
		}
		p.list.unblocks[unblocked] = n
	default:
		p.note, p.noteLine = n, lineNo
	}
}

// line parses one line and adds its rule, if it has one.
func (p *parser) line(line string, lineNo int) error {
	line = strings.TrimSuffix(line, "\r")
	pattern, rest := nextField(line)
	if pattern == "" {
		return nil
	}
	if pattern[0] == '#' {
		if isAllowDropMarker(line) {
			p.list.allowDrop = true
		}
		p.comment(line, lineNo)
		return nil
	}
	r := rule{line: uint32(lineNo), expSec: noExpiry}
	n, wild, err := parsePattern(pattern)
	if err != nil {
		return err
	}
	r.name, r.wildcard = n, wild
	if next, _ := nextField(rest); strings.Contains(next, ".") && !strings.ContainsAny(next, "=#") {
		// "bad host.example": the second half of the name would be
		// reported as an attribute without a value.
		return fmt.Errorf("invalid host name %q: a name with a space (a rule is one pattern, then key=value attributes)", pattern+" "+next)
	}
	a := Attrs{Status: 403}
	expires, err := parseAttrs(rest, &a)
	if err != nil {
		return err
	}
	if !expires.IsZero() {
		r.expSec, r.expNsec = expires.Unix(), uint32(expires.Nanosecond())
	}
	id, ok := p.baseIDs[a]
	if !ok {
		id, ok = p.attrIDs[a]
	}
	if !ok {
		id = uint32(len(p.list.attrs))
		p.list.attrs = append(p.list.attrs, a)
		p.attrIDs[a] = id
	}
	r.attrs = id
	return p.add(r, pattern)
}

// parsePattern returns the normalized name of a rule pattern ("name" or
// "*.name") and whether it is a wildcard.
func parsePattern(pattern string) (name string, wildcard bool, err error) {
	name, wildcard = strings.CutPrefix(pattern, "*.")
	if strings.ContainsAny(name, "*/:[]") {
		return "", false, fmt.Errorf("invalid pattern %q: want a host name or *.name (no ports, paths or inner wildcards)", pattern)
	}
	n, err := Normalize(name)
	if err != nil {
		return "", false, err
	}
	if wildcard {
		if _, isIP := parseIP(n); isIP {
			return "", false, fmt.Errorf("invalid pattern %q: a wildcard needs a name, not an IP address", pattern)
		}
	}
	return n, wildcard, nil
}

// NormalizePattern returns the normalized form of a rule pattern, as it is
// written by edgeblock block: "FORUM.example." becomes "forum.example",
// "*.Foo.Example" becomes "*.foo.example", Unicode becomes punycode.
func NormalizePattern(pattern string) (string, error) {
	n, wild, err := parsePattern(pattern)
	if err != nil {
		return "", err
	}
	if wild {
		return "*." + n, nil
	}
	return n, nil
}

func (p *parser) add(r rule, pattern string) error {
	l := p.list
	if !l.attrs[r.attrs].Scope.IsZero() {
		i := int32(len(l.rules))
		l.rules = append(l.rules, r)
		if err := l.addScoped(i); err != nil {
			l.rules = l.rules[:i]
			return err
		}
		p.added(i)
		return nil
	}
	nd, ok := l.nodes[r.name]
	if !ok {
		nd = node{zone: -1, wild: -1}
	}
	slot := &nd.zone
	if r.wildcard {
		slot = &nd.wild
	}
	if *slot >= 0 {
		return fmt.Errorf("duplicate rule %q: already on line %d", pattern, l.rules[*slot].line)
	}
	*slot = int32(len(l.rules))
	l.rules = append(l.rules, r)
	l.nodes[r.name] = nd
	p.added(*slot)
	return nil
}

// added records the expiry and annotation of rule i, just added.
func (p *parser) added(i int32) {
	l := p.list
	r := &l.rules[i]
	if r.hasExpiry() {
		l.expiries = append(l.expiries, i)
	}
	if p.noteLine != 0 && p.noteLine == int(r.line)-1 {
		if l.notes == nil {
			l.notes = map[uint32]Note{}
		}
		l.notes[r.line] = p.note
	}
}

// parseAttrs parses "key=value" fields into a and returns the expiry.
func parseAttrs(s string, a *Attrs) (time.Time, error) {
	var expires time.Time
	var seen [len(attrKeys)]bool
	_, err := scanAttrs(s, func(key, val string) error {
		if tag, ok, err := reasonKey(key); ok {
			if err != nil {
				return err
			}
			if _, dup := a.Reasons.Get(tag); dup {
				return fmt.Errorf("attribute %s given twice", key)
			}
			if err := checkControl(key, val); err != nil {
				return err
			}
			if val == "" {
				return fmt.Errorf("attribute %s: empty; leave it out instead", key)
			}
			a.Reasons = a.Reasons.With(tag, val)
			return nil
		}
		i := slices.Index(attrKeys[:], key)
		if i < 0 {
			return unknownAttr(key)
		}
		if seen[i] {
			return fmt.Errorf("attribute %s given twice", key)
		}
		seen[i] = true
		return setAttr(a, &expires, key, val)
	})
	if err != nil {
		return expires, err
	}
	return expires, checkScope(a, seen[slices.Index(attrKeys[:], "unknown")])
}

// checkScope checks the scope attributes of a together: countries= and
// except_countries= exclude each other (parsed into one Scope, the second
// one seen is the error), and unknown= needs one of them.
func checkScope(a *Attrs, unknownSeen bool) error {
	if unknownSeen && a.Scope.countries == "" {
		return errors.New("attribute unknown: needs countries= or except_countries= (a worldwide rule applies to every visitor)")
	}
	return nil
}

// scanAttrs calls fn for each "key=value" field of s, with the value
// unquoted, and returns the trailing comment ("# ..."), if any.
func scanAttrs(s string, fn func(key, val string) error) (comment string, err error) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" || s[0] == '#' {
			return s, nil
		}
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexAny(s, " \t")
		if eq < 0 || (sp >= 0 && sp < eq) {
			field, _ := nextField(s)
			return "", fmt.Errorf("attribute %q: want key=value", field)
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			val, s, err = unquote(s)
			if err != nil {
				return "", fmt.Errorf("attribute %s: %v", key, err)
			}
			if s != "" && s[0] != ' ' && s[0] != '\t' {
				return "", fmt.Errorf("attribute %s: want white space after the closing quote", key)
			}
		} else {
			val, s = nextField(s)
		}
		if err := fn(key, val); err != nil {
			return "", err
		}
	}
}

// setAttr checks val and sets attribute key of a (or *expires).
func setAttr(a *Attrs, expires *time.Time, key, val string) error {
	if err := checkControl(key, val); err != nil {
		return err
	}
	switch key {
	case "policy":
		if err := checkPolicy(val); err != nil {
			return err
		}
		a.Policy = val
	case "reason":
		if val == "" {
			return errors.New(`attribute reason: empty; leave it out instead`)
		}
		a.Reason = val
	case "contact":
		if err := checkContact(val); err != nil {
			return err
		}
		a.Contact = val
	case "appeal":
		if err := checkURL(key, val); err != nil {
			return err
		}
		a.Appeal = val
	case "status":
		switch val {
		case "403":
			a.Status = 403
		case "451":
			a.Status = 451
		default:
			return fmt.Errorf("attribute status=%q: want 403 or 451", val)
		}
	case "mode":
		switch val {
		case "block":
			a.Mode = ModeBlock
		case "report":
			a.Mode = ModeReport
		default:
			return fmt.Errorf("attribute mode=%q: want block or report", val)
		}
	case "expires":
		t, err := ParseExpiry(val)
		if err != nil {
			return err
		}
		*expires = t
	case "countries", "except_countries":
		if a.Scope.countries != "" {
			return errors.New("attributes countries and except_countries: give one of them (a rule applies only in some countries, or everywhere but some)")
		}
		c, err := parseCountries(key, val)
		if err != nil {
			return err
		}
		a.Scope.countries, a.Scope.except = c, key == "except_countries"
	case "unknown":
		switch val {
		case "allow":
			a.Scope.unknown = UnknownAllow
		case "block":
			a.Scope.unknown = UnknownBlock
		default:
			return fmt.Errorf("attribute unknown=%q: want allow or block", val)
		}
	case "publish":
		switch val {
		case "yes":
			a.Publish = true
		case "no":
			a.Publish = false
		default:
			return fmt.Errorf("attribute publish=%q: want yes or no", val)
		}
	case "notice":
		if err := checkURL(key, val); err != nil {
			return err
		}
		a.Notice = val
	}
	return nil
}

// maxExpiry is the last instant an expiry can be. The first is just after
// 0001-01-01T00:00:00Z, time.Time's zero value, which means "never" in
// Rule.Expires.
var maxExpiry = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

// expiryWant is the end of every expires= error.
const expiryWant = "want an RFC 3339 date (2027-01-01) or date-time (2027-01-01T12:00:00Z), from year 0001 to 9999"

// checkControl rejects an attribute value with a control character other
// than tab: a rule is one line, so a line break in a value given to
// "edgeblock block" would start a rule of its own, and the value is shown
// to visitors.
func checkControl(key, val string) error {
	for _, r := range val {
		if r != '\t' && unicode.IsControl(r) {
			return fmt.Errorf("attribute %s: contains a line break or another control character (%U); a rule is one line", key, r)
		}
	}
	return nil
}

// ParseExpiry parses the value of expires=: an RFC 3339 date (YYYY-MM-DD,
// meaning 00:00 UTC of that day) or date-time
// (YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), with an upper-case T
// and Z, a fraction of up to nine digits and an offset under 24 hours).
// The instant must lie within the years 0001 to 9999 in UTC and must not
// be 0001-01-01T00:00:00Z, the zero time, which Rule.Expires uses for
// "never". A date in the past is valid: the rule has expired. Leap seconds
// (:60) are rejected, since Go's time has none.
func ParseExpiry(v string) (time.Time, error) {
	t, err := parseExpiry(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("attribute expires=%q: %v; %s", v, err, expiryWant)
	}
	return t, nil
}

func parseExpiry(v string) (time.Time, error) {
	var t time.Time
	var err error
	switch {
	case len(v) == len(time.DateOnly) && isDate(v):
		t, err = time.Parse(time.DateOnly, v)
	case len(v) > len(time.DateOnly) && isDate(v[:len(time.DateOnly)]) && v[len(time.DateOnly)] == 'T':
		if err := checkTimeSyntax(v[len(time.DateOnly)+1:]); err != nil {
			return t, err
		}
		t, err = time.Parse(time.RFC3339Nano, v)
	default:
		return t, errors.New("not a date")
	}
	if err != nil {
		// time.Parse says which field is out of range ("day out of range").
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			return t, errors.New(strings.TrimPrefix(pe.Message, ": "))
		}
		return t, err
	}
	switch {
	case t.Before(time.Time{}):
		return t, errors.New("out of range: before 0001-01-01 in UTC")
	case t.IsZero():
		return t, errors.New("out of range: 0001-01-01T00:00:00Z is the zero time, which means no expiry; a rule that expired that long ago never applies, so remove it")
	case t.After(maxExpiry):
		return t, errors.New("out of range: after 9999-12-31T23:59:59.999999999Z in UTC")
	}
	return t, nil
}

// isDate reports whether s has the shape YYYY-MM-DD.
func isDate(s string) bool {
	return len(s) == 10 && digits(s[0:4]) && s[4] == '-' && digits(s[5:7]) && s[7] == '-' && digits(s[8:10])
}

// checkTimeSyntax checks the part of an RFC 3339 date-time after the T,
// "HH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)", for what time.Parse lets through
// (one-digit fields, a comma before the fraction, offsets of 24 hours or
// more or with 60 minutes) and for leap seconds, which it rejects with a
// less helpful message.
func checkTimeSyntax(s string) error {
	if len(s) < 8 || !digits(s[0:2]) || s[2] != ':' || !digits(s[3:5]) || s[5] != ':' || !digits(s[6:8]) {
		return errors.New("time of day: want HH:MM:SS")
	}
	if s[6:8] == "60" {
		return errors.New("second 60 (a leap second) is not supported; write 23:59:59 or the next second")
	}
	s = s[8:]
	if strings.HasPrefix(s, ".") {
		n := 1
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return errors.New("fraction of a second: want 1 to 9 digits after the dot")
		}
		s = s[n:]
	}
	switch {
	case s == "Z":
		return nil
	case len(s) == 6 && (s[0] == '+' || s[0] == '-') && digits(s[1:3]) && s[3] == ':' && digits(s[4:6]):
		if s[1:3] > "23" || s[4:6] > "59" {
			return fmt.Errorf("offset %s: want hours 00 to 23 and minutes 00 to 59", s)
		}
		return nil
	}
	return fmt.Errorf("offset %q: want Z, +HH:MM or -HH:MM", s)
}

// digits reports whether s is made of ASCII digits only.
func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func checkPolicy(v string) error { return checkURL("policy", v) }

// checkURL checks that v is an absolute http or https URL.
func checkURL(key, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("attribute %s=%q: want an absolute http or https URL", key, v)
	}
	return nil
}

// checkContact checks that v is an absolute http(s) URL or a mailto: URL
// with an address.
func checkContact(v string) error {
	if addr, ok := strings.CutPrefix(v, "mailto:"); ok {
		if u, err := url.Parse(v); err == nil && strings.Contains(addr, "@") && !strings.ContainsAny(addr, " <>\"") && u.Opaque != "" {
			return nil
		}
		return fmt.Errorf("attribute contact=%q: want mailto:name@example.com or an absolute http or https URL", v)
	}
	if err := checkURL("contact", v); err != nil {
		return fmt.Errorf("attribute contact=%q: want an absolute http or https URL or mailto:name@example.com", v)
	}
	return nil
}

// unknownAttr is the error for an attribute key the format does not have.
func unknownAttr(key string) error {
	return fmt.Errorf("unknown attribute %q (want policy, reason, reason.LANG, contact, appeal, status, mode, expires, countries, except_countries, unknown, publish or notice)", key)
}

// nextField returns the first white-space separated field of s and the rest.
func nextField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// unquote reads a double-quoted string at the start of s, where \" and \\
// are the only escapes, and returns it with the rest of s.
func unquote(s string) (val, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				b.WriteByte(s[i+1])
				i++
				continue
			}
			return "", "", errors.New(`bad escape: only \" and \\ are allowed`)
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("missing closing quote")
}

// quote returns v as a quoted attribute value that unquote reads back.
func quote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// formatAttr returns key=value, quoting value when it needs quotes.
func formatAttr(key, value string) string {
	if value == "" || strings.ContainsAny(value, " \t\"\\#") {
		return key + "=" + quote(value)
	}
	return key + "=" + value
}
