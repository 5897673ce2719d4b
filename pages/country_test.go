package pages

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCountryName(t *testing.T) {
	tests := []struct{ tag, code, want string }{
		{"en", "FR", "France"},
		{"de", "FR", "Frankreich"},
		{"fr", "DE", "Allemagne"},
		{"ja", "FR", "フランス"},
		{"ar", "FR", "فرنسا"},
		{"en", "XK", "Kosovo"},
		{"pt-BR", "US", "Estados Unidos"},
		{"x-bogus", "FR", "France"}, // an unknown language falls back to English
		{"en", "??", "??"},
	}
	for _, tt := range tests {
		if got := CountryName(tt.tag, tt.code); got != tt.want {
			t.Errorf("CountryName(%q, %q) = %q; want %q", tt.tag, tt.code, got, tt.want)
		}
	}
}

// TestInCountry serves a scoped block page to visitors from several
// countries, in several languages and formats.
func TestInCountry(t *testing.T) {
	r := newRenderer(t, Options{})
	p, err := r.Block(Block{Status: 451, Reason: "Court order 123", Scope: "countries=DE,FR"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		country, lang, accept string
		want                  []string
	}{
		{"FR", "en", "", []string{"This site is not available in France</h1>", "<dt>Country</dt><dd>France</dd>", "Court order 123"}},
		{"FR", "de", "", []string{"Diese Website ist in diesem Land nicht verfügbar: Frankreich</h1>", "<dd>Frankreich</dd>"}},
		{"DE", "ja", "", []string{"このサイトはドイツではご利用いただけません</h1>"}},
		{"", "en", "", []string{"This site is not available in your region</h1>"}},
		{"FR", "en", "text/plain", []string{"451 Unavailable For Legal Reasons: This site is not available in France\n", "Country: France\n", "Reason: Court order 123\n"}},
		{"FR", "en", "application/json", []string{`"country": "FR"`, `"scope": "countries=DE,FR"`, `"title": "This site is not available in France"`}},
		{"", "en", "application/json", []string{`"country": "unknown"`, `"scope": "countries=DE,FR"`}},
	}
	for _, tt := range tests {
		cp := p.InCountry(tt.country)
		if cp == p {
			t.Fatalf("InCountry(%q) returned the page itself", tt.country)
		}
		if cp != p.InCountry(tt.country) {
			t.Errorf("InCountry(%q) prepared twice", tt.country)
		}
		req := httptest.NewRequest("GET", "http://forum.example/", nil)
		req.Header.Set("Accept-Language", tt.lang)
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		w := httptest.NewRecorder()
		cp.Serve(w, req, Request{Host: "forum.example", RequestID: "r1"})
		body := w.Body.String()
		if w.Code != 451 || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s/%s: status %d, Cache-Control %q", tt.country, tt.lang, w.Code, w.Header().Get("Cache-Control"))
		}
		for _, s := range tt.want {
			if !strings.Contains(body, s) {
				t.Errorf("%s/%s/%s: body lacks %q:\n%s", tt.country, tt.lang, tt.accept, s, body)
			}
		}
		if tt.accept == "application/json" && !json.Valid([]byte(body)) {
			t.Errorf("invalid JSON: %s", body)
		}
	}
	// A worldwide block has one page for every visitor, with no country.
	world, err := r.Block(Block{Status: 403})
	if err != nil {
		t.Fatal(err)
	}
	if world.InCountry("FR") != world {
		t.Error("a worldwide page has per-country pages")
	}
	w := httptest.NewRecorder()
	world.Serve(w, httptest.NewRequest("GET", "http://a/", strings.NewReader("")), Request{Host: "a"})
	if strings.Contains(w.Body.String(), "not available in") || strings.Contains(w.Body.String(), "<dt>Country") {
		t.Errorf("worldwide page names a country:\n%s", w.Body.String())
	}
}
