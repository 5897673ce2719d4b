package pages

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed page.html
var defaultTemplate string

// Data is what a page template sees. Everything but Host, RequestID and
// Time is fixed when the page is prepared (once per page and language);
// those three change with every request.
type Data struct {
	// Kind is "blocked", "unknown-host", "bad-request", "method-not-allowed",
	// "bad-gateway", "service-unavailable", "gateway-timeout",
	// "loop-detected" or "starting".
	Kind       string
	Status     int
	StatusText string
	// Code is the status line shown above the title ("Error 451"), in
	// the page's language.
	Code  string
	Title string
	// Lead and LeadEnd are the sentence around the host name, such as
	// "The operator of this network has blocked access to " and ".".
	Lead, LeadEnd string
	Message       string
	// Reason and Policy come from the rule (Policy and the recourse
	// fall back to the operator's defaults); any may be empty. Reason is
	// the text for the page's language if the rule has one, and
	// ReasonLang its language tag.
	Reason, ReasonLang, Policy string
	// BlockedBy is the blocking party's URL (RFC 7725); may be empty.
	BlockedBy string
	// Scope is the scope of a rule scoped to countries, as written in the
	// list ("countries=FR"); empty for a worldwide rule. Country is the
	// visitor's country (ISO 3166-1 alpha-2; empty when unknown) and
	// CountryName its name in the page's language, set on the pages of
	// scoped blocks only (see Page.InCountry).
	Scope, Country, CountryName string
	// Operator is the name of the network's operator; Contact (an
	// http(s) or mailto: URL) and Appeal (an http(s) URL) are where a
	// visitor reaches it. Any may be empty; Appeal is set on block pages
	// only.
	Operator, Contact, Appeal string
	// Lang is the page's language tag, Dir its direction ("ltr" or
	// "rtl"), LanguageName the language's name in itself.
	Lang, Dir, LanguageName string
	// T holds every message of the page's language by name (see
	// pages/i18n/en.json), for templates that lay out other parts.
	T         map[string]string
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
	// Reason is the reason in the default language; Reasons maps
	// language tags to the reason in that language. Either may be empty.
	Reason  string
	Reasons map[string]string
	// Contact and Appeal override the operator's defaults when set.
	Contact, Appeal string
	// Scope is the rule's scope as written in the list
	// ("countries=FR,DE"); empty for a worldwide rule. A scoped block
	// page is served per visitor country (see Page.InCountry).
	Scope string
	// Limit, if not nil, bounds how many languages are prepared on first
	// request across the pages that share it (see Limit).
	Limit *Limit
}

// Limit bounds the memory of block pages prepared on demand: each
// language a page is prepared in on its first request takes one unit.
// Once none is left, such requests get the page in the default language,
// still from prepared bytes, rather than a page prepared for them alone.
// A Limit is safe for concurrent use.
type Limit struct{ left atomic.Int64 }

// NewLimit returns a Limit of n page languages.
func NewLimit(n int) *Limit {
	l := &Limit{}
	l.left.Store(int64(n))
	return l
}

// take takes one unit, reporting whether there was one.
func (l *Limit) take() bool {
	if l == nil {
		return true
	}
	if l.left.Add(-1) < 0 {
		l.left.Add(1)
		return false
	}
	return true
}

// Left returns the units left.
func (l *Limit) Left() int { return int(l.left.Load()) }

// Template is the text of a page template and the file it came from.
type Template struct {
	Text string
	// File names the template in errors.
	File string
}

// Renderer prepares pages: the block page and the error pages, in every
// language. It is safe for concurrent use.
type Renderer struct {
	langs     []*Language
	tags      []string
	def       int
	templates map[string]*template.Template // by TemplateKeys; missing means the built-in one
	builtin   *template.Template
	blockedBy string
	operator  string
	contact   string
	appeal    string
	retry     string // Retry-After value; "" for none
	errors    map[int]*Page
	starting  *Page
}

