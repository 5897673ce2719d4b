package proxy

import (
	"strings"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/certs"
)

// maxCoveredReplaced bounds the names a covered set built from the one
// before keeps replaced (certs.Patterns.With); past it, the set is built
// whole again.
var maxCoveredReplaced = 4096

// coveredPatterns returns the patterns whose names may get a certificate:
// every route, and every block-mode rule (until it expires). A report-mode
// rule covers no name: without a route its name is not served.
func coveredPatterns(cfg *config.Config, list *blocklist.List) *certs.Patterns {
	var ps []certs.Pattern
	for i := range cfg.Routes {
		if p, ok := routePattern(&cfg.Routes[i]); ok {
			ps = append(ps, p)
		}
	}
	for r := range list.Rules() {
		if p, ok := rulePattern(r); ok {
			ps = append(ps, p)
		}
	}
	return certs.NewPatterns(ps)
}

// coveredNext returns coveredPatterns(cfg, list), built from the covered
// set of prev when prev has the same config and a list that list was
// reparsed from: only the names of the rules that changed are looked at
// (a one-rule edit of a 1,000,000-rule list costs that rule, not a walk
// of the list). Otherwise, or when the replaced names grow past
// maxCoveredReplaced, it is built whole. The result is the same set.
func coveredNext(prev *state, cfg *config.Config, list *blocklist.List) *certs.Patterns {
	if prev == nil || prev.cfg.Config != cfg {
		return coveredPatterns(cfg, list)
	}
	names, ok := list.Touched(prev.list)
	if !ok {
		return coveredPatterns(cfg, list)
	}
	old := prev.coveredSet()
	if len(names) == 0 {
		return old
	}
	if old.Replaced()+len(names) > maxCoveredReplaced {
		return coveredPatterns(cfg, list)
	}
	// A name's patterns in the order coveredPatterns makes them: its
	// routes in config order, then its rules in file order.
	byName := make(map[string][]certs.Pattern, len(names))
	for _, n := range names {
		byName[n] = nil
	}
	for i := range cfg.Routes {
		if p, ok := routePattern(&cfg.Routes[i]); ok {
			if ps, touched := byName[p.Name]; touched {
				byName[p.Name] = append(ps, p)
			}
		}
	}
	for _, n := range names {
		for _, r := range list.Named(n) {
			if p, ok := rulePattern(r); ok {
				byName[n] = append(byName[n], p)
			}
		}
	}
	return old.With(byName)
}

// routePattern returns the pattern a route covers.
func routePattern(r *config.RouteConfig) (certs.Pattern, bool) {
	n, err := normalizePattern(r.Host)
	if err != nil {
		return certs.Pattern{}, false // validated already
	}
	if name, ok := strings.CutPrefix(n, "*."); ok {
		return certs.Pattern{Name: name, Kind: certs.Wildcard, WildcardCert: r.WildcardCert()}, true
	}
	return certs.Pattern{Name: n, Kind: certs.Exact}, true
}

// rulePattern returns the pattern a rule covers: none in report mode.
func rulePattern(r blocklist.Rule) (certs.Pattern, bool) {
	if r.Mode != blocklist.ModeBlock {
		return certs.Pattern{}, false
	}
	k := certs.Zone
	if r.Wildcard {
		k = certs.Wildcard
	}
	return certs.Pattern{Name: r.Name, Kind: k, Until: r.Expires}, true
}
