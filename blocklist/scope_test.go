package blocklist

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		line, scope string
		publish     bool
		notice      string
	}{
		{"a.example", "worldwide", false, ""},
		{"a.example countries=fr", "countries=FR", false, ""},
		{"a.example countries=FR,de,Be", "countries=BE,DE,FR", false, ""},
		{"a.example except_countries=US unknown=allow", "except_countries=US unknown=allow", false, ""},
		{"a.example countries=XK unknown=block", "countries=XK unknown=block", false, ""},
		{"a.example publish=yes notice=https://lumendatabase.org/notices/1", "worldwide", true, "https://lumendatabase.org/notices/1"},
		{"a.example publish=no", "worldwide", false, ""},
	}
	for _, tt := range tests {
		l := mustParse(t, tt.line)
		r, ok := l.Lookup("a.example")
		if !ok {
			t.Fatalf("%q: no rule", tt.line)
		}
		if r.Scope.String() != tt.scope || r.Publish != tt.publish || r.Notice != tt.notice {
			t.Errorf("%q: scope %q publish %v notice %q; want %q %v %q", tt.line, r.Scope, r.Publish, r.Notice, tt.scope, tt.publish, tt.notice)
		}
		// Format writes the rule back in a form that parses to the same rule.
		back := mustParse(t, r.Format())
		b, _ := back.Lookup("a.example")
		if b.Attrs != r.Attrs {
			t.Errorf("%q: Format %q reads back as %+v, want %+v", tt.line, r.Format(), b.Attrs, r.Attrs)
		}
	}
}

func TestParseScopeErrors(t *testing.T) {
	tests := []struct {
		text, want string
		line       int
	}{
		{"a.example countries=FRA", `"FRA" is not an ISO 3166-1 alpha-2 country code`, 1},
		{"a.example countries=FR,,DE", `"" is not an ISO 3166-1 alpha-2`, 1},
		{"a.example countries=XX", `"XX" is not an ISO 3166-1`, 1},
		{"a.example countries=EU", `"EU" is not an ISO 3166-1`, 1},
		{"a.example countries=", "countries: empty", 1},
		{"a.example countries=FR,fr", "FR given twice", 1},
		{"a.example countries=FR except_countries=US", "give one of them", 1},
		{"a.example except_countries=US countries=FR", "give one of them", 1},
		{"a.example unknown=block", "unknown: needs countries= or except_countries=", 1},
		{"a.example countries=FR unknown=maybe", `unknown="maybe": want allow or block`, 1},
		{"a.example publish=true", `publish="true": want yes or no`, 1},
		{"a.example notice=lumen", `notice="lumen": want an absolute http or https URL`, 1},
		{"# c\na.example countries=FR\na.example countries=DE,FR status=451", "duplicate rule \"a.example\" for country FR: already scoped on line 2", 3},
		{"a.example except_countries=US\na.example except_countries=FR", "line 1 has except_countries= too", 2},
		{"*.a.example countries=FR\n*.a.example countries=FR", "already scoped on line 1", 2},
	}
	for _, tt := range tests {
		_, err := Parse("f.txt", []byte(tt.text))
		var pe *ParseError
		if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].Line != tt.line || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %v; want f.txt:%d: ...%s", tt.text, err, tt.line, tt.want)
		}
	}
	// Disjoint scopes, and scoped rules beside a worldwide one, coexist.
	for _, ok := range []string{
		"a.example\na.example countries=FR\na.example countries=DE\na.example except_countries=US",
		"a.example countries=FR\n*.a.example countries=FR",
		"a.example except_countries=US\na.example countries=FR",
	} {
		if _, err := Parse("f.txt", []byte(ok)); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
}

// scopeList is the list TestMatchWhere and the benchmarks match against.
const scopeList = `
world.example status=403
world.example countries=FR status=451 reason="French court order"
world.example except_countries=US,CA reason="outside North America"
fr.example countries=FR status=451
*.wild.example countries=DE
sub.fr.example
deep.fr.example countries=BE
unknown.example countries=FR unknown=block
allow.example countries=FR unknown=allow
report.example status=403
report.example countries=FR mode=report
dry.example countries=FR mode=report
parent.example
child.parent.example countries=FR status=451
old.example countries=FR expires=2020-01-01
old.example status=403
plain.example
`