// Options configure a Renderer. The zero value uses the built-in
// templates and languages, English by default, and sends no blocked-by
// link and no Retry-After.
type Options struct {
	// Template is the text of an html/template for the block page; empty
	// means the built-in one. It sees a Data value. It is the same as
	// Templates["block"], which it may not be given with.
	Template string
	// TemplateFile names the template in errors.
	TemplateFile string
	// Templates replace the built-in page by key: "block", a status of
	// an error page ("400", "404", "405", "502", "503", "504", "508"), or
	// "error" for every error page without a template of its own.
	Templates map[string]Template
	// BlockedBy is the URL of the blocking party, sent as
	// Link: <BlockedBy>; rel="blocked-by" and linked from the page. Bytes
	// that a URI may not hold (among them space, quotes, angle brackets
	// and controls) are percent-encoded, so that the value can neither
	// end the <...> nor add a parameter or another link.
	BlockedBy string
	// Operator is the operator's name, shown on every page.
	Operator string
	// Contact (an http(s) or mailto: URL) and Appeal (an http(s) URL) are
	// the operator's defaults for how visitors get in touch about a
	// block and appeal it; a rule may override them.
	Contact, Appeal string
	// DefaultLanguage is the tag of the language served when the
	// visitor's Accept-Language names none of the pages'; "" means "en".
	DefaultLanguage string
	// Languages are the operator's translation files, added to or
	// overriding the built-in ones.
	Languages []LanguageFile
	// RetryAfter, if positive, is sent as Retry-After (in whole seconds,
	// rounded up) with the 502, 503 and 504 pages.
	RetryAfter time.Duration
}

// TemplateKeys are the keys Options.Templates takes.
var TemplateKeys = []string{"block", "error", "400", "404", "405", "502", "503", "504", "508"}

// NewRenderer parses the templates and the translation files and checks
// every template by rendering it in every language; an error names the
// file.
func NewRenderer(o Options) (*Renderer, error) {
	langs, err := loadLanguages(o.Languages)
	if err != nil {
		return nil, err
	}
	builtin := template.Must(template.New("page.html").Option("missingkey=error").Parse(defaultTemplate))
	r := &Renderer{langs: langs, builtin: builtin, blockedBy: escapeLinkTarget(o.BlockedBy),
		operator: o.Operator, contact: o.Contact, appeal: o.Appeal,
		templates: map[string]*template.Template{}, errors: map[int]*Page{}}
	for _, l := range langs {
		r.tags = append(r.tags, l.Tag)
	}
	def := o.DefaultLanguage
	if def == "" {
		def = "en"
	}
	r.def = slices.IndexFunc(r.tags, func(t string) bool { return strings.EqualFold(t, def) })
	if r.def < 0 {
		return nil, fmt.Errorf("pages.default_language %q: no such language (have %s)", def, strings.Join(r.tags, ", "))
	}
	if o.RetryAfter > 0 {
		r.retry = strconv.FormatInt(int64((o.RetryAfter+time.Second-1)/time.Second), 10)
	}
	tmpls := maps.Clone(o.Templates)
	if o.Template != "" {
		if _, ok := tmpls["block"]; ok {
			return nil, errors.New("pages.template and pages.templates.block both name a block page template; keep one")
		}
		if tmpls == nil {
			tmpls = map[string]Template{}
		}
		tmpls["block"] = Template{Text: o.Template, File: o.TemplateFile}
	}
	for _, key := range slices.Sorted(maps.Keys(tmpls)) {
		t := tmpls[key]
		if !slices.Contains(TemplateKeys, key) {
			return nil, fmt.Errorf("pages.templates: unknown page %q (want one of %s)", key, strings.Join(TemplateKeys, ", "))
		}
		name := t.File
		if name == "" {
			name = "template"
		}
		pt, err := template.New(name).Option("missingkey=error").Parse(t.Text)
		if err != nil {
			return nil, &TemplateError{Key: key, File: name, Err: err}
		}
		r.templates[key] = pt
		if key == "block" {
			// Checked in every language with a 451 that has every
			// attribute and a bare 403.
			for _, sample := range []Block{
				{Status: 451, Policy: "https://example.com/policy", Reason: "sample", Reasons: map[string]string{"de": "Beispiel"},
					Contact: "mailto:abuse@example.com", Appeal: "https://example.com/appeal"},
				{Status: 403},
			} {
				p, err := r.Block(sample)
				if err == nil {
					err = p.prepareAll()
				}
				if err != nil {
					return nil, &TemplateError{Key: key, File: name, Err: explainExecError(err)}
				}
			}
		}
	}
	// Every error page in every language, checking each template.
	for _, e := range errorPages {
		p := r.newPage(e, nil)
		if err := p.prepareAll(); err != nil {
			return nil, &TemplateError{Key: p.tmplKey, File: p.tmpl.Name(), Err: explainExecError(err)}
		}
		if e.Kind == "starting" {
			r.starting = p
		} else {
			r.errors[e.Status] = p
		}
	}
	return r, nil
}

