package certs

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Reasons a certificate is refused, the values of the reason label of
// edgeblock_tls_handshake_refused_total.
const (
	ReasonNotCovered = "not_covered" // no pattern covers the name
	ReasonBudget     = "budget"      // the pattern had its new names of the last hour
	ReasonMaxNames   = "max_names"   // the pattern holds its most names
	ReasonAskDenied  = "ask_denied"  // the ask endpoint answered other than 200
	ReasonAskError   = "ask_error"   // the ask endpoint did not answer in time
	// ReasonWildcardPending: the name is served by a wildcard
	// certificate that is not there yet.
	ReasonWildcardPending = "wildcard_pending"
)

// Reasons lists every reason, for metrics that start each series at zero.
var Reasons = []string{ReasonNotCovered, ReasonBudget, ReasonMaxNames, ReasonAskDenied, ReasonAskError, ReasonWildcardPending}

// Refusal is the error of a refused decision.
type Refusal struct {
	Name    string
	Pattern string // empty for ReasonNotCovered
	Reason  string // one of Reasons
	Err     error  // the ask endpoint's error, for ReasonAskError
}

func (r *Refusal) Error() string {
	var s string
	switch r.Reason {
	case ReasonNotCovered:
		return fmt.Sprintf("no route or rule covers %q", r.Name)
	case ReasonBudget:
		s = "had its new names of the last hour"
	case ReasonMaxNames:
		s = "holds its most names"
	case ReasonAskDenied:
		s = "is refused by the ask endpoint"
	case ReasonWildcardPending:
		s = "waits for the wildcard certificate"
	default:
		s = "is refused: the ask endpoint failed"
	}
	msg := fmt.Sprintf("%q under %s %s", r.Name, r.Pattern, s)
	if r.Err != nil {
		msg += ": " + r.Err.Error()
	}
	return msg
}

func (r *Refusal) Unwrap() error { return r.Err }

// Limits bound the issuance of certificates for new names, per covering
// pattern. Names that already hold a certificate (renewals, a restart, a
// certificate evicted from the cache) are not new.
type Limits struct {
	// MaxNewPerHour is how many new names one pattern may get in any 60
	// minutes; 0 means none.
	MaxNewPerHour int `yaml:"max_new_per_hour"`
	// MaxNames is how many names one pattern may hold in total,
	// counting those found in storage; 0 means none.
	MaxNames int `yaml:"max_names"`
	// Ask, if set, is a URL asked with GET ?domain=NAME after the
	// policy's own decision allowed a name: 200 allows, any other answer
	// or no answer within AskTimeout refuses. It is asked for every
	// decision, known names included, as Caddy's on-demand ask is.
	Ask        string        `yaml:"ask"`
	AskTimeout time.Duration `yaml:"ask_timeout"`
}

// Decision is an allowed name: the pattern covering it and whether it is
// new (and so was charged to the pattern's budget).
type Decision struct {
	Pattern Pattern
	New     bool
}

// Policy decides which names may get a certificate: a name its patterns
// cover, within its pattern's Limits, allowed by the ask endpoint. It is
// safe for concurrent use.
type Policy struct {
	limits   Limits
	patterns func() *Patterns
	has      func(ctx context.Context, name string) bool
	client   *http.Client
	now      func() time.Time

	mu      sync.Mutex
	budgets map[string]*budget // by Pattern.String()
	seed    []string
}

// budget is the issuance record of one pattern.
type budget struct {
	pattern Pattern
	recent  []time.Time // when the new names of the last hour were admitted, oldest first
	names   map[string]struct{}
}

// NewPolicy returns a policy with limits l over the patterns that
// patterns returns at each decision. has reports whether a certificate
// for a name (or a wildcard over it) exists already; such names are not
// charged. Either function may be nil.
func NewPolicy(l Limits, patterns func() *Patterns, has func(ctx context.Context, name string) bool) *Policy {
	if l.AskTimeout <= 0 {
		l.AskTimeout = 5 * time.Second
	}
	if patterns == nil {
		patterns = func() *Patterns { return nil }
	}
	if has == nil {
		has = func(context.Context, string) bool { return false }
	}
	return &Policy{limits: l, patterns: patterns, has: has, now: time.Now,
		client:  &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		budgets: map[string]*budget{}}
}

