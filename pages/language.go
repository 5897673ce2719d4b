package pages

import "strings"

// maxLanguageRanges bounds the ranges of an Accept-Language header that
// are looked at; the rest are ignored, so that a long header costs no more
// than a short one.
const maxLanguageRanges = 32

// NegotiateLanguage returns the index in tags of the language an
// Accept-Language header value prefers, or def when it names none of them.
// tags are language tags such as "de" or "pt-BR", compared without regard
// to case.
//
// Each range of the header ("de-CH;q=0.8") gives its quality (q, 1 when
// absent) to the tags it matches: the tag itself, a tag that starts with
// the range ("zh" matches "zh-Hant"), or, for a range more specific than
// any tag, the longest tag it starts with ("de-CH" falls back to "de").
// A tag takes the quality of the most specific range that matches it; "*"
// stands for every tag no other range matched, the default first. The tag
// with the highest quality above 0 wins; on equal quality the one named
// earlier in the header, then the default, then the first in tags. Ranges
// that are malformed or have a malformed q are ignored, as are ranges past
// the 32nd.
func NegotiateLanguage(header string, tags []string, def int) int {
	if header == "" || len(tags) == 0 || len(tags) > maxLanguages {
		return def
	}
	// Per tag: quality in thousandths, specificity of the range that set
	// it (0 for none, 1 "*", 2 prefix, 3 fallback, 4 exact), and the
	// range's position.
	var q [maxLanguages]int16
	var spec, order [maxLanguages]uint8
	n := len(tags)
	starQ, starOrder := -1, 0
	ranges := 0
	for header != "" && ranges < maxLanguageRanges {
		var part string
		part, header, _ = strings.Cut(header, ",")
		rng, params, _ := strings.Cut(part, ";")
		rng = strings.TrimSpace(rng)
		if rng == "" {
			continue
		}
		qv, ok := languageQ(params)
		if !ok || !validRange(rng) {
			continue
		}
		ranges++
		if rng == "*" {
			if starQ < 0 {
				starQ, starOrder = qv, ranges
			}
			continue
		}
		// The longest tag a range more specific than any tag falls back
		// to gets specificity 3; shorter ones are not matched.
		fallback, fallbackLen := -1, 0
		first := rng[0] | 0x20 // a letter: validRange checked
		for i := range n {
			t := tags[i]
			if t == "" || t[0]|0x20 != first {
				continue // most tags differ in their first letter
			}
			var s uint8
			switch {
			case len(t) == len(rng) && strings.EqualFold(t, rng):
				s = 4
			case len(t) > len(rng) && t[len(rng)] == '-' && strings.EqualFold(t[:len(rng)], rng):
				s = 2
			case len(rng) > len(t) && rng[len(t)] == '-' && strings.EqualFold(rng[:len(t)], t):
				if len(t) > fallbackLen {
					fallback, fallbackLen = i, len(t)
				}
				continue
			default:
				continue
			}
			if s > spec[i] {
				q[i], spec[i], order[i] = int16(qv), s, uint8(ranges)
			}
		}
		if fallback >= 0 && spec[fallback] < 3 {
			q[fallback], spec[fallback], order[fallback] = int16(qv), 3, uint8(ranges)
		}
	}
	if starQ >= 0 {
		for i := range n {
			if spec[i] == 0 {
				q[i], spec[i], order[i] = int16(starQ), 1, uint8(starOrder)
			}
		}
	}
	best := -1
	for i := range n {
		if spec[i] == 0 || q[i] <= 0 {
			continue
		}
		switch {
		case best < 0, q[i] > q[best]:
			best = i
		case q[i] == q[best] && order[i] < order[best]:
			best = i
		case q[i] == q[best] && order[i] == order[best] && i == def:
			best = i
		}
	}
	if best < 0 {
		return def
	}
	return best
}

// validRange reports whether r is "*" or a language range: 1 to 8 letters,
// then subtags of 1 to 8 letters or digits, joined by "-".
func validRange(r string) bool {
	if r == "*" {
		return true
	}
	if len(r) > 64 {
		return false
	}
	n := 0
	first := true
	for i := 0; i <= len(r); i++ {
		if i == len(r) || r[i] == '-' {
			if n == 0 || n > 8 {
				return false
			}
			n, first = 0, false
			continue
		}
		c := r[i]
		if !isAlpha(c) && (first || !isDigit(c)) {
			return false
		}
		n++
	}
	return true
}

// languageQ returns the q parameter of a range in thousandths (1000 when
// absent) and whether it is well-formed: "0" or "1", or with a dot and up
// to three digits, and at most 1.
func languageQ(params string) (int, bool) {
	params = strings.TrimSpace(params)
	if params == "" {
		return 1000, true
	}
	k, v, ok := strings.Cut(params, "=")
	if !ok || strings.TrimSpace(k) != "q" && strings.TrimSpace(k) != "Q" {
		return 0, false
	}
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) > 1 {
		if v[1] != '.' {
			return 0, false
		}
		scale := 100
		for i := 2; i < len(v); i++ {
			if !isDigit(v[i]) {
				return 0, false
			}
			q += int(v[i]-'0') * scale
			scale /= 10
		}
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}