// TemplateError is a page template that does not parse, or fails on a
// sample page in some language.
type TemplateError struct {
	// Key is the Options.Templates key: "block", "error" or a status.
	Key string
	// File names the template.
	File string
	Err  error
}

// Error returns "pages.templates.KEY FILE: problem".
func (e *TemplateError) Error() string {
	return fmt.Sprintf("pages.templates.%s %s: %v", e.Key, e.File, e.Err)
}

// Unwrap returns the template's error.
func (e *TemplateError) Unwrap() error { return e.Err }

// explainExecError adds to an error about an unknown field or message the
// names a template may use.
func explainExecError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "can't evaluate field"):
		return fmt.Errorf("%w; a template may use %s", err, strings.Join(dataFields(), ", "))
	case strings.Contains(msg, "map has no entry for key"):
		return fmt.Errorf("%w; .T has the messages of pages/i18n/en.json: %s", err, strings.Join(slices.Sorted(maps.Keys(mustEnglish().Messages)), ", "))
	}
	return err
}

// dataFields returns the fields of Data as a template names them.
func dataFields() []string {
	t := reflect.TypeFor[Data]()
	var out []string
	for i := range t.NumField() {
		out = append(out, "."+t.Field(i).Name)
	}
	return out
}

func mustEnglish() *Language {
	langs, err := builtinLanguages()
	if err != nil {
		panic(err)
	}
	return langs["en"]
}

// Languages returns the tags of the languages pages are served in, sorted.
func (r *Renderer) Languages() []string { return slices.Clone(r.tags) }

// DefaultLanguage returns the tag of the default language.
func (r *Renderer) DefaultLanguage() string { return r.tags[r.def] }

// language returns the index of the language an Accept-Language header
// value prefers (see NegotiateLanguage).
func (r *Renderer) language(acceptLanguage string) int {
	return NegotiateLanguage(acceptLanguage, r.tags, r.def)
}

var errorPages = []Data{
	{Kind: "unknown-host", Status: http.StatusNotFound},
	{Kind: "bad-gateway", Status: http.StatusBadGateway},
	{Kind: "gateway-timeout", Status: http.StatusGatewayTimeout},
	{Kind: "bad-request", Status: http.StatusBadRequest},
	{Kind: "method-not-allowed", Status: http.StatusMethodNotAllowed},
	{Kind: "service-unavailable", Status: http.StatusServiceUnavailable},
	{Kind: "loop-detected", Status: http.StatusLoopDetected},
	{Kind: "starting", Status: http.StatusServiceUnavailable},
}

// Error returns the prepared error page for status: 400, 404, 405, 502,
// 503, 504 or 508. Any other status gets the 502 page.
func (r *Renderer) Error(status int) *Page {
	if p, ok := r.errors[status]; ok {
		return p
	}
	return r.errors[http.StatusBadGateway]
}

// Starting returns the 503 page served while the server has no config
// and blocklist loaded yet.
func (r *Renderer) Starting() *Page { return r.starting }

// Block prepares the block page for a rule's attributes in the default
// language; the other languages are prepared on their first request and
// kept. Call it when a blocklist is loaded, once per distinct attribute
// set, and keep the Page.
func (r *Renderer) Block(b Block) (*Page, error) {
	if b.Status == 0 {
		b.Status = http.StatusForbidden
	}
	p := r.newPage(Data{Kind: "blocked", Status: b.Status, Policy: b.Policy}, &b)
	v, err := p.prepare(r.def)
	if err != nil {
		return nil, err
	}
	p.vars[r.def].Store(v)
	return p, nil
}

// Page is a prepared page in every format and language. It is safe for
// concurrent use; a language is prepared once, on its first request.
type Page struct {
	r       *Renderer
	tmpl    *template.Template
	tmplKey string // the Options.Templates key tmpl is for
	base    Data
	block   *Block // nil for error pages
	status  int
	link    []string                  // the Link header; nil for none
	retry   []string                  // the Retry-After header; nil for none
	vars    []atomic.Pointer[variant] // by language
	// countries holds the per-country pages of a scoped block.
	countries *countryPages
}

