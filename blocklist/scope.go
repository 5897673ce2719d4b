package blocklist

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Unknown says whether a scoped rule applies to a visitor whose country is
// not known (no database entry, no trusted header, a code that is not an
// ISO 3166-1 alpha-2 country).
type Unknown uint8

const (
	// UnknownDefault follows the operator's default (geo.unknown). It is
	// the zero value.
	UnknownDefault Unknown = iota
	// UnknownAllow: the rule does not apply to a visitor of unknown country.
	UnknownAllow
	// UnknownBlock: the rule applies to a visitor of unknown country.
	UnknownBlock
)

// String returns "", "allow" or "block", as written after unknown=.
func (u Unknown) String() string {
	switch u {
	case UnknownAllow:
		return "allow"
	case UnknownBlock:
		return "block"
	}
	return ""
}

// Scope limits the countries in which a rule applies: countries=FR,DE (only
// there) or except_countries=US (everywhere but there). The zero value is
// worldwide: the rule applies to every visitor. Scope is comparable, so
// rules with equal attributes still share one Attrs.
type Scope struct {
	// countries holds the codes, upper case, sorted, comma-separated
	// ("DE,FR"); empty for a worldwide rule.
	countries string
	except    bool
	unknown   Unknown
}

// IsZero reports whether the scope is worldwide.
func (s Scope) IsZero() bool { return s.countries == "" }

// Except reports whether the scope is the complement of its countries
// (except_countries=).
func (s Scope) Except() bool { return s.except }

// Unknown returns what the rule does for a visitor of unknown country.
func (s Scope) Unknown() Unknown { return s.unknown }

// Countries returns the codes of the scope, sorted; nil for a worldwide rule.
func (s Scope) Countries() []string {
	if s.countries == "" {
		return nil
	}
	return strings.Split(s.countries, ",")
}

// Key returns the attribute key of the scope: "countries",
// "except_countries", or "" for a worldwide rule.
func (s Scope) Key() string {
	switch {
	case s.countries == "":
		return ""
	case s.except:
		return "except_countries"
	}
	return "countries"
}

// String returns the scope as written in the list ("countries=DE,FR",
// "except_countries=US unknown=allow"), or "worldwide".
func (s Scope) String() string {
	if s.countries == "" {
		return "worldwide"
	}
	out := s.Key() + "=" + s.countries
	if s.unknown != UnknownDefault {
		out += " unknown=" + s.unknown.String()
	}
	return out
}

// has reports whether code is one of the scope's countries. It does not
// allocate.
func (s Scope) has(code string) bool {
	if len(code) != 2 {
		return false
	}
	for i := 0; i+2 <= len(s.countries); i += 3 {
		if s.countries[i:i+2] == code {
			return true
		}
	}
	return false
}

// Where is what the matcher knows of a visitor: the country and the
// operator's default for unknown countries.
type Where struct {
	// Country is an ISO 3166-1 alpha-2 code in upper case (see Country);
	// "" means unknown.
	Country string
	// UnknownBlocks is the operator's default (geo.unknown: block) for
	// scoped rules without unknown=: whether they apply to a visitor of
	// unknown country. The zero value is allow.
	UnknownBlocks bool
}

// Applies reports whether a rule of scope s applies to a visitor at w. A
// worldwide scope applies to everyone; otherwise a known country is in
// countries= (or not in except_countries=), and an unknown one follows
// the rule's unknown= or, without it, w.UnknownBlocks. It does not allocate.
func (s Scope) Applies(w Where) bool {
	if s.countries == "" {
		return true
	}
	if w.Country == "" {
		switch s.unknown {
		case UnknownAllow:
			return false
		case UnknownBlock:
			return true
		}
		return w.UnknownBlocks
	}
	return s.has(w.Country) != s.except
}

// overlaps reports whether two scoped rules of one pattern would compete
// for one visitor with no order between them: two except_countries= rules,
// or countries= rules sharing a country (returned). A countries= and an
// except_countries= rule do not: the countries= rule comes first.
func (s Scope) overlaps(o Scope) (string, bool) {
	if s.except != o.except {
		return "", false
	}
	if s.except {
		return "", true
	}
	for c := range strings.SplitSeq(s.countries, ",") {
		if o.has(c) {
			return c, true
		}
	}
	return "", false
}

// parseCountries parses the value of countries= or except_countries=: ISO
// 3166-1 alpha-2 codes separated by commas, in any case. It returns them
// upper case, sorted and comma-separated.
func parseCountries(key, val string) (string, error) {
	if val == "" {
		return "", fmt.Errorf("attribute %s: empty; leave it out instead", key)
	}
	codes := strings.Split(val, ",")
	for i, c := range codes {
		u, ok := Country(c)
		if !ok {
			return "", fmt.Errorf("attribute %s=%q: %q is not an ISO 3166-1 alpha-2 country code (want codes such as FR,DE separated by commas)", key, val, c)
		}
		codes[i] = u
	}
	slices.Sort(codes)
	for i := 1; i < len(codes); i++ {
		if codes[i] == codes[i-1] {
			return "", fmt.Errorf("attribute %s=%q: %s given twice", key, val, codes[i])
		}
	}
	return strings.Join(codes, ","), nil
}

// Country returns code as an upper-case ISO 3166-1 alpha-2 country code, if
// it is one (any case; XK, Kosovo, counts: geolocation databases use it).
// Codes that are not countries ("XX", "T1", "EU", "ZZ") are not. It does
// not allocate for a code already in upper case.
func Country(code string) (string, bool) {
	if len(code) != 2 {
		return "", false
	}
	a, b := code[0]&^0x20, code[1]&^0x20
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' || code[0]|0x20 < 'a' || code[1]|0x20 < 'a' {
		return "", false
	}
	if countrySet[int(a-'A')*26+int(b-'A')] == 0 {
		return "", false
	}
	if code[0] == a && code[1] == b {
		return code, true
	}
	return countryCodes[countrySet[int(a-'A')*26+int(b-'A')]-1], true
}

