package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loadClient is one visitor of a load test: HTTP/1.1 to the plain
// listener or HTTP/2 over TLS, on its own connection.
type loadClient struct {
	base   string // "http://addr" or "https://addr"
	client *http.Client
}

// newLoadClients returns n clients, half HTTP/1.1 and half HTTP/2, each
// with its own transport (its own connections).
func newLoadClients(t *testing.T, e *testEnv, pool *x509.CertPool, n int) []loadClient {
	t.Helper()
	var cs []loadClient
	for i := range n {
		var tr *http.Transport
		base := e.url("http")
		if i%2 == 1 {
			base = e.url("https")
			tr = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		} else {
			tr = &http.Transport{}
		}
		t.Cleanup(tr.CloseIdleConnections)
		cs = append(cs, loadClient{base: base, client: &http.Client{Transport: tr, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}})
	}
	return cs
}

// errRefused marks a request the edge did not take: sent on no
// connection (refused, or reset before or during the TLS handshake), or
// on a new connection reset before any answer, which is what the kernel
// does to connections it had queued for a listener that then closes. (A
// connection the server closes itself after reading a request ends in
// EOF, not a reset.)
var errRefused = errors.New("refused")

// do sends GET / for host and returns the status, protocol and body; an
// error is errRefused (above) or says whether the request was written and
// the connection reused.
func (c loadClient) do(host string) (int, string, string, error) {
	var reused, wrote atomic.Bool
	trace := &httptrace.ClientTrace{ // per attempt: the transport may retry
		GetConn:      func(string) { reused.Store(false); wrote.Store(false) },
		GotConn:      func(i httptrace.GotConnInfo) { reused.Store(i.Reused) },
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", c.base+"/", nil)
	req.Host = host
	if strings.HasPrefix(c.base, "https") {
		c.client.Transport.(*http.Transport).TLSClientConfig.ServerName = host
	}
	resp, err := c.client.Do(req)
	if err != nil && (!wrote.Load() || !reused.Load() && errors.Is(err, syscall.ECONNRESET)) {
		return 0, "", "", fmt.Errorf("%w: %w", errRefused, err)
	}
	if err != nil {
		return 0, "", "", fmt.Errorf("%w (connection reused %v, request written)", err, reused.Load())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Proto, string(b), err
}

// failures collects what went wrong in a load test, with a few samples.
type failures struct {
	n       atomic.Int64
	mu      sync.Mutex
	samples []string
}

func (f *failures) add(format string, args ...any) {
	f.n.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.samples) < 10 {
		f.samples = append(f.samples, fmt.Sprintf(format, args...))
	}
}

// TestReloadsUnderLoad: 32 visitors (16 HTTP/1.1, 16 HTTP/2) ask for a
// name every version of the blocklist blocks and for one none blocks,
// while the blocklist is rewritten every 50 ms, by rename and in place in
// turn, and the config every 250 ms (a route added and removed, by rename
// and in place). No request fails or gets a wrong answer: the blocked
// name gets the block page and never reaches the origin, the other always
// reaches it, and nothing is a 5xx.
func TestReloadsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const (
		clients = 32
		period  = 50 * time.Millisecond
		runFor  = 3 * time.Second
	)
	o := newCountingOrigin(t)
	version := func(n int) string {
		// The always-blocked name last, behind fillers whose number
		// varies (so that files differ in length), none dropped by more
		// than max_drop.
		var b strings.Builder
		fmt.Fprintf(&b, "# version %d\n", n)
		for i := range 20 + n%5 {
			fmt.Fprintf(&b, "filler%d.example reason=\"f%d\"\n", i, n)
		}
		fmt.Fprintf(&b, "always.example reason=\"v%d\"\n", n)
		return b.String()
	}
	routes := routeConfig("always.example", `"`+o.URL+`"`, "never.example", `"`+o.URL+`"`)
	// debounce 5ms: each write is its own reload (the default 100ms would
	// fold writes 50 ms apart into one a second, MaxWait).
	e, pool := startTLSEnv(t, "blocklist:\n  file: blocklist.txt\n  debounce: 5ms\n"+routes, version(0))
	baseConfig, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cs := newLoadClients(t, e, pool, clients)
	for _, c := range cs { // warm up: certificates, connections
		if s, _, body, err := c.do("never.example"); err != nil || s != 200 {
			t.Fatalf("warm-up: %d %q %v", s, body, err)
		}
	}
	scrape0 := e.scrape()
	var fails failures
	var served, blocked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				host := "never.example"
				if (n+i)%2 == 0 {
					host = "always.example"
				}
				s, proto, body, err := c.do(host)
				served.Add(1)
				switch {
				case err != nil:
					fails.add("%s %s: %v", c.base, host, err)
				case host == "always.example" && (s != 403 || !strings.Contains(body, "blocked")):
					fails.add("%s %s: %d %.80q", proto, host, s, body)
				case host == "never.example" && (s != 200 || body != "origin"):
					fails.add("%s %s: %d %.80q", proto, host, s, body)
				case host == "always.example":
					blocked.Add(1)
				}
			}
		})
	}
	// The writers: the blocklist every period, the config every 5.
	start := time.Now()
	var listWrites, configWrites int
	for n := 1; time.Since(start) < runFor; n++ {
		time.Sleep(period)
		inPlace := n%2 == 0
		write := func(path, text string) {
			if inPlace { // one write after truncating, as `gen > file` of a small file
				writeFile(t, path, text)
				return
			}
			writeFile(t, path+".tmp", text)
			if err := os.Rename(path+".tmp", path); err != nil {
				t.Fatal(err)
			}
		}
		write(e.list, version(n))
		listWrites++
		if n%5 == 0 {
			cfg := string(baseConfig)
			if n%10 == 0 {
				cfg += fmt.Sprintf("  - host: extra%d.example\n    origins: [%q]\n", n, o.URL)
			}
			write(e.config, cfg)
			configWrites++
		}
	}
	close(stop)
	wg.Wait()
	// The last version is applied.
	last := fmt.Sprintf("v%d", listWrites)
	waitFor(t, 5*time.Second, "the last version", func() bool {
		_, _, body, _ := cs[0].do("always.example")
		return strings.Contains(body, last)
	})
	scrape := e.scrape()
	delta := func(series string) int {
		var a, b int
		fmt.Sscan(metricValue(t, scrape0, series), &a)
		fmt.Sscan(metricValue(t, scrape, series), &b)
		return b - a
	}
	listOK := delta(`edgeblock_blocklist_reloads_total{result="success"}`)
	listRefused := delta(`edgeblock_blocklist_reloads_total{result="refused"}`)
	cfgOK := delta(`edgeblock_config_reloads_total{result="success"}`)
	t.Logf("%d requests from %d clients (HTTP/1.1 and HTTP/2) during %d blocklist writes (%d applied, %d refused) and %d config writes (%d applied): %d failed; samples %q",
		served.Load(), clients, listWrites, listOK, listRefused, configWrites, cfgOK, fails.n.Load(), fails.samples)
	if fails.n.Load() != 0 {
		t.Errorf("%d of %d requests failed or were answered wrongly", fails.n.Load(), served.Load())
	}
	if n := o.count("always.example"); n != 0 {
		t.Errorf("the blocked name reached the origin %d times", n)
	}
	if blocked.Load() < 100 || served.Load() < 400 {
		t.Errorf("too little load to tell: %d requests, %d blocked", served.Load(), blocked.Load())
	}
	if listOK < listWrites/4 {
		t.Errorf("only %d of %d blocklist writes were applied", listOK, listWrites)
	}
	if cfgOK < 2 {
		t.Errorf("only %d of %d config writes were applied", cfgOK, configWrites)
	}
}

