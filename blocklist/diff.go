package blocklist

import (
	"cmp"
	"iter"
	"slices"
	"strconv"
	"time"
)

// ChangeKind says how a rule differs between two lists.
type ChangeKind string

// The kinds of change.
const (
	Added   ChangeKind = "added"
	Removed ChangeKind = "removed"
	Changed ChangeKind = "changed"
)

// AttrChange is one attribute of a rule that changed. Old and New are the
// values as they would be written in the file; "" means the attribute is
// not set (the default applies).
type AttrChange struct {
	Key, Old, New string
}

// String returns "old→new", where an unset value reads "(default)" for
// policy and unknown, "(never)" for expires, "(worldwide)" for countries
// and except_countries, "(no)" for publish and "(none)" for the others.
func (c AttrChange) String() string {
	return c.show(c.Old) + "→" + c.show(c.New)
}

func (c AttrChange) show(v string) string {
	if v != "" {
		return v
	}
	switch c.Key {
	case "policy", "unknown":
		return "(default)"
	case "expires":
		return "(never)"
	case "countries", "except_countries":
		return "(worldwide)"
	case "publish":
		return "(no)"
	}
	return "(none)"
}

// Change is one rule that differs between two lists.
type Change struct {
	Kind ChangeKind
	// Rule is the rule of the new list, or for Removed the rule of the old.
	Rule Rule
	// Attrs lists, for Changed, the attributes that differ, in the order
	// policy, reason, status, mode, expires, contact, appeal, countries,
	// except_countries, unknown, publish, notice, reason.TAG.
	Attrs []AttrChange
	// Note records who made the change and why, when HasNote is true: the
	// annotation of an added rule, the annotation of a changed rule when it
	// differs from the old one's, or the unblock record of a removed rule.
	Note    Note
	HasNote bool
}

// attrKeys are the attribute keys in the order they are compared and
// written.
// Per-language reasons (reason.TAG) come after them, sorted by tag.
var attrKeys = [...]string{"policy", "reason", "status", "mode", "expires", "contact", "appeal", "countries", "except_countries", "unknown", "publish", "notice"}

// AttrKeys returns the attribute keys a rule may carry (policy, reason,
// status, mode, expires, contact, appeal, countries, except_countries,
// unknown, publish, notice), without the per-language reason.TAG.
func AttrKeys() []string { return append([]string(nil), attrKeys[:]...) }

// attrValues returns the attribute values of r in attrKeys order, as they
// would be written: "" for no policy, reason or expiry; status and mode
// always have a value (403 and block by default).
func attrValues(r Rule) [len(attrKeys)]string {
	var v [len(attrKeys)]string
	v[0], v[1], v[2], v[3] = r.Policy, r.Reason, strconv.Itoa(r.Status), r.Mode.String()
	if !r.Expires.IsZero() {
		v[4] = r.Expires.UTC().Format(time.RFC3339)
	}
	v[5], v[6] = r.Contact, r.Appeal
	if r.Scope.except {
		v[8] = r.Scope.countries
	} else {
		v[7] = r.Scope.countries
	}
	v[9] = r.Scope.unknown.String()
	if r.Publish {
		v[10] = "yes"
	}
	v[11] = r.Notice
	return v
}

// AttrChanges returns the attributes that differ between old and new, in
// the order of attrKeys, then
// the per-language reasons (reason.TAG).
func AttrChanges(old, new Rule) []AttrChange {
	ov, nv := attrValues(old), attrValues(new)
	var out []AttrChange
	for i, k := range attrKeys {
		if ov[i] != nv[i] {
			out = append(out, AttrChange{Key: k, Old: ov[i], New: nv[i]})
		}
	}
	if old.Reasons != new.Reasons {
		for tag, o := range old.Reasons.All() {
			if n, _ := new.Reasons.Get(tag); n != o {
				out = append(out, AttrChange{Key: reasonPrefix + tag, Old: o, New: n})
			}
		}
		for tag, n := range new.Reasons.All() {
			if _, had := old.Reasons.Get(tag); !had {
				out = append(out, AttrChange{Key: reasonPrefix + tag, New: n})
			}
		}
	}
	return out
}

// Changes yields the rules of l that old lacks (Added) or has with other
// attributes (Changed), in l's file order, then the rules of old that l
// lacks (Removed), in old's file order. A nil old counts as an empty list.
// A rule that only moved to another line is not a change. Changes walks
// both lists once and allocates only for the changes it yields; when l
// was built from old by Reparse it looks only at the rules of the lines
// that differ.
func (l *List) Changes(old *List) iter.Seq[Change] {
	return func(yield func(Change) bool) {
		if l == old {
			return
		}
		if old != nil && l.ov != nil && l.ov.parent == old.id {
			l.touchedChanges(old, yield)
			return
		}
		for i := range l.all() {
			if c, ok := l.change(old, i); ok && !yield(c) {
				return
			}
		}
		if old == nil {
			return
		}
		for j := range old.all() {
			if c, ok := l.removal(old, j); ok && !yield(c) {
				return
			}
		}
	}
}

// change returns the change of l's rule i against old, if it is one.
func (l *List) change(old *List, i int32) (Change, bool) {
	r := l.at(i)
	j := old.index(l, r)
	if j < 0 {
		c := Change{Kind: Added, Rule: l.rule(i)}
		c.Note, c.HasNote = l.Note(c.Rule)
		return c, true
	}
	o := old.at(j)
	if r.expSec == o.expSec && r.expNsec == o.expNsec && l.attrs[r.attrs] == old.attrs[o.attrs] {
		return Change{}, false
	}
	c := Change{Kind: Changed, Rule: l.rule(i)}
	or := old.rule(j)
	c.Attrs = AttrChanges(or, c.Rule)
	n, ok := l.Note(c.Rule)
	if on, had := old.Note(or); ok && (!had || !on.equal(n)) {
		c.Note, c.HasNote = n, true
	}
	return c, true
}

// removal returns the removal of old's rule j, if l lacks it.
func (l *List) removal(old *List, j int32) (Change, bool) {
	o := old.at(j)
	if l.index(old, o) >= 0 {
		return Change{}, false
	}
	c := Change{Kind: Removed, Rule: old.rule(j)}
	c.Note, c.HasNote = l.UnblockNote(c.Rule.Pattern())
	return c, true
}

// touchedChanges is Changes for a list built from old by Reparse: only the
// touched patterns can differ.
func (l *List) touchedChanges(old *List, yield func(Change) bool) {
	var changes, removals []Change
	seen := make(map[patternKey]bool, len(l.ov.touched))
	for _, k := range l.ov.touched {
		if seen[k] {
			continue
		}
		seen[k] = true
		s := Scope{countries: k.countries, except: k.except}
		if i := l.find(k.name, k.wild, s); i >= 0 {
			if c, ok := l.change(old, i); ok {
				changes = append(changes, c)
			}
		} else if j := old.find(k.name, k.wild, s); j >= 0 {
			c, _ := l.removal(old, j)
			removals = append(removals, c)
		}
	}
	byLine := func(a, b Change) int { return cmp.Compare(a.Rule.Line, b.Rule.Line) }
	slices.SortFunc(changes, byLine)
	slices.SortFunc(removals, byLine)
	for _, c := range slices.Concat(changes, removals) {
		if !yield(c) {
			return
		}
	}
}

// equal reports whether n and o record the same edit.
func (n Note) equal(o Note) bool {
	return n.At.Equal(o.At) && n.By == o.By && n.Comment == o.Comment
}
