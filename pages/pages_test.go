package pages

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept string
		want   Format
	}{
		{"", HTML},
		{"*/*", HTML},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", HTML},
		{"application/json", JSON},
		{"application/problem+json", JSON},
		{"application/vnd.api+json, application/*+json", JSON},
		{"application/json, text/html;q=0.5", JSON},
		{"text/html;q=0.5, application/json", JSON},
		{"text/plain", Text},
		{"TEXT/PLAIN; charset=utf-8", Text},
		{"text/plain, */*;q=0.1", Text},
		{"text/*", HTML},
		{"text/plain;q=0.9, text/html;q=0.8", Text},
		{"image/png", HTML},
		{"application/json;q=0, */*", HTML},
		{"text/html;q=bogus, text/plain;q=0.5", HTML},
	}
	for _, tt := range tests {
		if got := Negotiate(tt.accept); got != tt.want {
			t.Errorf("Negotiate(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func newRenderer(t *testing.T, o Options) *Renderer {
	t.Helper()
	r, err := NewRenderer(o)
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	return r
}

var req = Request{Host: "forum.example", RequestID: "0123456789abcdef", Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}

func serve(t *testing.T, p *Page, method, accept string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://forum.example/", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	p.Serve(w, r, req)
	return w
}

func TestBlockPageFormats(t *testing.T) {
	r := newRenderer(t, Options{BlockedBy: "https://edge.example.com"})
	p, err := r.Block(Block{Status: 451, Policy: "https://blog.example.com/why", Reason: "Court <order> 123"})
	if err != nil {
		t.Fatal(err)
	}
	// HTML
	w := serve(t, p, "GET", "")
	body := w.Body.String()
	if w.Code != 451 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HTML: code %d type %q", w.Code, w.Header().Get("Content-Type"))
	}
	for _, want := range []string{`lang="en"`, "<main>", "<h1", "unavailable for legal reasons", "forum.example",
		"Court &lt;order&gt; 123", `href="https://blog.example.com/why"`, "0123456789abcdef", "2026-11-25T12:00:00Z"} {
		if !strings.Contains(body, want) {
			t.Errorf("HTML body lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<link", "@import", "src=", "url("} {
		if strings.Contains(body, bad) {
			t.Errorf("HTML body is not self-contained: has %q", bad)
		}
	}
	if got := w.Header().Get("Link"); got != `<https://edge.example.com>; rel="blocked-by"` {
		t.Errorf("Link = %q", got)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Errorf("headers = %v", w.Header())
	}
	// JSON
	w = serve(t, p, "GET", "application/json")
	if w.Code != 451 || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("JSON: code %d type %q", w.Code, w.Header().Get("Content-Type"))
	}
	var pr map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &pr); err != nil {
		t.Fatalf("JSON body: %v\n%s", err, w.Body)
	}
	want := map[string]any{"type": "https://blog.example.com/why", "status": 451.0, "detail": "Court <order> 123",
		"instance": "0123456789abcdef", "host": "forum.example", "title": "This site is unavailable for legal reasons",
		"blocked_by": "https://edge.example.com", "time": "2026-11-25T12:00:00Z"}
	for k, v := range want {
		if pr[k] != v {
			t.Errorf("JSON %s = %v, want %v", k, pr[k], v)
		}
	}
	// Text
	w = serve(t, p, "GET", "text/plain")
	if w.Header().Get("Content-Type") != "text/plain; charset=utf-8" || !strings.Contains(w.Body.String(), "Reason: Court <order> 123\n") ||
		!strings.Contains(w.Body.String(), "Policy: https://blog.example.com/why") || !strings.Contains(w.Body.String(), "Request ID: 0123456789abcdef") {
		t.Errorf("text body:\n%s", w.Body)
	}
	// HEAD
	w = serve(t, p, "HEAD", "")
	if w.Code != 451 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD: code %d, body %d bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

func TestBlockPageDefaults(t *testing.T) {
	r := newRenderer(t, Options{})
	p, err := r.Block(Block{})
	if err != nil {
		t.Fatal(err)
	}
	w := serve(t, p, "GET", "")
	if w.Code != 403 || w.Header().Get("Link") != "" || strings.Contains(w.Body.String(), "Reason:") || strings.Contains(w.Body.String(), "policy behind") {
		t.Errorf("default block: code %d, Link %q\n%s", w.Code, w.Header().Get("Link"), w.Body)
	}
	w = serve(t, p, "GET", "application/json")
	if !strings.Contains(w.Body.String(), `"type": "about:blank"`) {
		t.Errorf("JSON without policy:\n%s", w.Body)
	}
}

func TestErrorPages(t *testing.T) {
	r := newRenderer(t, Options{BlockedBy: "https://edge.example.com"})
	for _, tt := range []struct {
		status int
		want   string
	}{{404, "No site is configured"}, {502, "could not be reached"}, {504, "took too long"}, {400, "no valid host"}, {500, "could not be reached"}} {
		p := r.Error(tt.status)
		w := serve(t, p, "GET", "")
		wantCode := tt.status
		if tt.status == 500 {
			wantCode = 502
		}
		if w.Code != wantCode || !strings.Contains(w.Body.String(), tt.want) || w.Header().Get("Link") != "" {
			t.Errorf("Error(%d): code %d Link %q body lacks %q", tt.status, w.Code, w.Header().Get("Link"), tt.want)
		}
		// The error pages share the block page's look.
		if !strings.Contains(w.Body.String(), `class="card"`) {
			t.Errorf("Error(%d) page does not use the shared layout", tt.status)
		}
	}
}

func TestCustomTemplate(t *testing.T) {
	for _, file := range []string{"testdata/custom.html", "testdata/dynamic.html"} {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		r := newRenderer(t, Options{Template: string(text), TemplateFile: file})
		p, err := r.Block(Block{Reason: "spam", Policy: "https://p.example/"})
		if err != nil {
			t.Fatal(err)
		}
		w := serve(t, p, "GET", "")
		body := w.Body.String()
		if file == "testdata/custom.html" {
			if !strings.Contains(body, "<h1>forum.example blocked</h1>") || !strings.Contains(body, "ID 0123456789abcdef at 2026-11-25T12:00:00Z") {
				t.Errorf("%s body:\n%s", file, body)
			}
			if p.vars[p.r.def].Load().formats[HTML].dynamic {
				t.Errorf("%s was not prepared ahead", file)
			}
		} else {
			if !strings.Contains(body, "<h1>for</h1>") || !p.vars[p.r.def].Load().formats[HTML].dynamic {
				t.Errorf("%s: dynamic %v body:\n%s", file, p.vars[p.r.def].Load().formats[HTML].dynamic, body)
			}
		}
	}
}

func TestBadTemplate(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"testdata/badfield.html", "can't evaluate field Hostname"},
		{"testdata/badsyntax.html", "unexpected EOF"},
	} {
		text, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewRenderer(Options{Template: string(text), TemplateFile: tt.file})
		if err == nil || !strings.Contains(err.Error(), tt.file) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewRenderer(%s) error = %v, want it to name the file and %q", tt.file, err, tt.want)
		}
	}
}

