package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
)

// FeedVersion is the version of the /blocks.json format; it changes only
// when a field changes meaning or goes away (new fields may come).
const FeedVersion = 1

// feedDoc is the /blocks.json document, documented for aggregators in
// help/blocklist.md#transparency-feed.
type feedDoc struct {
	Version    int         `json:"version"`
	Host       string      `json:"host"`
	Operator   string      `json:"operator,omitempty"`
	BlockedBy  string      `json:"blocked_by,omitempty"`
	Generated  time.Time   `json:"generated"`
	ListSHA256 string      `json:"list_sha256"`
	Blocks     []feedBlock `json:"blocks"`
}

type feedBlock struct {
	Pattern string            `json:"pattern"`
	Status  int               `json:"status"`
	Mode    string            `json:"mode"`
	Scope   feedScope         `json:"scope"`
	Since   *time.Time        `json:"since,omitempty"`
	Expires *time.Time        `json:"expires,omitempty"`
	Policy  string            `json:"policy,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Reasons map[string]string `json:"reasons,omitempty"`
	Notice  string            `json:"notice,omitempty"`
}

type feedScope struct {
	// Type is worldwide, countries or except_countries.
	Type      string   `json:"type"`
	Countries []string `json:"countries,omitempty"`
	// Unknown is allow or block: what the rule does for a visitor of
	// unknown country (scoped rules only).
	Unknown string `json:"unknown,omitempty"`
}

// feed is the transparency feed of one state, rendered on its first
// request and again once a published rule expires.
type feed struct {
	html, json []byte
	// until is the first expiry of a published rule, zero for none:
	// from then on the feed is built again.
	until time.Time
}

// buildFeed renders the feed of st at now: the rules marked publish=yes
// that apply at now, in file order.
func buildFeed(st *state, now time.Time) *feed {
	cfg := st.cfg
	doc := feedDoc{Version: FeedVersion, Host: cfg.feedHost, Operator: cfg.Pages.Operator, BlockedBy: cfg.Blocklist.BlockedBy,
		Generated: now.UTC().Truncate(time.Second), ListSHA256: st.list.SHA256(), Blocks: []feedBlock{}}
	page := pages.Feed{Host: doc.Host, Operator: doc.Operator, BlockedBy: doc.BlockedBy, Updated: doc.Generated}
	f := &feed{}
	for r := range st.list.Rules() {
		if !r.Publish || !r.ActiveAt(now) {
			continue
		}
		if !r.Expires.IsZero() && (f.until.IsZero() || r.Expires.Before(f.until)) {
			f.until = r.Expires
		}
		b := feedBlock{Pattern: r.Pattern(), Status: r.Status, Mode: r.Mode.String(), Policy: st.policies[r.AttrsID],
			Reason: r.Reason, Notice: r.Notice, Scope: feedScope{Type: "worldwide"}}
		if k := r.Scope.Key(); k != "" {
			b.Scope = feedScope{Type: k, Countries: r.Scope.Countries(), Unknown: "allow"}
			if u := r.Scope.Unknown(); u != blocklist.UnknownDefault {
				b.Scope.Unknown = u.String()
			} else if cfg.Geo.UnknownBlocks() {
				b.Scope.Unknown = "block"
			}
		}
		if n, ok := st.list.Note(r); ok && !n.At.IsZero() {
			at := n.At.UTC()
			b.Since = &at
		}
		if !r.Expires.IsZero() {
			exp := r.Expires.UTC()
			b.Expires = &exp
		}
		if r.Reasons.Len() > 0 {
			b.Reasons = map[string]string{}
			for tag, text := range r.Reasons.All() {
				b.Reasons[tag] = text
			}
		}
		doc.Blocks = append(doc.Blocks, b)
		e := pages.FeedEntry{Pattern: b.Pattern, Status: b.Status, Mode: b.Mode, Where: feedWhere(b.Scope),
			Expires: r.Expires, Reason: r.Reason, Policy: b.Policy, Notice: r.Notice}
		if b.Since != nil {
			e.Since = *b.Since
		}
		page.Entries = append(page.Entries, e)
	}
	f.json, _ = json.MarshalIndent(doc, "", "  ")
	f.json = append(f.json, '\n')
	html, err := pages.FeedHTML(page)
	if err != nil {
		html = []byte("transparency feed: " + err.Error())
	}
	f.html = html
	return f
}

// feedWhere says a scope in words, with English country names.
func feedWhere(s feedScope) string {
	names := make([]string, len(s.Countries))
	for i, c := range s.Countries {
		names[i] = pages.CountryName("en", c)
	}
	switch s.Type {
	case "countries":
		return "Only in: " + strings.Join(names, ", ")
	case "except_countries":
		return "Everywhere except: " + strings.Join(names, ", ")
	}
	return "Worldwide"
}

// isFeedHost reports whether host is transparency.host.
func isFeedHost(st *state, host string) bool {
	return st.cfg.feedHost != "" && host == st.cfg.feedHost
}

// serveFeed answers a request for transparency.host: the HTML page at /,
// the JSON document at /blocks.json (with CORS open to every origin, for
// aggregators in browsers), 404 elsewhere, 405 for methods other than GET
// and HEAD. Both may be cached for a minute.
func (p *Proxy) serveFeed(w http.ResponseWriter, r *http.Request, st *state, now time.Time, preq pages.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		st.renderer.Error(http.StatusMethodNotAllowed).Serve(w, r, preq)
		return
	}
	var body []byte
	h := w.Header()
	switch r.URL.Path {
	case "/":
		body = st.currentFeed(now).html
		h.Set("Content-Type", "text/html; charset=utf-8")
	case "/blocks.json":
		body = st.currentFeed(now).json
		h.Set("Content-Type", "application/json")
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		st.renderer.Error(http.StatusNotFound).Serve(w, r, preq)
		return
	}
	h.Set("Cache-Control", "public, max-age=60")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// currentFeed returns the feed of s, building it on first use and again
// once a published rule has expired.
func (s *state) currentFeed(now time.Time) *feed {
	f := s.feed.Load()
	if f == nil || (!f.until.IsZero() && !now.Before(f.until)) {
		f = buildFeed(s, now)
		s.feed.Store(f)
	}
	return f
}
