package config

import (
	"net/http"
	"slices"

	"golang.org/x/net/http/httpguts"
)

// HeaderRules change the headers of a route's forwarded requests and of
// its origins' responses. The edge's own headers are set after the
// request rules and cannot be named in them (see edgeRequestHeaders).
type HeaderRules struct {
	// Request changes what the origin gets.
	Request HeaderOps `yaml:"request"`
	// Response changes what the visitor gets from the origin (not the
	// edge's own pages).
	Response HeaderOps `yaml:"response"`
}

// HeaderOps are applied in this order: remove, set, add.
type HeaderOps struct {
	// Remove deletes these headers.
	Remove []string `yaml:"remove"`
	// Set replaces each header's values with the one given.
	Set map[string]string `yaml:"set"`
	// Add appends the value to the header's values.
	Add map[string]string `yaml:"add"`
}

// edgeRequestHeaders are set by the edge on every forwarded request (or
// govern its framing and hops), after the rules: a rule naming one is a
// config error, so that no rule can spoof the request ID, the visitor's
// address or the loop detection.
var edgeRequestHeaders = []string{"Host", "X-Request-Id", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"Forwarded", "X-Real-Ip", "Via", "Connection", "Upgrade", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Content-Length"}

// edgeResponseHeaders are the edge's own (X-Request-Id) or govern the
// response's framing and hops.
var edgeResponseHeaders = []string{"X-Request-Id", "Connection", "Upgrade", "Keep-Alive", "Proxy-Connection", "Te",
	"Trailer", "Transfer-Encoding", "Content-Length"}

// validate checks the rules of the block at at.
func (h *HeaderRules) validate(v *validator, at []any) {
	h.Request.validate(v, append(slices.Clip(at), "request"), edgeRequestHeaders)
	h.Response.validate(v, append(slices.Clip(at), "response"), edgeResponseHeaders)
}

func (o *HeaderOps) validate(v *validator, at []any, edge []string) {
	name := func(field []any, n string) {
		switch {
		case !IsToken(n):
			v.addf(field, "%q is not a header name", n)
		case slices.Contains(edge, http.CanonicalHeaderKey(n)):
			v.addf(field, "%s is set by the edge; a rule cannot change it", http.CanonicalHeaderKey(n))
		}
	}
	for i, n := range o.Remove {
		name(append(slices.Clip(at), "remove", i), n)
	}
	for op, m := range map[string]map[string]string{"set": o.Set, "add": o.Add} {
		for n, val := range m {
			field := append(slices.Clip(at), op, n)
			name(field, n)
			if !httpguts.ValidHeaderFieldValue(val) {
				v.addf(field, "%q: a header value must not hold control characters such as line breaks", val)
			}
		}
	}
}
