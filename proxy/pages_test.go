package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

func TestPagesConfigErrors(t *testing.T) {
	_, err := config.LoadConfig("testdata/pages-invalid.yaml")
	var ce *config.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("LoadConfig = %v, want *ConfigError", err)
	}
	want := []string{
		`testdata/pages-invalid.yaml:6: pages.template: also given as pages.templates.block: keep one`,
		`testdata/pages-invalid.yaml:9: pages.templates.418: unknown page "418" (want one of block, error, 400, 404, 405, 502, 503, 504, 508)`,
		`testdata/pages-invalid.yaml:10: pages.templates.404: empty: want a template file`,
		`testdata/pages-invalid.yaml:11: pages.contact: "abuse@edge.example": want an absolute http or https URL or mailto:name@example.com (percent-encode spaces and <>"\^` + "`{|})",
		`testdata/pages-invalid.yaml:12: pages.appeal: "mailto:appeal@edge.example": want an absolute http or https URL (percent-encode spaces and <>"\^` + "`{|})",
		`testdata/pages-invalid.yaml:13: pages.retry_after: must not be negative`,
		`testdata/pages-invalid.yaml:14: pages.operatr: unknown key (did you mean operator?)`,
	}
	if !slices.Equal(ce.Problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(ce.Problems, "\n"), strings.Join(want, "\n"))
	}
}

// TestPagesTemplateErrorNamesField: a template that uses an unknown field
// is reported at the config line that names it, with the fields a
// template may use; a bad default language at its own line.
func TestPagesTemplateErrorNamesField(t *testing.T) {
	dir := t.TempDir()
	edgetest.WriteFile(t, filepath.Join(dir, "blocklist.txt"), "")
	for _, tt := range []struct{ pages, want string }{
		{"  templates:\n    502: " + absTestdata(t, "pages/unknown-field.html") + "\n",
			"edgeblock.yaml:7: pages.templates.502: " + absTestdata(t, "pages/unknown-field.html") + ": language ar: template: "},
		{"  template: " + absTestdata(t, "pages/unknown-field.html") + "\n",
			"edgeblock.yaml:6: pages.template: " + absTestdata(t, "pages/unknown-field.html") + ": template: "},
		{"  default_language: xx\n", `edgeblock.yaml:6: pages.default_language: "xx": no such language (have ar, de, en, es, fa, fr, he, hi, it, ja, pt, ru, tr, zh)`},
		{"  languages_dir: " + dir + "/nope\n", "edgeblock.yaml:6: pages.languages_dir: " + dir + "/nope: no such file"},
	} {
		cfg := filepath.Join(dir, "edgeblock.yaml")
		edgetest.WriteFile(t, cfg, "listen:\n  http: 127.0.0.1:0\nblocklist:\n  file: blocklist.txt\npages:\n"+tt.pages)
		_, err := reload.LoadBundle(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadBundle with\n%s\nerror = %v\nwant %s", tt.pages, err, tt.want)
			continue
		}
		if strings.Contains(tt.pages, "unknown-field") && !strings.Contains(err.Error(), "can't evaluate field Titel") ||
			strings.Contains(tt.pages, "unknown-field") && !strings.Contains(err.Error(), "a template may use .Kind, .Status") {
			t.Errorf("error does not list the fields: %v", err)
		}
	}
}

