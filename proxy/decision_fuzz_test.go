package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/origin"
	"golang.org/x/net/http/httpguts"
)

// FuzzRequestDecision drives the whole decision with raw HTTP/1.1 request
// bytes: http.ReadRequest (as Go's server parses them), decideHost, the
// blocklist, and, for a request the edge would forward, the outbound
// request as the Rewrite builds it (targetURL, Host, setForwarding). The
// property, for a list that blocks blocked.example, *.wild.example and the
// address 192.0.2.7:
//
//   - If the request names its host (Host, or an absolute-form target's
//     host) in a spelling that any of the normalizations an origin might
//     apply turns into a blocked name, the edge does not forward it.
//   - A forwarded request reaches the origin with the decided host in
//     Host, X-Forwarded-Host and Forwarded, a target the origin reads as a
//     path (or "*" on OPTIONS), and none of the other headers that name a
//     host or replace the target (the list in `edgeblock help requests`), by any spelling of
//     their names with '_' for '-'.
func FuzzRequestDecision(f *testing.F) {
	list, err := blocklist.Parse("fuzz", []byte("blocked.example\n*.wild.example\n192.0.2.7\n"))
	if err != nil {
		f.Fatal(err)
	}
	base, _ := url.Parse("http://origin.internal:8080/base")
	cfg := &config.Config{}
	now := time.Now()
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: ok.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: BLOCKED.example.:80\r\n\r\n",
		"GET /x?y HTTP/1.1\r\nHost: a.b.wild.example\r\n\r\n",
		"GET http://blocked.example/ HTTP/1.1\r\nHost: ok.example\r\n\r\n",
		"GET http:blocked.example/x HTTP/1.1\r\nHost: ok.example\r\n\r\n",
		"GET x:@blocked.example/ HTTP/1.1\r\nHost: ok.example\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: ok.example\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: ok.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: 0xc0.0.2.7\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: 3221225991\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::ffff:192.0.2.7]:80\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: xn--blocked-.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: ok.example\r\nX-Forwarded-Host: blocked.example\r\nForwarded: host=blocked.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: ok.example\r\nX-Host: blocked.example\r\nX_Forwarded_Host: blocked.example\r\nX-Original-URL: http://blocked.example/\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: ok.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		host, err := decideHost(namesOf(r))
		forwards := err == nil && !blockedAt(list, host, now)
		if !forwards {
			return
		}
		for _, name := range []string{r.Host, r.URL.Host} {
			for _, n := range originSpellings(name) {
				if blockedAt(list, n, now) {
					t.Fatalf("forwarded as %q, but %q reads as the blocked %q to an origin; request %q", host, name, n, raw)
				}
			}
		}
		// The outbound request, as ReverseProxy and the Rewrite make it.
		out := r.Clone(r.Context())
		for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			out.Header.Del(k) // ReverseProxy does this before Rewrite
		}
		out.URL = origin.TargetURL(base, r.URL)
		out.Host = hostField(host)
		setForwarding(out, r, provision(cfg), host, "edge")
		if blockedAt(list, host, now) || out.Host != hostField(host) {
			t.Fatalf("origin gets Host %q for decided %q", out.Host, host)
		}
		uri := out.URL.RequestURI()
		if !(strings.HasPrefix(uri, "/") || uri == "*" && r.Method == http.MethodOptions) {
			t.Fatalf("origin gets target %q; request %q", uri, raw)
		}
		if u, err := url.ParseRequestURI(uri); err != nil || u.Host != "" || u.Opaque != "" {
			t.Fatalf("origin reads target %q as host %q opaque %q (%v)", uri, u.Host, u.Opaque, err)
		}
		checkRequestLine(t, out, raw)
		for k, vs := range out.Header {
			name := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
			switch {
			case specRoutingHeaders[name]:
				t.Fatalf("origin gets %s: %q; request %q", k, vs, raw)
			case name == "Host" || name == "X-Forwarded-Host" || name == "Forwarded":
				if k != name {
					t.Fatalf("origin gets %s: %q; request %q", k, vs, raw)
				}
				want := hostField(host)
				if name == "Forwarded" {
					want = "host=" + quoteForwarded(want) + ";"
				}
				if name == "Host" || len(vs) != 1 || !strings.Contains(vs[0], want) {
					t.Fatalf("origin gets %s: %q for decided %q", k, vs, host)
				}
			}
		}
	})
}

