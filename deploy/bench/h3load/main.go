// Command h3load is the benchmark rig's HTTP/3 load generator, on quic-go's
// own client, with the same loop over Go's HTTP/2 client so that the two
// protocols are measured by one program against one edge (nginx's HTTP/3
// is not in Debian's nginx). Two modes:
//
// Load (default): -c connections, each with -m requests in flight, for
// -d; prints requests/s, p50/p99 and, with -pid, the server's CPU time
// per request (from /proc/PID/stat):
//
//	h3load -proto h3 -addr 127.0.0.1:18443 -host localhost -pid $(pgrep -n edgeblock)
//	h3load -proto h2 -addr 127.0.0.1:18443 -host localhost -pid ...
//
// Flood (-flood N): N new QUIC connections per second for -d, each a full
// handshake and one request, then closed; prints the rate reached, the
// failures, the server's CPU share and its resident memory (VmRSS, and
// VmHWM, the peak) and, with -metrics, how many connections the edge sent
// a Retry (edgeblock_quic_retries_total). With -abandon each connection
// sends its first flight and walks away after 20ms, leaving the edge a
// handshake to time out (timeouts.read_header): the cheap flood.
//
// Certificates are not verified: the figures are about cost, not trust.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

func main() {
	proto := flag.String("proto", "h3", "h3 (QUIC, the UDP address) or h2 (TLS over TCP)")
	addr := flag.String("addr", "127.0.0.1:18443", "server `address`")
	host := flag.String("host", "localhost", "SNI and :authority `name`")
	path := flag.String("path", "/", "request `path`")
	conns := flag.Int("c", 16, "connections")
	streams := flag.Int("m", 8, "requests in flight per connection")
	dur := flag.Duration("d", 5*time.Second, "`duration`")
	pid := flag.Int("pid", 0, "server process `id`, for its CPU time (Linux)")
	flood := flag.Int("flood", 0, "new QUIC connections per second (flood mode); 0: load mode")
	metrics := flag.String("metrics", "", "the edge's /metrics `URL`, for its Retry count (flood mode)")
	abandon := flag.Bool("abandon", false, "flood mode: send the first flight and walk away (handshakes left for the edge to time out)")
	flag.Parse()
	if *flood > 0 {
		floodRun(*addr, *host, *path, *flood, *dur, *pid, *metrics, *abandon)
		return
	}
	load(*proto, *addr, *host, *path, *conns, *streams, *dur, *pid)
}

// client returns an HTTP client on one connection of proto to addr.
func client(proto, addr, host string) (*http.Client, func()) {
	tc := &tls.Config{InsecureSkipVerify: true, ServerName: host}
	switch proto {
	case "h3":
		tr := &http3.Transport{TLSClientConfig: tc, QUICConfig: &quic.Config{MaxIdleTimeout: 30 * time.Second}}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}, func() { tr.Close() }
	case "h2":
		tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxConnsPerHost: 1,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr.CloseIdleConnections
	}
	log.Fatalf("-proto %q: want h3 or h2", proto)
	return nil, nil
}

