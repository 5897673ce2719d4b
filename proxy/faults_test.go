package proxy

import (
	"bufio"
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
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
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
// and in place); every 7th list and 3rd config is bad input that, applied
// in any part, would unblock the name or send the other nowhere. No
// request fails or gets a wrong answer: the blocked name gets the block
// page and never reaches the origin, the other always reaches it, and
// nothing is a 5xx.
func TestReloadsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const (
		clients = 32
		period  = 50 * time.Millisecond
		writes  = 40 // of the blocklist; 8 of the config
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
	// The writers: the blocklist every period, the config every 5th time.
	var listWrites, configWrites, badLists, badConfigs, good int
	for n := 1; n <= writes; n++ {
		time.Sleep(period)
		inPlace := n%2 == 0
		write := func(path, text string) {
			if inPlace { // one write after truncating, as `gen > file` of a small file
				edgetest.WriteFile(t, path, text)
				return
			}
			edgetest.WriteFile(t, path+".tmp", text)
			if err := os.Rename(path+".tmp", path); err != nil {
				t.Fatal(err)
			}
		}
		list := version(n)
		if n%7 == 3 {
			// Bad input: a malformed line, and the blocked name gone;
			// applied in any part, it would let the name through.
			list = "a..b.example reason=\"bad\"\n" + strings.ReplaceAll(list, "always.example", "#always.example")
			badLists++
		} else {
			good = n
		}
		failed0 := reloadFailures(t, e, "blocklist")
		write(e.list, list)
		listWrites++
		if n%7 == 3 { // the bad list is read (and refused) before it is replaced
			edgetest.WaitFor(t, 5*time.Second, "the bad list read", func() bool { return reloadFailures(t, e, "blocklist") > failed0 })
		}
		if n%5 == 0 {
			cfg := string(baseConfig)
			switch {
			case n%15 == 0: // a bad config that would send never.example nowhere
				cfg = strings.ReplaceAll(cfg, o.URL, "http://127.0.0.1:1") + "bogus_key: 1\n"
				badConfigs++
			case n%10 == 0:
				cfg += fmt.Sprintf("  - host: extra%d.example\n    origins: [%q]\n", n, o.URL)
			}
			failed0 := reloadFailures(t, e, "config")
			write(e.config, cfg)
			configWrites++
			if n%15 == 0 {
				edgetest.WaitFor(t, 5*time.Second, "the bad config read", func() bool { return reloadFailures(t, e, "config") > failed0 })
			}
		}
	}
	// The files end good.
	edgetest.WriteFile(t, e.config, string(baseConfig))
	if good != listWrites {
		edgetest.WriteFile(t, e.list, version(listWrites))
		good = listWrites
	}
	close(stop)
	wg.Wait()
	// The last version is applied.
	last := fmt.Sprintf("v%d", good)
	edgetest.WaitFor(t, 5*time.Second, "the last version", func() bool {
		_, _, body, _ := cs[0].do("always.example")
		return strings.Contains(body, last)
	})
	scrape := e.scrape()
	delta := func(series string) int {
		var a, b int
		fmt.Sscan(edgetest.MetricValue(scrape0, series), &a)
		fmt.Sscan(edgetest.MetricValue(scrape, series), &b)
		return b - a
	}
	listOK := delta(`edgeblock_blocklist_reloads_total{result="success"}`)
	listRefused := delta(`edgeblock_blocklist_reloads_total{result="refused"}`)
	cfgOK := delta(`edgeblock_config_reloads_total{result="success"}`)
	listBad := delta(`edgeblock_blocklist_reloads_total{result="failure"}`)
	cfgBad := delta(`edgeblock_config_reloads_total{result="failure"}`)
	t.Logf("%d requests from %d clients (HTTP/1.1 and HTTP/2) during %d blocklist writes (%d bad; %d applied, %d failed, %d refused) and %d config writes (%d bad; %d applied, %d failed): %d requests failed; samples %q",
		served.Load(), clients, listWrites, badLists, listOK, listBad, listRefused, configWrites, badConfigs, cfgOK, cfgBad, fails.n.Load(), fails.samples)
	if listBad < badLists || cfgBad < badConfigs || badConfigs == 0 {
		t.Errorf("%d of %d bad lists and %d of %d bad configs failed", listBad, badLists, cfgBad, badConfigs)
	}
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
	if cfgOK < 3 {
		t.Errorf("only %d of %d config writes were applied, want >= 3 (of 8: 2 bad, 2 the same as the one before)", cfgOK, configWrites)
	}
}

// reloadFailures returns edgeblock_<file>_reloads_total{result="failure"}.
func reloadFailures(t *testing.T, e *testEnv, file string) int {
	t.Helper()
	var n int
	fmt.Sscan(edgetest.MetricValue(e.scrape(), `edgeblock_`+file+`_reloads_total{result="failure"}`), &n)
	return n
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

// faultyOrigin is a raw TCP origin that misbehaves one way on every
// connection: it reads the request head and then does what mode says.
func faultyOrigin(t *testing.T, mode string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { l.Close(); conns.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				switch mode {
				case "half-length": // a head promising 64 KiB, 1 KiB of it, gone
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n%s", strings.Repeat("h", 1024))
				case "cut-length": // a head promising 64 KiB, 16 KiB of it, gone
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n%s", strings.Repeat("h", 16<<10))
				case "half-chunked": // chunks, and gone before the last one
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n%s\r\n", strings.Repeat("c", 1024))
				case "reset-after-head": // a head, then a TCP reset
					fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n")
					time.Sleep(10 * time.Millisecond)
					c.(*net.TCPConn).SetLinger(0)
				case "slow-head": // a byte of the head every 200 ms, never done
					for _, b := range []byte("HTTP/1.1 200 OK\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
						if _, err := c.Write([]byte{b}); err != nil {
							return
						}
						time.Sleep(200 * time.Millisecond)
					}
				case "close-before-head": // reads the request, answers nothing
				}
			})
		}
	}()
	return "http://" + l.Addr().String()
}

