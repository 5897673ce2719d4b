// Command handshakes measures TLS connections per second against a server
// on loopback, full handshakes against resumed ones (a ClientSessionCache
// per dialer), for TLS 1.3 and TLS 1.2. Each connection does its
// handshake, one HTTP/1.1 request (Connection: close, so that a TLS 1.3
// ticket sent after the handshake is read) and closes. With -pid it also
// prints the server process's CPU time per connection, from
// /proc/PID/stat: a figure that the load generator and other processes on
// the machine disturb less than connections per second.
//
//	go run ./deploy/bench/handshakes -addr 127.0.0.1:18443 -name localhost -pid $(pgrep -n edgeblock)
//
// Certificates are not verified: the figures are about cost, not trust.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18443", "server `address`")
	name := flag.String("name", "localhost", "SNI and Host `name`")
	dur := flag.Duration("d", 3*time.Second, "`duration` of each measurement")
	workers := flag.Int("c", 2, "concurrent dialers")
	pid := flag.Int("pid", 0, "server process `id`, for its CPU time per connection (Linux)")
	x25519 := flag.Bool("x25519", false, "offer X25519 only, not Go's default post-quantum hybrid (TLS 1.2 then fails against an ECDSA certificate on OpenSSL servers)")
	flag.Parse()
	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		for _, resume := range []bool{false, true} {
			m := measure(*addr, *name, v.version, resume, *x25519, *workers, *dur, *pid)
			mode := "full"
			if resume {
				mode = "resumed"
			}
			fmt.Printf("%s %-7s %-15v %6.0f conn/s", v.name, mode, m.curve, float64(m.conns)/dur.Seconds())
			if *pid != 0 {
				fmt.Printf("  server %4.0f µs CPU/conn", m.cpu.Seconds()*1e6/float64(max(m.conns, 1)))
			}
			fmt.Printf("  resumed %d of %d, %d errors\n", m.resumed, m.conns, m.errors)
		}
	}
}

type result struct {
	conns, resumed, errors int64
	curve                  tls.CurveID
	cpu                    time.Duration
}

func measure(addr, name string, version uint16, resume, x25519 bool, workers int, dur time.Duration, pid int) result {
	var conns, resumed, errs atomic.Int64
	var curve atomic.Uint32
	var wg sync.WaitGroup
	c0 := cpuTime(pid)
	end := time.Now().Add(dur)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cache tls.ClientSessionCache
			if resume {
				cache = tls.NewLRUClientSessionCache(4)
			}
			for time.Now().Before(end) {
				cfg := &tls.Config{InsecureSkipVerify: true, ServerName: name, MinVersion: version, MaxVersion: version,
					NextProtos: []string{"http/1.1"}, ClientSessionCache: cache}
				if x25519 {
					cfg.CurvePreferences = []tls.CurveID{tls.X25519}
				}
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
				if err != nil {
					errs.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+name+"\r\nConnection: close\r\n\r\n")
				io.Copy(io.Discard, c)
				cs := c.ConnectionState()
				c.Close()
				curve.Store(uint32(cs.CurveID))
				if cs.DidResume {
					resumed.Add(1)
				}
				conns.Add(1)
			}
		}()
	}
	wg.Wait()
	return result{conns: conns.Load(), resumed: resumed.Load(), errors: errs.Load(),
		curve: tls.CurveID(curve.Load()), cpu: cpuTime(pid) - c0}
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
