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
	if p, ok := first(s.at[name], now); ok {
		return p, true
	}
	for h := name; ; {
		dot := strings.IndexByte(h, '.')
		if dot < 0 {
			return Pattern{}, false
		}
		h = h[dot+1:]
		if p, ok := first(s.sub[h], now); ok {
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
