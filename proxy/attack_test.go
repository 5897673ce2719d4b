package proxy

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The attack tests send what a hostile visitor would, as raw HTTP/1.1
// bytes and hand-made HTTP/2 frames, to a running edge whose routes lead
// to a recording origin, and check both the visitor's answer and every
// request the origin received. The blocked name appears in the requests
// only where a host is named, so an origin request that mentions it in
// any header, in its target, or in a trailer is a bypass.

// seenRequest is one request as the recording origin parsed it.
type seenRequest struct {
	host, uri string
	header    http.Header
	trailer   http.Header
	body      string
	// aborted: the body broke off (the edge gave up on the request
	// when the visitor's body turned out malformed).
	aborted bool
}

// rawOrigin is an HTTP/1.1 origin on a bare TCP listener: it parses what
// arrives with http.ReadRequest, records every request and the raw bytes,
// and answers each with 200 "ok". A stream it cannot parse is recorded
// as an error, so that a malformed forward is seen rather than hidden; a
// body that breaks off is recorded as aborted.
type rawOrigin struct {
	ln   net.Listener
	mu   sync.Mutex
	raw  bytes.Buffer
	reqs []seenRequest
	errs []string
}

func newRawOrigin(t *testing.T) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go o.serve(c)
		}
	}()
	return o
}

func (o *rawOrigin) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.raw.Write(p)
}

