package proxy

import (
	"fmt"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// Explanation says, for an operator, what a visitor to a host gets: the
// rule that matches it (with its file and line), the route and origins
// that serve it, and the response. It is served as JSON by the admin
// listener's GET /explain and printed by the explain command.
type Explanation struct {
	// Input is the host as given; Host is its normalized form, empty when
	// the name is invalid (Invalid says why).
	Input   string `json:"input"`
	Host    string `json:"host,omitempty"`
	Invalid string `json:"invalid,omitempty"`
	// Rule is the matching rule, or nil.
	Rule *ExplainedRule `json:"rule"`
	// Route is the configured route of Host, or nil.
	Route *ExplainedRoute `json:"route"`
	// Visitor is what the visitor gets.
	Visitor ExplainedResponse `json:"visitor"`
	// Blocklist and Config identify the files the answer comes from.
	Blocklist ExplainedFile `json:"blocklist"`
	Config    ExplainedFile `json:"config"`
	// At is the time the answer holds for (rules can expire).
	At time.Time `json:"at"`
	// Country is the visitor's country the answer holds for (an ISO
	// 3166-1 alpha-2 code, or "unknown"), set when a rule scoped to
	// countries covers Host; Scoped lists those rules, in file order.
	Country string          `json:"country,omitempty"`
	Scoped  []ExplainedRule `json:"scoped,omitempty"`
}

// ExplainedRule is a matching rule in an Explanation.
type ExplainedRule struct {
	Pattern string `json:"pattern"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Mode    string `json:"mode"`
	Status  int    `json:"status"`
	// Policy is the effective policy link; PolicyDefault is set when it is
	// blocklist.policy because the rule names none.
	Policy        string     `json:"policy,omitempty"`
	PolicyDefault bool       `json:"policy_default,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	Expires       *time.Time `json:"expires,omitempty"`
	// Scope is the rule's scope as written ("countries=FR"); empty for a
	// worldwide rule.
	Scope string `json:"scope,omitempty"`
}

// ExplainedRoute is the route of a host in an Explanation.
type ExplainedRoute struct {
	Host    string   `json:"host"`
	Index   int      `json:"index"`
	Origins []string `json:"origins"`
}

// ExplainedResponse is what the visitor gets: Status is the status the
// edge answers with itself (0 when the origin answers), Outcome the
// outcome label of edgeblock_requests_total, Policy the policy link a
// block page shows.
type ExplainedResponse struct {
	Status  int    `json:"status,omitempty"`
	Outcome string `json:"outcome"`
	Policy  string `json:"policy,omitempty"`
	Summary string `json:"summary"`
}

// ExplainedFile names a file and the hash of the content in effect.
type ExplainedFile struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// Explain describes what a visitor to host gets under bundle b at time now,
// for a visitor of unknown country.
func Explain(b *reload.Bundle, host string, now time.Time) *Explanation {
	return ExplainCountry(b, host, "", now)
}

// ExplainCountry describes what a visitor from country (an ISO 3166-1
// alpha-2 code in any case; "" for unknown) to host gets under bundle b
// at time now. The decision is the request path's (MatchWhere with
// geo.unknown). A country that is no ISO code counts as unknown.
func ExplainCountry(b *reload.Bundle, host, country string, now time.Time) *Explanation {
	e := &Explanation{Input: host, At: now.UTC(),
		Blocklist: ExplainedFile{File: b.List.File(), SHA256: b.List.SHA256()},
		Config:    ExplainedFile{File: b.Config.Path, SHA256: b.Config.SHA256}}
	n, err := blocklist.Normalize(host)
	if err != nil {
		e.Invalid = err.Error()
		e.Visitor = ExplainedResponse{Status: 400, Outcome: metrics.OutcomeUnknown, Summary: "400 page (not a valid host name)"}
		return e
	}
	e.Host = n
	country, _ = blocklist.Country(country)
	rule, matched := b.List.MatchWhere(n, blocklist.Where{Country: country, UnknownBlocks: b.Config.Geo.UnknownBlocks()}, now)
	explained := func(rule blocklist.Rule) *ExplainedRule {
		er := &ExplainedRule{Pattern: rule.Pattern(), File: b.List.File(), Line: rule.Line, Mode: rule.Mode.String(),
			Status: rule.Status, Policy: rule.Policy, Reason: rule.Reason}
		if er.Policy == "" {
			er.Policy, er.PolicyDefault = b.Config.Blocklist.Policy, true
		}
		if !rule.Expires.IsZero() {
			t := rule.Expires.UTC()
			er.Expires = &t
		}
		if !rule.Scope.IsZero() {
			er.Scope = rule.Scope.String()
		}
		return er
	}
	if matched {
		e.Rule = explained(rule)
	}
	if b.List.ScopedFor(n) {
		e.Country = country
		if e.Country == "" {
			e.Country = "unknown"
		}
		for r := range b.List.Rules() {
			if !r.Scope.IsZero() && ruleCovers(r, n) {
				e.Scoped = append(e.Scoped, *explained(r))
			}
		}
	}
	if r := matchRoute(b.Config, n); r != nil {
		e.Route = &ExplainedRoute{Host: r.cfg.Host, Index: r.index}
		for _, o := range r.cfg.Origins {
			e.Route.Origins = append(e.Route.Origins, o.URL)
		}
	}
	switch {
	case matched && rule.Mode == blocklist.ModeBlock:
		e.Visitor = ExplainedResponse{Status: rule.Status, Outcome: metrics.OutcomeBlocked, Policy: e.Rule.Policy,
			Summary: fmt.Sprintf("%d block page", rule.Status)}
	case e.Route == nil:
		e.Visitor = ExplainedResponse{Status: 404, Outcome: metrics.OutcomeUnknown, Summary: "404 page (no site is configured for this name)"}
	case matched:
		e.Visitor = ExplainedResponse{Outcome: metrics.OutcomeReport, Summary: "proxied to the origin; the report-mode rule logs and counts the request"}
	default:
		e.Visitor = ExplainedResponse{Outcome: metrics.OutcomeProxied, Summary: "proxied to the origin"}
	}
	return e
}

// Text returns the explanation as the explain command prints it.
func (e *Explanation) Text() string {
	var s strings.Builder
	if e.Invalid != "" {
		fmt.Fprintf(&s, "%s: invalid host name: %s\nvisitor gets: %s\n", e.Input, e.Invalid, e.Visitor.Summary)
		return s.String()
	}
	fmt.Fprintf(&s, "host: %s\n", e.Host)
	if r := e.Rule; r != nil {
		policy := r.Policy
		if r.PolicyDefault {
			policy += " (default)"
		}
		fmt.Fprintf(&s, "rule: %s at %s:%d\n  mode=%s status=%d policy=%s\n", r.Pattern, r.File, r.Line, r.Mode, r.Status, policy)
		if r.Reason != "" {
			fmt.Fprintf(&s, "  reason=%q\n", r.Reason)
		}
		if r.Expires != nil {
			fmt.Fprintf(&s, "  expires=%s\n", r.Expires.Format(time.RFC3339))
		}
		if r.Scope != "" {
			fmt.Fprintf(&s, "  scope: %s\n", r.Scope)
		}
	} else {
		fmt.Fprintf(&s, "rule: none\n")
	}
	if len(e.Scoped) > 0 {
		fmt.Fprintf(&s, "scoped rules (the decision depends on the visitor's country; this answer is for %s):\n", e.Country)
		for _, r := range e.Scoped {
			fmt.Fprintf(&s, "  %s %s at %s:%d mode=%s status=%d\n", r.Pattern, r.Scope, r.File, r.Line, r.Mode, r.Status)
		}
	}
	if r := e.Route; r != nil {
		fmt.Fprintf(&s, "route: %s (routes[%d]) -> %s\n", r.Host, r.Index, strings.Join(r.Origins, ", "))
	} else {
		fmt.Fprintf(&s, "route: none\n")
	}
	fmt.Fprintf(&s, "visitor gets: %s\n", e.Visitor.Summary)
	return s.String()
}

type routeConfigMatch struct {
	cfg   config.RouteConfig
	index int
}

// matchRoute finds the configured route of host by the same precedence as
// the running proxy.
func matchRoute(cfg *config.Config, host string) *routeConfigMatch {
	routes := make([]*route, 0, len(cfg.Routes))
	index := map[*route]int{}
	for i, rc := range cfg.Routes {
		p, err := normalizePattern(rc.Host)
		if err != nil {
			continue
		}
		r := &route{pattern: p}
		index[r] = i
		routes = append(routes, r)
	}
	r := newRouteTable(routes).lookup(host)
	if r == nil {
		return nil
	}
	return &routeConfigMatch{cfg: cfg.Routes[index[r]], index: index[r]}
}

// ruleCovers reports whether rule r is about host or a name above it.
func ruleCovers(r blocklist.Rule, host string) bool {
	if host == r.Name {
		return !r.Wildcard
	}
	return strings.HasSuffix(host, "."+r.Name)
}
