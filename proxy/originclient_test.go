package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"
)

func TestOriginsClientConfig(t *testing.T) {
	base := "listen:\n  http: :8080\nblocklist:\n  file: b\n"
	for _, tt := range []struct{ name, yaml, want, err string }{
		{name: "default", want: "edgeblock"},
		{name: "stdlib", yaml: "origins:\n  client: stdlib\n", want: "stdlib"},
		{name: "edgeblock", yaml: "origins:\n  client: edgeblock\n", want: "edgeblock"},
		{name: "unknown", yaml: "origins:\n  client: curl\n", err: `x.yaml:6: origins.client: "curl": want edgeblock or stdlib`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.ParseConfig("x.yaml", []byte(base+tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Origins.Client != tt.want {
				t.Errorf("client %q, want %q", c.Origins.Client, tt.want)
			}
		})
	}
	a, _ := config.ParseConfig("x.yaml", []byte(base))
	b, _ := config.ParseConfig("x.yaml", []byte(base+"origins:\n  client: stdlib\n"))
	if a.RestartFields()["origins.client"] == b.RestartFields()["origins.client"] {
		t.Error("origins.client is not a restart field")
	}
}

// TestOriginsClient proxies through each origin client: serial requests
// share one origin connection, a 103 reaches the visitor before the
// final response, and trailers come through.
func TestOriginsClient(t *testing.T) {
	parallelPlain(t)
	var conns atomic.Int32
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		}
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body of "+r.URL.Path)
		w.Header().Set("X-Sum", "42")
	}))
	o.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	o.Start()
	t.Cleanup(o.Close)
	for _, client := range []string{"edgeblock", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			e := startEnv(t, "origins:\n  client: "+client+"\n"+routeConfig("app.example", `"`+o.URL+`"`), "")
			for _, rt := range e.srv.proxy.transports.m {
				if (rt.h1 != nil) != (client == "edgeblock") {
					t.Errorf("the route's transport has h1 %v", rt.h1 != nil)
				}
			}
			before := conns.Load()
			for i := range 10 {
				resp, body := e.get("GET", "app.example", fmt.Sprintf("/%d", i), nil)
				if resp.StatusCode != 200 || body != fmt.Sprintf("body of /%d", i) || resp.Trailer.Get("X-Sum") != "42" {
					t.Errorf("request %d: %d %q trailer %q", i, resp.StatusCode, body, resp.Trailer.Get("X-Sum"))
				}
			}
			if n := conns.Load() - before; n != 1 {
				t.Errorf("%d origin connections for 10 serial requests, want 1", n)
			}
			c, err := net.Dial("tcp", e.srv.Addr("http"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET /hints HTTP/1.1\r\nHost: app.example\r\n\r\n")
			br := bufio.NewReader(c)
			var codes []int
			for range 2 {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("after %v: %v", codes, err)
				}
				codes = append(codes, resp.StatusCode)
				if resp.StatusCode == http.StatusEarlyHints && resp.Header.Get("Link") != "</app.css>; rel=preload" {
					t.Errorf("103 without its Link: %v", resp.Header)
				}
				io.Copy(io.Discard, resp.Body)
			}
			if fmt.Sprint(codes) != "[103 200]" {
				t.Errorf("visitor got %v, want [103 200]", codes)
			}
		})
	}
}

// TestInterimResponses: after any number of 1xx responses from the
// origin, the final response still carries what the edge sets on it
// (X-Request-Id, the route's response header rules), over HTTP/1.1 and
// HTTP/2, through either origin client; so does the 502 page when the
// origin breaks off after its 1xx.
func TestInterimResponses(t *testing.T) {
	parallelTLS(t, "interim.example")
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("hints"))
		for i := range n {
			w.Header().Set("Link", fmt.Sprintf("</%d.css>; rel=preload", i))
			w.WriteHeader(http.StatusEarlyHints)
		}
		if r.URL.Path == "/break" {
			panic(http.ErrAbortHandler) // no final response
		}
		w.Header().Del("Link")
		w.Header().Set("Server", "origin")
		w.Header().Set("X-Origin", "final")
		io.WriteString(w, "final")
	}))
	t.Cleanup(o.Close)
	rules := "    headers:\n      response: {remove: [Server], set: {X-Frame-Options: DENY}, add: {X-Added: rule}}\n"
	for _, client := range []string{"edgeblock", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			e, pool := tlsRoutesEnv(t, "origins:\n  client: "+client+"\n"+routeConfig("interim.example", `"`+o.URL+`"`)+rules, "")
			for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
				for _, tt := range []struct {
					path   string
					hints  int
					status int
				}{
					{"/ok", 0, 200}, {"/ok", 1, 200}, {"/ok", 3, 200}, {"/break", 2, 502},
				} {
					name := fmt.Sprintf("%s %s after %d 1xx", proto, tt.path, tt.hints)
					var interim []string // each 1xx's X-Request-Id
					trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
						interim = append(interim, h.Get("X-Request-Id"))
						return nil
					}}
					base, c := e.url("http"), &http.Client{Timeout: 10 * time.Second}
					if proto == "HTTP/2.0" {
						base, c = e.url("https"), tlsClient(pool, "interim.example")
					}
					req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", fmt.Sprintf("%s%s?hints=%d", base, tt.path, tt.hints), nil)
					req.Host = "interim.example"
					resp, err := c.Do(req)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					h := resp.Header
					id := h.Get("X-Request-Id")
					switch {
					case resp.Proto != proto || resp.StatusCode != tt.status || len(interim) != tt.hints:
						t.Errorf("%s: %s %d after %d 1xx, want %s %d after %d", name, resp.Proto, resp.StatusCode, len(interim), proto, tt.status, tt.hints)
					case len(h["X-Request-Id"]) != 1 || len(id) != 16:
						t.Errorf("%s: X-Request-Id %q, want the edge's one", name, h["X-Request-Id"])
					case tt.status == 200 && (string(body) != "final" || h.Get("X-Origin") != "final" || h.Get("Server") != "" ||
						h.Get("X-Frame-Options") != "DENY" || h.Get("X-Added") != "rule" || h.Get("Link") != ""):
						t.Errorf("%s: %q with header %v, want the origin's final response after the route's rules", name, body, h)
					case tt.status == 502 && !strings.Contains(string(body), id):
						t.Errorf("%s: the 502 page does not name request %s: %.200q", name, id, body)
					}
					for i, got := range interim {
						if got != id {
							t.Errorf("%s: 1xx #%d has X-Request-Id %q, want %q", name, i+1, got, id)
						}
					}
				}
			}
		})
	}
}