func (o *rawOrigin) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(io.TeeReader(c, o))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			if err != io.EOF && !strings.Contains(err.Error(), "use of closed") && !strings.Contains(err.Error(), "connection reset") {
				o.mu.Lock()
				o.errs = append(o.errs, err.Error())
				o.mu.Unlock()
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		o.mu.Lock()
		o.reqs = append(o.reqs, seenRequest{host: req.Host, uri: req.RequestURI, header: req.Header, trailer: req.Trailer, body: string(body), aborted: err != nil})
		o.mu.Unlock()
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

// take returns and forgets what the origin got so far.
func (o *rawOrigin) take() (reqs []seenRequest, errs []string, raw string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	reqs, errs, raw = o.reqs, o.errs, o.raw.String()
	o.reqs, o.errs = nil, nil
	o.raw.Reset()
	return reqs, errs, raw
}

// attackEnv runs an edge (HTTP and HTTPS listeners, internal CA) with a
// wildcard route *.customer.example and a route for the address
// 192.0.2.7, both to a recording origin, and a list that blocks one name
// under the wildcard, an IDN under it, and the address. Loopback is not a
// trusted proxy: the tests are visitors.
func attackEnv(t *testing.T) (*testEnv, *rawOrigin, *x509.CertPool) {
	t.Helper()
	o := newRawOrigin(t)
	u := `"http://` + o.ln.Addr().String() + `"`
	e, pool := tlsRoutesEnv(t, routeConfig("*.customer.example", u, "192.0.2.7", u), blockedName+"\nbücher.customer.example\n192.0.2.7\n")
	return e, o, pool
}

// checkSeen checks every request the origin got since the last call:
// each is for okName (in Host), has an origin-form or asterisk target,
// and names the blocked host in no header or trailer, by any spelling of
// a header name; the origin could parse everything it was sent. It returns
// how many requests there were.
func checkSeen(t *testing.T, o *rawOrigin, what string) int {
	t.Helper()
	reqs, errs, raw := o.take()
	for _, e := range errs {
		t.Errorf("%s: the origin could not parse what the edge sent: %s\n%q", what, e, raw)
	}
	for _, r := range reqs {
		if r.host != okName {
			t.Errorf("%s: origin got Host %q, want %s", what, r.host, okName)
		}
		if !strings.HasPrefix(r.uri, "/") && r.uri != "*" {
			t.Errorf("%s: origin got request target %q, which is not origin-form", what, r.uri)
		}
		for _, h := range []http.Header{r.header, r.trailer} {
			for k, vs := range h {
				for _, v := range vs {
					if strings.Contains(strings.ToLower(v), "blocked") || strings.Contains(v, "192.0.2.7") {
						t.Errorf("%s: origin got %s: %q", what, k, v)
					}
				}
			}
		}
	}
	return len(reqs)
}

// attackHTTP1 writes request on a new connection and returns the status
// of the first response, or 0 if the edge closed the connection without
// one.
func attackHTTP1(t *testing.T, addr, request string) (int, http.Header, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const cl = "Connection: close\r\n\r\n"

func TestAttackHTTP1(t *testing.T) {
	parallelPlain(t)
	e, o, _ := attackEnv(t)
	get := func(host string, extra ...string) string {
		return "GET / HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(extra, "") + cl
	}
	for _, tt := range []struct {
		name, request string
		status        int // 0: the connection is closed without an answer
		forwarded     int // requests the origin gets
	}{
		// Host spellings.
		{"case, port and trailing dot", get("OK.Customer.EXAMPLE.:80"), 200, 1},
		{"port 0", get(okName + ":0"), 200, 1},
		{"port 65536", get(okName + ":65536"), 200, 1},
		{"empty port", get(okName + ":"), 200, 1},
		{"port abc", get(okName + ":abc"), 400, 0},
		{"blocked, upper case", get("BLOCKED.CUSTOMER.EXAMPLE"), 403, 0},
		{"blocked, trailing dot and port", get(blockedName + ".:8080"), 403, 0},
		{"blocked, two trailing dots", get(blockedName + ".."), 400, 0},
		{"blocked, empty label", get("blocked..customer.example"), 400, 0},
		{"blocked, percent-encoded dot", get("blocked%2ecustomer.example"), 400, 0},
		{"blocked, userinfo", get("user@" + blockedName), 400, 0},
		{"allowed, userinfo", get("user@" + okName), 400, 0},
		{"blocked, punycode mixed case", get("XN--BCHER-KVA.customer.example"), 403, 0},
		{"invalid punycode", get("xn--zz.customer.example"), 400, 0},
		{"punycode of a label IDNA would map (ｂlocked)", get("xn--locked-vx68a.customer.example"), 400, 0},
		{"label of 64 bytes", get(strings.Repeat("a", 64) + ".customer.example"), 400, 0},
		{"name of 254 bytes", get(strings.Repeat("abcdefgh.", 27) + "customer.example"), 400, 0},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: " + okName + "\r\nHost: " + blockedName + "\r\n" + cl, 400, 0},
		{"Host with a space", get(okName + " " + blockedName), 400, 0},
		{"Host with a comma", get(okName + "," + blockedName), 400, 0},
		{"Host with full-width dots (Go refuses non-ASCII)", get("blocked．customer．example"), 400, 0},
		{"Host with a trailing tab", get(okName + "\t"), 200, 1},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 400, 0},
		{"HTTP/1.0 empty Host", "GET / HTTP/1.0\r\nHost:\r\n\r\n", 400, 0},
		{"HTTP/1.0 blocked Host", "GET / HTTP/1.0\r\nHost: " + blockedName + "\r\n\r\n", 403, 0},
		// IPv4 spellings of a blocked address with a route.
		{"blocked address", get("192.0.2.7"), 403, 0},
		{"blocked address, decimal", get("3221225991"), 403, 0},
		{"blocked address, hex", get("0xc0.0.2.7"), 403, 0},
		{"blocked address, octal", get("0300.0.02.07:80"), 403, 0},
		{"blocked address, short form", get("192.0.519"), 403, 0},
		{"blocked address, trailing dot", get("192.0.2.7."), 403, 0},
		{"blocked address, IPv4-mapped IPv6", get("[::ffff:192.0.2.7]"), 403, 0},
		{"blocked address, IPv4-mapped IPv6 in hex", get("[::ffff:c000:207]:80"), 403, 0},
		// Request targets: only origin-form (and OPTIONS *) is forwarded.
		{"absolute-form", "GET http://" + blockedName + "/ HTTP/1.1\r\nHost: " + okName + "\r\n" + cl, 400, 0},
		{"absolute-form with empty authority", "GET http:///x HTTP/1.1\r\nHost: " + okName + "\r\n" + cl, 200, 1},
		{"opaque target names the blocked host", "GET http:" + blockedName + "/x HTTP/1.1\r\nHost: " + okName + "\r\n" + cl, 400, 0},
		{"opaque target, other scheme", "GET mailto:" + blockedName + " HTTP/1.1\r\nHost: " + okName + "\r\n" + cl, 400, 0},
		{"asterisk target on GET", "GET * HTTP/1.1\r\nHost: " + okName + "\r\n" + cl, 400, 0},
		{"authority-form on GET", "GET " + blockedName + ":80 HTTP/1.1\r\nHost: " + okName + "\r\n" + cl, 400, 0},
		// OPTIONS * is decided like any request (Go's server would
		// answer 200 for every host itself).
		{"OPTIONS * for the blocked host", "OPTIONS * HTTP/1.1\r\nHost: " + blockedName + "\r\n" + cl, 403, 0},
		{"OPTIONS * for an allowed host", "OPTIONS * HTTP/1.1\r\nHost: " + okName + "\r\n" + cl, 200, 1},
		// Methods.
		{"HEAD blocked", "HEAD / HTTP/1.1\r\nHost: " + blockedName + "\r\n" + cl, 403, 0},
		{"OPTIONS blocked", "OPTIONS / HTTP/1.1\r\nHost: " + blockedName + "\r\n" + cl, 403, 0},
		{"CONNECT to the blocked host", "CONNECT " + blockedName + ":443 HTTP/1.1\r\nHost: " + okName + "\r\n" + cl, 405, 0},
		// Conditional and partial requests for a blocked host get the
		// whole block page, never a 304 or 206.
		{"If-None-Match on blocked", get(blockedName, "If-None-Match: *\r\n"), 403, 0},
		{"If-Modified-Since on blocked", get(blockedName, "If-Modified-Since: Thu, 01 Jan 2026 00:00:00 GMT\r\n"), 403, 0},
		{"Range on blocked", get(blockedName, "Range: bytes=0-1\r\n"), 403, 0},
		{"Expect 100-continue on blocked", "POST / HTTP/1.1\r\nHost: " + blockedName + "\r\nExpect: 100-continue\r\nContent-Length: 3\r\n" + cl, 403, 0},
		// Headers an origin might route by.
		{"X-Forwarded-Host and Forwarded", get(okName, "X-Forwarded-Host: "+blockedName+"\r\nForwarded: host="+blockedName+"\r\n"), 200, 1},
		{"host override headers", get(okName, "X-Host: "+blockedName+"\r\nX-Original-Host: "+blockedName+"\r\nX-Forwarded-Server: "+blockedName+
			"\r\nX-HTTP-Host-Override: "+blockedName+"\r\nX-Original-URL: http://"+blockedName+"/\r\nX-Rewrite-URL: http://"+blockedName+"/\r\n"), 200, 1},
		{"routing headers with underscores", get(okName, "X_Forwarded_Host: "+blockedName+"\r\nx_forwarded_for: 192.0.2.7\r\nX_Host: "+blockedName+"\r\nX_Real_IP: 192.0.2.7\r\nFORWARDED: host="+blockedName+"\r\n"), 200, 1},
		{"routing headers named in Connection", get(okName, "X-Forwarded-Host: "+blockedName+"\r\nConnection: X-Forwarded-Host, X-Host\r\nX-Host: "+blockedName+"\r\n"), 200, 1},
		{"obs-fold hiding a Host line", get(okName, "X-Foo: a\r\n Host: evil.customer.example\r\n"), 200, 1},
		{"bare CR hiding a Host line", get(okName, "X-Foo: a\rHost: "+blockedName+"\r\n"), 400, 0},
		{"NUL in a header", get(okName, "X-Foo: a\x00Host: "+blockedName+"\r\n"), 400, 0},
		{"header name with a space", get(okName, "Host : "+blockedName+"\r\n"), 400, 0},
		// Upgrades: only websocket goes through, h2c never.
		{"h2c upgrade", get(okName, "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"), 200, 1},
		{"h2c among mixed-case tokens", get(okName, "Upgrade: H2C, TLS/1.2\r\nConnection: keep-alive, UPGRADE\r\n"), 200, 1},
		// A trailer cannot add a header after the decision.
		{"trailers naming hosts", "POST / HTTP/1.1\r\nHost: " + okName + "\r\nTransfer-Encoding: chunked\r\nTrailer: X-Forwarded-Host, X-Host\r\n\r\n1\r\na\r\n0\r\nX-Forwarded-Host: " + blockedName + "\r\nX-Host: " + blockedName + "\r\n\r\n", 200, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := attackHTTP1(t, e.srv.Addr("http"), tt.request)
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			if status == 403 && (h.Get("Cache-Control") != "no-store" || !strings.Contains(h.Get("Link"), "blocked-by")) {
				t.Errorf("block page headers %v", h)
			}
			if status == 403 && !strings.HasPrefix(tt.request, "HEAD") && !strings.Contains(body, "has been blocked") {
				t.Errorf("not the block page: %q", body)
			}
			if status == 200 && tt.forwarded == 0 && body != "" {
				t.Errorf("Go's OPTIONS * answer has a body: %q", body)
			}
			time.Sleep(20 * time.Millisecond) // the origin records after it answers
			if n := checkSeen(t, o, tt.name); n != tt.forwarded {
				t.Errorf("origin got %d requests, want %d", n, tt.forwarded)
			}
		})
	}
}

