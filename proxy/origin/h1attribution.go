package origin

import (
	"crypto/tls"
	"time"
)

// Attribution. An HTTP/1.1 connection carries answers in the order of
// its requests, and nothing in an answer says which request it is for.
// So a pooled connection may carry the next request only when nothing
// but the answer to that request can arrive on it: anything the origin
// sent that no request asked for (a second response after a complete
// one, bytes past Content-Length, a body after a HEAD, 204 or 304
// response, bytes that arrived while the connection was idle) would be
// read as the next visitor's answer, and every later answer on that
// connection would be one behind.
//
// H1Client therefore checks a connection when a response ends (the
// bytes buffered past it, in bufio and, for https://, in the TLS layer)
// and when it takes one from the pool or its idle sweep looks at it (a
// non-blocking peek of the socket). A connection holding any byte is
// closed, never reused; the bytes are counted as an upstream error of
// kind "unsolicited" and logged, once per connection. A 408 response
// there is the origin closing an idle connection, as net/http treats it:
// closed, not counted. A 408 can also cross the next request on the
// wire, after every check: on a reused connection a 408 is therefore
// never taken as the request's answer (the request goes again on a new
// connection if resendable allows, else it fails).
//
// The checks cannot close every window: bytes an origin sends while the
// next request is on its way to it (after the peek, or sent before the
// origin sees the request) arrive as that request's answer. So an origin
// address that has sent unsolicited bytes once loses keep-alive for
// unsolicitedNoReuse: every request to it takes a new connection, which
// carries that request only.

// unsolicitedNoReuse is how long an origin address that sent bytes no
// request asked for gets no connection reused; each new report restarts
// it.
const unsolicitedNoReuse = 5 * time.Minute

// KindUnsolicited is the upstream error kind of bytes an origin sent
// that no request asked for (see Observer.Failure).
const KindUnsolicited = "unsolicited"

// quietness is what a connection holds when it should hold nothing.
type quietness int

const (
	quiet        quietness = iota // nothing: it may carry the next request
	closedByPeer                  // the origin closed it (or sent a 408)
	unsolicited                   // bytes no request asked for
)

// sampleLen is how many unsolicited bytes are peeked for the 408 check
// and the log line.
const sampleLen = 32

// tlsIdleWait bounds reading the records found on an idle TLS
// connection, to tell plaintext from a post-handshake message.
const tlsIdleWait = 10 * time.Millisecond

// afterResponse checks a connection whose response was read to its end:
// bytes buffered past it (in the bufio reader, and decrypted or whole
// records in the TLS layer) are unsolicited. It must be called with no
// read under way and the request's context no longer able to cancel.
func (pc *h1Conn) afterResponse() quietness {
	if n := pc.br.Buffered(); n > 0 {
		b, _ := pc.br.Peek(min(n, sampleLen))
		return pc.classify(b, "after a response")
	}
	tc, ok := pc.nc.(*tls.Conn)
	if !ok {
		return quiet
	}
	// A read with a deadline in the past returns what the TLS layer
	// holds without touching the socket; its timeout is not sticky.
	var b [sampleLen]byte
	tc.SetReadDeadline(aLongTimeAgo)
	n, err := tc.Read(b[:])
	tc.SetReadDeadline(time.Time{})
	switch {
	case n > 0:
		return pc.classify(b[:n], "after a response")
	case err != nil && !isTimeout(err):
		return closedByPeer
	}
	return quiet
}

// whileIdle checks a connection taken from the pool, or looked at by
// the idle sweep: a non-blocking peek of its socket.
func (pc *h1Conn) whileIdle() quietness {
	var b [sampleLen]byte
	n, closed := peekSocket(pc.nc, b[:])
	switch {
	case closed:
		return closedByPeer
	case n == 0:
		return quiet
	}
	tc, ok := pc.nc.(*tls.Conn)
	if !ok {
		return pc.classify(b[:n], "while idle")
	}
	// Records wait: see whether they hold plaintext.
	tc.SetReadDeadline(time.Now().Add(tlsIdleWait))
	n, _ = tc.Read(b[:])
	tc.SetReadDeadline(time.Time{})
	if n > 0 {
		return pc.classify(b[:n], "while idle")
	}
	// A post-handshake message, an alert, or a record cut short: the
	// connection is not known to be quiet; it closes without a word.
	return closedByPeer
}

// classify tells a 408 (the origin closing an idle connection) from
// unsolicited bytes, which it reports.
func (pc *h1Conn) classify(b []byte, where string) quietness {
	if is408(b) {
		return closedByPeer
	}
	pc.hc.noReuseUntil.Store(time.Now().Add(unsolicitedNoReuse).UnixNano())
	pc.reportUnsolicited(b, where)
	return unsolicited
}

// is408 reports whether b begins an HTTP/1.x 408 response.
func is408(b []byte) bool {
	return len(b) >= len("HTTP/1.x 408") && string(b[:7]) == "HTTP/1." && string(b[8:12]) == " 408"
}

// reportUnsolicited counts and logs unsolicited bytes on pc, once: the
// connection is closed after.
func (pc *h1Conn) reportUnsolicited(b []byte, where string) {
	if pc.reported {
		return
	}
	pc.reported = true
	pc.hc.c.unsolicited.Add(1)
	if pc.pool == nil || pc.origin == nil {
		return
	}
	pc.pool.obs.Failure(pc.origin, KindUnsolicited)
	pc.pool.log.Warn("origin sent bytes no request asked for; connection closed", "event", "origin_unsolicited",
		"route", pc.origin.Route, "origin", pc.origin.Label, "addr", pc.hc.key.addr, "where", where, "first_bytes", string(b),
		"no_reuse_for", unsolicitedNoReuse.String())
}

// Unsolicited returns how many connections the client closed because
// their origin sent bytes no request asked for.
func (c *H1Client) Unsolicited() int64 { return c.unsolicited.Load() }
