package proxy

import (
	"net/http"
	"slices"
	"strings"

	"github.com/edgeblock/edgeblock/proxy/config"
)

// headerOps is HeaderOps prepared at load time: canonical names, sorted.
type headerOps struct {
	remove   []string
	set, add [][2]string
}

func compileOps(o config.HeaderOps) headerOps {
	var c headerOps
	for _, n := range o.Remove {
		c.remove = append(c.remove, http.CanonicalHeaderKey(n))
	}
	pairs := func(m map[string]string) [][2]string {
		var out [][2]string
		for n, v := range m {
			out = append(out, [2]string{http.CanonicalHeaderKey(n), v})
		}
		slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		return out
	}
	c.set, c.add = pairs(o.Set), pairs(o.Add)
	return c
}

// apply changes h by the rules.
func (c *headerOps) apply(h http.Header) {
	for _, n := range c.remove {
		delete(h, n)
	}
	for _, p := range c.set {
		h[p[0]] = []string{p[1]}
	}
	for _, p := range c.add {
		h[p[0]] = append(h[p[0]], p[1])
	}
}

// routeHeaders are a route's compiled header rules; nil means none.
type routeHeaders struct {
	request, response headerOps
}

func compileHeaders(h *config.HeaderRules) *routeHeaders {
	if h == nil {
		return nil
	}
	return &routeHeaders{request: compileOps(h.Request), response: compileOps(h.Response)}
}

// applyRequest applies the request rules; the edge sets its own headers
// afterwards.
func (r *routeHeaders) applyRequest(h http.Header) {
	if r != nil {
		r.request.apply(h)
	}
}

// applyResponse applies the response rules to an origin's response.
func (r *routeHeaders) applyResponse(h http.Header) {
	if r != nil {
		r.response.apply(h)
	}
}
