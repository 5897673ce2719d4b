package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

// heapInuse returns HeapInuse after a GC.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestResourceBound is the exhaustion attack with numbers: one
// client opens 100 HTTP/2 connections that announce a zero window and
// fill every stream they may open with requests for a 2 MiB response,
// plus HTTP/1.1 connections that never read. The heap and descriptors of
// the whole process (edge, origin and attacker together) stay bounded,
// origin connections stay within limits.max_requests_per_client, another
// visitor is served while the attack holds its places, before write_idle
// would free them, and everything is released after timeouts.write_idle.
func TestResourceBound(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const (
		conns     = 100
		slowConns = 20
		// No place the attack holds is freed before write_idle after
		// the attack began: what is measured until then, and the other
		// visitor's answers must come before it. Long enough that a
		// machine at load 20 sets the attack up within it (19s with
		// the race detector beside 8 busy loops on 2 cores).
		writeIdle = 25 * time.Second
		maxReq    = 128 // limits.max_requests_per_client's default
	)
	streams := 100 // limits.max_streams_per_conn's default
	if raceEnabled {
		streams = 30 // the race detector allows 8128 goroutines
	}
	o := newWatchedOrigin(t, 2<<20)
	e, pool := startTLSEnv(t, fmt.Sprintf("timeouts:\n  write_idle: %v\n", writeIdle)+routeConfig("big.example", `"`+o.URL+`"`), "")
	addr := e.srv.Addr("https")

	// The other visitor: its own address, HTTP/2 over TLS.
	visitor := &http.Client{Timeout: 2 * writeIdle, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "big.example"},
		ForceAttemptHTTP2: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	visit := func() (time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequest("GET", "https://"+addr+"/small", nil)
		req.Host = "big.example"
		resp, err := visitor.Do(req)
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
			return 0, fmt.Errorf("visitor: %d %q %v", resp.StatusCode, body, err)
		}
		return time.Since(start), nil
	}
	if _, err := visit(); err != nil { // warms up the certificate and the pools
		t.Fatal(err)
	}
	heap0, fds0 := heapInuse(), openFDs(t)

	// The attack: HTTP/1.1 non-readers first, so that they hold some of
	// the client's in-flight slots, then the HTTP/2 connections.
	attackStart := time.Now()
	for range slowConns {
		c := dialFrom(t, "127.0.0.1", e.srv.Addr("http"))
		c.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprint(c, "GET /huge HTTP/1.1\r\nHost: big.example\r\n\r\n")
	}
	edgetest.WaitFor(t, 20*time.Second, "the non-readers' requests in flight", func() bool {
		return edgetest.MetricValue(e.scrape(), "edgeblock_requests_in_flight") == fmt.Sprint(slowConns)
	})
	var statuses sync.Map // status -> *atomic.Int64
	count := func(k string) {
		v, _ := statuses.LoadOrStore(k, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var readers sync.WaitGroup
	for range conns {
		c := dialFrames(t, addr, pool, "big.example", nil, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		for s := range streams {
			c.get(uint32(2*s+1), "big.example", "/big")
		}
		readers.Go(func() {
			for ctx.Err() == nil {
				ev, err := c.next(time.Second)
				switch {
				case err != nil:
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						continue
					}
					return
				case ev.status != "":
					count(ev.status)
				case ev.isRST:
					count("rst " + ev.rst.String())
				}
			}
		})
	}

	// Measure while the attack holds what it can, and serve the visitor.
	var peakHeap uint64
	var peakFDs int
	var slowest time.Duration
	peakInFlight := 0.0
	// Until 2s before the first of the attack's requests can meet
	// write_idle: no stream has been reset yet, so the origin
	// connections count those the attack holds (after it, a freed place
	// is taken by a new request while the reset one's connection is
	// still closing, slowly at load: 138 at load 20), and a visitor the
	// attack starved would not be served until then.
	// Three seconds of it are enough.
	freed := attackStart.Add(writeIdle)
	deadline := freed.Add(-2 * time.Second)
	if d := time.Now().Add(3 * time.Second); d.Before(deadline) {
		deadline = d
	}
	var peakOrigin int64
	samples := 0
	for time.Now().Before(deadline) {
		samples++
		peakOrigin = max(peakOrigin, o.maxConns.Load())
		if h := heapInuse(); h > peakHeap {
			peakHeap = h
		}
		if v, err := strconv.ParseFloat(edgetest.MetricValue(e.scrape(), "edgeblock_requests_in_flight"), 64); err == nil {
			peakInFlight = max(peakInFlight, v)
		}
		peakFDs = max(peakFDs, openFDs(t))
		d, err := visit()
		if err != nil {
			t.Errorf("the other visitor was not served during the attack: %v", err)
		} else if late := time.Since(freed); late > 0 {
			t.Errorf("the other visitor was served %v after write_idle could free the attack's places (took %v): it waited for them", late, d)
		}
		slowest = max(slowest, d)
		time.Sleep(100 * time.Millisecond)
	}
	if samples == 0 {
		t.Fatalf("setting the attack up took %v, past write_idle less 2s: nothing was measured while it held its places", time.Since(attackStart))
	}
	// After write_idle every held stream is reset and its origin
	// connection closed (a few idle keep-alive ones of the visitor may stay).
	edgetest.WaitFor(t, 3*writeIdle, "origin connections released", func() bool {
		return o.conns.Load() <= 8 && edgetest.MetricValue(e.scrape(), "edgeblock_requests_in_flight") == "0"
	})
	// The resets of the answered streams may still be on their way to
	// the readers (slow at load): wait for them, or fail below.
	load := func(k string) int64 {
		if v, ok := statuses.Load(k); ok {
			return v.(*atomic.Int64).Load()
		}
		return 0
	}
	eventually(10*time.Second, func() bool { return load("rst INTERNAL_ERROR") >= load("200") })
	cancel()
	readers.Wait()
	heap1, fds1 := heapInuse(), openFDs(t)

	got := map[string]int64{}
	statuses.Range(func(k, v any) bool { got[k.(string)] = v.(*atomic.Int64).Load(); return true })
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	t.Logf("attack: %d HTTP/2 connections x %d zero-window streams for 2 MiB each, %d HTTP/1.1 non-readers of 32 MiB", conns, streams, slowConns)
	t.Logf("stream outcomes: %v", got)
	t.Logf("heap in use (after GC): %.1f MiB before, %.1f MiB peak (+%.1f MiB), %.1f MiB after release",
		mib(heap0), mib(peakHeap), mib(peakHeap)-mib(heap0), mib(heap1))
	t.Logf("descriptors (edge, origin and attacker in one process): %d before, %d peak, %d after release", fds0, peakFDs, fds1)
	t.Logf("origin connections: %d peak; other visitor's slowest request %v (%d samples while the attack held its places)", peakOrigin, slowest.Round(time.Millisecond), samples)

	if growth := mib(peakHeap) - mib(heap0); growth > 200 {
		t.Errorf("heap grew by %.1f MiB, want < 200", growth)
	}
	// Attacker and edge ends of the public connections, edge and origin
	// ends of at most maxReq origin connections, and some slack.
	if limit := fds0 + 2*(conns+slowConns) + 2*maxReq + 50; peakFDs > limit {
		t.Errorf("descriptors peaked at %d, want <= %d", peakFDs, limit)
	}
	if peakOrigin > maxReq+8 {
		t.Errorf("origin connections peaked at %d, want <= %d (limits.max_requests_per_client) + the visitor's few", peakOrigin, maxReq)
	}
	// How many streams get in depends on timing: a stream that arrives
	// after write_idle reset the first ones takes a freed place. What
	// must hold is the cap at every moment, and that every answered
	// stream was reset rather than held.
	t.Logf("requests in flight: %.0f peak (cap %d, plus the visitor's)", peakInFlight, maxReq)
	if peakInFlight > float64(maxReq+2) {
		t.Errorf("requests in flight peaked at %.0f, want <= %d (limits.max_requests_per_client) + the visitor's", peakInFlight, maxReq)
	}
	if got["200"] == 0 || got["429"] == 0 || got["rst INTERNAL_ERROR"] != got["200"] {
		t.Errorf("stream outcomes %v: want streams answered up to the cap, each reset after write_idle, and the rest refused (429)", got)
	}
	if fds1 > fds0+2*(conns+slowConns)+20 {
		t.Errorf("descriptors after release: %d (before: %d)", fds1, fds0)
	}
}
