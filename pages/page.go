package pages

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed page.html
var defaultTemplate string

// Data is what a page template sees. Title, Lead, Message, Reason, Policy
// and BlockedBy are fixed when the page is prepared; Host, RequestID and
// Time change with every request.
type Data struct {
	// Kind is "blocked", "unknown-host", "bad-request", "method-not-allowed",
	// "bad-gateway", "service-unavailable", "gateway-timeout" or
	// "loop-detected".
	Kind       string
	Status     int
	StatusText string
	Title      string
	// Lead is the sentence before the host name, such as "The operator has blocked".
	Lead    string
	Message string
	// Reason and Policy come from the rule (Policy falls back to the
	// operator's default); either may be empty.
	Reason, Policy string
	// BlockedBy is the blocking party's URL (RFC 7725); may be empty.
	BlockedBy string
	Host      string
	RequestID string
	// Time is the request time in RFC 3339, UTC, to the second.
	Time string
}

// Request holds the per-request values of a page.
type Request struct {
	Host      string
	RequestID string
	Time      time.Time
}

// Block describes a block: the attributes of the rule that matched.
type Block struct {
	// Status is 403 or 451; zero means 403.
	Status int
	Policy string
	Reason string
}

// Renderer prepares pages from the block page template and the built-in
// error pages. It is safe for concurrent use.
type Renderer struct {
	block     *template.Template
	builtin   *template.Template
	blockedBy string
	errors    map[int]*Page
}

// Options configure a Renderer. The zero value uses the built-in template
// and sends no blocked-by link.
type Options struct {
	// Template is the text of an html/template for the block page; empty
	// means the built-in one. It sees a Data value.
	Template string
	// TemplateFile names the template in errors.
	TemplateFile string
	// BlockedBy is the URL of the blocking party, sent as
	// Link: <BlockedBy>; rel="blocked-by" and shown on the page. Bytes
	// that a URI may not hold (among them space, quotes, angle brackets
	// and controls) are percent-encoded, so that the value can neither
	// end the <...> nor add a parameter or another link.
	BlockedBy string
}

// NewRenderer parses the template and checks it by rendering a sample
// block page; an error names the template file.
func NewRenderer(o Options) (*Renderer, error) {
	builtin := template.Must(template.New("page.html").Parse(defaultTemplate))
	r := &Renderer{block: builtin, builtin: builtin, blockedBy: escapeLinkTarget(o.BlockedBy), errors: map[int]*Page{}}
	if o.Template != "" {
		name := o.TemplateFile
		if name == "" {
			name = "template"
		}
		t, err := template.New(name).Option("missingkey=error").Parse(o.Template)
		if err != nil {
			return nil, fmt.Errorf("pages.template: %w", err)
		}
		r.block = t
		if _, err := r.Block(Block{Status: 451, Policy: "https://example.com/policy", Reason: "sample"}); err != nil {
			return nil, fmt.Errorf("pages.template %s: %w", name, err)
		}
	}
	for _, e := range errorPages {
		p, err := r.prepare(r.builtin, e, false)
		if err != nil {
			return nil, err // the built-in template is tested; this does not happen
		}
		r.errors[e.Status] = p
	}
	return r, nil
}

var errorPages = []Data{
	{Kind: "unknown-host", Status: http.StatusNotFound, Title: "No site is configured for this name",
		Lead: "This edge server has no site configured for", Message: "Check the address you typed. If you run this site, add a route for the name to the edge configuration."},
	{Kind: "bad-gateway", Status: http.StatusBadGateway, Title: "The site's server could not be reached",
		Lead: "The edge could not get an answer from the origin server of", Message: "The site may be down for a moment. Try again shortly."},
	{Kind: "gateway-timeout", Status: http.StatusGatewayTimeout, Title: "The site's server took too long to answer",
		Lead: "The origin server did not answer in time for", Message: "The site may be overloaded. Try again shortly."},
	{Kind: "bad-request", Status: http.StatusBadRequest, Title: "The request names no valid host",
		Lead: "The host name of this request is not valid or not unique:", Message: "Check the address you typed."},
	{Kind: "method-not-allowed", Status: http.StatusMethodNotAllowed, Title: "This request method is not allowed",
		Lead: "The edge does not forward this method for", Message: "CONNECT, TRACE and TRACK are not forwarded; the Allow header lists the methods that are."},
	{Kind: "service-unavailable", Status: http.StatusServiceUnavailable, Title: "The site's server is busy",
		Lead: "Every connection to the origin server is in use for", Message: "The site may be overloaded. Try again shortly."},
	{Kind: "loop-detected", Status: http.StatusLoopDetected, Title: "The request went round in a loop",
		Lead: "The request came back to this edge server on its way to the origin of", Message: "The site's configuration sends requests back to the edge. If you run this site, check its origin addresses."},
}