// send writes one request: its header block (fields as given) split into
// a HEADERS frame and CONTINUATION frames of at most split bytes (0: one
// frame), then, if body is set, a DATA frame, and then trailers in a
// second HEADERS frame. It returns the stream ID.
func (c *h2Conn) send(fields []string, split int, body string, trailers []string) uint32 {
	c.t.Helper()
	block := func(fields []string) []byte {
		c.hbuf.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return append([]byte(nil), c.hbuf.Bytes()...)
	}
	id := c.nextID
	c.nextID += 2
	b := block(fields)
	end := body == "" && trailers == nil
	if split <= 0 || split >= len(b) {
		split = len(b)
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b[:split], EndStream: end, EndHeaders: split == len(b)}); err != nil {
		c.t.Fatal(err)
	}
	for rest := b[split:]; len(rest) > 0; {
		n := min(split, len(rest))
		if err := c.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
			c.t.Fatal(err)
		}
		rest = rest[n:]
	}
	if body != "" {
		if err := c.fr.WriteData(id, trailers == nil, []byte(body)); err != nil {
			c.t.Fatal(err)
		}
	}
	if trailers != nil {
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(trailers), EndStream: true, EndHeaders: true}); err != nil {
			c.t.Fatal(err)
		}
	}
	return id
}

