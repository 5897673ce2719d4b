package proxy

import (
	"fmt"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
)

// Explain describes, for an operator, what a visitor to host gets under
// bundle b at time now: the rule that blocks it (with its file and line),
// or the route and origins that serve it, or the unknown-host page.
func Explain(b *Bundle, host string, now time.Time) string {
	var s strings.Builder
	n, err := blocklist.Normalize(host)
	if err != nil {
		fmt.Fprintf(&s, "%s: invalid host name: %v\nvisitor gets: 400 page\n", host, err)
		return s.String()
	}
	fmt.Fprintf(&s, "host: %s\n", n)
	rule, blocked := b.List.Match(n, now)
	if blocked {
		policy := rule.Policy
		if policy == "" {
			policy = b.Config.Blocklist.Policy + " (default)"
		}
		fmt.Fprintf(&s, "rule: %s at %s:%d\n  mode=%s status=%d policy=%s\n", rule.Pattern(), b.List.File(), rule.Line, rule.Mode, rule.Status, policy)
		if rule.Reason != "" {
			fmt.Fprintf(&s, "  reason=%q\n", rule.Reason)
		}
		if !rule.Expires.IsZero() {
			fmt.Fprintf(&s, "  expires=%s\n", rule.Expires.UTC().Format(time.RFC3339))
		}
	} else {
		fmt.Fprintf(&s, "rule: none\n")
	}
	var rt *routeConfigMatch
	if r := matchRoute(b.Config, n); r != nil {
		rt = r
		fmt.Fprintf(&s, "route: %s (routes[%d]) -> %s\n", r.cfg.Host, r.index, strings.Join(r.cfg.Origins, ", "))
	} else {
		fmt.Fprintf(&s, "route: none\n")
	}
	switch {
	case blocked && rule.Mode == blocklist.ModeBlock:
		fmt.Fprintf(&s, "visitor gets: %d block page\n", rule.Status)
	case rt == nil:
		fmt.Fprintf(&s, "visitor gets: 404 page (no site is configured for this name)\n")
	case blocked:
		fmt.Fprintf(&s, "visitor gets: proxied to the origin; the report-mode rule logs and counts the request\n")
	default:
		fmt.Fprintf(&s, "visitor gets: proxied to the origin\n")
	}
	return s.String()
}

type routeConfigMatch struct {
	cfg   RouteConfig
	index int
}

// matchRoute finds the configured route of host by the same precedence as
// the running proxy.
func matchRoute(cfg *Config, host string) *routeConfigMatch {
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