// Seed tells the policy the names that hold certificates already (read
// from storage at start), so that they count towards MaxNames and are not
// new.
func (p *Policy) Seed(names []string) {
	p.mu.Lock()
	p.seed = append(p.seed, names...)
	p.mu.Unlock()
}

// Covering returns the pattern that covers name now.
func (p *Policy) Covering(name string) (Pattern, bool) {
	return p.patterns().Match(name, p.now())
}

// Decide decides whether name may get a certificate, charging a new name
// to its pattern's budget. A refusal is a *Refusal.
func (p *Policy) Decide(ctx context.Context, name string) (Decision, error) {
	now := p.now()
	pat, ok := p.patterns().Match(name, now)
	if !ok {
		return Decision{}, &Refusal{Name: name, Reason: ReasonNotCovered}
	}
	label := pat.String()
	d := Decision{Pattern: pat}
	p.mu.Lock()
	b := p.budgetLocked(pat, now)
	_, known := b.names[name]
	p.mu.Unlock()
	if pat.WildcardCert && oneLabelUnder(name, pat.Name) {
		// Served by the wildcard certificate (from storage, when the
		// cache has dropped it), never by one of its own.
		if !p.has(ctx, name) {
			return Decision{}, &Refusal{Name: name, Pattern: label, Reason: ReasonWildcardPending}
		}
		known = true
	}
	if !known && !p.has(ctx, name) {
		p.mu.Lock()
		b.prune(now)
		switch {
		case len(b.names) >= p.limits.MaxNames:
			p.mu.Unlock()
			return Decision{}, &Refusal{Name: name, Pattern: label, Reason: ReasonMaxNames}
		case len(b.recent) >= p.limits.MaxNewPerHour:
			p.mu.Unlock()
			return Decision{}, &Refusal{Name: name, Pattern: label, Reason: ReasonBudget}
		}
		b.recent = append(b.recent, now)
		b.names[name] = struct{}{}
		p.mu.Unlock()
		d.New = true
	}
	if p.limits.Ask == "" {
		return d, nil
	}
	if reason, err := p.ask(ctx, name); reason != "" {
		if d.New {
			p.mu.Lock()
			delete(b.names, name)
			if i := slices.Index(b.recent, now); i >= 0 {
				b.recent = slices.Delete(b.recent, i, i+1)
			}
			p.mu.Unlock()
		}
		return Decision{}, &Refusal{Name: name, Pattern: label, Reason: reason, Err: err}
	}
	return d, nil
}

// oneLabelUnder reports whether name is one label under parent.
func oneLabelUnder(name, parent string) bool {
	label, rest, ok := strings.Cut(name, ".")
	return ok && label != "" && rest == parent
}

// budgetLocked returns the budget of pat, creating it with the seeded
// names pat covers.
func (p *Policy) budgetLocked(pat Pattern, now time.Time) *budget {
	label := pat.String()
	if b, ok := p.budgets[label]; ok {
		return b
	}
	b := &budget{pattern: pat, names: map[string]struct{}{}}
	set := p.patterns()
	for _, n := range p.seed {
		if m, ok := set.Match(n, now); ok && m.String() == label {
			b.names[n] = struct{}{}
		}
	}
	p.budgets[label] = b
	return b
}

// prune drops the admissions older than an hour.
func (b *budget) prune(now time.Time) {
	i := 0
	for i < len(b.recent) && now.Sub(b.recent[i]) >= time.Hour {
		i++
	}
	b.recent = b.recent[i:]
}

// ask asks the ask endpoint about name; it returns "" when allowed, else
// the reason and, for ReasonAskError, the error.
func (p *Policy) ask(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.limits.AskTimeout)
	defer cancel()
	sep := "?"
	if strings.Contains(p.limits.Ask, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.limits.Ask+sep+"domain="+url.QueryEscape(name), nil)
	if err != nil {
		return ReasonAskError, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return ReasonAskError, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ReasonAskDenied, fmt.Errorf("ask endpoint answered %s", resp.Status)
	}
	return "", nil
}

// Remaining returns, for each pattern that has had a new-name decision,
// how many more new names it may get now: the lesser of what is left of
// the hour's budget and of MaxNames.
func (p *Policy) Remaining() map[string]int {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.budgets))
	for label, b := range p.budgets {
		b.prune(now)
		out[label] = max(0, min(p.limits.MaxNewPerHour-len(b.recent), p.limits.MaxNames-len(b.names)))
	}
	return out
}