// Countries returns every code Country accepts, sorted.
func Countries() []string { return slices.Clone(countryCodes) }

// isoCountries is the ISO 3166-1 alpha-2 list (the 249 officially assigned
// codes) and XK, the user-assigned code for Kosovo that geolocation
// databases and CDNs use.
const isoCountries = `AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
XK
YE YT
ZA ZM ZW`

// countryCodes lists isoCountries, sorted; countrySet maps a code (first
// letter*26 + second) to its index in countryCodes plus one, 0 for none.
var countryCodes, countrySet = func() ([]string, [26 * 26]uint16) {
	codes := strings.Fields(isoCountries)
	var set [26 * 26]uint16
	for i, c := range codes {
		set[int(c[0]-'A')*26+int(c[1]-'A')] = uint16(i + 1)
	}
	return codes, set
}()

// scopedRules holds the scoped rules of one name, as indexes into
// List.rules in file order.
type scopedRules []int32

// addScoped records rule i (scoped) under its name, refusing a second rule
// whose scope can meet the same visitor on the same pattern.
func (l *List) addScoped(i int32) error {
	r := &l.rules[i]
	s := l.attrs[r.attrs].Scope
	for _, j := range l.scoped[r.name] {
		o := &l.rules[j]
		if o.wildcard != r.wildcard {
			continue
		}
		os := l.attrs[o.attrs].Scope
		if c, ok := s.overlaps(os); ok {
			pat := Rule{Name: r.name, Wildcard: r.wildcard}.Pattern()
			if c != "" {
				return fmt.Errorf("duplicate rule %q for country %s: already scoped on line %d (scoped rules of one pattern need disjoint countries=)", pat, c, o.line)
			}
			return fmt.Errorf("duplicate rule %q: line %d has except_countries= too (one pattern takes one except_countries= rule, beside countries= rules with disjoint countries)", pat, o.line)
		}
	}
	if l.scoped == nil {
		l.scoped = map[string]scopedRules{}
	}
	l.scoped[r.name] = append(l.scoped[r.name], i)
	l.nScoped++
	return nil
}

// HasScoped reports whether the list has any scoped rule (countries= or
// except_countries=). Without one, Match decides alone.
func (l *List) HasScoped() bool {
	if l.ov != nil {
		return l.ov.nScoped > 0
	}
	return l.scoped != nil
}

// ScopedFor reports whether a scoped rule is about host or a name above it,
// expired or not: then the decision for host depends on the visitor's
// country, and MatchWhere must make it. It costs nothing when the list has
// no scoped rule, else one map lookup per label of host, and does not
// allocate.
func (l *List) ScopedFor(host string) bool {
	if !l.HasScoped() {
		return false
	}
	h := host
	for {
		if len(l.scopedOf(h)) > 0 {
			return true
		}
		dot := strings.IndexByte(h, '.')
		if dot < 0 {
			return false
		}
		h = h[dot+1:]
	}
}

// MatchWhere returns the rule that applies to host, for a visitor at w, at
// time now. host must be normalized (see Normalize).
//
// Precedence: a rule in block mode always wins over one in report mode.
// Among rules of the same mode the most specific pattern wins, as in Match
// ("*.name" before "name", longer names first); among the rules of one
// pattern, a countries= rule whose scope applies comes first, then an
// except_countries= rule whose scope applies, then the worldwide rule.
// A scoped rule whose scope does not apply is skipped, as if it were not
// there: the visitor gets the next rule that applies, or none. Expired
// rules are skipped. MatchWhere does not allocate; without scoped rules it
// is Match.
func (l *List) MatchWhere(host string, w Where, now time.Time) (Rule, bool) {
	if !l.HasScoped() {
		return l.Match(host, now)
	}
	sec, nsec := now.Unix(), uint32(now.Nanosecond())
	report := int32(-1)
	h := host
	sub := false
	for {
		n, ok := l.node(h)
		if !ok {
			n = node{zone: -1, wild: -1}
		}
		sc := l.scopedOf(h)
		for _, wild := range [2]bool{true, false} {
			if wild && !sub {
				continue
			}
			i := l.pick(sc, n, wild, w, sec, nsec)
			if i < 0 {
				continue
			}
			if l.attrs[l.at(i).attrs].Mode == ModeBlock {
				return l.rule(i), true
			}
			if report < 0 {
				report = i
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

// pick returns the rule of one pattern (the name's wildcard or zone rule)
// that applies at w and is not expired, by the precedence of MatchWhere:
// a block-mode rule before a report-mode one, then countries=, then
// except_countries=, then worldwide. It returns -1 for none.
func (l *List) pick(sc scopedRules, n node, wild bool, w Where, sec int64, nsec uint32) int32 {
	best, bestRank := int32(-1), 99
	consider := func(i int32, rank int) {
		r := l.at(i)
		if r.expiredAt(sec, nsec) {
			return
		}
		if l.attrs[r.attrs].Mode != ModeBlock {
			rank += 10
		}
		if rank < bestRank {
			best, bestRank = i, rank
		}
	}
	for _, i := range sc {
		r := l.at(i)
		if r.wildcard != wild {
			continue
		}
		s := l.attrs[r.attrs].Scope
		if !s.Applies(w) {
			continue
		}
		rank := 0
		if s.except {
			rank = 1
		}
		consider(i, rank)
	}
	u := n.zone
	if wild {
		u = n.wild
	}
	if u >= 0 {
		consider(u, 2)
	}
	return best
}