func TestAttackHTTP2(t *testing.T) {
	parallelTLS(t, "customer.example", "192.0.2.7")
	e, o, pool := attackEnv(t)
	get := func(fields ...string) []string {
		return append([]string{":method", "GET", ":scheme", "https"}, fields...)
	}
	at := func(authority string, fields ...string) []string {
		return get(append([]string{":authority", authority, ":path", "/"}, fields...)...)
	}
	for _, tt := range []struct {
		name     string
		fields   []string
		split    int      // CONTINUATION frames of this many bytes
		body     string   // a DATA frame
		trailers []string // a trailer HEADERS frame
		status   int      // 0: the stream is reset
		fwd      int      // requests the origin gets
	}{
		// :authority spellings.
		{name: "authority with userinfo, blocked", fields: at("user@" + blockedName)},
		{name: "authority with userinfo, allowed", fields: at("user@" + okName)},
		{name: "authority with NUL", fields: at(blockedName + "\x00")},
		{name: "authority with space", fields: at(okName + " " + blockedName), status: 400},
		{name: "full-width dots", fields: at("blocked．customer．example"), status: 403},
		{name: "ideographic dots", fields: at("blocked。customer。example"), status: 403},
		{name: "full-width letters", fields: at("ＢＬＯＣＫＥＤ.customer.example"), status: 403},
		{name: "soft hyphen inside", fields: at("bl\u00adocked.customer.example"), status: 403},
		{name: "ideographic trailing dot", fields: at(blockedName + "。"), status: 400},
		{name: "upper-case Unicode", fields: at("BÜCHER.customer.example"), status: 403},
		{name: "decomposed Unicode", fields: at("bu\u0308cher.customer.example"), status: 403},
		{name: "punycode upper case", fields: at("XN--BCHER-KVA.customer.example"), status: 403},
		{name: "punycode of a label IDNA would map (ｂlocked)", fields: at("xn--locked-vx68a.customer.example"), status: 400},
		{name: "Kelvin sign for k", fields: at("bloc\u212aed.customer.example"), status: 403},
		{name: "address in hex", fields: at("0xc0.0.2.7"), status: 403},
		{name: "address, full-width digits", fields: at("１９２．０．２．７"), status: 403},
		{name: "address, IPv4-mapped", fields: at("[::ffff:192.0.2.7]:443"), status: 403},
		// Names that disagree.
		{name: "authority and Host differ in case and dot only", fields: at(okName, "host", "OK.customer.example."), status: 200, fwd: 1},
		{name: "no authority, Host blocked", fields: get(":path", "/", "host", blockedName), status: 403},
		{name: "empty authority, Host blocked", fields: get(":authority", "", ":path", "/", "host", blockedName), status: 403},
		{name: "two Host fields, one blocked", fields: at(okName, "host", okName, "host", blockedName), status: 400},
		{name: "absolute path names the address in hex", fields: get(":authority", okName, ":path", "https://0xc0.0.2.7/"), status: 400},
		{name: "absolute path with userinfo", fields: get(":authority", okName, ":path", "https://"+okName+"@"+blockedName+"/"), status: 400},
		{name: "absolute path with a percent-encoded dot", fields: get(":authority", okName, ":path", "https://blocked%2ecustomer.example/")},
		{name: "authority with a percent-encoded dot", fields: at("blocked%2ecustomer.example"), status: 400},
		{name: "opaque path names the blocked host", fields: get(":authority", okName, ":path", "http:"+blockedName+"/x"), status: 400},
		{name: "asterisk path on GET", fields: get(":authority", okName, ":path", "*"), status: 400},
		{name: "OPTIONS * for the blocked host", fields: []string{":method", "OPTIONS", ":scheme", "https", ":authority", blockedName, ":path", "*"}, status: 403},
		{name: "OPTIONS * for an allowed host", fields: []string{":method", "OPTIONS", ":scheme", "https", ":authority", okName, ":path", "*"}, status: 200, fwd: 1},
		{name: "scheme other than http(s)", fields: []string{":method", "GET", ":scheme", "foo", ":authority", okName, ":path", "/"}},
		{name: "scheme http over TLS", fields: []string{":method", "GET", ":scheme", "http", ":authority", okName, ":path", "/"}, status: 200, fwd: 1},
		// Framing.
		{name: "blocked authority in a CONTINUATION frame", fields: get(":path", "/", ":authority", blockedName), split: 6, status: 403},
		{name: "blocked Host in a CONTINUATION frame", fields: at(okName, "x-pad", strings.Repeat("p", 40), "host", blockedName), split: 30, status: 400},
		{name: "pseudo-header after a regular one", fields: get(":path", "/", "x-a", "b", ":authority", blockedName)},
		{name: "two authorities", fields: get(":authority", okName, ":authority", blockedName, ":path", "/")},
		{name: "upper-case field name", fields: at(okName, "Host", blockedName)},
		{name: "connection-specific field", fields: at(okName, "connection", "x-host"), status: 400},
		{name: "upgrade field", fields: at(okName, "upgrade", "h2c"), status: 400},
		{name: "extended CONNECT (RFC 8441) to the blocked host", fields: []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":authority", blockedName, ":path", "/"}},
		// Routing headers and trailers.
		{name: "routing headers", fields: at(okName, "x-forwarded-host", blockedName, "forwarded", "host="+blockedName, "x-host", blockedName,
			"x-original-url", "http://"+blockedName+"/", "x_forwarded_host", blockedName, "x-real-ip", "192.0.2.7"), status: 200, fwd: 1},
		{name: "trailers naming hosts", fields: []string{":method", "POST", ":scheme", "https", ":authority", okName, ":path", "/", "trailer", "x-forwarded-host, x-host"},
			body: "a", trailers: []string{"x-forwarded-host", blockedName, "x-host", blockedName}, status: 200, fwd: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialH2(t, e.srv.Addr("https"), okName, pool)
			res := c.read(c.send(tt.fields, tt.split, tt.body, tt.trailers))
			switch {
			case tt.status == 0 && !res.reset:
				t.Errorf("status %d, want the stream reset", res.status)
			case tt.status != 0 && res.status != tt.status:
				t.Errorf("status %d (reset %v %v), want %d", res.status, res.reset, res.resetErr, tt.status)
			}
			if res.status == 403 && !strings.Contains(res.body, "has been blocked") {
				t.Errorf("not the block page: %q", res.body)
			}
			time.Sleep(20 * time.Millisecond)
			if n := checkSeen(t, o, tt.name); n != tt.fwd {
				t.Errorf("origin got %d requests, want %d", n, tt.fwd)
			}
		})
	}
}

