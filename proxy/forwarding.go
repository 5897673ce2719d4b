package proxy

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// refusedMethods are never forwarded: CONNECT would open a tunnel through
// the edge, TRACE and TRACK would echo a visitor's headers (cookies,
// authorization) back from an origin. They get a 405 page with Allow.
var refusedMethods = map[string]bool{http.MethodConnect: true, http.MethodTrace: true, "TRACK": true}

// allowHeader is the Allow header of the 405 page.
const allowHeader = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"

// clientAddrHeaders carry a client address by convention. From visitors
// they are removed; from trusted proxies they are kept, except X-Real-IP,
// which the edge always sets itself.
var clientAddrHeaders = []string{"X-Real-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip",
	"X-Client-Ip", "X-Cluster-Client-Ip", "Client-Ip"}

// routingHeaders name a host, or a URL that replaces the request target,
// and some origin servers and frameworks route by them over Host: X-Host
// and X-Forwarded-Server (PHP frameworks, Apache mod_proxy's own), the
// X-Original-Host of IIS ARR and Azure, X-HTTP-Host-Override, and the
// X-Original-URL and X-Rewrite-URL of IIS URL Rewrite that Symfony, Zend
// and Laminas honour. The edge removes them from every request, trusted
// proxies' too: the origin learns the host from Host, X-Forwarded-Host and
// Forwarded only, which the edge sets to the name it decided on.
var routingHeaders = map[string]bool{"X-Host": true, "X-Forwarded-Server": true, "X-Original-Host": true,
	"X-Http-Host-Override": true, "X-Original-Url": true, "X-Rewrite-Url": true}

// managedHeaders are the headers whose value the edge sets or removes:
// a visitor must not get one past it under another spelling of its name.
// CGI, PHP, WSGI and Rack servers read "X_Forwarded_Host" as
// HTTP_X_FORWARDED_HOST, the same variable as "X-Forwarded-Host", so a
// header whose name turns into one of these when '_' is read as '-' is
// removed.
var managedHeaders = func() map[string]bool {
	m := map[string]bool{"Host": true, "X-Forwarded-Host": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true,
		"Forwarded": true, "X-Request-Id": true, "Via": true}
	for k := range routingHeaders {
		m[k] = true
	}
	for _, k := range clientAddrHeaders {
		m[k] = true
	}
	return m
}()

// dropRoutingHeaders removes from h the routingHeaders and every header
// whose name is a managed header's with '_' for '-'. It allocates only for
// a header name with '_' in it.
func dropRoutingHeaders(h http.Header) {
	for k := range h {
		if routingHeaders[k] || strings.IndexByte(k, '_') >= 0 && managedHeaders[http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))] {
			delete(h, k)
		}
	}
}

// clientAddr returns the address the edge trusts as the visitor's: the
// peer's, or, when the peer is a trusted proxy, the right-most
// X-Forwarded-For entry that is not itself a trusted proxy. If the chain
// names no such entry (see forwardedClient), the last trusted address
// walked is the client: the left-most of an all-trusted chain, or the one
// right of an entry that is not an IP address.
func (c *edgeConfig) clientAddr(peer netip.Addr, trusted bool, xff []string) netip.Addr {
	if !trusted {
		return peer
	}
	client, _ := c.forwardedClient(peer, xff)
	return client
}

// forwardedClient walks a trusted peer's X-Forwarded-For chain (every
// field value, each comma-separated) from the right and returns the first
// entry that is not in trusted_proxies, unmapped, and true. When the chain
// names no such entry it returns the last trusted address walked (peer if
// none) and false. An entry that is not an IP address ends the walk as
// the chain's end does: nothing left of it is believed, because only a
// trusted proxy's own appends are. It is the one walk behind X-Real-IP,
// Forwarded, ip_hash (clientAddr) and the per-client request cap
// (requestLimiter.client).
func (c *edgeConfig) forwardedClient(peer netip.Addr, xff []string) (netip.Addr, bool) {
	last := peer
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(entries[j]))
			if err != nil {
				return last, false
			}
			a = a.Unmap()
			if !c.trustsAddr(a) {
				return a, true
			}
			last = a
		}
	}
	return last, false
}

