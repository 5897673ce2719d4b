package proxy

import (
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/origin"
	"github.com/prometheus/client_golang/prometheus"
)

// eagerPages is how many distinct block pages are prepared when a list is
// loaded; attribute sets beyond it (lists where most rules carry their own
// reason) are prepared on their first request.
const eagerPages = 1000

// lazyPageLanguages bounds the block pages prepared on first request in a
// language other than the default, per state: 20,000 pages of about 15 KiB
// (HTML, JSON and text) is some 300 MiB at worst, however many distinct
// attribute sets a list has. Past it, visitors get the default language.
const lazyPageLanguages = 20_000

// state is everything a request needs, built at load time and swapped in
// whole: a request sees one state from start to end, never a mix of an old
// and a new list or config.
type state struct {
	cfg      *edgeConfig
	list     *blocklist.List
	routes   *routeTable
	renderer *pages.Renderer
	// blockPages[i] is the page of the list's Attrs()[i].
	blockPages []atomic.Pointer[pages.Page]
	// policies[i] is the effective policy link of the list's Attrs()[i].
	policies []string
	// pageLimit bounds the block pages prepared per language on demand.
	pageLimit *pages.Limit
	// blocked[i] is the edgeblock_blocked_requests_total series of
	// Attrs()[i], looked up once here rather than on every request.
	blocked []prometheus.Counter
	// covered are the names that may get a certificate (see
	// coveredPatterns), built by newState when TLS is on, else on first use.
	covered     *certs.Patterns
	coveredOnce sync.Once
	// feed is the transparency feed, built on its first request
	// (transparency.go).
	feed atomic.Pointer[feed]
}

// config returns the config in use, or nil before the first Apply.
func (p *Proxy) config() *edgeConfig {
	if st := p.state.Load(); st != nil {
		return st.cfg
	}
	return nil
}

// coveredSet returns the patterns whose names may get a certificate.
func (s *state) coveredSet() *certs.Patterns {
	s.coveredOnce.Do(func() { s.covered = coveredPatterns(s.cfg.Config, s.list) })
	return s.covered
}

// blockPage returns the prepared page for a rule's attributes.
func (s *state) blockPage(id int) *pages.Page {
	if p := s.blockPages[id].Load(); p != nil {
		return p
	}
	p, err := s.renderer.Block(s.pageBlock(id))
	if err != nil {
		// The template was checked at load with a sample; should a
		// rule's values still break it, the visitor gets the built-in
		// error page rather than nothing.
		return s.renderer.Error(502)
	}
	s.blockPages[id].CompareAndSwap(nil, p)
	return p
}

func (s *state) pageBlock(id int) pages.Block {
	a := s.list.Attrs()[id]
	b := pages.Block{Status: a.Status, Policy: s.policies[id], Reason: a.Reason, Contact: a.Contact, Appeal: a.Appeal, Limit: s.pageLimit}
	if !a.Scope.IsZero() {
		b.Scope = a.Scope.String()
	}
	if a.Reasons.Len() > 0 {
		b.Reasons = make(map[string]string, a.Reasons.Len())
		for tag, text := range a.Reasons.All() {
			b.Reasons[tag] = text
		}
	}
	return b
}

// newState builds a state from a config and a list. Routes reuse the
// origins (and their health) of prev where pattern and URL are unchanged.
func (p *Proxy) newState(cfg *config.Config, list *blocklist.List, renderer *pages.Renderer, prev *state) (*state, error) {
	ec := provision(cfg)
	if prev != nil && prev.cfg.Config == cfg {
		ec = prev.cfg
	}
	s := &state{cfg: ec, list: list, renderer: renderer, pageLimit: pages.NewLimit(lazyPageLanguages)}
	if cfg.TLS.Mode != "off" {
		s.coveredOnce.Do(func() { s.covered = coveredNext(prev, cfg, list) })
	}
	if prev != nil && prev.cfg.Config == cfg {
		s.routes = prev.routes
	} else {
		rt, err := p.buildRoutes(cfg, prev)
		if err != nil {
			return nil, err
		}
		s.routes = rt
	}
	attrs := list.Attrs()
	s.blockPages = make([]atomic.Pointer[pages.Page], len(attrs))
	s.policies = make([]string, len(attrs))
	s.blocked = make([]prometheus.Counter, len(attrs))
	series := map[[3]string]prometheus.Counter{} // many attribute sets share a label set
	for i, a := range attrs {
		s.policies[i] = a.Policy
		if a.Policy == "" {
			s.policies[i] = cfg.Blocklist.Policy
		}
		key := [3]string{s.policies[i], strconv.Itoa(a.Status), a.Mode.String()}
		if series[key] == nil {
			series[key] = p.metrics.Blocked.WithLabelValues(key[:]...)
		}
		s.blocked[i] = series[key]
		if i < eagerPages {
			pg, err := renderer.Block(s.pageBlock(i))
			if err != nil {
				return nil, fmt.Errorf("block page for %s: %w", s.policies[i], err)
			}
			s.blockPages[i].Store(pg)
		}
	}
	return s, nil
}