// TestAttackExtendedConnect checks that the edge does not offer RFC
// 8441's extended CONNECT (a WebSocket over an HTTP/2 stream would be a
// CONNECT, which the edge never forwards): its SETTINGS have no
// SETTINGS_ENABLE_CONNECT_PROTOCOL.
func TestAttackExtendedConnect(t *testing.T) {
	e, _, pool := attackEnv(t)
	c := dialH2(t, e.srv.Addr("https"), okName, pool)
	f, err := c.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingEnableConnectProtocol); ok && v != 0 {
		t.Errorf("the edge offers extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL = %d)", v)
	}
}

// TestAttackH2Origin checks what an HTTP/2 origin over TLS receives: the
// decided name in :authority and in the forwarding headers, and no routing
// header, from a visitor and from a trusted proxy, over both protocols.
func TestAttackH2Origin(t *testing.T) {
	type seen struct {
		proto, host string
		header      http.Header
	}
	var mu sync.Mutex
	var got []seen
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Proto, r.Host, r.Header})
		mu.Unlock()
	}))
	o.EnableHTTP2 = true
	o.StartTLS()
	t.Cleanup(o.Close)
	routing := []string{"x-forwarded-host", "forwarded", "x-host", "x-original-host", "x-forwarded-server", "x-original-url", "x-rewrite-url", "x_forwarded_host"}
	for _, trusted := range []string{"", "trusted_proxies: [127.0.0.0/8]\n"} {
		e, pool := tlsRoutesEnv(t, trusted+routeConfig("*.customer.example", `"`+o.URL+`"`), blockedName+"\n")
		// The origin's certificate is httptest's own.
		for _, rt := range e.srv.proxy.transports.m {
			rt.visit.TLSClientConfig.RootCAs = o.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		}
		var extra []string
		var raw strings.Builder
		for _, k := range routing {
			v := blockedName
			if k == "forwarded" {
				v = "host=" + blockedName
			}
			extra = append(extra, k, v)
			fmt.Fprintf(&raw, "%s: %s\r\n", k, v)
		}
		c := dialH2(t, e.srv.Addr("https"), okName, pool)
		if res := c.do(append([]string{":method", "GET", ":scheme", "https", ":authority", "OK.customer.example.:443", ":path", "/"}, extra...)...); res.status != 200 {
			t.Errorf("HTTP/2 visitor: status %d", res.status)
		}
		if status, _, _ := attackHTTP1(t, e.srv.Addr("http"), "GET / HTTP/1.1\r\nHost: ok.customer.example\r\n"+raw.String()+cl); status != 200 {
			t.Errorf("HTTP/1.1 visitor: status %d", status)
		}
		mu.Lock()
		if len(got) != 2 {
			t.Errorf("trusted %q: origin got %d requests, want 2", trusted, len(got))
		}
		for _, s := range got {
			if s.proto != "HTTP/2.0" || s.host != okName || s.header.Get("X-Forwarded-Host") != okName || !strings.Contains(s.header.Get("Forwarded"), "host="+okName+";") {
				t.Errorf("trusted %q: origin got %s Host %q X-Forwarded-Host %q Forwarded %q", trusted, s.proto, s.host, s.header.Get("X-Forwarded-Host"), s.header.Get("Forwarded"))
			}
			for k, vs := range s.header {
				if strings.Contains(strings.Join(vs, ","), "blocked") {
					t.Errorf("trusted %q: origin got %s: %q", trusted, k, vs)
				}
			}
		}
		got = nil
		mu.Unlock()
	}
}

