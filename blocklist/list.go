package blocklist

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"iter"
	"math"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// rule is the compact stored form of a Rule: a million of them must fit in
// well under 150 bytes each, map slot included. The struct is 40 bytes
// (TestRuleSize); the field order keeps it so.
type rule struct {
	name string
	// expSec and expNsec are the expiry as Unix seconds and nanoseconds
	// within that second; expSec == noExpiry means never. Seconds cover
	// every year the parser accepts (0001..9999) with room to spare, where
	// Unix nanoseconds in an int64 end in 2262.
	expSec   int64
	line     uint32
	attrs    uint32
	expNsec  uint32
	wildcard bool
}

// noExpiry is the expSec of a rule without an expiry: later than any time
// a time.Time can hold, so no clock ever reaches it.
const noExpiry = math.MaxInt64

// hasExpiry reports whether the rule expires at all.
func (r *rule) hasExpiry() bool { return r.expSec != noExpiry }

// expiredAt reports whether the rule has expired at Unix time (sec, nsec):
// expiry is the first instant at which it no longer applies.
func (r *rule) expiredAt(sec int64, nsec uint32) bool {
	return r.expSec != noExpiry && (sec > r.expSec || sec == r.expSec && nsec >= r.expNsec)
}

// expires returns the expiry as a time.Time in UTC; zero means never.
func (r *rule) expires() time.Time {
	if !r.hasExpiry() {
		return time.Time{}
	}
	return time.Unix(r.expSec, int64(r.expNsec)).UTC()
}

// cmpExpiry orders two rules by expiry; both must have one.
func cmpExpiry(a, b *rule) int {
	if c := cmp.Compare(a.expSec, b.expSec); c != 0 {
		return c
	}
	return cmp.Compare(a.expNsec, b.expNsec)
}

// node holds the rules about one name: the zone rule ("name") and the
// wildcard rule ("*.name"), as references (see List.at), or -1.
type node struct {
	zone, wild int32
}

// slot returns the reference of the zone or wildcard rule.
func (n *node) slot(wild bool) *int32 {
	if wild {
		return &n.wild
	}
	return &n.zone
}

// listIDs numbers lists, so that a list built by Reparse knows its parent
// without keeping it alive.
var listIDs atomic.Uint64

// List is an immutable, parsed blocklist. The zero value is not usable; an
// empty list is returned by Parse on an empty file. A List is safe for
// concurrent use.
//
// A list built by Parse is a base: every rule in rules, indexed by nodes.
// A list built by Reparse shares its parent's base and adds an overlay
// (ov): the rules of the lines parsed since, the base rules those lines
// replaced, and where the base's surviving lines are now. Rule references
// (int32) below len(rules) are base rules, the others overlay rules.
type List struct {
	file string
	sum  [sha256.Size]byte
	// src is the content the list was built from; a Reparse compares the
	// next content with it. lines is its number of lines.
	src   string
	lines uint32
	id    uint64
	rules []rule
	attrs []Attrs
	// attrIDs indexes the base's attrs (ov.attrIDs those the overlay adds).
	attrIDs map[Attrs]uint32
	nodes   map[string]node
	// expiries indexes the base rules that have an expiry, sorted by it
	// (ties in file order).
	expiries []int32
	// notes holds the annotations of the base rules that have one, by base
	// line; nil when none has, so that rules without one cost nothing.
	notes map[uint32]Note
	// unblocks holds the unblock records by pattern; nil when there are none.
	unblocks map[string]Note
	// scoped holds the scoped base rules (countries=, except_countries=)
	// by name; nil when there are none, so that Match and MatchWhere cost
	// nothing more. Scoped rules are not in nodes. nScoped counts them.
	scoped  map[string]scopedRules
	nScoped int
	// allowDrop is set when the file has the AllowDropMarker line.
	allowDrop bool
	// ov is nil for a list parsed whole.
	ov *overlay
}

// overlay is what a list built by Reparse has on top of its base.
type overlay struct {
	// pieces are the base's lines still in the file, in order.
	pieces []piece
	// rules are the rules of the lines parsed since the base, in file order
	// (line is the line in the current file); notes[j] is the annotation of
	// rules[j], if hasNote[j].
	rules   []rule
	notes   []Note
	hasNote []bool
	// dead are the base rules whose lines are no longer in the file.
	dead []int32
	// nodes holds, for every name of an overlay rule or a dead base rule,
	// its node in the current list; other names are as in the base.
	// scoped is the same for scoped rules (a name's scoped rules in file
	// order), and nScoped counts the list's scoped rules.
	nodes   map[string]node
	scoped  map[string]scopedRules
	nScoped int
	// expiries indexes the overlay rules with an expiry, sorted by it.
	expiries []int32
	attrIDs  map[Attrs]uint32
	// parent is the id of the list this one was built from, and touched
	// the patterns of the rules on the lines that differ from it: only
	// those can differ between the two lists.
	parent  uint64
	touched []patternKey
}

// patternKey is what tells a rule from the others of a list: its pattern
// (name, and whether it is "*.name") and the countries of its scope.
type patternKey struct {
	name      string
	wild      bool
	countries string
	except    bool
}

