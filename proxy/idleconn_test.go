package proxy

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// TestIdleConnectionMemory opens 5,000 keep-alive connections (1,000 under
// the race detector), each of which has made one request for the block
// page and then stays idle, over HTTP/1.1 and HTTP/2, and measures the
// live heap and goroutines they add. The HTTP/1.1 clients are bare TCP
// connections (a few hundred bytes each), so that figure is the server's;
// the HTTP/2 figure includes each client's TLS state and framer too, an
// upper bound. Heap plus goroutine stacks must stay under 64 KiB per
// connection (96 KiB under the race detector).
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test (5,000 connections, heap per connection): runs in .ci/run")
	}
	n, bound := 5000, 64<<10
	if raceEnabled {
		n, bound = 1000, 96<<10 // the race detector doubles stacks
	}
	e, pool := startTLSEnv(t, "limits:\n  max_conns_per_client: 1000000\n  max_requests_per_client: 1000000\n", "blocked.example\n")
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			before, stack0 := liveHeapBytes()
			g0 := runtime.NumGoroutine()
			keep := make([]any, 0, n)
			for i := range n {
				switch proto {
				case "HTTP/1.1":
					c, err := net.Dial("tcp", e.srv.Addr("http"))
					if err != nil {
						t.Fatalf("connection %d: %v", i, err)
					}
					t.Cleanup(func() { c.Close() })
					c.Write([]byte("GET / HTTP/1.1\r\nHost: blocked.example\r\n\r\n"))
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil || resp.StatusCode != 403 || resp.Close {
						t.Fatalf("connection %d: %v %v", i, resp, err)
					}
					discard(resp)
					keep = append(keep, c)
				case "HTTP/2":
					c := dialFrames(t, e.srv.Addr("https"), pool, "blocked.example", nil)
					c.get(1, "blocked.example", "/")
					if evs, err := c.waitStream(1, 10*time.Second); err != nil || len(evs) == 0 || evs[0].status != "403" {
						t.Fatalf("connection %d: %v %v", i, evs, err)
					}
					keep = append(keep, c)
				}
			}
			time.Sleep(200 * time.Millisecond) // let the handlers' goroutines end
			after, stack1 := liveHeapBytes()
			g1 := runtime.NumGoroutine()
			per := float64(int64(after)-int64(before)) / float64(n)
			stack := float64(int64(stack1)-int64(stack0)) / float64(n)
			t.Logf("%s: %d idle connections: %.1f KiB of live heap, %.1f KiB of stacks and %.2f goroutines per connection",
				proto, n, per/1024, stack/1024, float64(g1-g0)/float64(n))
			if per+stack > float64(bound) {
				t.Errorf("%.1f KiB per idle connection, want under %d KiB", (per+stack)/1024, bound>>10)
			}
			runtime.KeepAlive(keep)
		})
	}
}

func discard(resp *http.Response) {
	buf := make([]byte, 4096)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			return
		}
	}
}

// liveHeapBytes returns the heap in use after a full collection, and the
// goroutine stacks.
func liveHeapBytes() (heap, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse
}
