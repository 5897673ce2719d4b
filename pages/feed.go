package pages

import (
	"bytes"
	_ "embed"
	"html/template"
	"strings"
	"time"
)

//go:embed feed.html
var feedTemplateText string

// feedTemplate renders the transparency feed's HTML page. Its style is the
// block page's (the <style> element of page.html), so that the two look
// alike and the look lives in one place.
var feedTemplate = template.Must(template.New("feed").Funcs(template.FuncMap{
	"style": func() template.CSS { return template.CSS(pageStyle()) },
}).Parse(feedTemplateText))

// pageStyle returns the CSS of the built-in block page.
func pageStyle() string {
	_, s, _ := strings.Cut(defaultTemplate, "<style>\n")
	s, _, _ = strings.Cut(s, "</style>")
	return s
}

// FeedEntry is one published rule of the transparency feed.
type FeedEntry struct {
	// Pattern is the rule's pattern ("name" or "*.name"); Status its 403
	// or 451; Mode block or report.
	Pattern string
	Status  int
	Mode    string
	// Where is the scope in words ("Worldwide", "Only in: France,
	// Germany", "Everywhere except: United States").
	Where string
	// Since is when the rule was written (its annotation), zero if not
	// known; Expires when it ends, zero for never.
	Since, Expires time.Time
	// Reason, Policy and Notice are the rule's (Policy with the
	// operator's default applied); any may be empty.
	Reason, Policy, Notice string
}

// Feed is the transparency feed's page.
type Feed struct {
	// Host is the name the feed is served on; Operator and BlockedBy
	// the operator's name and site.
	Host, Operator, BlockedBy string
	// Updated is when the list in effect was loaded.
	Updated time.Time
	Entries []FeedEntry
}

// FeedHTML renders the feed's HTML page, in English.
func FeedHTML(f Feed) ([]byte, error) {
	var b bytes.Buffer
	err := feedTemplate.Execute(&b, f)
	return b.Bytes(), err
}