// key returns the patternKey of rule r of l.
func (l *List) key(r *rule) patternKey {
	s := l.attrs[r.attrs].Scope
	return patternKey{name: r.name, wild: r.wildcard, countries: s.countries, except: s.except}
}

// piece says that base lines [base, base+n) are lines [cur, cur+n) of the
// current file.
type piece struct {
	base, cur, n uint32
}

// at returns the rule of reference i.
func (l *List) at(i int32) *rule {
	if int(i) < len(l.rules) {
		return &l.rules[i]
	}
	return &l.ov.rules[int(i)-len(l.rules)]
}

// node returns the node of name in the current list.
func (l *List) node(name string) (node, bool) {
	if l.ov != nil {
		if n, ok := l.ov.nodes[name]; ok {
			return n, n.zone >= 0 || n.wild >= 0
		}
	}
	n, ok := l.nodes[name]
	return n, ok
}

// scopedOf returns the scoped rules of name in the current list.
func (l *List) scopedOf(name string) scopedRules {
	if l.ov != nil {
		if sc, ok := l.ov.scoped[name]; ok {
			return sc
		}
	}
	return l.scoped[name]
}

// find returns the reference of the rule with pattern (name, wild) and
// the countries of scope s (its unknown= aside: a rule is known by its
// pattern and countries), or -1. A nil l has no rules.
func (l *List) find(name string, wild bool, s Scope) int32 {
	if l == nil {
		return -1
	}
	if s.IsZero() {
		n, ok := l.node(name)
		if !ok {
			return -1
		}
		return *n.slot(wild)
	}
	for _, i := range l.scopedOf(name) {
		r := l.at(i)
		if o := l.attrs[r.attrs].Scope; r.wildcard == wild && o.countries == s.countries && o.except == s.except {
			return i
		}
	}
	return -1
}

// index returns the reference in l of the rule with the same pattern and
// scope as r, a rule of from, or -1. A nil l has no rules.
func (l *List) index(from *List, r *rule) int32 {
	return l.find(r.name, r.wildcard, from.attrs[r.attrs].Scope)
}

// lineOf returns the current line of rule i.
func (l *List) lineOf(i int32) uint32 {
	r := l.at(i)
	if l.ov == nil || int(i) >= len(l.rules) {
		return r.line
	}
	p, _ := l.ov.pieceOf(r.line)
	return p.cur + r.line - p.base
}

// pieceOf returns the piece holding base line b, if it is still in the
// file.
func (o *overlay) pieceOf(b uint32) (piece, bool) {
	k := sort.Search(len(o.pieces), func(k int) bool { return o.pieces[k].base+o.pieces[k].n > b })
	if k == len(o.pieces) || o.pieces[k].base > b {
		return piece{}, false
	}
	return o.pieces[k], true
}

// all yields the references of the rules in file order.
func (l *List) all() iter.Seq[int32] {
	return func(yield func(int32) bool) {
		if l.ov == nil {
			for i := range l.rules {
				if !yield(int32(i)) {
					return
				}
			}
			return
		}
		o := l.ov
		base := int32(len(l.rules))
		j := 0 // next overlay rule
		for _, p := range o.pieces {
			i := sort.Search(len(l.rules), func(i int) bool { return l.rules[i].line >= p.base })
			for ; i < len(l.rules) && l.rules[i].line < p.base+p.n; i++ {
				cur := p.cur + l.rules[i].line - p.base
				for ; j < len(o.rules) && o.rules[j].line < cur; j++ {
					if !yield(base + int32(j)) {
						return
					}
				}
				if !yield(int32(i)) {
					return
				}
			}
		}
		for ; j < len(o.rules); j++ {
			if !yield(base + int32(j)) {
				return
			}
		}
	}
}

// File returns the name of the file the list was parsed from.
func (l *List) File() string { return l.file }

// SHA256 returns the hex SHA-256 of the file content the list was parsed from.
func (l *List) SHA256() string { return hex.EncodeToString(l.sum[:]) }

// Len returns the number of rules.
func (l *List) Len() int {
	if l.ov == nil {
		return len(l.rules)
	}
	return len(l.rules) - len(l.ov.dead) + len(l.ov.rules)
}

// Attrs returns the distinct attribute sets of the list, indexed by
// Rule.AttrsID. The caller must not modify the slice. A list built by
// Reparse may keep sets that no rule uses any more.
func (l *List) Attrs() []Attrs { return l.attrs }

func (l *List) rule(i int32) Rule {
	r := l.at(i)
	return Rule{Name: r.name, Wildcard: r.wildcard, Line: int(l.lineOf(i)), Expires: r.expires(), AttrsID: int(r.attrs), Attrs: l.attrs[r.attrs]}
}

// Rules yields every rule in file order.
func (l *List) Rules() iter.Seq[Rule] {
	return func(yield func(Rule) bool) {
		for i := range l.all() {
			if !yield(l.rule(i)) {
				return
			}
		}
	}
}

