// Package langtag canonicalizes the BCP 47 language tags that name a page
// language: a translation file's TAG.json in pages and a rule's reason.TAG
// attribute in blocklist go through the same function, so a tag the
// blocklist accepts is spelled as the page negotiation spells it.
//
// It imports nothing of edgeblock's; both pages and blocklist may use it.
package langtag

import (
	"fmt"
	"strings"
)

// maxLen bounds a tag: the longest tag Accept-Language carries in practice
// is far shorter, and a bound keeps a hostile attribute cheap.
const maxLen = 35

// Canonical checks that tag is a BCP 47 language tag in the shape
// Accept-Language uses (a primary language of 2 to 8 letters, then
// subtags of 1 to 8 letters or digits joined by "-") and returns it in
// canonical case: language lower case, a 4-letter script title case, a
// 2-letter region upper case ("pt-br" becomes "pt-BR", "zh-hant" becomes
// "zh-Hant"). Any other tag is an error naming it; the result is then "".
func Canonical(tag string) (string, error) {
	if tag == "" || len(tag) > maxLen {
		return "", bad(tag)
	}
	parts := strings.Split(tag, "-")
	for i, p := range parts {
		if len(p) < 1 || len(p) > 8 || (i == 0 && len(p) < 2) {
			return "", bad(tag)
		}
		for j := 0; j < len(p); j++ {
			if !isAlpha(p[j]) && (i == 0 || !isDigit(p[j])) {
				return "", bad(tag)
			}
		}
		switch {
		case i == 0:
			parts[i] = strings.ToLower(p)
		case len(p) == 2:
			parts[i] = strings.ToUpper(p)
		case len(p) == 4:
			parts[i] = strings.ToUpper(p[:1]) + strings.ToLower(p[1:])
		default:
			parts[i] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, "-"), nil
}

func bad(tag string) error {
	return fmt.Errorf("language tag %q: want a tag such as de, pt-BR or zh-Hant", tag)
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