// TestOriginFaultsUnderLoad: 32 visitors (16 HTTP/1.1, 16 HTTP/2) spread
// over a healthy route and routes whose single origin misbehaves — killed
// (a process) halfway through, a body cut short (after 1 KiB or 16 KiB of
// a Content-Length, or mid-chunks), a reset after the head, a head that
// never ends, an answer of nothing. Each visitor gets the edge's own
// 502/504 page when nothing of the answer had gone out (the edge holds
// the head and the first 2 KiB, heldhead.go), else a response that breaks
// off visibly (its end is an error, never a short body passed off as
// whole); the healthy route answers every time; and the edge's
// goroutines and descriptors come back to where they were.
func TestOriginFaultsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const clients = 32
	good := newCountingOrigin(t)
	killed, proc := startOriginProcess(t, time.Millisecond, false)
	hosts := map[string]string{
		"good.example":         good.URL,
		"killed.example":       killed,
		"half-length.example":  faultyOrigin(t, "half-length"),
		"half-chunked.example": faultyOrigin(t, "half-chunked"),
		"cut-length.example":   faultyOrigin(t, "cut-length"),
		"reset.example":        faultyOrigin(t, "reset-after-head"),
		"slow.example":         faultyOrigin(t, "slow-head"),
		"silent.example":       faultyOrigin(t, "close-before-head"),
	}
	var routes []string
	var names []string
	for h, u := range hosts {
		if h != "slow.example" {
			routes = append(routes, h, `"`+u+`"`)
		}
		names = append(names, h)
	}
	slices.Sort(names)
	// Only the never-ending head waits on a short response_header: the
	// healthy origin may take longer than 500ms on a loaded machine
	// (a 504 for good.example at load 13 with -race).
	slow := fmt.Sprintf("  - host: slow.example\n    origins: [%q]\n    timeouts:\n      response_header: 500ms\n", hosts["slow.example"])
	e, pool := startTLSEnv(t, routeConfig(routes...)+slow, "")
	cs := newLoadClients(t, e, pool, clients)
	for _, c := range cs {
		if s, _, _, err := c.do("good.example"); err != nil || s != 200 {
			t.Fatalf("warm-up: %d %v", s, err)
		}
	}
	closeIdle := func() {
		for _, c := range cs {
			c.client.CloseIdleConnections()
		}
		good.CloseClientConnections()
	}
	closeIdle()
	time.Sleep(100 * time.Millisecond)
	g0, fds0 := runtime.NumGoroutine(), openFDs(t)

	var fails failures
	var mu sync.Mutex
	outcomes := map[string]map[string]int{} // host -> outcome -> count
	note := func(host, outcome string) {
		mu.Lock()
		defer mu.Unlock()
		if outcomes[host] == nil {
			outcomes[host] = map[string]int{}
		}
		outcomes[host][outcome]++
	}
	var killedAt atomic.Int64
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			for n := i; time.Now().Before(stop); n++ {
				host := names[(n/2)%len(names)]
				if n%2 == 0 {
					host = "good.example" // half the load on the healthy route
				}
				began := time.Now().UnixNano()
				s, proto, body, err := c.do(host)
				switch {
				case host == "good.example" && (err != nil || s != 200 || body != "origin"):
					fails.add("%s %s: %d %.60q %v", proto, host, s, body, err)
				case host == "good.example":
					note(host, "200")
				case err != nil && s == 0:
					fails.add("%s %s: no answer: %v", c.base, host, err)
				case err != nil:
					note(host, fmt.Sprintf("%d, body broken off", s)) // the head was sent: the body ends in an error
				case (s == 502 || s == 504) && strings.Contains(body, "<html"):
					note(host, fmt.Sprint(s))
				case host == "killed.example" && s == 200 && body == "ok" && (killedAt.Load() == 0 || began < killedAt.Load()):
					note(host, "200 before the kill")
				default:
					fails.add("%s %s: %d %.60q", proto, host, s, body)
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	proc.Kill()
	killedAt.Store(time.Now().UnixNano())
	wg.Wait()
	t.Logf("outcomes: %v", outcomes)
	if fails.n.Load() != 0 {
		t.Errorf("%d wrong answers: %q", fails.n.Load(), fails.samples)
	}
	for _, h := range names {
		if len(outcomes[h]) == 0 {
			t.Errorf("%s: no request finished", h)
		}
	}
	if outcomes["killed.example"]["502"] == 0 {
		t.Errorf("killed origin: no 502 page after the kill: %v", outcomes["killed.example"])
	}
	// Nothing of the answer had gone out: the page, every time.
	for h, want := range map[string]string{"slow.example": "504", "reset.example": "502", "half-length.example": "502", "silent.example": "502"} {
		if got := outcomes[h]; len(got) != 1 || got[want] == 0 {
			t.Errorf("%s: %v, want only %s pages", h, got, want)
		}
	}
	// Part of the body had gone out: broken off, every time.
	for _, h := range []string{"cut-length.example", "half-chunked.example"} {
		if got := outcomes[h]; len(got) != 1 || got["200, body broken off"] == 0 {
			t.Errorf("%s: %v, want every response broken off", h, got)
		}
	}
	// Released: the edge's goroutines and descriptors (and the test's
	// own, in the same process) back to the start.
	closeIdle()
	if !eventually(10*time.Second, func() bool { return runtime.NumGoroutine() <= g0+5 && openFDs(t) <= fds0+4 }) {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("goroutines %d -> %d, descriptors %d -> %d 10s after the load:\n%s", g0, runtime.NumGoroutine(), fds0, openFDs(t), b.String())
	}
	t.Logf("goroutines %d -> %d, descriptors %d -> %d", g0, runtime.NumGoroutine(), fds0, openFDs(t))
}
