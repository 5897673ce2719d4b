package origin

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// FuzzH1ClientResponse has a loopback origin answer a GET with arbitrary
// bytes. Whatever they are, the client returns (no hang, no panic), and
// once the body is closed its connection count matches what it holds: a
// connection is either idle in the pool or closed, never leaked.
func FuzzH1ClientResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n2\r\nok\r\n0\r\nX: y\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nraw",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nokEXTRA",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	answers := make(chan []byte, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			data := <-answers
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				c.Write(data)
				c.(*net.TCPConn).CloseWrite() // no waiting for more
				io.Copy(io.Discard, br)       // until the client closes
			}()
		}
	}()
	url := "http://" + ln.Addr().String() + "/"
	f.Fuzz(func(t *testing.T, data []byte) {
		answers <- data
		c := &H1Client{DialTimeout: time.Second, MaxIdlePerHost: 2, ResponseHeaderTimeout: 200 * time.Millisecond, MaxResponseHeaderBytes: 4 << 10}
		defer c.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := c.RoundTrip(req)
		if err == nil {
			if resp.StatusCode < 100 || resp.StatusCode > 999 {
				t.Errorf("status %d", resp.StatusCode)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				// Should a read block, Close ends it.
				readCtx, stop := context.WithTimeout(ctx, time.Second)
				go func() { <-readCtx.Done(); resp.Body.Close() }()
				io.Copy(io.Discard, resp.Body)
				stop()
			}
			resp.Body.Close()
		}
		c.mu.Lock()
		hosts := c.hosts
		c.mu.Unlock()
		for _, hc := range hosts {
			hc.mu.Lock()
			open, idle := hc.open, len(hc.idle)
			hc.mu.Unlock()
			if open != idle {
				t.Errorf("%d connections open, %d idle, none in use (response %q, error %v)", open, idle, data, err)
			}
		}
	})
}