// setForwarding sets the headers an origin learns the visitor and the
// request's host from, all from what the edge decided or trusts:
//
//   - Host and X-Forwarded-Host: the decided host (a trusted proxy's
//     X-Forwarded-Host is overwritten, never passed on).
//   - X-Forwarded-For: the peer's address, after a trusted proxy's chain.
//   - X-Forwarded-Proto: the edge's scheme, or a trusted proxy's "http"
//     or "https".
//   - X-Real-IP: the client address (see Config.clientAddr); the other
//     client-address headers are removed unless the peer is trusted.
//   - Forwarded (RFC 7239): one element with for, host and proto as
//     above; any Forwarded the request carried is dropped.
//   - Via: this edge appended, for loop detection.
//   - routingHeaders, and any managed header spelled with '_' for '-',
//     are removed (see dropRoutingHeaders).
func setForwarding(out, in *http.Request, cfg *edgeConfig, host, viaName string) {
	peer := peerAddr(in.RemoteAddr)
	trusted := peer.IsValid() && cfg.trustsAddr(peer)
	h := out.Header
	h.Del("Host") // HTTP/2 keeps Host fields in the header
	dropRoutingHeaders(h)
	if !trusted {
		for _, k := range clientAddrHeaders {
			h.Del(k)
		}
		stripGeoHeader(h, cfg)
	}
	xff := in.Header["X-Forwarded-For"]
	client := cfg.clientAddr(peer, trusted, xff)
	if peer.IsValid() {
		if trusted && len(xff) > 0 {
			h["X-Forwarded-For"] = []string{strings.Join(xff, ", ") + ", " + peer.String()}
		} else {
			h["X-Forwarded-For"] = []string{peer.String()}
		}
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	if trusted {
		if p := strings.ToLower(in.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			proto = p
		}
	}
	hf := hostField(host)
	h["X-Forwarded-Host"] = []string{hf}
	h["X-Forwarded-Proto"] = []string{proto}
	fwd := "host=" + quoteForwarded(hf) + ";proto=" + proto
	if client.IsValid() {
		h["X-Real-Ip"] = []string{client.String()}
		node := client.String()
		if client.Is6() {
			node = "[" + node + "]"
		}
		fwd = "for=" + quoteForwarded(node) + ";" + fwd
	} else {
		h.Del("X-Real-Ip")
	}
	h["Forwarded"] = []string{fwd}
	h["Via"] = append(h["Via"], viaValue(in)+" "+viaName)
}

// quoteForwarded quotes a Forwarded parameter value unless it is a token.
// The values here are normalized names and IP addresses, which need no
// escaping inside quotes.
func quoteForwarded(v string) string {
	for i := 0; i < len(v); i++ {
		if !httpguts.IsTokenRune(rune(v[i])) {
			return `"` + v + `"`
		}
	}
	return v
}

// viaValue returns the received-protocol of RFC 9110's Via for r.
func viaValue(r *http.Request) string {
	if r.ProtoMajor >= 2 {
		return strconv.Itoa(r.ProtoMajor)
	}
	return strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
}

// viaLoop reports whether a request already passed through an edge named
// name: an element of its Via header whose received-by is name (compared
// without regard to case).
func viaLoop(h http.Header, name string) bool {
	for _, v := range h["Via"] {
		for _, el := range strings.Split(v, ",") {
			f := strings.Fields(el)
			if len(f) >= 2 && strings.EqualFold(f[1], name) {
				return true
			}
		}
	}
	return false
}

// filterUpgrade keeps in h only the Upgrade protocols the operator allows
// (origins.upgrades, by default websocket). ReverseProxy has already
// removed every other hop-by-hop header and left Connection: Upgrade with
// the visitor's Upgrade value; if no protocol is allowed, both go and the
// request is forwarded as a plain request.
func filterUpgrade(h http.Header, allowed []string) {
	up := h["Upgrade"]
	if len(up) == 0 {
		return
	}
	var keep []string
	for _, v := range up {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			name, _, _ := strings.Cut(p, "/")
			for _, a := range allowed {
				if strings.EqualFold(name, a) {
					keep = append(keep, p)
					break
				}
			}
		}
	}
	if len(keep) == 0 {
		h.Del("Upgrade")
		h.Del("Connection")
		return
	}
	h["Upgrade"] = []string{strings.Join(keep, ", ")}
}