// get sends one request and reads the whole answer.
func get(c *http.Client, url, host string) (int, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func load(proto, addr, host, path string, conns, streams int, dur time.Duration, pid int) {
	url := "https://" + addr + path
	var clients []*http.Client
	for range conns {
		c, closeFn := client(proto, addr, host)
		defer closeFn()
		// Connect before the clock starts; the edge may still be getting
		// the name's certificate.
		var err error
		for try := 0; try < 5; try++ {
			if _, err = get(c, url, host); err == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			log.Fatalf("%s %s: %v", proto, url, err)
		}
		clients = append(clients, c)
	}
	var n, errs atomic.Int64
	var status sync.Map // int -> *atomic.Int64
	lat := make([][]time.Duration, conns*streams)
	var wg sync.WaitGroup
	c0 := cpuTime(pid)
	start := time.Now()
	end := start.Add(dur)
	for i, c := range clients {
		for j := range streams {
			wg.Go(func() {
				mine := &lat[i*streams+j]
				for time.Now().Before(end) {
					t := time.Now()
					code, err := get(c, url, host)
					if err != nil {
						errs.Add(1)
						continue
					}
					v, _ := status.LoadOrStore(code, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
					*mine = append(*mine, time.Since(t))
					n.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(pid) - c0
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(float64(len(all))*p))].Microseconds()) / 1000
	}
	var codes []string
	status.Range(func(k, v any) bool {
		codes = append(codes, fmt.Sprintf("%d:%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(codes)
	fmt.Printf("%s %d conns x %d streams: %.0f req/s  p50 %.2fms  p99 %.2fms  errors %d  status %s",
		proto, conns, streams, float64(n.Load())/elapsed.Seconds(), pct(0.5), pct(0.99), errs.Load(), strings.Join(codes, ","))
	if pid != 0 {
		fmt.Printf("  server %.1f µs CPU/req", cpu.Seconds()*1e6/float64(max(n.Load(), 1)))
	}
	fmt.Println()
	if n.Load() == 0 || errs.Load() > 0 {
		os.Exit(1) // a smoke run fails on it
	}
}

func floodRun(addr, host, path string, rate int, dur time.Duration, pid int, metricsURL string, abandon bool) {
	url := "https://" + addr + path
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	r0 := metric(metricsURL, "edgeblock_quic_retries_total")
	f0 := metric(metricsURL, "edgeblock_quic_handshakes_refused_total")
	var peak atomic.Int64 // edgeblock_quic_handshakes_pending, sampled
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if p := metric(metricsURL, "edgeblock_quic_handshakes_pending"); p > peak.Load() {
					peak.Store(p)
				}
			}
		}
	}()
	c0 := cpuTime(pid)
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for time.Since(start) < dur {
		<-tick.C
		wg.Go(func() {
			if abandon {
				// X25519 alone keeps the client's side of the flood cheap.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				defer cancel()
				c, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, ServerName: host, NextProtos: []string{http3.NextProtoH3},
					CurvePreferences: []tls.CurveID{tls.X25519}}, nil)
				if err == nil {
					c.CloseWithError(0, "")
				}
				ok.Add(1) // an attempt made
				return
			}
			c, closeFn := client("h3", addr, host)
			defer closeFn()
			if _, err := get(c, url, host); err != nil {
				failed.Add(1)
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(pid) - c0
	close(stop)
	<-sampled
	what := "conn/s done"
	if abandon {
		what = "abandoned handshakes/s"
	}
	fmt.Printf("flood %d new QUIC conns/s for %v: %.0f %s, %d failed", rate, dur, float64(ok.Load())/elapsed.Seconds(), what, failed.Load())
	if pid != 0 {
		rss, hwm := memory(pid)
		fmt.Printf("  server CPU %.0f%% of a core, %.0f µs/conn, RSS %d MiB (peak %d MiB)",
			100*cpu.Seconds()/elapsed.Seconds(), cpu.Seconds()*1e6/float64(max(ok.Load(), 1)), rss>>10, hwm>>10)
	}
	if metricsURL != "" {
		fmt.Printf("  Retry sent to %d, refused %d, handshakes pending peak %d",
			metric(metricsURL, "edgeblock_quic_retries_total")-r0, metric(metricsURL, "edgeblock_quic_handshakes_refused_total")-f0, peak.Load())
	}
	fmt.Println()
}

// metric reads the series name (no labels) from the edge's /metrics; 0
// when url is "" or the edge does not export it.
func metric(url, name string) int64 {
	if url == "" {
		return 0
	}
	resp, err := http.Get(url)
	if err != nil {
		log.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return 0
}

// cpuTime returns the user and system CPU time of process pid so far, or 0.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		log.Fatalf("server CPU time: %v", err)
	}
	// Fields after the command name in parentheses: state is the first,
	// utime the 12th, stime the 13th, in clock ticks (100 per second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		log.Fatalf("server CPU time: short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// memory returns the resident set and its peak of process pid, in KiB.
func memory(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}