// buildRoutes builds a route, with its origin pool, for every configured
// route. A route whose settings (its own, the origins: defaults, and the
// transport they select) are those of prev's route for the same pattern
// is taken over whole, with its pool and running health checks; any other
// route gets a new pool that takes over the origins (health, counters) of
// prev's pool for the same pattern. New pools' health checks start when
// the state is swapped in (Proxy.Apply).
//
// A reload that changes a few of 100,000 routes so rebuilds those few:
// a pool costs a sticky-cookie HMAC per origin and some 1 KiB.
func (p *Proxy) buildRoutes(cfg *config.Config, prev *state) (*routeTable, error) {
	var old *routeTable
	var oldConf []config.RouteConfig
	sameDefaults := false
	if prev != nil {
		old, oldConf = prev.routes, prev.cfg.Routes
		sameDefaults = reflect.DeepEqual(cfg.Origins, prev.cfg.Origins)
	}
	key := p.cookieKey
	if cfg.Origins.CookieKey != "" {
		key = []byte(cfg.Origins.CookieKey)
	}
	// One transport lookup per distinct settings, not per route: a lookup
	// reads the origin TLS files.
	transports := map[transportSettings]*routeTransport{}
	var oldIndex map[string]int // pattern → index in old, built if the order changed
	routes := make([]*route, 0, len(cfg.Routes))
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		pattern, err := normalizePattern(rc.Host)
		if err != nil {
			return nil, err // validated already
		}
		b := rc.Balance.Merged(cfg.Origins.Balance)
		ts := settingsOf(b, p.dial, p.responseHeader)
		tr := transports[ts]
		if tr == nil {
			if tr, err = p.transports.get(ts); err != nil {
				return nil, fmt.Errorf("routes %s: %w", rc.Host, err)
			}
			transports[ts] = tr
		}
		var was *route
		if old != nil {
			was = old.byPattern(pattern)
		}
		if was != nil && sameDefaults && was.transport == tr {
			j := i
			if j >= len(old.all) || old.all[j] != was {
				if oldIndex == nil {
					oldIndex = make(map[string]int, len(old.all))
					for k, r := range old.all {
						oldIndex[r.pattern] = k
					}
				}
				j = oldIndex[pattern]
			}
			if reflect.DeepEqual(*rc, oldConf[j]) {
				routes = append(routes, was)
				continue
			}
		}
		pc, err := poolConfig(cfg, *rc, pattern, key)
		if err != nil {
			return nil, err
		}
		pc.Base = tr.base()
		var oldPool *origin.Pool
		if was != nil {
			oldPool = was.pool
		}
		r := &route{pattern: pattern, pool: origin.NewPool(pc, oldPool, p.log, p.observer), probe: tr.probe, transport: tr,
			headers: compileHeaders(b.Headers), proxy: p.upstream}
		routes = append(routes, r)
	}
	return newRouteTable(routes), nil
}

// startingPage returns the 503 page served while no state is applied: the
// config's pages if they load, else the built-in ones.
func startingPage(cfg *config.Config) *pages.Page {
	if rd, _, _, err := reload.LoadRenderer(cfg); err == nil {
		return rd.Starting()
	}
	rd, err := pages.NewRenderer(pages.Options{})
	if err != nil {
		panic(err) // the built-in pages are tested
	}
	return rd.Starting()
}