// Note returns the annotation of r (the "#@" line directly above it), if it
// has one. r must come from l.
func (l *List) Note(r Rule) (Note, bool) {
	if l.ov == nil {
		n, ok := l.notes[uint32(r.Line)]
		return n, ok
	}
	i := l.find(r.Name, r.Wildcard, r.Scope)
	switch {
	case i < 0:
		return Note{}, false
	case int(i) < len(l.rules):
		n, ok := l.notes[l.rules[i].line]
		return n, ok
	}
	j := int(i) - len(l.rules)
	return l.ov.notes[j], l.ov.hasNote[j]
}

// UnblockNote returns the unblock record of pattern ("name" or "*.name", in
// normalized form), if the file has one.
func (l *List) UnblockNote(pattern string) (Note, bool) {
	n, ok := l.unblocks[pattern]
	return n, ok
}

// unblockRecords returns the unblock records in effect by pattern.
func (l *List) unblockRecords() map[string]Note { return l.unblocks }

// Lookup returns the rule with the given pattern ("name" or "*.name", in
// normalized form), if the list has one: the worldwide rule of the
// pattern, or if it has none, its first scoped rule in file order.
func (l *List) Lookup(pattern string) (Rule, bool) {
	name, wild := strings.CutPrefix(pattern, "*.")
	if i := l.find(name, wild, Scope{}); i >= 0 {
		return l.rule(i), true
	}
	for _, i := range l.scopedOf(name) {
		if l.at(i).wildcard == wild {
			return l.rule(i), true
		}
	}
	return Rule{}, false
}

// Match returns the worldwide rule that applies to host at time now: it
// skips scoped rules (countries=, except_countries=), which MatchWhere
// weighs. host must be normalized (see Normalize). A rule in block mode always wins over a rule in
// report mode, so a dry run never lifts a block; among rules of the same
// mode the most specific one (longest name; "*.name" before "name") wins.
// Expired rules are skipped. Match costs one map lookup per label of host
// (two on a list built by Reparse, the second in the small overlay) and
// does not allocate.
func (l *List) Match(host string, now time.Time) (Rule, bool) {
	sec, nsec := now.Unix(), uint32(now.Nanosecond())
	report := int32(-1)
	h := host
	sub := false // whether h is a proper parent of host
	for {
		var n node
		var ok bool
		if l.ov == nil {
			n, ok = l.nodes[h]
		} else {
			n, ok = l.node(h)
		}
		if ok {
			for _, i := range [2]int32{n.wild, n.zone} {
				if i < 0 || (i == n.wild && !sub) {
					continue
				}
				r := l.at(i)
				if r.expiredAt(sec, nsec) {
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
	var next *rule
	for _, i := range l.expiries[l.firstExpiryAfter(l.expiries, now):] {
		if l.alive(i) {
			next = l.at(i)
			break
		}
	}
	if l.ov != nil {
		if k := l.firstExpiryAfter(l.ov.expiries, now); k < len(l.ov.expiries) {
			if r := l.at(l.ov.expiries[k]); next == nil || cmpExpiry(r, next) < 0 {
				next = r
			}
		}
	}
	if next == nil {
		return time.Time{}, false
	}
	return next.expires(), true
}

// alive reports whether rule i is in the list (a base rule may be dead).
func (l *List) alive(i int32) bool {
	if l.ov == nil || int(i) >= len(l.rules) {
		return true
	}
	_, ok := l.ov.pieceOf(l.rules[i].line)
	return ok
}

// firstExpiryAfter returns the index in idx, a list of rule references
// sorted by expiry, of the first rule whose expiry is strictly after t, or
// len(idx).
func (l *List) firstExpiryAfter(idx []int32, t time.Time) int {
	sec, nsec := t.Unix(), uint32(t.Nanosecond())
	return sort.Search(len(idx), func(k int) bool { return !l.at(idx[k]).expiredAt(sec, nsec) })
}

// ExpiredBetween returns the rules whose expiry lies in (from, to], in
// file order.
func (l *List) ExpiredBetween(from, to time.Time) []Rule {
	var idx []int32
	tsec, tnsec := to.Unix(), uint32(to.Nanosecond())
	collect := func(exp []int32) {
		for _, i := range exp[l.firstExpiryAfter(exp, from):] {
			if !l.at(i).expiredAt(tsec, tnsec) {
				break
			}
			if l.alive(i) {
				idx = append(idx, i)
			}
		}
	}
	collect(l.expiries)
	if l.ov != nil {
		collect(l.ov.expiries)
	}
	if len(idx) == 0 {
		return nil
	}
	out := make([]Rule, 0, len(idx))
	for _, i := range idx {
		out = append(out, l.rule(i))
	}
	slices.SortFunc(out, func(a, b Rule) int { return cmp.Compare(a.Line, b.Line) })
	return out
}

// Diff returns the patterns in l that are not in old (added) and those in
// old that are not in l (removed), each in file order. A nil old counts as
// an empty list. Changes also reports the rules whose attributes changed.
func (l *List) Diff(old *List) (added, removed []string) {
	for c := range l.Changes(old) {
		switch c.Kind {
		case Added:
			added = append(added, c.Rule.Pattern())
		case Removed:
			removed = append(removed, c.Rule.Pattern())
		}
	}
	return added, removed
}
