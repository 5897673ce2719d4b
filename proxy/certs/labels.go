package certs

import "sync"

// OtherLabel is the label value of the patterns beyond a LabelSet's
// capacity.
const OtherLabel = "other"

// LabelSet hands out metric label values for patterns: the first Max
// distinct patterns are their own label, later ones share OtherLabel, so a
// list of a hundred thousand rules makes at most Max+1 series. It is safe
// for concurrent use.
type LabelSet struct {
	Max int

	mu   sync.Mutex
	seen map[string]struct{}
}

// Label returns the label value of pattern.
func (s *LabelSet) Label(pattern string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[pattern]; ok {
		return pattern
	}
	if len(s.seen) >= s.Max {
		return OtherLabel
	}
	if s.seen == nil {
		s.seen = map[string]struct{}{}
	}
	s.seen[pattern] = struct{}{}
	return pattern
}
