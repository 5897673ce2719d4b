package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// axeSource returns axe-core's axe.min.js, which .ci/run installs from the
// npm registry into .ci/node_modules ($AXE_CORE_JS overrides the path).
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AXE_CORE_JS")
	if path == "" {
		path = "../.ci/node_modules/axe-core/axe.min.js"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("axe-core is missing in CI (.ci/run installs it with npm): %v", err)
		}
		t.Skipf("axe-core not installed (npm install --prefix .ci --no-save axe-core@%s): %v", axeVersion, err)
	}
	return string(data)
}

// axeVersion is the axe-core version .ci/run installs.
const axeVersion = "4.11.0"

// A long reason, as operators write them: the policy link must stay above
// the fold on a phone all the same.
const longReason = "This site hosted a coordinated harassment campaign against private individuals, including their home addresses, " +
	"phone numbers and the schools of their children. We asked the site's operator three times to remove the material and " +
	"received no answer; the campaign continued and grew, and we received reports from the people targeted every day."

// browserMessages reads the built-in translation of tag.
func browserMessages(t *testing.T, tag string) map[string]string {
	t.Helper()
	var f struct {
		Messages map[string]string `json:"messages"`
	}
	data, err := os.ReadFile(filepath.Join("..", "pages", "i18n", tag+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f.Messages
}

// pageFonts are the Debian fonts (fonts-noto-core, fonts-noto-cjk) the
// scripts beyond Latin and Cyrillic must be drawn with, by language.
var pageFonts = map[string]string{
	"zh": "Noto Sans CJK", "ja": "Noto Sans CJK", "ar": "Arabic", "fa": "Arabic", "he": "Noto Sans Hebrew", "hi": "Noto Sans Devanagari",
}

// TestPagesInChromium loads every page edgeblock serves itself (block
// pages, 404, 502, 504, 508 and the 503 while starting) in every built-in
// language from running servers into headless Chromium on a 390×844
// phone, and checks each: the language and direction are right, axe-core
// finds no WCAG 2.2 A/AA violation in light or in dark mode, the footer
// is a contentinfo landmark, every link's text is words, nothing is wider
// than the phone, the policy link is above the fold despite a long reason,
// and CJK, Arabic, Hebrew and Devanagari are drawn with Debian's Noto
// fonts. Desktop screenshots of the English and Arabic block pages are
// checked too; with UPDATE_SCREENSHOT=1 they replace the README's and the pages topic's.
func TestPagesInChromium(t *testing.T) {
	axeJS := axeSource(t)
	b := startBrowser(t)
	slow := slowOrigin(t)
	e := startEnv(t, `routes:
  - host: down.example.com
    origins: ["http://127.0.0.1:9"]
  - host: slow.example.com
    origins: ["`+slow+`"]
timeouts:
  response_header: 300ms
origins:
  via_name: edge-test
pages:
  operator: Example Edge Ltd
  contact: mailto:abuse@edge.example.com
  appeal: https://edge.example.com/appeal
`, `blocked.example.com reason="`+longReason+`" reason.de="Diese Website diente einer koordinierten Belästigungskampagne." reason.ar="استضاف هذا الموقع حملة تحرش منسقة ضد أفراد." policy=https://blog.example.com/why-we-terminated
court.example.com status=451 reason="Court order 2026-123" policy=https://lumendatabase.org/notices/1
`)
	port := e.url("http")[strings.LastIndexByte(e.url("http"), ':'):]
	starting := startingServer(t, e.config)

	type page struct {
		name, url, kind string
		via             bool
	}
	all := []page{
		{"block", "http://blocked.example.com" + port + "/", "blocked", false},
		{"451", "http://court.example.com" + port + "/", "blocked_legal", false},
		{"404", "http://nowhere.example.com" + port + "/", "unknown_host", false},
		{"502", "http://down.example.com" + port + "/", "bad_gateway", false},
		{"508", "http://down.example.com" + port + "/", "loop_detected", true},
		{"504", "http://slow.example.com" + port + "/", "gateway_timeout", false},
		{"503", "http://starting.example.com" + starting + "/", "starting", false},
	}
	rd, err := pages.NewRenderer(pages.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rtl := map[string]bool{"ar": true, "he": true, "fa": true}
	for _, tag := range rd.Languages() {
		msgs := browserMessages(t, tag)
		for _, pg := range all {
			name := pg.name + "/" + tag
			headers := map[string]string{"Accept-Language": tag + ", en;q=0.1"}
			if pg.via {
				headers["Via"] = "1.1 edge-test"
			}
			b.open(pg.url, 390, 844, false, headers)
			var dom struct {
				Lang, Dir, H1     string
				BareLinks         []string
				PolicyBottom      float64
				InnerHeight       float64
				ScrollWidth       float64
				FooterOutsideMain bool
			}
			b.eval(`(() => {
				const links = [...document.querySelectorAll("a")];
				const pol = document.querySelector("a.policy");
				const f = document.querySelector("footer");
				return {Lang: document.documentElement.lang, Dir: document.documentElement.dir,
					H1: (document.querySelector("h1") || {}).textContent || "",
					BareLinks: links.filter(a => a.textContent.trim() === "" || /^(https?:|mailto:|www\.)|:\/\//i.test(a.textContent.trim())).map(a => a.outerHTML),
					PolicyBottom: pol ? pol.getBoundingClientRect().bottom : -1, InnerHeight: innerHeight,
					ScrollWidth: document.documentElement.scrollWidth,
					FooterOutsideMain: !!f && !f.closest("main, article, section, aside, nav")};
			})()`, &dom)
			wantDir := "ltr"
			if rtl[tag] {
				wantDir = "rtl"
			}
			if dom.Lang != tag || dom.Dir != wantDir {
				t.Errorf("%s: lang=%q dir=%q, want %s %s", name, dom.Lang, dom.Dir, tag, wantDir)
			}
			if want := msgs[pg.kind+"_title"]; dom.H1 != want {
				t.Errorf("%s: h1 %q, want %q", name, dom.H1, want)
			}
			if len(dom.BareLinks) > 0 {
				t.Errorf("%s: links whose text is no words: %v", name, dom.BareLinks)
			}
			if dom.ScrollWidth > 390 {
				t.Errorf("%s: the page is %v px wide on a 390 px phone", name, dom.ScrollWidth)
			}
			if pg.kind == "blocked" && (dom.PolicyBottom <= 0 || dom.PolicyBottom > dom.InnerHeight) {
				t.Errorf("%s: the policy link ends at %v px, below the fold of %v px", name, dom.PolicyBottom, dom.InnerHeight)
			}
			if !dom.FooterOutsideMain || !hasRole(b, "contentinfo") {
				t.Errorf("%s: the footer is no contentinfo landmark", name)
			}
			if want := pageFonts[tag]; want != "" {
				if fonts := b.platformFonts("h1"); len(fonts) == 0 || !strings.Contains(fonts[0], want) {
					t.Errorf("%s: the title is drawn with %v, want %s", name, fonts, want)
				}
			}
			if dir := os.Getenv("PAGES_SCREENSHOT_DIR"); dir != "" {
				// For a look at every page: go test -run TestPagesInChromium with PAGES_SCREENSHOT_DIR=/tmp/shots
				if err := os.WriteFile(filepath.Join(dir, pg.name+"-"+tag+".png"), b.screenshot(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, dark := range []bool{false, true} {
				b.setDark(dark)
				for _, v := range b.axe(axeJS) {
					t.Errorf("%s (dark %v): axe-core: %s", name, dark, v)
				}
			}
		}
	}

	// Desktop screenshots of the block page, left to right and right to left.
	for _, shot := range []struct{ lang, file string }{{"en", "block-page.png"}, {"ar", "block-page-ar.png"}} {
		b.setDark(false)
		b.open(all[0].url, 1200, 800, false, map[string]string{"Accept-Language": shot.lang})
		data := b.screenshot()
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s screenshot: %v", shot.lang, err)
		}
		if bd := img.Bounds(); bd.Dx() != 1200 || bd.Dy() != 800 {
			t.Errorf("%s screenshot is %v", shot.lang, bd)
		}
		if n := colours(img); n < 20 {
			t.Errorf("%s screenshot has %d colours: nothing rendered", shot.lang, n)
		}
		if os.Getenv("UPDATE_SCREENSHOT") != "" {
			if err := os.WriteFile(filepath.Join("..", "deploy", "screenshots", shot.file), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// hasRole reports whether the page's accessibility tree has a node with
// the role.
func hasRole(b *browser, role string) bool {
	var tree struct {
		Nodes []struct {
			Role *struct {
				Value string `json:"value"`
			} `json:"role"`
		} `json:"nodes"`
	}
	b.call("Accessibility.getFullAXTree", nil, &tree)
	for _, n := range tree.Nodes {
		if n.Role != nil && n.Role.Value == role {
			return true
		}
	}
	return false
}

// slowOrigin is an origin on loopback that answers no request before the
// edge's response_header timeout of the test; it returns its URL.
func slowOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		close(done)
		srv.Close()
	})
	return "http://" + ln.Addr().String()
}

// startingServer serves a Proxy that has no config and list applied yet,
// built from the config at path, on loopback, and returns ":port".
func startingServer(t *testing.T, path string) string {
	t.Helper()
	cfg, err := config.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(slogDiscard(), metrics.New(newRegistry(), "t", "t"), cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String()[strings.LastIndexByte(ln.Addr().String(), ':'):]
}

// colours counts distinct colours, up to 1000.
func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y += 3 {
		for x := bd.Min.X; x < bd.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= 1000 {
				return len(seen)
			}
		}
	}
	return len(seen)
}

// TestAxeVersionPinned: the axe-core version .ci/run installs is the one
// the skip message above names.
func TestAxeVersionPinned(t *testing.T) {
	data, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nAXE_VERSION="+axeVersion+"\n") {
		t.Errorf(".ci/run does not pin axe-core %s", axeVersion)
	}
}