// FuzzRequestTarget drives the target check with HTTP/2 :path values,
// which reach a handler through fewer checks than an HTTP/1.1 request
// line: the request is built as Go's HTTP/2 server builds it
// (url.ParseRequestURI of :path, whose failure resets the stream). The
// property:
//
//   - a forwarded request's HTTP/1.1 request line to the origin, as
//     http.Request.Write writes it (both origin clients use it), is
//     three tokens with no control character;
//   - a path that holds no raw space or control character is forwarded:
//     percent-encoded bytes ("%20") are not refused.
func FuzzRequestTarget(f *testing.F) {
	for _, s := range []string{"/", "/rl?a=1 HTTP/1.0", "/a b", "/a%20b?c=%20", "/a?b=c\td", "*", "/x?y=1%0d%0aHost:%20z",
		"//other.example/x", "https://ok.example/p?q", "/caf\u00e9?\u00ff", "/a#b c", "/%zz?%zz"} {
		f.Add("GET", s)
	}
	f.Add("OPTIONS", "*")
	base, _ := url.Parse("http://origin.internal:8080/base")
	f.Fuzz(func(t *testing.T, method, path string) {
		if !validMethod(method) || !(strings.HasPrefix(path, "/") || path == "*" || strings.HasPrefix(path, "https://")) {
			return // Go's HTTP/2 server refuses these before a handler
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return // the stream is reset
		}
		r := &http.Request{Method: method, URL: u, RequestURI: path, Proto: "HTTP/2.0", ProtoMajor: 2,
			Host: "ok.example", Header: http.Header{}, Body: http.NoBody}
		_, err = decideHost(namesOf(r))
		plain := !strings.ContainsFunc(path, func(c rune) bool { return c <= ' ' || c == 0x7f })
		if err != nil {
			if plain && strings.HasPrefix(path, "/") {
				t.Fatalf("path %q refused: %v", path, err)
			}
			return
		}
		if !plain {
			t.Fatalf("path %q with a space or control character forwarded", path)
		}
		out := r.Clone(r.Context())
		out.URL = origin.TargetURL(base, r.URL)
		checkRequestLine(t, out, []byte(path))
	})
}

// checkRequestLine writes out as http.Request.Write does for an origin
// and checks its request line: three tokens, no control character.
func checkRequestLine(t *testing.T, out *http.Request, input []byte) {
	t.Helper()
	w := out.Clone(out.Context())
	w.Body, w.ContentLength, w.TransferEncoding, w.Close = nil, 0, nil, false
	var b bytes.Buffer
	if err := w.Write(&b); err != nil {
		return // refused by the writer: nothing reaches the origin
	}
	line, _, _ := strings.Cut(b.String(), "\r\n")
	if f := strings.Split(line, " "); len(f) != 3 || f[2] != "HTTP/1.1" || strings.ContainsFunc(line, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		t.Fatalf("origin request line %q; input %q", line, input)
	}
}

// validMethod reports whether m is a token, as Go's servers require.
func validMethod(m string) bool {
	return m != "" && !strings.ContainsFunc(m, func(c rune) bool { return c > 0x7e || !httpguts.IsTokenRune(c) })
}

// specRoutingHeaders are the host-naming and target-replacing headers the
// reference (cmd/edgeblock/help/requests.md) says the edge removes, written out here rather than taken from
// the code under test.
var specRoutingHeaders = map[string]bool{"X-Host": true, "X-Original-Host": true, "X-Forwarded-Server": true,
	"X-Http-Host-Override": true, "X-Original-Url": true, "X-Rewrite-Url": true}

func blockedAt(l *blocklist.List, host string, now time.Time) bool {
	r, ok := l.Match(host, now)
	return ok && r.Mode == blocklist.ModeBlock
}

// originSpellings returns what an origin server might make of a host
// name, independently of blocklist.Normalize's code: the name lower-cased
// with userinfo, port and every trailing dot removed; that read as an
// IPv4 address the way inet_aton and browsers read one; and each of
// these normalized.
func originSpellings(name string) []string {
	if name == "" {
		return nil
	}
	h := strings.ToLower(name)
	if i := strings.LastIndexByte(h, '@'); i >= 0 {
		h = h[i+1:]
	}
	if u, err := url.Parse("http://" + h); err == nil && u.Hostname() != "" {
		h = u.Hostname()
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h, "]") && strings.Count(h, ":") == 1 {
		h = h[:i]
	}
	h = strings.TrimRight(strings.Trim(h, "[]"), ".")
	out := []string{h}
	if ip, ok := inetAton(h); ok {
		out = append(out, ip)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		out = append(out, a.Unmap().String())
	}
	for _, s := range out[:len(out):len(out)] {
		if n, err := blocklist.Normalize(s); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// inetAton reads s as inet_aton does: one to four parts, each decimal,
// octal after "0" or hex after "0x"; the last part fills the rest.
func inetAton(s string) (string, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return "", false
	}
	var v [4]uint64
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, "_oObB+-") || strings.HasPrefix(p, "0x") && len(p) == 2 {
			return "", false
		}
		n, err := strconv.ParseUint(p, 0, 32)
		if err != nil {
			return "", false
		}
		v[i] = n
	}
	n := len(parts)
	for _, x := range v[:n-1] {
		if x > 255 {
			return "", false
		}
	}
	if v[n-1] >= 1<<(8*(5-n)) {
		return "", false
	}
	addr := v[n-1]
	for i, x := range v[:n-1] {
		addr |= x << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)}).String(), true
}