// TestAttackSmuggling sends requests whose framing a lenient parser could
// read two ways. Go's server refuses the ambiguous ones; what it accepts,
// the edge forwards re-framed, so that the origin sees exactly the requests
// the edge decided on, each with the body the edge read.
func TestAttackSmuggling(t *testing.T) {
	parallelPlain(t)
	e, o, _ := attackEnv(t)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: " + blockedName + "\r\n\r\n"
	post := "POST / HTTP/1.1\r\nHost: " + okName + "\r\n"
	for _, tt := range []struct {
		name, request string
		statuses      []int  // the responses on the connection, in order
		body          string // the body the origin gets, if forwarded
	}{
		{"CL and TE", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{200, 403}, ""},
		{"TE and CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + smuggled, []int{200, 403}, "abc"},
		{"TE upper case", post + "Transfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + smuggled, []int{200, 403}, "abc"},
		{"TE chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, ""},
		{"TE identity", post + "Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc" + smuggled, []int{501}, ""},
		{"TE twice", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{501}, ""},
		{"TE with a space before the colon", post + "Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc" + smuggled, []int{400}, ""},
		// Go unfolds obs-fold (RFC 9112 §5.2 allows it): chunked wins over
		// Content-Length, the chunk size "abc" is bad, and the upload is
		// abandoned: the origin sees a body break off, never a second request.
		{"TE obs-folded", post + "Content-Length: 3\r\nTransfer-Encoding:\r\n chunked\r\n\r\nabc" + smuggled, []int{502}, ""},
		{"two different Content-Lengths", post + "Content-Length: 3\r\nContent-Length: 30\r\n\r\nabc" + smuggled, []int{400}, ""},
		{"Content-Length list", post + "Content-Length: 3, 3\r\n\r\nabc", []int{400}, ""},
		{"Content-Length with a sign", post + "Content-Length: +3\r\n\r\nabc", []int{400}, ""},
		{"bare LF line ends", "POST / HTTP/1.1\nHost: " + okName + "\nContent-Length: 3\n\nabc" + smuggled, []int{200, 403}, "abc"},
		{"chunk extension with a quoted CRLF", post + "Transfer-Encoding: chunked\r\n\r\n3;x=\"a\r\nb\"\r\nabc\r\n0\r\n\r\n" + smuggled, []int{502}, ""},
		{"chunk size overflow", post + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n", []int{502}, ""},
		{"keep-alive: allowed, then blocked", "GET / HTTP/1.1\r\nHost: " + okName + "\r\n\r\n" + smuggled, []int{200, 403}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.srv.Addr("http"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, tt.request)
			br := bufio.NewReader(conn)
			var statuses []int
			for range tt.statuses {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses = append(statuses, resp.StatusCode)
			}
			if fmt.Sprint(statuses) != fmt.Sprint(tt.statuses) {
				t.Errorf("statuses %v, want %v", statuses, tt.statuses)
			}
			time.Sleep(20 * time.Millisecond)
			o.mu.Lock()
			reqs := append([]seenRequest(nil), o.reqs...)
			o.mu.Unlock()
			fwd := 0
			if tt.statuses[0] == 200 {
				fwd = 1
			}
			if n := checkSeen(t, o, tt.name); n != fwd && !(tt.statuses[0] == 502 && n <= 1) {
				t.Errorf("origin got %d requests, want %d", n, fwd)
			}
			for _, r := range reqs {
				if tt.statuses[0] == 502 && !r.aborted {
					t.Errorf("origin got a whole request %q, want its body broken off", r.body)
				}
				if r.uri != "/" || fwd == 1 && (r.body != tt.body || r.aborted) {
					t.Errorf("origin got %s with body %q, want / with %q", r.uri, r.body, tt.body)
				}
			}
		})
	}
}

// TestAttackPages checks that nothing a rule or a request carries can
// inject markup, script, JSON members or headers into the block and
// error pages.
func TestAttackPages(t *testing.T) {
	const (
		reason = `</p><script>alert(1)</script>" onmouseover="alert(2)` + "\u2028"
		policy = `https://policy.example/a"><script>alert(3)</script>?q='x'`
	)
	list := blockedName + ` reason="` + strings.ReplaceAll(reason, `"`, `\"`) + `" policy=` + policy + "\n"
	e, pool := tlsRoutesEnv(t, routeConfig("*.customer.example", `"http://127.0.0.1:9"`), list)
	for _, accept := range []string{"text/html", "application/json", "text/plain"} {
		status, h, body := attackHTTP1(t, e.srv.Addr("http"), "GET /<script>alert(4)</script> HTTP/1.1\r\nHost: "+blockedName+"\r\nAccept: "+accept+"\r\n"+cl)
		if status != 403 {
			t.Fatalf("%s: status %d", accept, status)
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n<>") && k != "Link" || strings.Contains(v, "script") {
					t.Errorf("%s: header %s: %q", accept, k, v)
				}
			}
		}
		if strings.Contains(body, "alert(4)") {
			t.Errorf("%s: the request path is reflected", accept)
		}
		switch accept {
		case "text/html":
			if strings.Contains(body, "<script>alert") || strings.Contains(body, `" onmouseover`) {
				t.Errorf("HTML page holds the rule's markup unescaped:\n%s", body)
			}
		case "application/json":
			var p map[string]any
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatalf("problem+json does not parse: %v\n%s", err, body)
			}
			if p["detail"] != reason || p["type"] != policy || p["host"] != blockedName {
				t.Errorf("problem+json members: detail %q type %q host %q", p["detail"], p["type"], p["host"])
			}
			if strings.Contains(body, "<script>") {
				t.Errorf("problem+json holds raw markup:\n%s", body)
			}
		}
	}
	// An HTTP/2 :authority Go lets through but no name can hold, on the
	// 400 page, in each format.
	c := dialH2(t, e.srv.Addr("https"), okName, pool)
	for _, accept := range []string{"text/html", "application/json", "text/plain"} {
		res := c.do(":method", "GET", ":scheme", "https", ":authority", `a"'(x)*.example`, ":path", "/", "accept", accept)
		if res.status != 400 {
			t.Fatalf("%s: status %d, want 400", accept, res.status)
		}
		if strings.ContainsAny(res.body, "'*()") && accept != "text/html" {
			t.Errorf("%s: the 400 page reflects the host as sent:\n%s", accept, res.body)
		}
		if strings.Contains(res.body, `a"'`) {
			t.Errorf("%s: the 400 page reflects the host as sent:\n%s", accept, res.body)
		}
	}
}

