package proxy

import (
	"encoding/json"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"os"
	"strings"
	"testing"
	"time"
)

const feedList = `#@ 2026-11-20T09:00:00Z by alice: TICKET-7 court order
court.example countries=FR status=451 reason="Court order 123" publish=yes notice=https://lumendatabase.org/notices/123
court.example reason="Spam source" publish=yes
sealed.example countries=DE status=451 reason="Sealed order"
*.tv.example except_countries=US,CA unknown=block publish=yes reason.de="Nur für Nordamerika lizenziert" expires=2099-01-01
gone.example publish=yes expires=2020-01-01
`

// TestTransparencyFeed serves the feed on transparency.host: only the
// rules marked publish=yes (and in effect), as HTML and as JSON, and the
// feed follows the list.
func TestTransparencyFeed(t *testing.T) {
	o := echoOrigin(t)
	e := startEnv(t, "transparency:\n  host: Blocks.Edge.Example\npages:\n  operator: Example Edge Ltd\n"+routeConfig("*.example", `"`+o.URL+`"`), feedList)
	resp, body := e.get("GET", "blocks.edge.example", "/blocks.json", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("/blocks.json: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	var doc feedDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 1 || doc.Host != "blocks.edge.example" || doc.Operator != "Example Edge Ltd" || doc.BlockedBy != "https://edge.example.com" || len(doc.ListSHA256) != 64 {
		t.Errorf("feed header: %+v", doc)
	}
	var got []string
	for _, b := range doc.Blocks {
		s := b.Pattern + " " + b.Mode + " " + itoa3(b.Status) + " " + b.Scope.Type + ":" + strings.Join(b.Scope.Countries, ",") + " unknown=" + b.Scope.Unknown + " policy=" + b.Policy + " reason=" + b.Reason + " notice=" + b.Notice
		if b.Since != nil {
			s += " since=" + b.Since.Format(time.RFC3339)
		}
		if b.Expires != nil {
			s += " expires=" + b.Expires.Format(time.RFC3339)
		}
		if b.Reasons != nil {
			s += " reason.de=" + b.Reasons["de"]
		}
		got = append(got, s)
	}
	want := []string{
		"court.example block 451 countries:FR unknown=allow policy=https://policy.example/default reason=Court order 123 notice=https://lumendatabase.org/notices/123 since=2026-11-20T09:00:00Z",
		"court.example block 403 worldwide: unknown= policy=https://policy.example/default reason=Spam source notice=",
		"*.tv.example block 403 except_countries:CA,US unknown=block policy=https://policy.example/default reason= notice= expires=2099-01-01T00:00:00Z reason.de=Nur für Nordamerika lizenziert",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("blocks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(body, "sealed") || strings.Contains(body, "gone.example") {
		t.Error("the feed shows an unpublished or expired rule")
	}

	resp, html := e.get("GET", "blocks.edge.example", "/", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %v", resp.StatusCode, resp.Header)
	}
	for _, s := range []string{"<h1 id=\"title\">Published blocks</h1>", "Only in: France", "Everywhere except: Canada, United States",
		"Worldwide", `href="https://lumendatabase.org/notices/123"`, "2026-11-20", "Example Edge Ltd", "3 published blocks"} {
		if !strings.Contains(html, s) {
			t.Errorf("HTML lacks %q", s)
		}
	}
	if strings.Contains(html, "sealed.example") {
		t.Error("the HTML shows an unpublished rule")
	}
	if resp, _ := e.get("GET", "blocks.edge.example", "/other", nil); resp.StatusCode != 404 {
		t.Errorf("/other: %d", resp.StatusCode)
	}
	if resp, _ := e.get("POST", "blocks.edge.example", "/blocks.json", nil); resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}

	// The feed follows the list: publish the sealed rule, unpublish the
	// worldwide one.
	next := strings.Replace(strings.Replace(feedList, `reason="Sealed order"`, `reason="Sealed order" publish=yes`, 1), `reason="Spam source" publish=yes`, `reason="Spam source"`, 1)
	if err := os.WriteFile(e.list, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	edgetest.WaitFor(t, 10*time.Second, "the feed to follow the list", func() bool {
		_, body := e.get("GET", "blocks.edge.example", "/blocks.json", nil)
		return strings.Contains(body, "sealed.example") && !strings.Contains(body, "Spam source")
	})
	e.srv.FlushAccessLog()
	lines := e.logs.Lines(t, "request")
	if len(lines) == 0 || lines[0]["outcome"] != metrics.OutcomeTransparency {
		t.Errorf("access line outcome %v, want %s", lines[0]["outcome"], metrics.OutcomeTransparency)
	}
}

func itoa3(n int) string {
	return string(rune('0'+n/100)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

// TestTransparencyFeedInChromium checks the feed page with axe-core (WCAG
// 2.2 A and AA) on a phone and a desktop, light and dark, as the block
// pages are.
func TestTransparencyFeedInChromium(t *testing.T) {
	axeJS := axeSource(t)
	b := startBrowser(t)
	e := startEnv(t, "transparency:\n  host: blocks.example.com\npages:\n  operator: Example Edge Ltd\n", strings.ReplaceAll(feedList, ".example ", ".example.com ")+
		"long.example.com publish=yes reason=\""+longReason+"\" policy=https://blog.example.com/why\n")
	port := e.url("http")[strings.LastIndexByte(e.url("http"), ':'):]
	for _, v := range []struct {
		w, h int
		dark bool
	}{{390, 844, false}, {390, 844, true}, {1280, 800, false}} {
		b.open("http://blocks.example.com"+port+"/", v.w, v.h, v.dark, map[string]string{})
		var rows int
		b.eval(`document.querySelectorAll("tbody tr").length`, &rows)
		if rows != 4 {
			t.Fatalf("the feed page has %d rows, want 4 published blocks", rows)
		}
		if vs := b.axe(axeJS); len(vs) > 0 {
			for _, x := range vs {
				t.Errorf("%dx%d dark=%v: %s", v.w, v.h, v.dark, x)
			}
		}
		var wide float64
		b.eval(`document.documentElement.scrollWidth - window.innerWidth`, &wide)
		if wide > 0 {
			t.Errorf("%dx%d: the page scrolls sideways by %vpx", v.w, v.h, wide)
		}
	}
}