func TestMatchWhere(t *testing.T) {
	l := mustParse(t, scopeList)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		host, country string
		unknownBlocks bool
		want          string // "pattern status scope", "" for none
	}{
		// A matching countries= rule beats except_countries= beats worldwide.
		{"world.example", "FR", false, "world.example 451 countries=FR"},
		{"www.world.example", "FR", false, "world.example 451 countries=FR"},
		{"world.example", "DE", false, "world.example 403 except_countries=CA,US"},
		{"world.example", "US", false, "world.example 403 worldwide"},
		{"world.example", "", false, "world.example 403 worldwide"},
		{"world.example", "", true, "world.example 451 countries=FR"},
		// Outside its scope a rule does not apply: the name is proxied.
		{"fr.example", "FR", false, "fr.example 451 countries=FR"},
		{"fr.example", "DE", false, ""},
		{"a.fr.example", "DE", false, ""},
		{"fr.example", "", false, ""},
		{"fr.example", "", true, "fr.example 451 countries=FR"},
		// ... or covered by the next rule that applies.
		{"sub.fr.example", "DE", false, "sub.fr.example 403 worldwide"},
		{"deep.fr.example", "BE", false, "deep.fr.example 403 countries=BE"},
		{"deep.fr.example", "FR", false, "fr.example 451 countries=FR"},
		{"deep.fr.example", "DE", false, ""},
		{"child.parent.example", "FR", false, "child.parent.example 451 countries=FR"},
		{"child.parent.example", "DE", false, "parent.example 403 worldwide"},
		{"x.child.parent.example", "IT", false, "parent.example 403 worldwide"},
		// Wildcards keep their meaning.
		{"wild.example", "DE", false, ""},
		{"a.wild.example", "DE", false, "*.wild.example 403 countries=DE"},
		{"a.wild.example", "FR", false, ""},
		// unknown= overrides the operator's default.
		{"unknown.example", "", false, "unknown.example 403 countries=FR unknown=block"},
		{"allow.example", "", true, ""},
		{"allow.example", "FR", false, "allow.example 403 countries=FR unknown=allow"},
		// A scoped dry run never lifts a worldwide block.
		{"report.example", "FR", false, "report.example 403 worldwide"},
		{"dry.example", "FR", false, "dry.example 403 countries=FR"},
		{"dry.example", "DE", false, ""},
		// An expired scoped rule leaves the worldwide one.
		{"old.example", "FR", false, "old.example 403 worldwide"},
		{"plain.example", "FR", false, "plain.example 403 worldwide"},
		{"none.example", "FR", false, ""},
	}
	for _, tt := range tests {
		r, ok := l.MatchWhere(tt.host, Where{Country: tt.country, UnknownBlocks: tt.unknownBlocks}, now)
		got := ""
		if ok {
			got = r.Pattern() + " " + itoa(r.Status) + " " + r.Scope.String()
		}
		if got != tt.want {
			t.Errorf("MatchWhere(%q, %q, unknownBlocks=%v) = %q; want %q", tt.host, tt.country, tt.unknownBlocks, got, tt.want)
		}
		if tt.host == "dry.example" && ok && tt.country == "FR" && r.Mode != ModeReport {
			t.Errorf("dry.example FR mode = %v, want report", r.Mode)
		}
	}
	// Match sees worldwide rules only.
	for host, want := range map[string]string{"fr.example": "", "world.example": "world.example", "deep.fr.example": "", "a.wild.example": ""} {
		r, ok := l.Match(host, now)
		if got := map[bool]string{true: r.Pattern()}[ok]; got != want {
			t.Errorf("Match(%q) = %q; want %q", host, got, want)
		}
	}
	for host, want := range map[string]bool{"fr.example": true, "x.deep.fr.example": true, "plain.example": false, "a.wild.example": true, "x.parent.example": false, "none.example": false} {
		if got := l.ScopedFor(host); got != want {
			t.Errorf("ScopedFor(%q) = %v; want %v", host, got, want)
		}
	}
}

