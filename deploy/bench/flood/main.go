// Command flood opens many keep-alive connections from many loopback
// source addresses (127.0.0.0/8) to one server and has each of them ask
// for one (blocked) name in a loop, while one visitor of another name
// measures its own latency: the picture of a popular site being blocked.
// The same connections flood twice: paced at -rate requests/s in all
// (below what the server can do: does a flood of one name slow the other
// names down?), then as fast as they can (the server saturated: how much
// does it serve, how long does a request wait?). For each it prints the
// flood's requests/s and p99, the visitor's p99 before the flood (idle)
// and during it, and with -pid the server's peak RSS.
//
//	go run ./deploy/bench/flood -addr 127.0.0.1:18443 -tls -h2 -name vm -visit localhost -pid PID
//
// Each connection sends one request at a time (HTTP/1.1 keep-alive, or
// one HTTP/2 stream at a time), so that -conns spread over -sources
// addresses stay within edgeblock's default per-client caps (256
// connections, 128 requests in flight). Certificates are not verified.
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

	"golang.org/x/net/http2"
)

var (
	addr    = flag.String("addr", "127.0.0.1:18080", "server `address`")
	useTLS  = flag.Bool("tls", false, "TLS (HTTP/1.1, or HTTP/2 with -h2)")
	useH2   = flag.Bool("h2", false, "HTTP/2 (needs -tls)")
	name    = flag.String("name", "", "the flooded (blocked) `name`")
	visit   = flag.String("visit", "localhost", "the visitor's `name` (another host on the same server)")
	conns   = flag.Int("conns", 10000, "flood `connections`")
	sources = flag.Int("sources", 100, "source addresses 127.1.x.y the connections are spread over")
	dur     = flag.Duration("d", 10*time.Second, "`duration` of each flood (after every connection is open)")
	rate    = flag.Float64("rate", 2000, "requests/s of the paced flood, over all connections (0: none)")
	idle    = flag.Duration("idle", 3*time.Second, "the visitor's idle measurement")
	pid     = flag.Int("pid", 0, "server process `id`, for its peak RSS")
)

func main() {
	flag.Parse()
	if *name == "" || (*useH2 && !*useTLS) {
		log.Fatal("flood: -name is required, and -h2 needs -tls")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *idle+2**dur+3*time.Minute) // bounded in time
	defer cancel()

	// The visitor alone first.
	idleLat := visitFor(ctx, *idle, nil)

	// Open the flood's connections, spread over the source addresses.
	start := time.Now()
	var (
		mu      sync.Mutex
		clients []func() (time.Duration, error)
		failed  atomic.Int64
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 64)
	)
	for i := range *conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			src := &net.TCPAddr{IP: net.IPv4(127, 1, byte(i%*sources/250), byte(1+i%*sources%250))}
			do, err := dial(ctx, src, *name)
			if err != nil {
				if failed.Add(1) <= 3 {
					log.Printf("flood: connection %d from %s: %v", i, src.IP, err)
				}
				return
			}
			mu.Lock()
			clients = append(clients, do)
			mu.Unlock()
		}()
	}
	wg.Wait()
	fmt.Printf("flood: %d connections open from %d addresses in %v (%d failed)\n", len(clients), *sources, time.Since(start).Round(time.Millisecond), failed.Load())

	proto := "HTTP/1.1"
	if *useH2 {
		proto = "HTTP/2"
	}
	if *useTLS {
		proto += " over TLS"
	}
	if *rate > 0 {
		flood(ctx, clients, idleLat, fmt.Sprintf("%s paced at %.0f req/s", proto, *rate), time.Duration(float64(len(clients))/(*rate)*float64(time.Second)))
	}
	flood(ctx, clients, idleLat, proto+" saturating", 0)
}