// variant is a page in one language.
type variant struct {
	contentLanguage []string // the header
	formats         [numFormats]compiled
	// lengths holds the Content-Length value last served per format:
	// bodies of one variant and format differ only in the host's length,
	// so under load one name is served again and again.
	lengths [numFormats]atomic.Pointer[contentLength]
}

// contentLength is a Content-Length header value of n.
type contentLength struct {
	n int
	v []string
}

// contentLength returns the Content-Length header value for a body of n
// bytes in format f: shared, read-only, of length and capacity 1.
func (v *variant) contentLength(f Format, n int) []string {
	if c := v.lengths[f].Load(); c != nil && c.n == n {
		return c.v
	}
	c := &contentLength{n: n, v: []string{strconv.Itoa(n)}}
	v.lengths[f].Store(c)
	return c.v
}

// Status returns the HTTP status the page is served with.
func (p *Page) Status() int { return p.status }

func (r *Renderer) newPage(d Data, b *Block) *Page {
	d.StatusText = http.StatusText(d.Status)
	d.Operator, d.Contact = r.operator, r.contact
	p := &Page{r: r, base: d, block: b, status: d.Status, vars: make([]atomic.Pointer[variant], len(r.langs))}
	if b != nil {
		p.base.BlockedBy = r.blockedBy
		if r.blockedBy != "" {
			p.link = []string{"<" + r.blockedBy + `>; rel="blocked-by"`}
		}
		p.base.Appeal = r.appeal
		if b.Contact != "" {
			p.base.Contact = b.Contact
		}
		if b.Appeal != "" {
			p.base.Appeal = b.Appeal
		}
		p.base.Scope = b.Scope
		if b.Scope != "" {
			p.countries = &countryPages{}
		}
	}
	switch d.Status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if r.retry != "" {
			p.retry = []string{r.retry}
		}
	}
	p.tmpl, p.tmplKey = r.builtin, p.templateKey()
	if t, ok := r.templates[p.tmplKey]; ok {
		p.tmpl = t
	} else if t, ok := r.templates["error"]; ok && b == nil {
		p.tmpl, p.tmplKey = t, "error"
	}
	return p
}

// templateKey returns the Options.Templates key of the page.
func (p *Page) templateKey() string {
	if p.block != nil {
		return "block"
	}
	return strconv.Itoa(p.status)
}

// messageKey returns the prefix of the page's messages in the catalog.
func (p *Page) messageKey() string {
	if p.block != nil && p.status == http.StatusUnavailableForLegalReasons {
		return "blocked_legal"
	}
	return strings.ReplaceAll(p.base.Kind, "-", "_")
}

// prepareAll prepares the page in every language.
func (p *Page) prepareAll() error {
	for i := range p.vars {
		if p.vars[i].Load() != nil {
			continue
		}
		v, err := p.prepare(i)
		if err != nil {
			return fmt.Errorf("language %s: %w", p.r.tags[i], err)
		}
		p.vars[i].Store(v)
	}
	return nil
}

// variant returns the page in language i, preparing it on first use. Should
// that fail (a custom template that breaks on one rule's values in one
// language), the default language is served.
func (p *Page) variant(i int) *variant {
	if v := p.vars[i].Load(); v != nil {
		return v
	}
	if p.block != nil && !p.block.Limit.take() {
		return p.vars[p.r.def].Load() // prepared by Block
	}
	v, err := p.prepare(i)
	if err != nil {
		if i == p.r.def {
			return nil
		}
		return p.variant(p.r.def)
	}
	if !p.vars[i].CompareAndSwap(nil, v) {
		if p.block != nil && p.block.Limit != nil {
			p.block.Limit.left.Add(1) // another request stored it first
		}
		return p.vars[i].Load()
	}
	return v
}

