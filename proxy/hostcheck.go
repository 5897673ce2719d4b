package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/edgeblock/edgeblock/blocklist"
)

// The reasons a request has no host the edge can decide on. Both get the
// 400 page; neither is ever forwarded.
var (
	// errHostInvalid: the request names no valid host.
	errHostInvalid = errors.New("no valid host name")
	// errHostMismatch: the request names more than one host.
	errHostMismatch = errors.New("the request's host names disagree")
	// errAbsoluteForm: an HTTP/1.x absolute-form target, whose Host header
	// net/http discards before the handler runs, so that the edge cannot
	// check that the two agree.
	errAbsoluteForm = errors.New("absolute-form request target on HTTP/1.x")
	// errTargetForm: a request target that is neither a path nor "*" on
	// OPTIONS, such as "http:name/x", "name:80" or "*" on GET, or one
	// that holds a space or a control character as sent (an HTTP/2
	// :path "/x?a=1 HTTP/1.0"). Forwarded, it would reach the origin as a
	// target that names a host the decision never saw ("GET name/x"), or
	// as a request line of more than three tokens, or one that the origin
	// cannot parse.
	errTargetForm = errors.New("request target is not origin-form")
)

// hostNames are the places a request names its host, as net/http hands
// them to a handler.
type hostNames struct {
	// http2 is true for HTTP/2 and later.
	http2 bool
	// authority is Request.Host: for HTTP/2 the :authority pseudo-header
	// (or the Host header when :authority is absent); for HTTP/1.x the
	// Host header, or the target's host for an absolute-form target.
	authority string
	// target is Request.URL.Host: the host of an absolute-form target
	// (HTTP/1.x) or of an absolute-form :path (HTTP/2); empty otherwise.
	target string
	// hostHeader holds the Host header fields net/http left in the
	// header: HTTP/2 keeps them, HTTP/1.x removes its single one.
	hostHeader []string
	// badTarget is set when the target is not one the edge forwards (see
	// targetForm).
	badTarget bool
}

func namesOf(r *http.Request) hostNames {
	return hostNames{http2: r.ProtoMajor >= 2, authority: r.Host, target: r.URL.Host, hostHeader: r.Header["Host"],
		badTarget: !targetForm(r.Method, r.RequestURI, r.URL)}
}

// targetForm reports whether a request's target is one the edge forwards:
// a path ("/..."), "*" on OPTIONS, or on HTTP/2 an absolute URL (whose
// host decideHost compares). net/http also hands handlers opaque targets
// ("http:name/x", and "name:80" read as scheme "name"), which
// the origin would receive as "GET name/x", and "*" on any method.
//
// raw is the target as the visitor sent it (Request.RequestURI: the
// HTTP/1.x request-target, the HTTP/2 :path). It must hold no space and
// no control character: RFC 3986 allows neither in a path or a query,
// and a space in the query would reach the origin's HTTP/1.1 request
// line as it is, making more than three tokens of it. Go's HTTP/1.x
// server refuses such request lines before any handler runs, and its
// HTTP/2 server refuses control characters in :path, but it lets a space
// through. Percent-encoded bytes ("%20", "%0A") are not checked: they
// are forwarded encoded.
func targetForm(method, raw string, u *url.URL) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] == 0x7f {
			return false
		}
	}
	switch {
	case u.Opaque != "":
		return false
	case u.Path == "*":
		return method == http.MethodOptions
	case u.Path == "":
		return u.Host != ""
	}
	return u.Path[0] == '/'
}

// decideHost returns the one normalized host name a request is for: the
// name the blocklist and the routes are matched on, the name the origin
// receives in Host and X-Forwarded-Host, and the name logged. Every name
// the request carries must normalize to it; when they disagree, or when
// one cannot be checked, decideHost returns an error and the request gets
// a 400 page instead of a guess. A difference in port alone is not a
// disagreement.
//
// A target that is not origin-form (a path, or "*" on OPTIONS), or that
// holds a space or a control character, is refused on both protocols,
// whatever the host.
//
// On HTTP/1.x an absolute-form target is refused: net/http takes the
// target's host and discards the Host header (RFC 9112 §3.2.2), so the
// two cannot be compared. Only forward proxies are sent absolute-form
// targets, and the edge is not one. On HTTP/2, :authority, the host of an
// absolute-form :path and every Host header field must agree.
//
// X-Forwarded-Host and Forwarded never take part, from any peer.
func decideHost(n hostNames) (string, error) {
	if !n.http2 && n.target != "" {
		return "", errAbsoluteForm
	}
	if n.badTarget {
		return "", errTargetForm
	}
	host, err := blocklist.Normalize(n.authority)
	if err != nil {
		return "", errHostInvalid
	}
	if n.target != "" {
		if !sameHost(host, n.target) {
			return "", errHostMismatch
		}
	}
	for _, h := range n.hostHeader {
		if !sameHost(host, h) {
			return "", errHostMismatch
		}
	}
	return host, nil
}

// sameHost reports whether name normalizes to host.
func sameHost(host, name string) bool {
	n, err := blocklist.Normalize(name)
	return err == nil && n == host
}

// hostField returns a normalized host as it goes into a Host header: IPv6
// literals in brackets, everything else as it is.
func hostField(host string) string {
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]"
	}
	return host
}

// displayHost returns a request's host for a page or a log line when the
// host could not be decided: the normalized form if r.Host has one, else
// r.Host as sent (pages escape it).
func displayHost(r *http.Request) string {
	if h, err := blocklist.Normalize(r.Host); err == nil {
		return h
	}
	return r.Host
}
