// Package certs decides which names get a certificate and how many new
// ones a covering pattern may have. It knows nothing of blocking or
// serving: the caller gives it the covered patterns as data (Patterns), and
// asks it about one name at a time (Policy.Decide).
package certs

import (
	"strings"
	"time"
)

// Kind says which names a Pattern covers.
type Kind uint8

const (
	// Exact covers Name only.
	Exact Kind = iota
	// Wildcard covers the names under Name, not Name itself ("*.name").
	Wildcard
	// Zone covers Name and every name under it.
	Zone
)

// Pattern is one covering pattern: a route or a rule of the caller.
type Pattern struct {
	// Name is normalized (lower case, punycode, no trailing dot).
	Name string
	Kind Kind
	// Until is when the pattern stops covering; zero means never.
	Until time.Time
	// WildcardCert says that one certificate for "*.Name", obtained
	// ahead, serves the names one label under Name: they are never
	// obtained one by one.
	WildcardCert bool
}

// String returns "*.name" for a Wildcard pattern and the name otherwise.
// It is the pattern's label in metrics and logs.
func (p Pattern) String() string {
	if p.Kind == Wildcard {
		return "*." + p.Name
	}
	return p.Name
}

func (p Pattern) activeAt(now time.Time) bool { return p.Until.IsZero() || now.Before(p.Until) }

// Patterns is an immutable set of covering patterns, safe for concurrent
// use. The zero value and nil cover nothing.
type Patterns struct {
	at  map[string][]Pattern // Exact and Zone patterns, keyed by their name
	sub map[string][]Pattern // Wildcard and Zone patterns, keyed by their name
	// over holds, for the names With replaced, their patterns, which stand
	// instead of those in at and sub; nil for a set made by NewPatterns.
	over map[string]named
}

// named is the patterns named by one name, split as in at and sub.
type named struct {
	at, sub []Pattern
}

// split returns ps split into the patterns that cover the name itself and
// those that cover the names under it.
func split(ps []Pattern) named {
	var n named
	for _, p := range ps {
		if p.Kind != Wildcard {
			n.at = append(n.at, p)
		}
		if p.Kind != Exact {
			n.sub = append(n.sub, p)
		}
	}
	return n
}

// With returns the set s with the patterns named by each name of byName
// replaced by byName[name], in that order (none, for an empty slice): the
// set NewPatterns makes when those are the patterns of these names. It
// costs the names given and those replaced before (see Replaced), not the
// size of s, which it shares; s is not changed.
func (s *Patterns) With(byName map[string][]Pattern) *Patterns {
	if s == nil {
		s = &Patterns{}
	}
	n := &Patterns{at: s.at, sub: s.sub, over: make(map[string]named, len(s.over)+len(byName))}
	for k, v := range s.over {
		n.over[k] = v
	}
	for name, ps := range byName {
		n.over[name] = split(ps)
	}
	return n
}

// Replaced returns how many names With has replaced along the sets s was
// made from: what the next With copies. A caller rebuilds the set with
// NewPatterns when it grows large.
func (s *Patterns) Replaced() int {
	if s == nil {
		return 0
	}
	return len(s.over)
}

// lookup returns the patterns named name that cover name itself (at) or
// the names under it.
func (s *Patterns) lookup(name string, at bool) []Pattern {
	if n, ok := s.over[name]; ok {
		if at {
			return n.at
		}
		return n.sub
	}
	if at {
		return s.at[name]
	}
	return s.sub[name]
}

// NewPatterns returns the set of ps.
func NewPatterns(ps []Pattern) *Patterns {
	s := &Patterns{at: map[string][]Pattern{}, sub: map[string][]Pattern{}}
	for _, p := range ps {
		if p.Kind != Wildcard {
			s.at[p.Name] = append(s.at[p.Name], p)
		}
		if p.Kind != Exact {
			s.sub[p.Name] = append(s.sub[p.Name], p)
		}
	}
	return s
}

// Match returns the most specific pattern that covers the normalized name
// at time now: a pattern naming name itself (Exact before Zone), else the
// Wildcard or Zone pattern of the nearest parent. It costs one map lookup
// per label of name.
func (s *Patterns) Match(name string, now time.Time) (Pattern, bool) {
	if s == nil || name == "" {
		return Pattern{}, false
	}
	if p, ok := first(s.lookup(name, true), now); ok {
		return p, true
	}
	for h := name; ; {
		dot := strings.IndexByte(h, '.')
		if dot < 0 {
			return Pattern{}, false
		}
		h = h[dot+1:]
		if p, ok := first(s.lookup(h, false), now); ok {
			return p, true
		}
	}
}

// first returns the first active pattern of ps, Exact and Wildcard before
// Zone.
func first(ps []Pattern, now time.Time) (Pattern, bool) {
	var zone Pattern
	found := false
	for _, p := range ps {
		if !p.activeAt(now) {
			continue
		}
		if p.Kind != Zone {
			return p, true
		}
		if !found {
			zone, found = p, true
		}
	}
	return zone, found
}
