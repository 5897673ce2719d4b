package blocklist

import (
	"crypto/sha256"
	"encoding/hex"
	"iter"
	"sort"
	"strings"
	"time"
)

// rule is the compact stored form of a Rule: a million of them must fit in
// well under 150 bytes each, map slot included.
type rule struct {
	name     string
	expires  int64 // Unix nanoseconds; 0 means never
	line     uint32
	attrs    uint32
	wildcard bool
}

// node holds the rules about one name: the zone rule ("name") and the
// wildcard rule ("*.name"), as indexes into List.rules, or -1.
type node struct {
	zone, wild int32
}

// List is an immutable, parsed blocklist. The zero value is not usable; an
// empty list is returned by Parse on an empty file. A List is safe for
// concurrent use.
type List struct {
	file     string
	sum      [sha256.Size]byte
	rules    []rule
	attrs    []Attrs
	nodes    map[string]node
	expiries []int64 // sorted expiry times of all rules that have one
	// notes holds the annotations of the rules that have one, by line; nil
	// when none has, so that rules without one cost nothing.
	notes map[uint32]Note
	// unblocks holds the unblock records by pattern; nil when there are none.
	unblocks map[string]Note
	// allowDrop is set when the file has the AllowDropMarker line.
	allowDrop bool
}

// File returns the name of the file the list was parsed from.
func (l *List) File() string { return l.file }

// SHA256 returns the hex SHA-256 of the file content the list was parsed from.
func (l *List) SHA256() string { return hex.EncodeToString(l.sum[:]) }

// Len returns the number of rules.
func (l *List) Len() int { return len(l.rules) }

// Attrs returns the distinct attribute sets of the list, indexed by
// Rule.AttrsID. The caller must not modify the slice.
func (l *List) Attrs() []Attrs { return l.attrs }

func (l *List) rule(i int32) Rule {
	r := &l.rules[i]
	out := Rule{Name: r.name, Wildcard: r.wildcard, Line: int(r.line), AttrsID: int(r.attrs), Attrs: l.attrs[r.attrs]}
	if r.expires != 0 {
		out.Expires = time.Unix(0, r.expires)
	}
	return out
}

// Rules yields every rule in file order.
func (l *List) Rules() iter.Seq[Rule] {
	return func(yield func(Rule) bool) {
		for i := range l.rules {
			if !yield(l.rule(int32(i))) {
				return
			}
		}
	}
}

// Note returns the annotation of r (the "#@" line directly above it), if it
// has one. r must come from l.
func (l *List) Note(r Rule) (Note, bool) {
	n, ok := l.notes[uint32(r.Line)]
	return n, ok
}

// UnblockNote returns the unblock record of pattern ("name" or "*.name", in
// normalized form), if the file has one.
func (l *List) UnblockNote(pattern string) (Note, bool) {
	n, ok := l.unblocks[pattern]
	return n, ok
}

// Lookup returns the rule with the given pattern ("name" or "*.name", in
// normalized form), if the list has one.
func (l *List) Lookup(pattern string) (Rule, bool) {
	name, wild := strings.CutPrefix(pattern, "*.")
	n, ok := l.nodes[name]
	if !ok {
		return Rule{}, false
	}
	i := n.zone
	if wild {
		i = n.wild
	}
	if i < 0 {
		return Rule{}, false
	}
	return l.rule(i), true
}

// Match returns the rule that applies to host at time now. host must be
// normalized (see Normalize). A rule in block mode always wins over a rule in
// report mode, so a dry run never lifts a block; among rules of the same
// mode the most specific one (longest name; "*.name" before "name") wins.
// Expired rules are skipped. Match costs one map lookup per label of host
// and does not allocate.
func (l *List) Match(host string, now time.Time) (Rule, bool) {
	t := now.UnixNano()
	report := int32(-1)
	h := host
	sub := false // whether h is a proper parent of host
	for {
		if n, ok := l.nodes[h]; ok {
			for _, i := range [2]int32{n.wild, n.zone} {
				if i < 0 || (i == n.wild && !sub) {
					continue
				}
				r := &l.rules[i]
				if r.expires != 0 && t >= r.expires {
					continue
				}
				if l.attrs[r.attrs].Mode == ModeBlock {
					return l.rule(i), true
				}
				if report < 0 {
					report = i
				}
			}
		}
		dot := strings.IndexByte(h, '.')
		if dot < 0 {
			break
		}
		h, sub = h[dot+1:], true
	}
	if report >= 0 {
		return l.rule(report), true
	}
	return Rule{}, false
}

// NextExpiry returns the earliest rule expiry strictly after now, if any.
func (l *List) NextExpiry(now time.Time) (time.Time, bool) {
	t := now.UnixNano()
	i := sort.Search(len(l.expiries), func(i int) bool { return l.expiries[i] > t })
	if i == len(l.expiries) {
		return time.Time{}, false
	}
	return time.Unix(0, l.expiries[i]), true
}

// ExpiredBetween yields the rules whose expiry lies in (from, to].
func (l *List) ExpiredBetween(from, to time.Time) []Rule {
	var out []Rule
	f, t := from.UnixNano(), to.UnixNano()
	for i := range l.rules {
		if e := l.rules[i].expires; e > f && e <= t {
			out = append(out, l.rule(int32(i)))
		}
	}
	return out
}

// Diff returns the patterns in l that are not in old (added) and those in
// old that are not in l (removed), each in file order. A nil old counts as
// an empty list. Changes also reports the rules whose attributes changed.
func (l *List) Diff(old *List) (added, removed []string) {
	for i := range l.rules {
		if old.index(&l.rules[i]) < 0 {
			added = append(added, l.rule(int32(i)).Pattern())
		}
	}
	if old != nil {
		for i := range old.rules {
			if l.index(&old.rules[i]) < 0 {
				removed = append(removed, old.rule(int32(i)).Pattern())
			}
		}
	}
	return added, removed
}