// flood has every client ask in a loop for -d, each waiting every before
// its next request (0: none), with the visitor and the RSS sampler beside
// it, and prints what it measured.
func flood(ctx context.Context, clients []func() (time.Duration, error), idleLat []time.Duration, what string, every time.Duration) {
	var peakRSS atomic.Int64
	stop := make(chan struct{})
	var wg, samplers sync.WaitGroup
	if *pid > 0 {
		samplers.Add(1)
		go func() {
			defer samplers.Done()
			for {
				if r := rss(*pid); r > peakRSS.Load() {
					peakRSS.Store(r)
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	var n, errs atomic.Int64
	lats := make([][]time.Duration, len(clients))
	floodCtx, floodStop := context.WithTimeout(ctx, *dur)
	defer floodStop()
	t0 := time.Now()
	for i, do := range clients {
		if do == nil {
			continue // broken in an earlier flood
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := t0
			if every > 0 { // spread the paced clients over the interval
				next = t0.Add(time.Duration(i) * every / time.Duration(len(clients)))
			}
			for floodCtx.Err() == nil {
				if every > 0 {
					select {
					case <-floodCtx.Done():
						return
					case <-time.After(time.Until(next)):
					}
					next = next.Add(every)
				}
				d, err := do()
				if err != nil {
					errs.Add(1)
					clients[i] = nil
					return
				}
				n.Add(1)
				lats[i] = append(lats[i], d)
			}
		}()
	}
	busyLat := visitFor(floodCtx, *dur, floodCtx.Done())
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	samplers.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	fmt.Printf("flood %s: %d connections, %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d broken connections\n",
		what, len(clients), float64(n.Load())/elapsed.Seconds(), ms(pct(all, 50)), ms(pct(all, 99)), errs.Load())
	fmt.Printf("  visitor of %s: p99 idle %.2f ms (%d requests), during the flood %.2f ms (%d requests): %.2fx\n",
		*visit, ms(pct(idleLat, 99)), len(idleLat), ms(pct(busyLat, 99)), len(busyLat), ms(pct(busyLat, 99))/max(ms(pct(idleLat, 99)), 0.001))
	if *pid > 0 {
		fmt.Printf("  server peak RSS during the flood: %d MB\n", peakRSS.Load()>>20)
	}
}

// visitFor asks for the visitor's name, one request at a time on one
// connection from 127.0.0.1, for d or until done, and returns the
// latencies.
func visitFor(ctx context.Context, d time.Duration, done <-chan struct{}) []time.Duration {
	do, err := dial(ctx, nil, *visit)
	if err != nil {
		log.Fatalf("flood: the visitor: %v", err)
	}
	var lat []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		select {
		case <-done:
			return lat
		default:
		}
		l, err := do()
		if err != nil {
			log.Printf("flood: the visitor: %v", err)
			return lat
		}
		lat = append(lat, l)
		time.Sleep(2 * time.Millisecond) // a visitor, not a second flood
	}
	return lat
}

// dial opens one connection from src (nil: any) and returns a function
// that sends one GET / for host on it and returns its latency.
func dial(ctx context.Context, src *net.TCPAddr, host string) (func() (time.Duration, error), error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	if src != nil {
		d.LocalAddr = src
	}
	c, err := d.DialContext(ctx, "tcp", *addr)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if *useTLS {
		scheme = "https"
		protos := []string{"http/1.1"}
		if *useH2 {
			protos = []string{"h2"}
		}
		tc := tls.Client(c, &tls.Config{ServerName: host, InsecureSkipVerify: true, NextProtos: protos})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	if *useH2 {
		cc, err := (&http2.Transport{}).NewClientConn(c)
		if err != nil {
			c.Close()
			return nil, err
		}
		req, _ := http.NewRequest("GET", scheme+"://"+host+"/", nil)
		return func() (time.Duration, error) {
			t := time.Now()
			resp, err := cc.RoundTrip(req)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return time.Since(t), nil
		}, nil
	}
	port := ""
	if _, p, err := net.SplitHostPort(*addr); err == nil {
		port = ":" + p
	}
	raw := []byte("GET / HTTP/1.1\r\nHost: " + host + port + "\r\nUser-Agent: flood\r\n\r\n")
	br := bufio.NewReader(c)
	return func() (time.Duration, error) {
		t := time.Now()
		if _, err := c.Write(raw); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t), nil
	}, nil
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p/100))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rss returns the resident set of process pid in bytes (Linux).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
