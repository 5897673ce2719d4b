// Package hostile is a corpus of origin behaviours, malicious and merely
// buggy, served by raw TCP servers on loopback, for tests of the clients
// that carry visitors' requests to origins.
//
// Every request a visitor sends carries a tag (X-Tag, see Tag), and every
// answer the origin writes is tagged with the request it reads last: in
// X-Tag and Set-Cookie headers and in the body. A visitor that finds a
// tag other than its own in what it got has received bytes the origin
// sent for another request (Check).
package hostile

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Window is how long after the origin wrote a late answer (Exchange.Late)
// a request it then receives may see that answer: no HTTP/1.1 client can
// tell bytes that arrive after it wrote its request from the response to
// that request, so a request that may have been written as the late bytes
// were under way is allowed to see them.
const Window = 100 * time.Millisecond

// Behaviour is one way an origin answers.
type Behaviour struct {
	Name string
	// Method and Body (a body of that many bytes; 0: none) of the
	// visitors' requests.
	Method string
	Body   int
	// Want, when not 0, is the status every visitor must get: the origin
	// gives every request it reads its proper answer (before or after its
	// misbehaviour). Otherwise some visitors may get errors.
	Want int
	// Racy: the outcome of a visitor may depend on timing (a reset while
	// the request body is written): visitors' outcomes are not compared
	// between clients, only what they received.
	Racy bool
	// Timeout bounds a visitor's request and the read of its answer;
	// 0: 10 s.
	Timeout time.Duration
	// Serve answers one request; it reports whether the origin reads the
	// next request on the connection.
	Serve func(x *Exchange) (keep bool)
}

// Tag returns the tag of visitor request id.
func Tag(id int) string { return fmt.Sprintf("Q%07dQ", id) }

var tagRE = regexp.MustCompile(`Q[0-9]{7}Q`)

// Tags returns the tags found in b.
func Tags(b []byte) []string { return tagRE.FindAllString(string(b), -1) }

// Origin serves one Behaviour on a loopback listener.
type Origin struct {
	b  Behaviour
	ln net.Listener
	wg sync.WaitGroup

	busy    atomic.Int32 // requests being answered (late writes included)
	accepts atomic.Int32

	mu       sync.Mutex
	conns    []net.Conn
	received map[string]int    // tag: times received
	mayMix   map[string]string // tag: a late answer it may see
	lastLate time.Time
}

// Start serves b until the test ends.
func Start(t testing.TB, b Behaviour) *Origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &Origin{b: b, ln: ln, received: map[string]int{}, mayMix: map[string]string{}}
	t.Cleanup(o.Close)
	o.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.accepts.Add(1)
			o.mu.Lock()
			o.conns = append(o.conns, c)
			o.mu.Unlock()
			o.wg.Go(func() { o.serveConn(c) })
		}
	})
	return o
}

// Close stops the origin and closes its connections.
func (o *Origin) Close() {
	o.ln.Close()
	o.mu.Lock()
	for _, c := range o.conns {
		c.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

// Addr is the origin's host:port.
func (o *Origin) Addr() string { return o.ln.Addr().String() }

// Accepts is how many connections the origin accepted.
func (o *Origin) Accepts() int { return int(o.accepts.Load()) }

// Received is how many times the origin read a request tagged tag.
func (o *Origin) Received(tag string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.received[tag]
}

// Settle waits until the origin answers no request (its late writes
// done) and Window has passed since its latest late write, so that the
// next request cannot be confused with them.
func (o *Origin) Settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for o.busy.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the origin is still answering after 10s", o.b.Name)
		}
		time.Sleep(time.Millisecond)
	}
	o.mu.Lock()
	wait := Window - time.Since(o.lastLate)
	o.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
}

func (o *Origin) serveConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	var lateAt time.Time
	var lateTag string
	for n := 0; ; n++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		o.busy.Add(1)
		x := &Exchange{Req: req, Tag: req.Header.Get("X-Tag"), N: n, c: c, br: br, o: o}
		o.mu.Lock()
		o.received[x.Tag]++
		if !lateAt.IsZero() && time.Since(lateAt) < Window {
			o.mayMix[x.Tag] = lateTag
		}
		o.mu.Unlock()
		keep := o.b.Serve(x)
		lateAt, lateTag = x.lateAt, x.Tag
		if keep {
			io.Copy(io.Discard, req.Body) // what Serve left of the body
		}
		o.busy.Add(-1)
		if !keep {
			return
		}
	}
}

// Exchange is one request the origin read, and its way to answer.
type Exchange struct {
	Req *http.Request
	Tag string // the request's X-Tag
	N   int    // the request's index on its connection, from 0

	c      net.Conn
	br     *bufio.Reader
	o      *Origin
	lateAt time.Time
}

// Response returns a response tagged with the request's tag: status,
// extra header lines (each ending in CRLF), and the body "tag=TAG;"
// framed by Content-Length.
func (x *Exchange) Response(status int, header string) string {
	body := "tag=" + x.Tag + ";"
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nX-Tag: %s\r\nSet-Cookie: session=%s\r\n%sContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), x.Tag, x.Tag, header, len(body), body)
}

// OK is Response(200, "").
func (x *Exchange) OK() string { return x.Response(200, "") }

// Write writes s in one write.
func (x *Exchange) Write(s string) { x.c.Write([]byte(s)) }

// ReadBody reads the rest of the request's body.
func (x *Exchange) ReadBody() { io.Copy(io.Discard, x.Req.Body) }

// Late writes s after d, while the connection is idle: unless the next
// request has arrived by then (it would be an answer to that request).
func (x *Exchange) Late(d time.Duration, s string) {
	time.Sleep(d)
	if x.br.Buffered() > 0 || pending(x.c) {
		return
	}
	x.o.mu.Lock()
	x.lateAt = time.Now()
	x.o.lastLate = x.lateAt
	x.o.mu.Unlock()
	x.Write(s)
}

// Reset resets the connection (RST): the caller returns false.
func (x *Exchange) Reset() {
	x.c.(*net.TCPConn).SetLinger(0)
	x.c.Close()
}

// pending reports whether bytes wait on c, without blocking.
func pending(c net.Conn) bool {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	got := false
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		got = err == nil && n > 0
		return true
	})
	return got
}

// Foreign returns the tags in got that are neither own nor a late
// answer own's request may see (see Window): answers the origin sent for
// other requests.
func (o *Origin) Foreign(own string, got []byte) []string {
	o.mu.Lock()
	mix := o.mayMix[own]
	o.mu.Unlock()
	var bad []string
	for _, tag := range Tags(got) {
		if tag != own && tag != mix {
			bad = append(bad, tag)
		}
	}
	return bad
}

// Ambiguous reports whether the request tagged own may see a late answer.
func (o *Origin) Ambiguous(own string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mayMix[own] != ""
}
