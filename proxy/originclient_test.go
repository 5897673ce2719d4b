package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
			c, err := ParseConfig("x.yaml", []byte(base+tt.yaml))
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
	a, _ := ParseConfig("x.yaml", []byte(base))
	b, _ := ParseConfig("x.yaml", []byte(base+"origins:\n  client: stdlib\n"))
	if a.restartFields()["origins.client"] == b.restartFields()["origins.client"] {
		t.Error("origins.client is not a restart field")
	}
}

// TestOriginsClient proxies through each origin client: serial requests
// share one origin connection, a 103 reaches the visitor before the
// final response, and trailers come through.
func TestOriginsClient(t *testing.T) {
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