// streamingOrigin answers every request with size bytes in 16 chunks,
// pause apart, so that many responses are mid-body at any moment.
func streamingOrigin(t *testing.T, size int, pause time.Duration) *httptest.Server {
	t.Helper()
	chunk := strings.Repeat("s", size/16)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(chunk)*16))
		for range 16 {
			io.WriteString(w, chunk)
			w.(http.Flusher).Flush()
			time.Sleep(pause)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestStopUnderLoad: Server.Stop (what SIGTERM calls) while 32 visitors
// (16 HTTP/1.1, 16 HTTP/2) fetch streamed 256 KiB responses. Every
// request that was sent is answered in full (none is reset mid-body,
// HTTP/2 streams included: their connections get GOAWAY NO_ERROR and
// finish; none is dropped unanswered, which http.Server.Shutdown alone
// does to an HTTP/1.1 request it reads after it began), requests during
// the drain are served, and once the listeners close a new connection is
// refused (errRefused); nothing else is seen.
func TestStopUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const (
		clients = 32
		size    = 256 << 10
	)
	o := streamingOrigin(t, size, 5*time.Millisecond)
	e, pool := startTLSEnv(t, routeConfig("app.example", `"`+o.URL+`"`), "")
	cs := newLoadClients(t, e, pool, clients)
	var fails failures
	var complete, duringDrain, refused atomic.Int64
	var stopping atomic.Bool
	var stopAt atomic.Value
	stopAt.Store(time.Now().Add(time.Second))
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			for {
				s, proto, body, err := c.do("app.example")
				switch {
				case err != nil && errors.Is(err, errRefused) && stopping.Load():
					refused.Add(1)
					return
				case err != nil:
					fails.add("%s at %v: %v", c.base, time.Since(stopAt.Load().(time.Time)).Round(time.Millisecond), err)
					if stopping.Load() {
						return
					}
				case s != 200 || len(body) != size:
					fails.add("%s: %d, %d of %d bytes", proto, s, len(body), size)
				default:
					complete.Add(1)
					if stopping.Load() {
						duringDrain.Add(1)
					}
				}
			}
		})
	}
	time.Sleep(time.Second)
	stopping.Store(true)
	start := time.Now()
	if err := e.srv.Stop(t.Context(), 300*time.Millisecond, 10*time.Second); err != nil {
		t.Errorf("Stop: %v", err)
	}
	took := time.Since(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("visitors still busy 15s after Stop returned")
	}
	t.Logf("Stop took %v; %d complete responses (%d after Stop began), %d visitors refused after the listeners closed; %d failures: %q",
		took.Round(time.Millisecond), complete.Load(), duringDrain.Load(), refused.Load(), fails.n.Load(), fails.samples)
	if fails.n.Load() != 0 {
		t.Errorf("%d requests cut off or failed otherwise", fails.n.Load())
	}
	if duringDrain.Load() < clients {
		t.Errorf("only %d responses completed after Stop began, want >= %d (one per visitor in flight)", duringDrain.Load(), clients)
	}
	if refused.Load() != clients {
		t.Errorf("%d of %d visitors saw their new connection refused", refused.Load(), clients)
	}
	for _, l := range []string{"http", "https"} {
		if c, err := net.DialTimeout("tcp", e.srv.Addr(l), time.Second); err == nil {
			c.Close()
			t.Errorf("%s listener still accepts after Stop", l)
		}
	}
}
