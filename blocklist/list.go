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
// wildcard rule ("*.name"), as indexes into List.rules, or -1.
type node struct {
	zone, wild int32
}

// List is an immutable, parsed blocklist. The zero value is not usable; an
// empty list is returned by Parse on an empty file. A List is safe for
// concurrent use.
type List struct {
	file  string
	sum   [sha256.Size]byte
	rules []rule
	attrs []Attrs
	nodes map[string]node
	// expiries indexes the rules that have an expiry, sorted by it (ties
	// in file order).
	expiries []int32
	// notes holds the annotations of the rules that have one, by line; nil
	// when none has, so that rules without one cost nothing.
	notes map[uint32]Note
	// unblocks holds the unblock records by pattern; nil when there are none.
	unblocks map[string]Note
	// scoped holds the scoped rules (countries=, except_countries=) by
	// name; nil when there are none, so that Match and MatchWhere cost
	// nothing more. Scoped rules are not in nodes.
	scoped map[string]scopedRules
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
	return Rule{Name: r.name, Wildcard: r.wildcard, Line: int(r.line), Expires: r.expires(), AttrsID: int(r.attrs), Attrs: l.attrs[r.attrs]}
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
// normalized form), if the list has one: the worldwide rule of the
// pattern, or if it has none, its first scoped rule in file order.
func (l *List) Lookup(pattern string) (Rule, bool) {
	name, wild := strings.CutPrefix(pattern, "*.")
	if i := l.find(name, wild, Scope{}); i >= 0 {
		return l.rule(i), true
	}
	for _, i := range l.scoped[name] {
		if l.rules[i].wildcard == wild {
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
// and does not allocate.
func (l *List) Match(host string, now time.Time) (Rule, bool) {
	sec, nsec := now.Unix(), uint32(now.Nanosecond())
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
	i := l.firstExpiryAfter(now)
	if i == len(l.expiries) {
		return time.Time{}, false
	}
	return l.rules[l.expiries[i]].expires(), true
}

// firstExpiryAfter returns the index in l.expiries of the first rule whose
// expiry is strictly after t, or len(l.expiries).
func (l *List) firstExpiryAfter(t time.Time) int {
	sec, nsec := t.Unix(), uint32(t.Nanosecond())
	return sort.Search(len(l.expiries), func(i int) bool { return !l.rules[l.expiries[i]].expiredAt(sec, nsec) })
}

// ExpiredBetween returns the rules whose expiry lies in (from, to], in
// file order.
func (l *List) ExpiredBetween(from, to time.Time) []Rule {
	var idx []int32
	tsec, tnsec := to.Unix(), uint32(to.Nanosecond())
	for _, i := range l.expiries[l.firstExpiryAfter(from):] {
		if !l.rules[i].expiredAt(tsec, tnsec) {
			break
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return nil
	}
	slices.Sort(idx)
	out := make([]Rule, 0, len(idx))
	for _, i := range idx {
		out = append(out, l.rule(i))
	}
	return out
}

// Diff returns the patterns in l that are not in old (added) and those in
// old that are not in l (removed), each in file order. A nil old counts as
// an empty list. Changes also reports the rules whose attributes changed.
func (l *List) Diff(old *List) (added, removed []string) {
	for i := range l.rules {
		if old.index(l, &l.rules[i]) < 0 {
			added = append(added, l.rule(int32(i)).Pattern())
		}
	}
	if old != nil {
		for i := range old.rules {
			if l.index(old, &old.rules[i]) < 0 {
				removed = append(removed, old.rule(int32(i)).Pattern())
			}
		}
	}
	return added, removed
}

// unblockRecords returns the unblock records in effect by pattern.
func (l *List) unblockRecords() map[string]Note { return l.unblocks }
