package blocklist

import (
	"fmt"
	"iter"
	"strings"

	"github.com/edgeblock/edgeblock/pages/langtag"
)

// Reasons are a rule's reasons in particular languages, written
// reason.de="..." in the list. The zero value holds none. Reasons is
// comparable, so rules with equal attributes still share one Attrs, and a
// rule without per-language reasons costs nothing more than before.
type Reasons struct {
	// s is "tag\x00text\x00tag\x00text...", sorted by tag. Values cannot
	// hold control characters (checkControl), so \x00 never occurs in one.
	s string
}

// Len returns the number of languages.
func (r Reasons) Len() int { return strings.Count(r.s, "\x00") / 2 }

// All yields the language tags (canonical case: "de", "pt-BR",
// "zh-Hant") and their reasons, sorted by tag.
func (r Reasons) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		s := r.s
		for s != "" {
			tag, rest, _ := strings.Cut(s, "\x00")
			text, rest, _ := strings.Cut(rest, "\x00")
			if !yield(tag, text) {
				return
			}
			s = rest
		}
	}
}

// Get returns the reason for exactly the language tag (compared without
// regard to case).
func (r Reasons) Get(tag string) (string, bool) {
	for t, text := range r.All() {
		if strings.EqualFold(t, tag) {
			return text, true
		}
	}
	return "", false
}

// With returns r with the reason for tag set to text, replacing any it had;
// an empty text removes the language. tag must be valid (see
// langtag.Canonical).
func (r Reasons) With(tag, text string) Reasons {
	var b strings.Builder
	added := text == ""
	for t, x := range r.All() {
		if strings.EqualFold(t, tag) {
			continue
		}
		if !added && t > tag {
			b.WriteString(tag + "\x00" + text + "\x00")
			added = true
		}
		b.WriteString(t + "\x00" + x + "\x00")
	}
	if !added {
		b.WriteString(tag + "\x00" + text + "\x00")
	}
	return Reasons{s: b.String()}
}

// reasonPrefix starts the key of a per-language reason.
const reasonPrefix = "reason."

// reasonKey reports whether key is "reason.TAG" and returns TAG in
// canonical case.
func reasonKey(key string) (tag string, ok bool, err error) {
	t, ok := strings.CutPrefix(key, reasonPrefix)
	if !ok {
		return "", false, nil
	}
	tag, err = langtag.Canonical(t)
	if err != nil {
		return "", true, fmt.Errorf("attribute %s: %v", key, err)
	}
	return tag, true, nil
}
