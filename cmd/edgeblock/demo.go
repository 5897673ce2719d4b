package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy"
)

const demoBlocklist = `# edgeblock demo blocklist. Edit it while the demo runs: changes apply within a second.
# pattern            attributes (all optional)
blocked.localhost    reason="This site hosted coordinated harassment campaigns" policy=https://blog.example.com/why-we-dropped-a-customer
court.localhost      status=451 reason="Court order 123" policy=https://lumendatabase.org/notices/1
*.spam.localhost
`

const demoConfig = `# edgeblock demo configuration
listen:
  http: %s
  https: %s
  admin: %s
tls:
  mode: internal
  storage: certs
  redirect_http: false
blocklist:
  file: blocklist.txt
  policy: https://example.com/abuse-policy
  blocked_by: https://edge.example.com
routes:
  - host: app.localhost
    origins: ["http://%s"]
  - host: blocked.localhost
    origins: ["http://%s"]
  - host: "*.apps.localhost"
    origins: ["http://%s"]
log:
  format: text
`

// runDemo starts a local origin and edgeblock in front of it, with one
// proxied and a few blocked hostnames, and prints the curl lines to try.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", stderr)
	httpAddr := fs.String("http", "127.0.0.1:8080", "public HTTP `address`")
	httpsAddr := fs.String("https", "127.0.0.1:8443", "public HTTPS `address` (internal CA)")
	adminAddr := fs.String("admin", "127.0.0.1:9090", "admin `address`")
	dir := fs.String("dir", "", "`directory` for the demo's files (default: a new temporary one)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "edgeblock-demo-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		*dir = d
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	originLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	go http.Serve(originLn, http.HandlerFunc(demoOrigin))
	origin := originLn.Addr().String()
	config := filepath.Join(*dir, "edgeblock.yaml")
	files := map[string]string{
		config:                               fmt.Sprintf(demoConfig, *httpAddr, *httpsAddr, *adminAddr, origin, origin, origin),
		filepath.Join(*dir, "blocklist.txt"): demoBlocklist,
	}
	for name, text := range files {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	b, err := reload.LoadBundle(config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	// Bind every listener before telling anyone where to connect.
	log := proxy.NewLogger(stderr, "text", 0)
	srv, err := proxy.NewServer(log, config, b)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	sigs := notifySignals()
	defer signal.Stop(sigs)
	if err := srv.Start(b); err != nil {
		srv.Shutdown(context.Background()) // stops the certificate manager
		fmt.Fprintln(stderr, demoListenError(err, map[string]string{"http": *httpAddr, "https": *httpsAddr, "admin": *adminAddr}))
		return 1
	}
	fmt.Fprintf(stdout, `edgeblock demo: files in %[1]s, origin on %[2]s

Try, in another terminal:
  curl -i -H 'Host: app.localhost' http://%[3]s/        # proxied to the origin
  curl -i -H 'Host: blocked.localhost' http://%[3]s/    # 403 block page (HTML)
  curl -s -H 'Host: blocked.localhost' -H 'Accept: application/json' http://%[3]s/   # problem+json
  curl -s -H 'Host: court.localhost' -H 'Accept: text/plain' http://%[3]s/           # 451, plain text
  curl -i -H 'Host: nothing.localhost' http://%[3]s/    # 404: no site for this name
  go run ./cmd/edgeblock ca-root -config %[6]s > /tmp/edgeblock-root.pem
  curl --cacert /tmp/edgeblock-root.pem --resolve app.localhost:%[4]s:%[5]s https://app.localhost:%[4]s/   # TLS, internal CA
  curl -s http://%[7]s/blocklist ; curl -s http://%[7]s/metrics | grep ^edgeblock_requests_total

Block a site live (applies within a second):
  go run ./cmd/edgeblock block -config %[6]s app.localhost reason="Demo block"
Press Ctrl-C to stop.

`, *dir, origin, srv.Addr("http"), port(srv.Addr("https")), host(srv.Addr("https")), config, srv.Addr("admin"))
	return waitForSignals(sigs, srv, started(log, config, b), log)
}

// demoListenError says which of the demo's addresses could not be bound,
// and the flag that moves it: "demo: 127.0.0.1:8080 is in use (pass -http
// ADDR)".
func demoListenError(err error, flags map[string]string) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "listen" && op.Addr != nil {
		addr := op.Addr.String()
		for _, name := range []string{"http", "https", "admin"} {
			if flags[name] != addr {
				continue
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Sprintf("demo: %s is in use (pass -%s ADDR)", addr, name)
			}
			return fmt.Sprintf("demo: cannot listen on %s: %v (pass -%s ADDR)", addr, op.Err, name)
		}
	}
	return "demo: " + err.Error()
}

func host(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

func demoOrigin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html><html lang=\"en\"><title>Origin</title><main><h1>Hello from the origin of %s</h1>"+
		"<p>X-Forwarded-For: %s<br>X-Forwarded-Proto: %s<br>X-Request-Id: %s</p></main></html>\n",
		html.EscapeString(r.Host), html.EscapeString(r.Header.Get("X-Forwarded-For")),
		html.EscapeString(r.Header.Get("X-Forwarded-Proto")), html.EscapeString(r.Header.Get("X-Request-Id")))
}