// Error returns the prepared error page for status: 400, 404, 405, 502,
// 503, 504 or 508. Any other status gets the 502 page.
func (r *Renderer) Error(status int) *Page {
	if p, ok := r.errors[status]; ok {
		return p
	}
	return r.errors[http.StatusBadGateway]
}

// Block prepares the block page for a rule's attributes. Call it when a
// blocklist is loaded, once per distinct attribute set, and keep the Page.
func (r *Renderer) Block(b Block) (*Page, error) {
	if b.Status == 0 {
		b.Status = http.StatusForbidden
	}
	d := Data{Kind: "blocked", Status: b.Status, Reason: b.Reason, Policy: b.Policy,
		Title: "This site has been blocked", Lead: "The operator of this edge network has blocked"}
	if b.Status == http.StatusUnavailableForLegalReasons {
		d.Title = "This site is unavailable for legal reasons"
		d.Lead = "Because of a legal demand, the operator of this edge network has blocked"
	}
	return r.prepare(r.block, d, true)
}

// Page is a prepared page in every format. It is immutable and safe for
// concurrent use.
type Page struct {
	status    int
	blocked   bool
	blockedBy string
	formats   [numFormats]compiled
}

// Status returns the HTTP status the page is served with.
func (p *Page) Status() int { return p.status }

func (r *Renderer) prepare(t *template.Template, d Data, blocked bool) (*Page, error) {
	d.StatusText = http.StatusText(d.Status)
	if blocked {
		d.BlockedBy = r.blockedBy
	}
	p := &Page{status: d.Status, blocked: blocked, blockedBy: d.BlockedBy}
	var err error
	if p.formats[HTML], err = compile(d, func(d Data) ([]byte, error) {
		var b bytes.Buffer
		err := t.Execute(&b, d)
		return b.Bytes(), err
	}); err != nil {
		return nil, err
	}
	if p.formats[JSON], err = compile(d, renderJSON); err != nil {
		return nil, err
	}
	if p.formats[Text], err = compile(d, renderText); err != nil {
		return nil, err
	}
	return p, nil
}

// problem is the RFC 9457 problem details object, with extension members.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance"`
	Host      string `json:"host"`
	RequestID string `json:"request_id"`
	Time      string `json:"time"`
	BlockedBy string `json:"blocked_by,omitempty"`
}

func renderJSON(d Data) ([]byte, error) {
	p := problem{Type: d.Policy, Title: d.Title, Status: d.Status, Detail: d.Reason, Instance: d.RequestID,
		Host: d.Host, RequestID: d.RequestID, Time: d.Time, BlockedBy: d.BlockedBy}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Detail == "" {
		p.Detail = d.Message
	}
	b, err := json.MarshalIndent(p, "", "  ")
	return append(b, '\n'), err
}

func renderText(d Data) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s\n\n%s %s.\n", d.Status, d.StatusText, d.Title, d.Lead, d.Host)
	if d.Reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", d.Reason)
	}
	if d.Message != "" {
		fmt.Fprintf(&b, "%s\n", d.Message)
	}
	if d.Policy != "" {
		fmt.Fprintf(&b, "Policy: %s\n", d.Policy)
	}
	fmt.Fprintf(&b, "\nHost: %s\nRequest ID: %s\nTime: %s\n", d.Host, d.RequestID, d.Time)
	if d.BlockedBy != "" {
		fmt.Fprintf(&b, "Blocked by: %s\n", d.BlockedBy)
	}
	return []byte(b.String()), nil
}

// The holes of a compiled page, in the order of Request's fields.
const (
	holeHost = iota
	holeRequestID
	holeTime
	numHoles
)

// Sentinels stand in for the per-request values while a page is prepared.
// They are made of letters and digits only, so that no escaper in any
// context (HTML, attribute, URL, JSON) changes them, and the two sets differ
// from their first byte, so that a template that cuts a value short is seen.
var sentinels = [2][numHoles]string{
	{"EdgeblockHostA9f3c1", "EdgeblockRequestIdA9f3c1", "EdgeblockTimeA9f3c1"},
	{"zq7WsentinelHost", "zq7WsentinelRequestID", "zq7WsentinelTime"},
}

// compiled is one format of a page: literal parts with holes between them,
// or, for a template that transforms the per-request values in a way the
// holes cannot express, the render function itself.
type compiled struct {
	parts   [][]byte
	holes   []int // holes[i] follows parts[i]
	data    Data  // for the fallback
	render  func(Data) ([]byte, error)
	dynamic bool
}