// TestAttackRulesAndReload checks the rule kinds against routes that
// cover more than they do, report mode under a block, and that a reload
// that lifts a block lifts it at once (the block page was never
// cacheable) and one that adds a block applies to conditional requests.
func TestAttackRulesAndReload(t *testing.T) {
	o := newRawOrigin(t)
	u := `"http://` + o.ln.Addr().String() + `"`
	e := startEnv(t, routeConfig("customer.example", u, "*.customer.example", u),
		"*.customer.example mode=report\n"+blockedName+"\n*.wild.customer.example\n")
	for _, tt := range []struct {
		host, outcome string
		status        int
	}{
		{"customer.example", metrics.OutcomeProxied, 200},              // *.name does not cover name
		{"a.customer.example", metrics.OutcomeReport, 200},             // report only
		{blockedName, metrics.OutcomeBlocked, 403},                     // block wins over report
		{"x.y." + blockedName, metrics.OutcomeBlocked, 403},            // name covers every name under it
		{"wild.customer.example", metrics.OutcomeReport, 200},          // *.wild does not cover wild
		{"a.b.wild.customer.example", metrics.OutcomeBlocked, 403},     // *.wild covers every depth
		{"A.B.WILD.Customer.Example.:80", metrics.OutcomeBlocked, 403}, // in any spelling
		{"xn--wild-.customer.example", metrics.OutcomeUnknown, 400},    // not a name
		{"a.wild.customer.example.customer.example", "", 200},          // a suffix is not a parent
	} {
		status, h, _ := attackHTTP1(t, e.srv.Addr("http"), "GET / HTTP/1.1\r\nHost: "+tt.host+"\r\n"+cl)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d", tt.host, status, tt.status)
			continue
		}
		if tt.outcome == "" {
			continue
		}
		if l := e.accessLine(t, h.Get("X-Request-Id")); l["outcome"] != tt.outcome {
			t.Errorf("%s: outcome %v, want %s", tt.host, l["outcome"], tt.outcome)
		}
	}
	checkSeenHosts(t, o, 4)

	// Unblock: the next request is forwarded, whatever it carries.
	edgetest.WriteFile(t, e.list, "*.customer.example mode=report\n*.wild.customer.example\n")
	e.srv.Reloader().Reload("test")
	if status, _, _ := attackHTTP1(t, e.srv.Addr("http"), "GET / HTTP/1.1\r\nHost: "+blockedName+"\r\nIf-None-Match: \"x\"\r\n"+cl); status != 200 {
		t.Errorf("after the unblock: status %d, want 200", status)
	}
	// Block again: conditional and partial requests get the block page.
	edgetest.WriteFile(t, e.list, "*.customer.example mode=report\n"+blockedName+"\n*.wild.customer.example\n")
	e.srv.Reloader().Reload("test")
	for _, extra := range []string{"If-None-Match: \"x\"\r\n", "If-Modified-Since: Thu, 01 Jan 2026 00:00:00 GMT\r\n", "Range: bytes=0-0\r\n", "If-Range: \"x\"\r\nRange: bytes=0-0\r\n"} {
		if status, h, _ := attackHTTP1(t, e.srv.Addr("http"), "GET / HTTP/1.1\r\nHost: "+blockedName+"\r\n"+extra+cl); status != 403 || h.Get("Cache-Control") != "no-store" || h.Get("Content-Range") != "" || h.Get("ETag") != "" || h.Get("Last-Modified") != "" {
			t.Errorf("%q: status %d, headers %v; want the whole block page, not cacheable", extra, status, h)
		}
	}
	checkSeenHosts(t, o, 1)
}

// checkSeenHosts checks that the origin got n requests since the last
// call, none of them for the blocked name or a name under *.wild.
func checkSeenHosts(t *testing.T, o *rawOrigin, n int) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	reqs, errs, _ := o.take()
	if len(reqs) != n || len(errs) != 0 {
		t.Errorf("origin got %d requests (errors %q), want %d", len(reqs), errs, n)
	}
	for _, r := range reqs {
		if strings.Contains(r.host, "wild") && r.host != "wild.customer.example" && r.host != "a.wild.customer.example.customer.example" {
			t.Errorf("origin got a request for %s", r.host)
		}
	}
}

// TestAttackRedirect checks the HTTP-to-HTTPS redirect with targets that
// are not origin-form: the Location is built from the decided host and the
// target, so an opaque target ("http:.evil.example/x") would move the
// visitor to another host. They get the 400 page instead.
func TestAttackRedirect(t *testing.T) {
	e, _ := tlsEnv(t, "  redirect_http: true\n")
	for _, target := range []string{"http:.evil.example/x", "x:@evil.example/", "*"} {
		status, h, _ := attackHTTP1(t, e.srv.Addr("http"), "GET "+target+" HTTP/1.1\r\nHost: app.example\r\n"+cl)
		if status != 400 || h.Get("Location") != "" {
			t.Errorf("GET %s: %d Location %q, want the 400 page", target, status, h.Get("Location"))
		}
	}
	if status, h, _ := attackHTTP1(t, e.srv.Addr("http"), "GET /x HTTP/1.1\r\nHost: app.example\r\n"+cl); status != 308 || !strings.HasPrefix(h.Get("Location"), "https://app.example:") {
		t.Errorf("origin-form target: %d Location %q", status, h.Get("Location"))
	}
}