// prepare renders the page in language i.
func (p *Page) prepare(i int) (*variant, error) {
	l := p.r.langs[i]
	m := l.Messages
	d := p.base
	d.Lang, d.Dir, d.LanguageName, d.T = l.Tag, l.Dir, l.Name, m
	d.Code = strings.Replace(m["error_code"], "{status}", strconv.Itoa(d.Status), 1)
	key := p.messageKey()
	d.Title = m[key+"_title"]
	d.Lead, d.LeadEnd, _ = strings.Cut(m[key+"_lead"], "{host}")
	d.Message = m[key+"_message"]
	if p.block != nil {
		d.Reason, d.ReasonLang = p.reason(l.Tag)
		if d.Scope != "" {
			d.Title = m["geo_title_unknown"]
			if d.Country != "" {
				d.CountryName = CountryName(l.Tag, d.Country)
				d.Title = strings.Replace(m["geo_title"], "{country}", d.CountryName, 1)
			}
		}
	}
	v := &variant{contentLanguage: []string{l.Tag}}
	var err error
	if v.formats[HTML], err = compile(d, func(d Data) ([]byte, error) {
		var b bytes.Buffer
		err := p.tmpl.Execute(&b, d)
		return b.Bytes(), err
	}); err != nil {
		return nil, err
	}
	if v.formats[JSON], err = compile(d, renderJSON); err != nil {
		return nil, err
	}
	if v.formats[Text], err = compile(d, renderText); err != nil {
		return nil, err
	}
	return v, nil
}

// reason returns the block's reason for a page in language tag, and the
// reason's own language: the reason given for that language (or for the
// language a more specific tag falls back to), else the plain reason
// (taken to be in the default language), else one of the others.
func (p *Page) reason(tag string) (text, lang string) {
	b := p.block
	if len(b.Reasons) > 0 {
		tags := slices.Sorted(maps.Keys(b.Reasons))
		if i := NegotiateLanguage(tag, tags, -1); i >= 0 {
			return b.Reasons[tags[i]], tags[i]
		}
	}
	def := p.r.tags[p.r.def]
	if b.Reason != "" {
		return b.Reason, def
	}
	if len(b.Reasons) > 0 {
		tags := slices.Sorted(maps.Keys(b.Reasons))
		i := NegotiateLanguage(def, tags, 0)
		return b.Reasons[tags[i]], tags[i]
	}
	return "", ""
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
	// Language is the language of title and detail.
	Language  string `json:"language"`
	BlockedBy string `json:"blocked_by,omitempty"`
	Operator  string `json:"operator,omitempty"`
	Contact   string `json:"contact,omitempty"`
	Appeal    string `json:"appeal,omitempty"`
	// Country is the visitor's country and Scope the rule's, on the
	// pages of blocks scoped to countries; Country is "unknown" when the
	// edge does not know it.
	Country string `json:"country,omitempty"`
	Scope   string `json:"scope,omitempty"`
}

