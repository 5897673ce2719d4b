package proxy

import (
	"strings"

	"github.com/edgeblock/edgeblock/blocklist"
)

// routeTable finds the route of a normalized host: an exact name wins over
// a wildcard, and the longest wildcard wins. It is built once per config
// and never changed, so it is safe for concurrent use.
type routeTable struct {
	exact map[string]*route
	wild  map[string]*route // keyed by the name after "*."
	all   []*route
}

func newRouteTable(routes []*route) *routeTable {
	t := &routeTable{exact: map[string]*route{}, wild: map[string]*route{}, all: routes}
	for _, r := range routes {
		if name, ok := strings.CutPrefix(r.pattern, "*."); ok {
			t.wild[name] = r
		} else {
			t.exact[r.pattern] = r
		}
	}
	return t
}

// lookup returns the route for host, or nil. It costs one map lookup per
// label of host.
func (t *routeTable) lookup(host string) *route {
	if r, ok := t.exact[host]; ok {
		return r
	}
	for h := host; ; {
		dot := strings.IndexByte(h, '.')
		if dot < 0 {
			return nil
		}
		h = h[dot+1:]
		if r, ok := t.wild[h]; ok {
			return r
		}
	}
}

// closePools stops the health checks of every route's pool.
func (t *routeTable) closePools() {
	for _, r := range t.all {
		if r.pool != nil {
			r.pool.Close()
		}
	}
}

// covers reports whether a route serves host.
func (t *routeTable) covers(host string) bool { return t.lookup(host) != nil }

// normalizePattern normalizes a route or rule pattern ("name" or "*.name").
func normalizePattern(p string) (string, error) {
	name, wild := strings.CutPrefix(p, "*.")
	n, err := blocklist.Normalize(name)
	if err != nil {
		return "", err
	}
	if wild {
		return "*." + n, nil
	}
	return n, nil
}