// TestAttackRouteOverAddress: before names ending in a number were read
// as addresses, a route "*.0.2.7" covered the host "0300.0.2.7" (the
// address 192.0.2.7 to browsers) and forwarded it past a rule for
// 192.0.2.7. Such a route now normalizes to a wildcard over an address,
// which the config refuses.
func TestAttackRouteOverAddress(t *testing.T) {
	for _, host := range []string{"*.0.2.7", "*.192.0.2.7", "*.0x7f.1", "*.[::1]"} {
		_, err := config.ParseConfig("c.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\nroutes:\n  - host: \""+host+"\"\n    origins: [\"http://127.0.0.1:1\"]\n"))
		if err == nil || !strings.Contains(err.Error(), "routes[0].host") {
			t.Errorf("route %q: %v, want an error for routes[0].host", host, err)
		}
	}
	if _, err := config.ParseConfig("c.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\nroutes:\n  - host: \"*.a.0x\"\n    origins: [\"http://127.0.0.1:1\"]\n")); err == nil {
		t.Errorf("route *.a.0x: no error; a name that ends in a number but is no address is refused")
	}
}

// TestAttackRequestLine: a request target holding a space or a control
// character never reaches an origin, through either origin client. On
// HTTP/2, where a space in :path reaches the handler, it gets the edge's
// 400 page (a control character there resets the stream, in Go's
// server); on HTTP/1.1, Go's server refuses such a request line with a
// 400 of its own before any handler runs. Percent-encoded, the same bytes
// are forwarded as sent, and every request line the origin reads is
// three tokens.
func TestAttackRequestLine(t *testing.T) {
	parallelTLS(t, "customer.example")
	o := newRawOrigin(t)
	u := `"http://` + o.ln.Addr().String() + `"`
	for _, client := range []string{"edgeblock", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			e, pool := tlsRoutesEnv(t, "origins:\n  client: "+client+"\n"+routeConfig(okName, u), "")
			for _, tt := range []struct {
				name, target string
				http1        bool
				status       int    // 0: the HTTP/2 stream is reset
				fwd          string // the target the origin gets; "": none
			}{
				{name: "h2 space in the query", target: "/rl?a=1 HTTP/1.0", status: 400},
				{name: "h2 space in the path", target: "/a b", status: 400},
				{name: "h2 space after an absolute path", target: "https://" + okName + "/x?a= b", status: 400},
				{name: "h2 tab in the query", target: "/a?b=\t", status: 0},
				{name: "h2 line break in the query", target: "/a?b=\r\nX: y", status: 0},
				{name: "h2 encoded space and line break", target: "/a%20b?c=%20%0D%0A", status: 200, fwd: "/a%20b?c=%20%0D%0A"},
				{name: "h1 space in the query", target: "/rl?a=1 HTTP/1.0", http1: true, status: 400},
				{name: "h1 tab in the query", target: "/a?b=\tc", http1: true, status: 400},
				{name: "h1 encoded space", target: "/a%20b?c=%20", http1: true, status: 200, fwd: "/a%20b?c=%20"},
			} {
				var status int
				var header http.Header
				var body string
				if tt.http1 {
					status, header, body = attackHTTP1(t, e.srv.Addr("http"), "GET "+tt.target+" HTTP/1.1\r\nHost: "+okName+"\r\n"+cl)
				} else {
					c := dialH2(t, e.srv.Addr("https"), okName, pool)
					res := c.do(":method", "GET", ":scheme", "https", ":authority", okName, ":path", tt.target)
					status, header, body = res.status, http.Header{}, res.body
					for k, v := range res.header {
						header[http.CanonicalHeaderKey(k)] = v
					}
					if res.reset {
						status = 0
					}
				}
				if status != tt.status {
					t.Errorf("%s: status %d, want %d", tt.name, status, tt.status)
				}
				if !tt.http1 && status == 400 && (header.Get("X-Request-Id") == "" || !strings.Contains(body, "<html")) {
					t.Errorf("%s: not the edge's 400 page: %v %.80q", tt.name, header, body)
				}
				time.Sleep(20 * time.Millisecond) // the origin records after it answers
				reqs, errs, raw := o.take()
				for _, err := range errs {
					t.Errorf("%s: the origin could not parse what the edge sent: %s\n%q", tt.name, err, raw)
				}
				for _, head := range strings.Split(raw, "\r\n\r\n") {
					if line, _, _ := strings.Cut(head, "\r\n"); line != "" && len(strings.Split(line, " ")) != 3 {
						t.Errorf("%s: origin request line %q", tt.name, line)
					}
				}
				switch {
				case tt.fwd == "" && len(reqs) != 0:
					t.Errorf("%s: forwarded as %q", tt.name, reqs[0].uri)
				case tt.fwd != "" && (len(reqs) != 1 || reqs[0].uri != tt.fwd):
					t.Errorf("%s: origin got %v, want one request for %q", tt.name, reqs, tt.fwd)
				}
			}
		})
	}
}