func renderJSON(d Data) ([]byte, error) {
	p := problem{Type: d.Policy, Title: d.Title, Status: d.Status, Detail: d.Reason, Instance: d.RequestID,
		Host: d.Host, RequestID: d.RequestID, Time: d.Time, Language: d.Lang, BlockedBy: d.BlockedBy,
		Operator: d.Operator, Contact: d.Contact, Appeal: d.Appeal, Scope: d.Scope}
	if d.Scope != "" {
		p.Country = d.Country
		if p.Country == "" {
			p.Country = "unknown"
		}
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Detail == "" {
		p.Detail = d.Message
	}
	b, err := json.MarshalIndent(p, "", "  ")
	return append(b, '\n'), err
}

// renderText renders the text/plain page: the same lines as the HTML
// page, labelled in the page's language.
func renderText(d Data) ([]byte, error) {
	var b strings.Builder
	t := d.T
	line := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s%s%s\n", t[label], t["colon"], v)
		}
	}
	fmt.Fprintf(&b, "%d %s: %s\n\n%s%s%s\n", d.Status, d.StatusText, d.Title, d.Lead, d.Host, d.LeadEnd)
	if d.Kind == "blocked" {
		line("blocked_by", d.Operator)
	}
	line("reason", d.Reason)
	if d.Message != "" {
		fmt.Fprintf(&b, "%s\n", d.Message)
	}
	line("policy", d.Policy)
	line("appeal_label", d.Appeal)
	line("contact_label", d.Contact)
	if d.Appeal != "" || d.Contact != "" {
		fmt.Fprintf(&b, "%s\n", t["quote_id"])
	}
	b.WriteByte('\n')
	line("host", d.Host)
	line("country", d.CountryName)
	line("request_id", d.RequestID)
	line("time", d.Time)
	if d.Kind != "blocked" {
		line("operator", d.Operator)
	}
	if d.BlockedBy != "" {
		fmt.Fprintf(&b, "%s%s%s\n", t["operator_site"], t["colon"], d.BlockedBy)
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

// appendRequest is appendTo(b, requestValues(req)) without making the
// time's text a string of its own.
func (c *compiled) appendRequest(b []byte, req Request) []byte {
	host, id := safe(req.Host), safe(req.RequestID)
	for i, p := range c.parts {
		b = append(b, p...)
		if i < len(c.holes) {
			switch c.holes[i] {
			case holeHost:
				b = append(b, host...)
			case holeRequestID:
				b = append(b, id...)
			case holeTime:
				b = appendTime(b, req.Time)
			}
		}
	}
	return b
}

// appendTime appends t as the pages show it: RFC 3339 in UTC, that is
// t.UTC().AppendFormat(b, time.RFC3339). The text depends on t's Unix
// second only, so it is formatted once per second: the pages of a busy
// second share it (lastSecond).
func appendTime(b []byte, t time.Time) []byte {
	u := t.Unix()
	s := lastSecond.Load()
	if s == nil || s.unix != u {
		s = &second{unix: u, text: t.UTC().AppendFormat(nil, time.RFC3339)}
		lastSecond.Store(s)
	}
	return append(b, s.text...)
}

// second is a Unix second and its RFC 3339 text in UTC.
type second struct {
	unix int64
	text []byte
}

// lastSecond is the second appendTime formatted last.
var lastSecond atomic.Pointer[second]

var (
	contentTypes       = [numFormats][]string{{HTML.ContentType()}, {JSON.ContentType()}, {Text.ContentType()}}
	noStore            = []string{"no-store"}
	varyAcceptLanguage = []string{"Accept, Accept-Language"}
	nosniff            = []string{"nosniff"}
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func (v *variant) appendBody(b []byte, f Format, req Request) ([]byte, error) {
	c := &v.formats[f]
	if !c.dynamic {
		return c.appendRequest(b, req), nil
	}
	return c.appendRendered(b, req)
}

// appendRendered appends the page of a custom template, rendered for req.
// It is a function of its own so that the built-in pages, which are
// spliced rather than rendered, do not carry its locals on the stack.
//
//go:noinline
func (c *compiled) appendRendered(b []byte, req Request) ([]byte, error) {
	vals := requestValues(req)
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
		string(appendTime(nil, req.Time)),
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

// headerValue returns h.Get(key) for a key already in canonical form,
// without canonicalizing it again.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Serve writes the page for one request: the format the Accept header
// prefers in the language Accept-Language prefers, with Content-Type,
// Content-Language, Content-Length, Cache-Control: no-store, Vary: Accept,
// Accept-Language, on block pages the RFC 7725 Link header and on 502, 503
// and 504 pages Retry-After (when configured). A HEAD request gets the
// headers alone. It returns the number of body bytes written.
func (p *Page) Serve(w http.ResponseWriter, r *http.Request, req Request) int {
	f := Negotiate(headerValue(r.Header, "Accept"))
	v := p.variant(p.r.language(headerValue(r.Header, "Accept-Language")))
	bp := bufPool.Get().(*[]byte)
	body, err := v.appendBody((*bp)[:0], f, req)
	if err != nil {
		// A custom template failed on this request: fall back to the
		// text form, which cannot fail, rather than an empty page.
		f = Text
		body, _ = v.appendBody((*bp)[:0], f, req)
	}
	// The header values are prepared too; they are shared read-only
	// slices of length and capacity 1, so that an Add by a later handler
	// makes a copy rather than changing them.
	h := w.Header()
	h["Content-Type"] = contentTypes[f]
	h["Content-Language"] = v.contentLanguage
	h["Content-Length"] = v.contentLength(f, len(body))
	h["Cache-Control"] = noStore
	h["Vary"] = varyAcceptLanguage
	h["X-Content-Type-Options"] = nosniff
	if p.link != nil {
		h["Link"] = p.link
	}
	if p.retry != nil {
		h["Retry-After"] = p.retry
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