func TestServeUnsafeHost(t *testing.T) {
	r := newRenderer(t, Options{})
	p := r.Error(http.StatusBadRequest)
	w := httptest.NewRecorder()
	p.Serve(w, httptest.NewRequest("GET", "/", nil), Request{Host: `<script>x"`, RequestID: "id"})
	if strings.Contains(w.Body.String(), "<script>") {
		t.Errorf("unsafe host reached the page:\n%s", w.Body)
	}
}

func BenchmarkServeBlockPage(b *testing.B) {
	r, _ := NewRenderer(Options{BlockedBy: "https://edge.example.com"})
	p, _ := r.Block(Block{Policy: "https://blog.example.com/why", Reason: "Imminent threat"})
	hr := httptest.NewRequest("GET", "http://forum.example/", nil)
	for b.Loop() {
		w := httptest.NewRecorder()
		p.Serve(w, hr, req)
	}
}

// FuzzNegotiate feeds visitors' Accept headers to Negotiate: it must
// always pick one of the three formats, and adding a range with q=0 for a
// type no format uses must not change the pick.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "*/*", "text/html;q=0.9, application/json", "text/plain;q=bogus", ";;,,", "application/*+json;q=1.0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		if got := Negotiate(accept); got >= numFormats {
			t.Fatalf("Negotiate(%q) = %d", accept, got)
		}
		if strings.Contains(accept, ";") || strings.Contains(accept, "image/png") {
			return
		}
		if a, b := Negotiate(accept), Negotiate(accept+", image/png;q=0"); a != b {
			t.Fatalf("Negotiate(%q) = %v, but with image/png;q=0 added = %v", accept, a, b)
		}
	})
}