func itoa(n int) string {
	return string(rune('0'+n/100)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

func TestMatchWhereDoesNotAllocate(t *testing.T) {
	scoped := mustParse(t, scopeList)
	plain := mustParse(t, "example.org reason=\"x\"\n")
	now := time.Now()
	n := testing.AllocsPerRun(100, func() {
		if _, ok := scoped.MatchWhere("a.b.world.example", Where{Country: "FR"}, now); !ok {
			t.Fatal("no match")
		}
		scoped.MatchWhere("a.b.example.net", Where{Country: "DE"}, now)
		scoped.ScopedFor("a.b.example.net")
		if plain.ScopedFor("a.b.example.org") {
			t.Fatal("scoped")
		}
		if _, ok := plain.MatchWhere("a.b.example.org", Where{}, now); !ok {
			t.Fatal("no match")
		}
		if _, ok := Country("FR"); !ok {
			t.Fatal("FR")
		}
	})
	if n != 0 {
		t.Errorf("MatchWhere/ScopedFor/Country allocate %v times; want 0", n)
	}
}

// TestCountriesAgainstXText checks the embedded ISO 3166-1 list against the
// CLDR region data of golang.org/x/text: every code is a country there,
// with an ISO alpha-3 code, and every such region that CLDR does not mark
// deprecated is in the list.
func TestCountriesAgainstXText(t *testing.T) {
	codes := Countries()
	if len(codes) != 250 {
		t.Errorf("%d codes, want 249 ISO codes and XK", len(codes))
	}
	if !slices.IsSorted(codes) {
		t.Error("Countries not sorted")
	}
	for _, c := range codes {
		r, err := language.ParseRegion(c)
		if err != nil || !r.IsCountry() || r.String() != c {
			t.Errorf("%s: x/text says region %v, err %v, country %v", c, r, err, r.IsCountry())
		}
	}
	// x/text also knows deprecated and reserved codes; these are the ones
	// the list leaves out on purpose.
	deprecated := strings.Fields("AC AN BU CP CS CT DD DG DY EA FQ FX HV IC JT MI NH NQ NT PC PU PZ RH SU TA TP VD WK YD YU ZR")
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			c := string([]rune{a, b})
			r, err := language.ParseRegion(c)
			inX := err == nil && r.IsCountry() && r.String() == c && r.ISO3() != "" && r.ISO3() != "ZZZ"
			_, inList := Country(c)
			if inX && !inList && !slices.Contains(deprecated, c) {
				t.Errorf("%s: a country for x/text, not in the list", c)
			}
			if lower, ok := Country(strings.ToLower(c)); ok != inList || (ok && lower != c) {
				t.Errorf("Country(%q) = %q, %v", strings.ToLower(c), lower, ok)
			}
		}
	}
	for _, bad := range []string{"", "F", "FRA", "F1", "1F", "T1", "XX", "ZZ", "EU", "@R", "F[", "{r"} {
		if _, ok := Country(bad); ok {
			t.Errorf("Country(%q) ok", bad)
		}
	}
}

func TestScopedChangesAndDrops(t *testing.T) {
	old := mustParse(t, "a.example\na.example countries=FR status=451\nb.example countries=DE\n")
	next := mustParse(t, "a.example\na.example countries=FR status=403\nb.example countries=DE,AT\n")
	var got []string
	for c := range next.Changes(old) {
		got = append(got, string(c.Kind)+" "+c.Rule.Pattern()+" "+c.Rule.Scope.String())
	}
	want := []string{
		"changed a.example countries=FR",
		"added b.example countries=AT,DE",
		"removed b.example countries=DE",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Changes = %q\nwant %q", got, want)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if d, total := next.DroppedBlocks(old, now); d != 1 || total != 3 {
		t.Errorf("DroppedBlocks = %d of %d; want 1 of 3 (the DE rule, now DE,AT)", d, total)
	}
	only := mustParse(t, "a.example\n")
	if d, total := only.DroppedBlocks(old, now); d != 2 || total != 3 {
		t.Errorf("DroppedBlocks = %d of %d; want 2 of 3", d, total)
	}
}

