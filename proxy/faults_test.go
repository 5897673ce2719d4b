package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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

// do sends GET / for host and returns the status, protocol and body.
func (c loadClient) do(host string) (int, string, string, error) {
	req, _ := http.NewRequest("GET", c.base+"/", nil)
	req.Host = host
	if strings.HasPrefix(c.base, "https") {
		c.client.Transport.(*http.Transport).TLSClientConfig.ServerName = host
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, "", "", err
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