func compile(d Data, render func(Data) ([]byte, error)) (compiled, error) {
	withSentinels := func(set int) Data {
		x := d
		x.Host, x.RequestID, x.Time = sentinels[set][holeHost], sentinels[set][holeRequestID], sentinels[set][holeTime]
		return x
	}
	out, err := render(withSentinels(0))
	if err != nil {
		return compiled{}, err
	}
	var c compiled
	for {
		at, hole := -1, -1
		for h, s := range sentinels[0] {
			if i := bytes.Index(out, []byte(s)); i >= 0 && (at < 0 || i < at) {
				at, hole = i, h
			}
		}
		if at < 0 {
			c.parts = append(c.parts, out)
			break
		}
		c.parts = append(c.parts, out[:at])
		c.holes = append(c.holes, hole)
		out = out[at+len(sentinels[0][hole]):]
	}
	// Check the split against a direct rendering with other values; if
	// they differ, the template transforms a value, and this format is
	// rendered per request instead.
	want, err := render(withSentinels(1))
	if err != nil {
		return compiled{}, err
	}
	if got := c.appendTo(nil, sentinels[1]); !bytes.Equal(got, want) {
		return compiled{render: render, data: d, dynamic: true}, nil
	}
	return c, nil
}

func (c *compiled) appendTo(b []byte, vals [numHoles]string) []byte {
	for i, p := range c.parts {
		b = append(b, p...)
		if i < len(c.holes) {
			b = append(b, vals[c.holes[i]]...)
		}
	}
	return b
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func (p *Page) appendBody(b []byte, f Format, req Request) ([]byte, error) {
	vals := requestValues(req)
	c := &p.formats[f]
	if !c.dynamic {
		return c.appendTo(b, vals), nil
	}
	d := c.data
	d.Host, d.RequestID, d.Time = vals[holeHost], vals[holeRequestID], vals[holeTime]
	out, err := c.render(d)
	return append(b, out...), err
}

// requestValues returns the per-request values as text. Host names reach
// here normalized ([a-z0-9._-] or an IP address) and request IDs are ours,
// so they need no escaping in any context; they are escaped all the same
// in case a caller passes something else.
func requestValues(req Request) [numHoles]string {
	return [numHoles]string{
		safe(req.Host),
		safe(req.RequestID),
		req.Time.UTC().Format(time.RFC3339),
	}
}

// safe replaces every byte outside [A-Za-z0-9._:-] with '_'.
func safe(s string) string {
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			b := []byte(s)
			for j := range b {
				if !safeByte(b[j]) {
					b[j] = '_'
				}
			}
			return string(b)
		}
	}
	return s
}

func safeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
}

// Serve writes the page for one request: the format the Accept header
// prefers, with Content-Type, Content-Length, Cache-Control: no-store,
// Vary: Accept, and on block pages the RFC 7725 Link header. A HEAD request
// gets the headers alone. It returns the number of body bytes written.
func (p *Page) Serve(w http.ResponseWriter, r *http.Request, req Request) int {
	f := Negotiate(r.Header.Get("Accept"))
	bp := bufPool.Get().(*[]byte)
	body, err := p.appendBody((*bp)[:0], f, req)
	if err != nil {
		// A custom template failed on this request: fall back to the
		// text form, which cannot fail, rather than an empty page.
		f = Text
		body, _ = p.appendBody((*bp)[:0], f, req)
	}
	h := w.Header()
	h["Content-Type"] = []string{f.ContentType()}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = []string{"no-store"}
	h["Vary"] = []string{"Accept"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	if p.blocked && p.blockedBy != "" {
		h["Link"] = []string{"<" + p.blockedBy + `>; rel="blocked-by"`}
	}
	w.WriteHeader(p.status)
	n := 0
	if r.Method != http.MethodHead {
		n, _ = w.Write(body)
	}
	*bp = body
	bufPool.Put(bp)
	return n
}

// escapeLinkTarget percent-encodes every byte of u that RFC 3986 does not
// allow in a URI (anything but unreserved, reserved and '%'), and every
// '%' that does not start a %XX escape. The result can go between the
// angle brackets of a Link header as it is.
func escapeLinkTarget(u string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case c == '%' && i+2 < len(u) && isHex(u[i+1]) && isHex(u[i+2]):
			b.WriteByte(c)
		case c != '%' && uriByte(c):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// uriByte reports whether c is an unreserved or reserved URI character.
func uriByte(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0
}