func TestBlockScoped(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	base := "a.example reason=world\n"
	tests := []struct {
		name, data string
		args       []string
		kind       ChangeKind
		want       string
	}{
		{"a scoped block beside a worldwide rule is a rule of its own", base, []string{"countries=FR", "status=451"}, Added,
			base + "a.example countries=FR status=451\n"},
		{"the same countries edit that rule", base + "a.example countries=fr status=451\n", []string{"countries=FR", "reason=court"}, Changed,
			base + "a.example countries=FR status=451 reason=court\n"},
		{"no scope edits the worldwide rule", base + "a.example countries=FR status=451\n", []string{"status=451"}, Changed,
			"a.example reason=world status=451\na.example countries=FR status=451\n"},
		{"an overlapping scope is refused", base + "a.example countries=FR status=451\n", []string{"countries=DE,FR"}, "", ""},
	}
	for _, tt := range tests {
		out, res, err := ApplyEdit("f.txt", []byte(tt.data), Edit{Pattern: "a.example", Args: tt.args}, 1, now)
		if tt.want == "" {
			if err == nil || !strings.Contains(err.Error(), "already scoped") {
				t.Errorf("%s: err = %v, want already scoped", tt.name, err)
			}
			continue
		}
		if err != nil || res.Kind != tt.kind || string(out) != tt.want {
			t.Errorf("%s: kind %q err %v\n%s\nwant %q\n%s", tt.name, res.Kind, err, out, tt.kind, tt.want)
		}
	}
}

// BenchmarkMatchWhere is the decision on the request path: ScopedFor, then
// MatchWhere when a scoped rule covers the host, else Match. "plain" has no
// scoped rule at all; "scoped-elsewhere" has scoped rules, none about the
// host; "scoped" decides a host that a scoped rule covers.
func BenchmarkMatchWhere(b *testing.B) {
	plain := genList(100_000)
	scoped := append(slices.Clone(plain), scopeList...)
	now := time.Now()
	for _, bc := range []struct {
		name, list, host string
	}{
		{"plain", string(plain), "www.site5.example"},
		{"scoped-elsewhere", string(scoped), "www.site5.example"},
		{"scoped", string(scoped), "www.world.example"},
		{"scoped-outside", string(scoped), "www.fr.example"},
	} {
		l, err := Parse("bench", []byte(bc.list))
		if err != nil {
			b.Fatal(err)
		}
		w := Where{Country: "DE"}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if l.ScopedFor(bc.host) {
					l.MatchWhere(bc.host, w, now)
				} else {
					l.Match(bc.host, now)
				}
			}
		})
	}
}

// TestMatchWhereAgreesWithMatch: Match (the worldwide fast path) and
// MatchWhere walk the names with loops of their own; on rules without a
// scope they must decide alike (block before report, the most specific
// pattern first, "*.name" before "name", expired rules skipped). Random
// lists of worldwide rules get one scoped rule on a name no host asks
// for, so that MatchWhere takes its own walk, and every host is asked of
// both, from a country and from none.
func TestMatchWhereAgreesWithMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 24))
	names := []string{"example", "a.example", "b.a.example", "c.b.a.example", "d.example", "e.d.example", "a.d.example"}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for round := range 300 {
		var b strings.Builder
		seen := map[string]bool{}
		for range 1 + rng.IntN(8) {
			p := names[1+rng.IntN(len(names)-1)]
			if rng.IntN(3) == 0 {
				p = "*." + p
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			b.WriteString(p)
			if rng.IntN(2) == 0 {
				b.WriteString(" mode=report")
			}
			switch rng.IntN(4) {
			case 0:
				b.WriteString(" expires=2020-01-01")
			case 1:
				b.WriteString(" expires=2030-01-01")
			}
			b.WriteString("\n")
		}
		plain := b.String()
		b.WriteString("unasked.invalid countries=FR\n")
		l := mustParse(t, b.String())
		if !l.HasScoped() {
			t.Fatal("the list has no scoped rule: MatchWhere would be Match")
		}
		for _, host := range append(names, "x.c.b.a.example", "f.e.d.example", "other.example") {
			want, wok := l.Match(host, now)
			for _, w := range []Where{{Country: "FR"}, {Country: "DE"}, {}} {
				got, gok := l.MatchWhere(host, w, now)
				if gok != wok || got.Line != want.Line {
					t.Fatalf("round %d, list:\n%s\nMatchWhere(%s, %+v) = line %d %v; Match = line %d %v", round, plain, host, w, got.Line, gok, want.Line, wok)
				}
			}
		}
	}
}