// TestPagesThroughServer serves the pages of a configured operator
// through a running server: who blocked the site and how to appeal, in
// the visitor's language, with a rule's own appeal link and reason; the
// 502 page with Retry-After; an operator's error template and language
// file.
func TestPagesThroughServer(t *testing.T) {
	config := `routes:
  - host: down.example.com
    origins: ["http://127.0.0.1:9"]
pages:
  operator: Example Edge Ltd
  contact: mailto:abuse@edge.example.com
  appeal: https://edge.example.com/appeal
  retry_after: 45s
  languages_dir: ` + absTestdata(t, "pages/languages") + `
  templates:
    404: ` + absTestdata(t, "pages/error.html") + "\n"
	e := startEnv(t, config, `forum.example.com reason="Harassment campaign" reason.de="Belästigungskampagne" appeal=https://court.example/appeal`+"\n"+
		`shop.example.com status=451 contact=https://court.example/contact`+"\n")

	resp, body := e.get("GET", "forum.example.com", "/", map[string]string{"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
	if resp.StatusCode != 403 || resp.Header.Get("Content-Language") != "de" || resp.Header.Get("Vary") != "Accept, Accept-Language" {
		t.Errorf("block page: %d %v", resp.StatusCode, resp.Header)
	}
	for _, want := range []string{
		`<html lang="de" dir="ltr">`,
		`<h1 id="title">Diese Website ist bei uns gesperrt</h1>`, // the operator's override
		"Der Betreiber dieses Netzwerks hat den Zugang zu",       // the built-in rest
		"<strong>Gesperrt von: </strong>Example Edge Ltd",
		`<span lang="de" dir="auto">Belästigungskampagne</span>`,
		`<a href="https://court.example/appeal">Widerspruch gegen die Sperre einlegen</a>`,
		`<a href="mailto:abuse@edge.example.com">Betreiber kontaktieren</a>`,
		`<a class="policy" href="https://policy.example/default">`,
		`<dd><span dir="ltr">` + resp.Header.Get("X-Request-Id") + `</span></dd>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("German block page lacks %s", want)
		}
	}
	if got := resp.Header.Get("Link"); got != `<https://edge.example.com>; rel="blocked-by"` {
		t.Errorf("Link = %q", got)
	}

	resp, body = e.get("GET", "shop.example.com", "/", map[string]string{"Accept": "application/json", "Accept-Language": "ar"})
	var pr map[string]any
	if err := json.Unmarshal([]byte(body), &pr); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 451 || resp.Header.Get("Content-Language") != "ar" || pr["operator"] != "Example Edge Ltd" ||
		pr["contact"] != "https://court.example/contact" || pr["appeal"] != "https://edge.example.com/appeal" ||
		pr["language"] != "ar" || pr["request_id"] != resp.Header.Get("X-Request-Id") {
		t.Errorf("451 problem+json: %d %v", resp.StatusCode, pr)
	}

	resp, body = e.get("GET", "down.example.com", "/", map[string]string{"Accept-Language": "ja"})
	if resp.StatusCode != 502 || resp.Header.Get("Retry-After") != "45" || !strings.Contains(body, `<html lang="ja" dir="ltr">`) ||
		!strings.Contains(body, "ネットワーク運営者：Example Edge Ltd") {
		t.Errorf("502 page: %d Retry-After %q\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	resp, body = e.get("GET", "nowhere.example.com", "/", map[string]string{"Accept-Language": "he, en;q=0.1"})
	if resp.StatusCode != 404 || resp.Header.Get("Retry-After") != "" || !strings.Contains(body, `<html lang="he" dir="rtl">`) ||
		!strings.Contains(body, "custom error page for nowhere.example.com") || !strings.Contains(body, "שגיאה 404") {
		t.Errorf("404 page from the operator's template: %d\n%s", resp.StatusCode, body)
	}

	// A changed template file is picked up by a reload.
	tmpl := filepath.Join(e.dir, "notfound.html")
	edgetest.WriteFile(t, tmpl, `<!DOCTYPE html><html lang="{{.Lang}}"><title>x</title><main>version one {{.Host}}</main></html>`)
	cfg, _ := os.ReadFile(e.config)
	edgetest.WriteFile(t, e.config, strings.Replace(string(cfg), absTestdata(t, "pages/error.html"), tmpl, 1))
	e.srv.Reloader().Reload("test")
	if _, body := e.get("GET", "nowhere.example.com", "/", nil); !strings.Contains(body, "version one nowhere.example.com") {
		t.Fatalf("after a config reload: %s", body)
	}
	edgetest.WriteFile(t, tmpl, `<!DOCTYPE html><html lang="{{.Lang}}"><title>x</title><main>version two {{.Host}}</main></html>`)
	e.srv.Reloader().Reload("test")
	if _, body := e.get("GET", "nowhere.example.com", "/", nil); !strings.Contains(body, "version two nowhere.example.com") {
		t.Errorf("the changed template was not reloaded: %s", body)
	}
}

// TestStartingPage: before the first config and list are applied, a
// visitor gets the 503 page in the same look, in their language, with
// Retry-After.
func TestStartingPage(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "edgeblock.yaml")
	edgetest.WriteFile(t, cfgPath, "listen:\n  http: 127.0.0.1:0\nblocklist:\n  file: blocklist.txt\npages:\n  operator: Example Edge Ltd\n")
	req, _ := http.NewRequest("GET", "http://127.0.0.1"+startingServer(t, cfgPath)+"/", nil)
	req.Host = "forum.example.com"
	req.Header.Set("Accept-Language", "fr-CA, fr;q=0.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "30" || resp.Header.Get("Content-Language") != "fr" ||
		!strings.Contains(string(body), `class="card"`) || !strings.Contains(string(body), "Le serveur de périphérie démarre") ||
		!strings.Contains(string(body), "forum.example.com") || !strings.Contains(string(body), "Example Edge Ltd") ||
		!strings.Contains(string(body), resp.Header.Get("X-Request-Id")) {
		t.Errorf("starting page: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
}

// TestLanguageFilesWatched: an edited, added or removed translation file in
// pages.languages_dir changes the pages within about a second, without
// SIGHUP and with polling off.
func TestLanguageFilesWatched(t *testing.T) {
	langs := filepath.Join(t.TempDir(), "languages")
	if err := os.Mkdir(langs, 0o755); err != nil {
		t.Fatal(err)
	}
	de := filepath.Join(langs, "de.json")
	edgetest.WriteFile(t, de, `{"messages": {"blocked_title": "Version eins"}}`)
	e := startEnv(t, "blocklist:\n  file: blocklist.txt\n  policy: https://policy.example/p\n  poll_interval: -1s\npages:\n  languages_dir: "+langs+"\n",
		"forum.example.com\n")
	title := func(lang string) string {
		_, body := e.get("GET", "forum.example.com", "/", map[string]string{"Accept-Language": lang})
		i := strings.Index(body, `<h1 id="title">`)
		j := strings.Index(body, "</h1>")
		if i < 0 || j < i {
			return ""
		}
		return body[i+len(`<h1 id="title">`) : j]
	}
	if got := title("de"); got != "Version eins" {
		t.Fatalf("German title at start = %q", got)
	}
	steps := []struct {
		what   string
		change func()
		lang   string
		want   string
	}{
		{"file edited in place", func() { edgetest.WriteFile(t, de, `{"messages": {"blocked_title": "Version zwei"}}`) }, "de", "Version zwei"},
		{"file added", func() {
			edgetest.WriteFile(t, filepath.Join(langs, "fr.json"), `{"messages": {"blocked_title": "Version française"}}`)
		}, "fr", "Version française"},
		{"file removed", func() {
			if err := os.Remove(de); err != nil {
				t.Fatal(err)
			}
		}, "de", "Diese Website wurde gesperrt"},
	}
	for _, s := range steps {
		s.change()
		edgetest.WaitFor(t, 3*time.Second, s.what+": "+s.lang+" title "+s.want, func() bool { return title(s.lang) == s.want })
	}
}
