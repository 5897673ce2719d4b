package blocklist

import (
	"cmp"
	"slices"
)

// Named returns the rules about name, in file order: the rule "name", the
// rule "*.name" and the scoped rules of both. It costs a map lookup or two
// and the rules it returns, not a walk of the list.
func (l *List) Named(name string) []Rule {
	var out []Rule
	if n, ok := l.node(name); ok {
		for _, i := range [2]int32{n.zone, n.wild} {
			if i >= 0 {
				out = append(out, l.rule(i))
			}
		}
	}
	for _, i := range l.scopedOf(name) {
		out = append(out, l.rule(i))
	}
	slices.SortFunc(out, func(a, b Rule) int { return cmp.Compare(a.Line, b.Line) })
	return out
}

// Touched returns the names whose rules can differ between l and old
// (added, removed, changed, or on a line that changed), each once, when
// that is known without a walk of both lists: l was built from old by
// Reparse, or has the same content (then there are none). Outside these
// names the two lists have the same rules, in the same order. ok is false
// when it is not known.
func (l *List) Touched(old *List) (names []string, ok bool) {
	switch {
	case old == nil:
		return nil, false
	case l == old || l.sum == old.sum:
		return nil, true
	case l.ov == nil || l.ov.parent != old.id:
		return nil, false
	}
	seen := make(map[string]bool, len(l.ov.touched))
	for _, k := range l.ov.touched {
		if !seen[k.name] {
			seen[k.name] = true
			names = append(names, k.name)
		}
	}
	return names, true
}
