package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

const wantAllow = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"

func TestRefusedMethods(t *testing.T) {
	e, o, pool := oneHostEnv(t)
	for _, req := range []string{
		"CONNECT " + okName + ":443 HTTP/1.1\r\nHost: " + okName + ":443\r\n",
		"CONNECT " + blockedName + ":443 HTTP/1.1\r\nHost: " + blockedName + ":443\r\n",
		"TRACE / HTTP/1.1\r\nHost: " + okName + "\r\n",
		"TRACK / HTTP/1.1\r\nHost: " + okName + "\r\n",
	} {
		resp := rawHTTP1(t, e.srv.Addr("http"), req+"Connection: close\r\n\r\n")
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != wantAllow || !strings.Contains(resp.body, "not allowed") {
			t.Errorf("%q: %d Allow %q", strings.Fields(req)[0], resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	c := dialH2(t, e.srv.Addr("https"), okName, pool)
	for _, fields := range [][]string{
		{":method", "CONNECT", ":authority", okName + ":443"},
		{":method", "TRACE", ":scheme", "https", ":authority", okName, ":path", "/"},
	} {
		res := c.do(fields...)
		if res.status != 405 || len(res.header["allow"]) != 1 || res.header["allow"][0] != wantAllow {
			t.Errorf("HTTP/2 %s: %d allow %q", fields[1], res.status, res.header["allow"])
		}
	}
	if got := o.requests(); len(got) != 0 {
		t.Errorf("the origin got %d requests: %q", len(got), got)
	}
	if v := edgetest.MetricValue(e.scrape(), `edgeblock_requests_total{code="405",method="CONNECT",outcome="rejected"}`); v != "3" {
		t.Errorf("405 CONNECT count = %q, want 3", v)
	}
}

// upgradeOrigin answers an upgrade it is asked for with 101 and echoes
// bytes upper-cased; any other request gets 200 and the Upgrade and
// Connection headers it arrived with. A lenient origin: it switches to
// h2c too, if asked.
func upgradeOrigin(t *testing.T, switchUnasked bool) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := r.Header.Get("Upgrade")
		if up == "" && !switchUnasked {
			fmt.Fprintf(w, "plain: Upgrade=%q Connection=%q HTTP2-Settings=%q", up, r.Header.Get("Connection"), r.Header.Get("Http2-Settings"))
			return
		}
		if up == "" {
			up = "h2c"
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", up)
		brw.Flush()
		buf := make([]byte, 4)
		for {
			if _, err := io.ReadFull(brw, buf); err != nil {
				return
			}
			conn.Write([]byte(strings.ToUpper(string(buf))))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestUpgradeAllowList(t *testing.T) {
	o := upgradeOrigin(t, false)
	lenient := upgradeOrigin(t, true)
	e := startEnv(t, "origins:\n  upgrades: [websocket, Custom-Proto]\n"+
		routeConfig("up.example", `"`+o.URL+`"`, "lenient.example", `"`+lenient.URL+`"`), "")
	for _, tt := range []struct {
		name, host, upgrade string
		status              int
		want                string // in the plain answer, or the echo after 101
	}{
		{"h2c is removed", "up.example", "h2c", 200, `plain: Upgrade="" Connection="" HTTP2-Settings=""`},
		{"unknown protocols are removed", "up.example", "tls/1.0, foo", 200, `plain: Upgrade="" Connection=""`},
		{"websocket is forwarded", "up.example", "websocket", 101, "PING"},
		{"a listed protocol is forwarded", "up.example", "custom-proto", 101, "PING"},
		{"an origin that switches unasked gets a 502", "lenient.example", "h2c", 502, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.srv.Addr("http"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", tt.host, tt.upgrade)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			var got string
			if resp.StatusCode == 101 {
				conn.Write([]byte("ping"))
				buf := make([]byte, 4)
				io.ReadFull(br, buf)
				got = string(buf)
			} else {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				got = string(b)
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoopDetected(t *testing.T) {
	parallelPlain(t)
	o := echoOrigin(t)
	e := startEnv(t, "origins:\n  via_name: edge-7\n"+routeConfig("loop.example", `"`+o.URL+`"`), "")
	// Via from another edge is kept and appended to.
	resp, body := e.get("GET", "loop.example", "/", map[string]string{"Via": "1.1 cdn-a (Proxy/1.0)"})
	if got := decodeEcho(t, body).Header.Values("Via"); resp.StatusCode != 200 || len(got) != 2 || got[0] != "1.1 cdn-a (Proxy/1.0)" || got[1] != "1.1 edge-7" {
		t.Errorf("Via at the origin = %q (status %d)", got, resp.StatusCode)
	}
	// Now the route's origin is the edge itself.
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	edgetest.WriteFile(t, e.config, strings.Replace(string(cfg), o.URL, e.url("http"), 1))
	e.srv.Reloader().Reload("test")
	for range 3 {
		resp, body = e.get("GET", "loop.example", "/", nil)
		if resp.StatusCode != 508 || !strings.Contains(body, "loop") {
			t.Errorf("looping route: status %d, want the 508 page", resp.StatusCode)
		}
	}
	// Each visitor request made exactly one trip back through the edge:
	// the inner one is refused (508), the outer one passes the 508 on.
	m := e.scrape()
	if v := edgetest.MetricValue(m, `edgeblock_requests_total{code="508",method="GET",outcome="rejected"}`); v != "3" {
		t.Errorf("rejected 508 count = %q, want 3", v)
	}
	if v := edgetest.MetricValue(m, `edgeblock_requests_total{code="508",method="GET",outcome="proxied"}`); v != "3" {
		t.Errorf("proxied 508 count = %q, want 3", v)
	}
}