func TestLinkTargetEscaped(t *testing.T) {
	for _, tt := range []struct{ blockedBy, want string }{
		{"https://edge.example.com", "https://edge.example.com"},
		{"https://edge.example.com/a?b=c&d=e#f", "https://edge.example.com/a?b=c&d=e#f"},
		{"https://edge.example.com/%41%zz", "https://edge.example.com/%41%25zz"},
		{`https://edge.example.com/>; rel="blocked-by", <https://evil.example/>`, "https://edge.example.com/%3E;%20rel=%22blocked-by%22,%20%3Chttps://evil.example/%3E"},
		{"https://edge.example.com/\r\nSet-Cookie: a=b", "https://edge.example.com/%0D%0ASet-Cookie:%20a=b"},
		{"https://bücher.example/ä", "https://b%C3%BCcher.example/%C3%A4"},
	} {
		r := newRenderer(t, Options{BlockedBy: tt.blockedBy})
		p, err := r.Block(Block{})
		if err != nil {
			t.Fatal(err)
		}
		w := serve(t, p, "GET", "application/json")
		link := w.Header().Get("Link")
		if link != "<"+tt.want+`>; rel="blocked-by"` {
			t.Errorf("BlockedBy %q: Link = %q, want <%s>", tt.blockedBy, link, tt.want)
		}
		if strings.Count(link, "<") != 1 || strings.Count(link, ">") != 1 || strings.Contains(link[:strings.IndexByte(link, '>')], `"`) {
			t.Errorf("BlockedBy %q: Link %q can close the target or add a parameter", tt.blockedBy, link)
		}
		var prob map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &prob); err != nil || prob["blocked_by"] != tt.want {
			t.Errorf("BlockedBy %q: problem blocked_by = %v (%v), want the escaped URL", tt.blockedBy, prob["blocked_by"], err)
		}
	}
}

func TestErrorPageStatuses(t *testing.T) {
	r := newRenderer(t, Options{BlockedBy: "https://edge.example.com"})
	for _, tt := range []struct {
		status int
		want   string
	}{
		{400, "not valid or not unique"},
		{404, "No site is configured"},
		{405, "method is not allowed"},
		{502, "could not be reached"},
		{503, "server is busy"},
		{504, "took too long"},
		{508, "went round in a loop"},
		{418, "could not be reached"}, // anything else: the 502 page
	} {
		p := r.Error(tt.status)
		w := serve(t, p, "GET", "text/plain")
		want := tt.status
		if tt.status == 418 {
			want = 502
		}
		if w.Code != want || !strings.Contains(w.Body.String(), tt.want) || w.Header().Get("Link") != "" {
			t.Errorf("Error(%d): %d Link %q\n%s", tt.status, w.Code, w.Header().Get("Link"), w.Body.String())
		}
	}
}

// BenchmarkServeBlockPageLanguage serves the block page to a browser that
// prefers German: negotiation plus a prepared page in that language.
func BenchmarkServeBlockPageLanguage(b *testing.B) {
	r, _ := NewRenderer(Options{BlockedBy: "https://edge.example.com", Operator: "Example Edge", Appeal: "https://edge.example.com/appeal"})
	p, _ := r.Block(Block{Policy: "https://blog.example.com/why", Reason: "Imminent threat"})
	hr := httptest.NewRequest("GET", "http://forum.example/", nil)
	hr.Header.Set("Accept-Language", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7")
	for b.Loop() {
		w := httptest.NewRecorder()
		p.Serve(w, hr, req)
	}
}

// BenchmarkNewRenderer measures what a config reload spends on pages:
// parsing the translations and preparing every error page in every
// language.
func BenchmarkNewRenderer(b *testing.B) {
	for b.Loop() {
		if _, err := NewRenderer(Options{Operator: "Example Edge"}); err != nil {
			b.Fatal(err)
		}
	}
}

// discardWriter is a ResponseWriter that keeps one header map and drops
// the body, as a server's buffered connection writer costs next to
// nothing per byte: it measures Serve rather than httptest's recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkServeBlockPageDiscard serves the block page into a writer that
// drops the body; compare it across commits for Serve's own cost.
func BenchmarkServeBlockPageDiscard(b *testing.B) {
	r, _ := NewRenderer(Options{BlockedBy: "https://edge.example.com"})
	p, _ := r.Block(Block{Policy: "https://blog.example.com/why", Reason: "Imminent threat"})
	hr := httptest.NewRequest("GET", "http://forum.example/", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.Serve(w, hr, req)
	}
}

// BenchmarkServeBlockPageDiscardLanguage is BenchmarkServeBlockPageDiscard
// for a German browser: negotiation plus the page prepared in German.
func BenchmarkServeBlockPageDiscardLanguage(b *testing.B) {
	r, _ := NewRenderer(Options{BlockedBy: "https://edge.example.com"})
	p, _ := r.Block(Block{Policy: "https://blog.example.com/why", Reason: "Imminent threat"})
	hr := httptest.NewRequest("GET", "http://forum.example/", nil)
	hr.Header.Set("Accept-Language", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.Serve(w, hr, req)
	}
}
