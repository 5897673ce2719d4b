package origin

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/origin/hostile"
)

// FuzzH1ClientAttribution has a loopback origin answer requests with
// arbitrary bytes: script is split at '|' into the answers to the
// requests the origin reads, in turn, each written in one write with
// every '$' replaced by the tag of the request it answers; a '~' in an
// answer writes the bytes after it later (while the connection is idle),
// a '!' closes the connection after the answer, as the last answer does;
// requests past the last answer are closed unanswered. The first byte picks the
// method (GET, HEAD, POST with a body). The requests go one after another
// (each once the origin is done with the previous one) or concurrently.
// Whatever the bytes, no visitor gets bytes tagged for another request,
// and a POST is never received twice.
func FuzzH1ClientAttribution(f *testing.F) {
	for _, seed := range []string{
		"gHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntag=$;",
		"gHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntag=$;HTTP/1.1 200 OK\r\nSet-Cookie: s=$\r\nContent-Length: 10\r\n\r\ntag=$;",
		"gHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntag=$;~HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntag=$;",
		"hHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntag=$;",
		"gHTTP/1.1 204 No Content\r\n\r\ntag=$;|HTTP/1.1 304 Not Modified\r\n\r\ntag=$;",
		"gHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntag=$;~HTTP/1.1 408 Request Timeout\r\n\r\n",
		"pHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntag=$;|!",
		"gHTTP/1.1 103 Early Hints\r\nX-T: $\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\na\r\ntag=$;\r\n0\r\n\r\ntag=$;",
		"gHTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\ntag=$;|HTTP/1.1 200 OK\r\n\r\n$!",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, script []byte, concurrent bool) {
		if len(script) == 0 || len(script) > 4<<10 {
			return
		}
		b := hostile.Behaviour{Name: "fuzz", Method: "GET", Timeout: 200 * time.Millisecond}
		switch script[0] % 3 {
		case 1:
			b.Method = "HEAD"
		case 2:
			b.Method, b.Body = "POST", 16
		}
		answers := strings.Split(string(script[1:]), "|")
		var turn atomic.Int64
		b.Serve = func(x *hostile.Exchange) bool {
			n := int(turn.Add(1) - 1)
			if n >= len(answers) {
				return false // the script is over: closes unanswered
			}
			a := strings.ReplaceAll(answers[n], "$", x.Tag)
			closes := n == len(answers)-1 // so that no visitor waits for more
			now, later, _ := strings.Cut(a, "~")
			if concurrent {
				now, later = now+later, "" // late bytes could cross a request on its way
			}
			x.ReadBody()
			x.Write(now)
			if later != "" {
				time.Sleep(5 * time.Millisecond)
				x.Write(later)
			}
			return !closes && !strings.Contains(a, "!")
		}
		o := hostile.Start(t, b)
		c := &H1Client{DialTimeout: time.Second, MaxIdlePerHost: 2, ResponseHeaderTimeout: 100 * time.Millisecond, MaxResponseHeaderBytes: 4 << 10}
		defer c.CloseIdleConnections()
		url := "http://" + o.Addr() + "/"
		req, _ := http.NewRequest(b.Method, url, bytes.NewReader(make([]byte, b.Body)))
		check := func(i int) {
			tag := nextTag()
			r := hostile.Visit(c, url, sites[i%2], b, tag)
			if f := o.Foreign(tag, r.Got); len(f) > 0 {
				t.Errorf("visitor %s received %s's answer: %q", tag, f[0], r.Got)
			}
			if n := o.Received(tag); n > 1 && !resendable(req) {
				t.Errorf("the origin got %s %s %d times", b.Method, tag, n)
			}
		}
		if !concurrent {
			for i := range 4 {
				o.Settle(t)
				check(i)
			}
			return
		}
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Go(func() {
				for i := range 3 {
					check(g + i)
				}
			})
		}
		wg.Wait()
	})
}
