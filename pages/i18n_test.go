package pages

import (
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTranslationsComplete checks every built-in translation file against
// the English one: the same messages, the placeholders where the page
// puts values, a name and a direction, and text that is translated rather
// than copied.
func TestTranslationsComplete(t *testing.T) {
	files, err := fs.Glob(builtinFS, "i18n/*.json")
	if err != nil || len(files) < 12 {
		t.Fatalf("%d translation files (%v), want at least 12", len(files), err)
	}
	var en languageFile
	readJSON(t, "i18n/en.json", &en)
	rtl := map[string]bool{"ar": true, "he": true, "fa": true}
	for _, f := range files {
		var l languageFile
		readJSON(t, f, &l)
		tag := strings.TrimSuffix(filepath.Base(f), ".json")
		if l.Name == "" || (l.Dir == "rtl") != rtl[tag] || (l.Dir != "ltr" && l.Dir != "rtl") {
			t.Errorf("%s: name %q dir %q", f, l.Name, l.Dir)
		}
		same := 0
		for k, v := range en.Messages {
			got, ok := l.Messages[k]
			switch {
			case !ok:
				t.Errorf("%s lacks message %s", f, k)
				continue
			case strings.TrimSpace(got) == "":
				t.Errorf("%s: message %s is empty", f, k)
			case got == v:
				same++
			}
			for _, p := range placeholders(k) {
				if strings.Count(got, p) != 1 {
					t.Errorf("%s: message %s = %q, want %s once", f, k, got, p)
				}
			}
			if strings.ContainsAny(got, "<>") {
				t.Errorf("%s: message %s holds markup: %q", f, k, got)
			}
		}
		for k := range l.Messages {
			if _, ok := en.Messages[k]; !ok {
				t.Errorf("%s has message %s that en.json lacks", f, k)
			}
		}
		if tag != "en" && same > 4 {
			t.Errorf("%s: %d messages are the English text", f, same)
		}
	}
	for _, want := range []string{"en", "de", "fr", "es", "pt", "ru", "zh", "ja", "hi", "ar"} {
		if !slices.Contains(files, "i18n/"+want+".json") {
			t.Errorf("no built-in %s", want)
		}
	}
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	data, err := builtinFS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestNegotiateLanguage(t *testing.T) {
	tags := []string{"ar", "de", "en", "pt-BR", "zh", "zh-Hant"}
	const def = 2 // en
	tests := []struct {
		header, want string
	}{
		{"", "en"},
		{"de", "de"},
		{"DE", "de"},
		{"de-CH", "de"},        // falls back to the shorter tag
		{"de-Latn-CH", "de"},   // more than one level
		{"fr, de;q=0.5", "de"}, // first unknown, second known
		{"fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "en"},
		{"en;q=0.5, ar", "ar"},       // q beats order
		{"ar;q=0.5, de;q=0.5", "ar"}, // equal q: the first
		{"pt", "pt-BR"},              // a range matches longer tags
		{"pt-PT", "en"},              // no fallback to a sibling
		{"zh-Hant-TW", "zh-Hant"},    // the longest tag it starts with
		{"zh-TW", "zh"},
		{"zh-Hant;q=0.2, zh;q=0.9", "zh"},
		{"*", "en"}, // the default for *
		{"fr, *;q=0.1", "en"},
		{"en;q=0, *", "ar"},     // q=0 excludes; * takes the first other
		{"en;q=0", "en"},        // nothing acceptable: the default
		{"de;q=0, de-AT", "en"}, // de's own q=0 outranks de-AT's fallback to de
		{"de;q=1.0", "de"},
		{"de;q=1.001", "en"}, // malformed q: range ignored
		{"de;q=0.5x, ar;q=0.1", "ar"},
		{"de;q=.5", "en"},
		{"de;level=1", "en"}, // unknown parameter: ignored
		{"d e, ar", "ar"},
		{"de_DE, ar", "ar"},
		{"1de, ar", "ar"},
		{"de-, ar;q=0.9", "ar"},
		{"toolonglang, ar", "ar"},
		{",,;;, ,de", "de"},
		{"\x00\xff, de", "de"},
		{"ار, de", "de"},
		{strings.Repeat("fr,", 40) + "de", "en"}, // past the 32nd range
	}
	for _, tt := range tests {
		if got := tags[NegotiateLanguage(tt.header, tags, def)]; got != tt.want {
			t.Errorf("NegotiateLanguage(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}

// FuzzNegotiateLanguage feeds visitors' Accept-Language headers to the
// negotiation: it always returns one of the tags, the default for a
// header that names none, and adding a range of q=0 for a language no tag
// has does not change the pick.
func FuzzNegotiateLanguage(f *testing.F) {
	for _, s := range []string{"", "*", "de-CH,de;q=0.9,en;q=0.8", "zh-Hant-TW", "en;q=0, *", "ar;q=bogus", ";;,,", "pt;q=1.000"} {
		f.Add(s)
	}
	tags := []string{"ar", "de", "en", "pt-BR", "zh", "zh-Hant"}
	f.Fuzz(func(t *testing.T, header string) {
		got := NegotiateLanguage(header, tags, 2)
		if got < 0 || got >= len(tags) {
			t.Fatalf("NegotiateLanguage(%q) = %d", header, got)
		}
		if strings.Contains(strings.ToLower(header), "xq") {
			return
		}
		if again := NegotiateLanguage(header+", xq;q=0", tags, 2); again != got {
			t.Fatalf("NegotiateLanguage(%q) = %s, but with xq;q=0 added = %s", header, tags[got], tags[again])
		}
		if NegotiateLanguage(header, tags[:0], 7) != 7 {
			t.Fatal("no tags: not the default")
		}
	})
}

func serveLang(t *testing.T, p *Page, accept, acceptLanguage string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", "http://forum.example/", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	if acceptLanguage != "" {
		r.Header.Set("Accept-Language", acceptLanguage)
	}
	w := httptest.NewRecorder()
	p.Serve(w, r, req)
	return w
}

// TestPagesInEveryLanguage serves every page in every built-in language
// and checks the language is marked up and sent.
func TestPagesInEveryLanguage(t *testing.T) {
	r := newRenderer(t, Options{Operator: "Example Edge", Contact: "mailto:abuse@edge.example", Appeal: "https://edge.example/appeal"})
	langs, err := builtinLanguages()
	if err != nil {
		t.Fatal(err)
	}
	block, err := r.Block(Block{Policy: "https://edge.example/policy", Reason: "Spam"})
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]*Page{"block": block, "starting": r.Starting()}
	for _, s := range []int{400, 404, 405, 502, 503, 504, 508} {
		pages[http.StatusText(s)] = r.Error(s)
	}
	for tag, l := range langs {
		for name, p := range pages {
			w := serveLang(t, p, "", tag+";q=0.9, en;q=0.1")
			body := w.Body.String()
			if got := w.Header().Get("Content-Language"); got != tag {
				t.Errorf("%s %s: Content-Language %q", tag, name, got)
			}
			if got := w.Header().Get("Vary"); got != "Accept, Accept-Language" {
				t.Errorf("%s %s: Vary %q", tag, name, got)
			}
			if want := `<html lang="` + tag + `" dir="` + l.Dir + `">`; !strings.Contains(body, want) {
				t.Errorf("%s %s: no %s", tag, name, want)
			}
			key := strings.ReplaceAll(p.base.Kind, "-", "_")
			title := template.HTMLEscapeString(l.Messages[key+"_title"])
			if !strings.Contains(body, `<h1 id="title">`+title+`</h1>`) {
				t.Errorf("%s %s: title %q missing", tag, name, title)
			}
			if !strings.Contains(body, "<footer>") || !strings.Contains(body, "Example Edge") {
				t.Errorf("%s %s: no footer naming the operator", tag, name)
			}
			// The text and JSON forms are in the same language.
			w = serveLang(t, p, "application/json", tag)
			var pr map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &pr); err != nil || pr["language"] != tag || pr["title"] != l.Messages[key+"_title"] {
				t.Errorf("%s %s JSON: %v %v", tag, name, err, pr)
			}
			w = serveLang(t, p, "text/plain", tag)
			if !strings.Contains(w.Body.String(), l.Messages["request_id"]+l.Messages["colon"]+req.RequestID) {
				t.Errorf("%s %s text lacks the request ID line:\n%s", tag, name, w.Body)
			}
		}
	}
}

// TestOperatorAndRecourse: every format says who blocked the site, links
// the policy and says how to appeal or get in touch, quoting the request
// ID; a rule's contact and appeal override the operator's.
func TestOperatorAndRecourse(t *testing.T) {
	r := newRenderer(t, Options{Operator: "Example Edge Ltd", Contact: "mailto:abuse@edge.example",
		Appeal: "https://edge.example/appeal", BlockedBy: "https://edge.example/"})
	tests := []struct {
		name            string
		block           Block
		contact, appeal string
	}{
		{"defaults", Block{Policy: "https://edge.example/policy"}, "mailto:abuse@edge.example", "https://edge.example/appeal"},
		{"per rule", Block{Policy: "https://edge.example/policy", Contact: "https://court.example/contact", Appeal: "https://court.example/appeal"},
			"https://court.example/contact", "https://court.example/appeal"},
	}
	for _, tt := range tests {
		p, err := r.Block(tt.block)
		if err != nil {
			t.Fatal(err)
		}
		html := serveLang(t, p, "", "").Body.String()
		for _, want := range []string{
			"<strong>Blocked by: </strong>Example Edge Ltd",
			`<a class="policy" href="https://edge.example/policy">Read the policy behind this block</a>`,
			`<a href="` + tt.appeal + `">Appeal this block</a>`,
			`<a href="` + tt.contact + `">Contact the operator</a>`,
			"Quote the request ID shown below when you get in touch.",
			`<dd><span dir="ltr">0123456789abcdef</span></dd>`,
			`<footer>`, `<a href="https://edge.example/">Example Edge Ltd</a>`,
		} {
			if !strings.Contains(html, want) {
				t.Errorf("%s: HTML lacks %s", tt.name, want)
			}
		}
		if i, j := strings.Index(html, "</main>"), strings.Index(html, "<footer>"); i < 0 || j < i {
			t.Errorf("%s: the footer is inside main, so it is no contentinfo landmark", tt.name)
		}
		var pr map[string]any
		w := serveLang(t, p, "application/problem+json", "")
		if err := json.Unmarshal(w.Body.Bytes(), &pr); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"operator": "Example Edge Ltd", "contact": tt.contact, "appeal": tt.appeal,
			"type": "https://edge.example/policy", "request_id": req.RequestID, "blocked_by": "https://edge.example/"} {
			if pr[k] != v {
				t.Errorf("%s: JSON %s = %v, want %s", tt.name, k, pr[k], v)
			}
		}
		text := serveLang(t, p, "text/plain", "").Body.String()
		for _, want := range []string{"Blocked by: Example Edge Ltd\n", "Policy: https://edge.example/policy\n",
			"Appeal: " + tt.appeal + "\n", "Contact: " + tt.contact + "\n", "Quote the request ID", "Request ID: 0123456789abcdef\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: text lacks %q:\n%s", tt.name, want, text)
			}
		}
		if got := w.Header().Get("Link"); got != `<https://edge.example/>; rel="blocked-by"` {
			t.Errorf("%s: Link %q", tt.name, got)
		}
	}
	// Error pages name the operator and link the contact, but offer no appeal.
	body := serveLang(t, r.Error(404), "", "de").Body.String()
	if !strings.Contains(body, "Netzbetreiber: Example Edge Ltd") || !strings.Contains(body, `<a href="mailto:abuse@edge.example">Betreiber kontaktieren</a>`) || strings.Contains(body, "appeal") {
		t.Errorf("404 page in German:\n%s", body)
	}
}

// TestReasonLanguages: a rule's reason in the page's language wins, with
// its own lang; otherwise the plain reason, in the default language.
func TestReasonLanguages(t *testing.T) {
	r := newRenderer(t, Options{})
	p, err := r.Block(Block{Reason: "Harassment campaign", Reasons: map[string]string{"de": "Belästigungskampagne", "ar": "حملة تحرش", "pt-BR": "Campanha de assédio"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ accept, want, lang string }{
		{"de-AT", "Belästigungskampagne", "de"},
		{"ar", "حملة تحرش", "ar"},
		{"pt", "Campanha de assédio", "pt-BR"},
		{"fr", "Harassment campaign", "en"},
		{"", "Harassment campaign", "en"},
	} {
		body := serveLang(t, p, "", tt.accept).Body.String()
		if want := `<span lang="` + tt.lang + `" dir="auto">` + template.HTMLEscapeString(tt.want) + `</span>`; !strings.Contains(body, want) {
			t.Errorf("Accept-Language %q: no %s", tt.accept, want)
		}
	}
	// Only per-language reasons: a page in another language shows one.
	p, err = r.Block(Block{Reasons: map[string]string{"fr": "Hameçonnage"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := serveLang(t, p, "", "ja").Body.String(); !strings.Contains(body, `<span lang="fr" dir="auto">Hameçonnage</span>`) {
		t.Errorf("ja page lacks the French reason")
	}
}

func TestRetryAfter(t *testing.T) {
	r := newRenderer(t, Options{RetryAfter: 1500 * time.Millisecond})
	for _, tt := range []struct {
		p    *Page
		want string
	}{{r.Error(502), "2"}, {r.Error(503), "2"}, {r.Error(504), "2"}, {r.Starting(), "2"}, {r.Error(404), ""}, {r.Error(400), ""}} {
		w := serveLang(t, tt.p, "", "")
		if got := w.Header().Get("Retry-After"); got != tt.want {
			t.Errorf("%d page: Retry-After %q, want %q", w.Code, got, tt.want)
		}
	}
	if w := serveLang(t, r.Starting(), "", "fr"); w.Code != 503 || !strings.Contains(w.Body.String(), "démarre") || !strings.Contains(w.Body.String(), `class="card"`) {
		t.Errorf("starting page: %d\n%s", w.Code, w.Body)
	}
	if w := serveLang(t, newRenderer(t, Options{}).Error(502), "", ""); w.Header().Get("Retry-After") != "" {
		t.Errorf("Retry-After without RetryAfter: %q", w.Header().Get("Retry-After"))
	}
}

func readTemplate(t *testing.T, file string) Template {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return Template{Text: string(data), File: file}
}

func TestTemplatesForEveryPage(t *testing.T) {
	r := newRenderer(t, Options{Operator: "Example Edge", Templates: map[string]Template{
		"error": readTemplate(t, "testdata/error.html"),
		"404":   readTemplate(t, "testdata/notfound.html"),
		"block": readTemplate(t, "testdata/custom.html"),
	}})
	if body := serveLang(t, r.Error(404), "", "ja").Body.String(); !strings.Contains(body, "Nothing at forum.example (unknown-host, 日本語)") || !strings.Contains(body, `lang="ja"`) {
		t.Errorf("404 template:\n%s", body)
	}
	if body := serveLang(t, r.Error(502), "", "de").Body.String(); !strings.Contains(body, "<h1>Fehler 502: ") || !strings.Contains(body, "Example Edge 0123456789abcdef") {
		t.Errorf("error template on 502:\n%s", body)
	}
	p, _ := r.Block(Block{Reason: "spam"})
	if body := serveLang(t, p, "", "").Body.String(); !strings.Contains(body, "<h1>forum.example blocked</h1>") {
		t.Errorf("block template:\n%s", body)
	}
	// Prepared ahead in every language, not rendered per request.
	for i := range r.tags {
		if v := r.Error(502).vars[i].Load(); v == nil || v.formats[HTML].dynamic {
			t.Errorf("502 in %s not prepared ahead", r.tags[i])
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	fields := strings.Join(dataFields(), ", ")
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{"unknown field", Options{Templates: map[string]Template{"502": readTemplate(t, "testdata/unknownfield.html")}},
			[]string{"pages.templates.502 testdata/unknownfield.html", "can't evaluate field Operater", "a template may use " + fields}},
		{"unknown field in block", Options{Template: readTemplate(t, "testdata/badfield.html").Text, TemplateFile: "testdata/badfield.html"},
			[]string{"pages.templates.block testdata/badfield.html", "Hostname", ".Operator, .Contact, .Appeal"}},
		{"unknown message", Options{Templates: map[string]Template{"error": readTemplate(t, "testdata/unknownmessage.html")}},
			[]string{"testdata/unknownmessage.html", `no entry for key "no_such_message"`, "read_policy"}},
		{"syntax", Options{Templates: map[string]Template{"404": readTemplate(t, "testdata/badsyntax.html")}},
			[]string{"pages.templates.404", "testdata/badsyntax.html", "unexpected EOF"}},
		{"unknown page", Options{Templates: map[string]Template{"418": readTemplate(t, "testdata/custom.html")}},
			[]string{`unknown page "418"`, "block, error, 400"}},
		{"both", Options{Template: "x", Templates: map[string]Template{"block": readTemplate(t, "testdata/custom.html")}},
			[]string{"pages.template and pages.templates.block"}},
		{"default language", Options{DefaultLanguage: "xx"}, []string{`pages.default_language "xx": no such language (have ar, de, en`}},
	}
	for _, tt := range tests {
		_, err := NewRenderer(tt.o)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error = %v\nwant it to contain %q", tt.name, err, w)
			}
		}
	}
}

func languageFiles(t *testing.T, dir string) []LanguageFile {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var out []LanguageFile
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, LanguageFile{Name: n, Data: data})
	}
	return out
}

// TestOperatorLanguages: a file for a built-in language overrides its
// messages one by one; a file for a new language adds it, and must be
// complete.
func TestOperatorLanguages(t *testing.T) {
	r := newRenderer(t, Options{Languages: languageFiles(t, "testdata/languages"), DefaultLanguage: "nl"})
	if !slices.Contains(r.Languages(), "nl") || r.DefaultLanguage() != "nl" {
		t.Fatalf("languages %v default %s", r.Languages(), r.DefaultLanguage())
	}
	p, _ := r.Block(Block{})
	for _, tt := range []struct{ accept, want string }{
		{"de", "<h1 id=\"title\">Diese Seite ist gesperrt</h1>"},             // overridden
		{"de", "hat den Zugang zu <span"},                                    // the rest stays
		{"nl-BE", "De beheerder van dit netwerk heeft de toegang tot <span"}, // added
		{"sw", `lang="nl"`}, // the default
	} {
		if body := serveLang(t, p, "", tt.accept).Body.String(); !strings.Contains(body, tt.want) {
			t.Errorf("Accept-Language %s: no %s", tt.accept, tt.want)
		}
	}
	_, err := NewRenderer(Options{Languages: languageFiles(t, "testdata/badlanguages")})
	for _, want := range []string{
		"testdata/badlanguages/sv.json: missing messages appeal, appeal_label,",
		`testdata/badlanguages/xx_YY.json: language tag "xx_YY"`,
		`testdata/badlanguages/en.json: dir "sideways": want ltr or rtl`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad language files: error = %v\nwant %q", err, want)
		}
	}
}

// TestLimit: languages prepared on first request are bounded across the
// pages sharing a Limit; past it, visitors get the default language, and
// the pages already prepared stay.
func TestLimit(t *testing.T) {
	r := newRenderer(t, Options{})
	l := NewLimit(2)
	a, _ := r.Block(Block{Reason: "a", Limit: l})
	b, _ := r.Block(Block{Reason: "b", Limit: l})
	for _, tt := range []struct {
		p          *Page
		lang, want string
	}{
		{a, "de", "de"}, {a, "de", "de"}, {b, "fr", "fr"}, // two units
		{b, "ja", "en"}, {a, "ru", "en"}, // none left: the default language
		{a, "de", "de"}, {b, "fr", "fr"}, {a, "en", "en"}, // prepared ones stay
	} {
		if got := serveLang(t, tt.p, "", tt.lang).Header().Get("Content-Language"); got != tt.want {
			t.Errorf("%s: Content-Language %s, want %s", tt.lang, got, tt.want)
		}
	}
	if l.Left() != 0 {
		t.Errorf("Left = %d", l.Left())
	}
}
