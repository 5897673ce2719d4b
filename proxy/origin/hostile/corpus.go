package hostile

import (
	"strconv"
	"strings"
	"time"
)

// late is how long after its answer an origin writes a late one.
const late = 15 * time.Millisecond

// Corpus returns the behaviours: answers the origin sends unasked, wrong
// framing, early answers, 1xx floods, resets and closes at every point.
func Corpus() []Behaviour {
	head := func(x *Exchange) string { // a 200's head, Content-Length of its body
		b := "tag=" + x.Tag + ";"
		return "HTTP/1.1 200 OK\r\nX-Tag: " + x.Tag + "\r\nContent-Length: " + itoa(len(b)) + "\r\n\r\n"
	}
	body := func(x *Exchange) string { return "tag=" + x.Tag + ";" }
	// onReuse answers the first request of a connection, and does f to
	// the next.
	onReuse := func(f func(x *Exchange)) func(x *Exchange) bool {
		return func(x *Exchange) bool {
			if x.N == 0 {
				x.ReadBody()
				x.Write(x.OK())
				return true
			}
			x.ReadBody()
			f(x)
			return false
		}
	}
	return []Behaviour{
		{Name: "well-behaved", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK())
			return true
		}},
		{Name: "extra response in the same write", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK() + x.Response(200, "X-Extra: 1\r\n"))
			return true
		}},
		{Name: "extra response while idle", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK())
			x.Late(late, x.Response(200, "X-Extra: 1\r\n"))
			return true
		}},
		{Name: "bytes past Content-Length in the same write", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK() + "tag=" + x.Tag + ";tag=" + x.Tag + ";")
			return true
		}},
		{Name: "bytes past Content-Length while idle", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK())
			x.Late(late, "tag="+x.Tag+";")
			return true
		}},
		{Name: "body after HEAD in the same write", Method: "HEAD", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(head(x) + body(x))
			return true
		}},
		{Name: "body after HEAD while idle", Method: "HEAD", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(head(x))
			x.Late(late, body(x))
			return true
		}},
		{Name: "body after 204", Method: "GET", Want: 204, Serve: func(x *Exchange) bool {
			x.Write("HTTP/1.1 204 No Content\r\nX-Tag: " + x.Tag + "\r\n\r\n" + x.OK())
			return true
		}},
		{Name: "body after 304", Method: "GET", Want: 304, Serve: func(x *Exchange) bool {
			x.Write("HTTP/1.1 304 Not Modified\r\nX-Tag: " + x.Tag + "\r\n\r\n" + x.OK())
			return true
		}},
		{Name: "interim 408 while idle, kept open", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK())
			x.Late(late, "HTTP/1.1 408 Request Timeout\r\nX-Tag: "+x.Tag+"\r\nContent-Length: 0\r\n\r\n")
			return true
		}},
		{Name: "interim 408 while idle, then close", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK())
			x.Late(late, "HTTP/1.1 408 Request Timeout\r\nX-Tag: "+x.Tag+"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			return false
		}},
		{Name: "early response before the request body", Method: "POST", Body: 2048, Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK())
			x.ReadBody()
			return true
		}},
		{Name: "early response, close without reading the body", Method: "POST", Body: 2048, Racy: true, Serve: func(x *Exchange) bool {
			x.Write(x.Response(200, "Connection: close\r\n"))
			return false
		}},
		{Name: "1xx flood", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			var b strings.Builder
			for range 50 {
				b.WriteString("HTTP/1.1 103 Early Hints\r\nLink: </" + x.Tag + ".css>; rel=preload\r\nX-Tag: " + x.Tag + "\r\n\r\n")
			}
			x.Write(b.String() + x.OK())
			return true
		}},
		{Name: "GET reset on reuse before any answer", Method: "GET", Want: 200, Serve: onReuse(func(x *Exchange) { x.Reset() })},
		{Name: "GET closed on reuse before any answer", Method: "GET", Want: 200, Serve: onReuse(func(x *Exchange) {})},
		{Name: "POST reset on reuse before any answer", Method: "POST", Body: 64, Serve: onReuse(func(x *Exchange) { x.Reset() })},
		{Name: "POST closed on reuse before any answer", Method: "POST", Body: 64, Serve: onReuse(func(x *Exchange) {})},
		{Name: "reset after the request", Method: "GET", Serve: func(x *Exchange) bool {
			x.Reset()
			return false
		}},
		{Name: "reset in the status line", Method: "GET", Serve: func(x *Exchange) bool {
			x.Write("HTTP/1.1 2")
			x.Reset()
			return false
		}},
		{Name: "reset after the headers", Method: "GET", Serve: func(x *Exchange) bool {
			x.Write(head(x))
			x.Reset()
			return false
		}},
		{Name: "reset in the body", Method: "GET", Serve: func(x *Exchange) bool {
			x.Write(head(x) + "tag=")
			x.Reset()
			return false
		}},
		{Name: "reset while idle", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			x.Write(x.OK())
			time.Sleep(late)
			x.Reset()
			return false
		}},
		{Name: "duplicate equal Content-Length", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			b := body(x)
			x.Write("HTTP/1.1 200 OK\r\nX-Tag: " + x.Tag + "\r\nContent-Length: " + itoa(len(b)) + "\r\nContent-Length: " + itoa(len(b)) + "\r\n\r\n" + b)
			return true
		}},
		{Name: "conflicting Content-Length", Method: "GET", Serve: func(x *Exchange) bool {
			b := body(x)
			x.Write("HTTP/1.1 200 OK\r\nX-Tag: " + x.Tag + "\r\nContent-Length: " + itoa(len(b)) + "\r\nContent-Length: " + itoa(len(b)+40) + "\r\n\r\n" + b + x.OK())
			return true
		}},
		{Name: "chunked and Content-Length", Method: "GET", Want: 200, Serve: func(x *Exchange) bool {
			b := body(x)
			smuggled := x.Response(200, "X-Smuggled: 1\r\n")
			x.Write("HTTP/1.1 200 OK\r\nX-Tag: " + x.Tag + "\r\nTransfer-Encoding: chunked\r\nContent-Length: " + itoa(len(b)+7+len(smuggled)) +
				"\r\n\r\n" + hex(len(b)) + "\r\n" + b + "\r\n0\r\n\r\n" + smuggled)
			return true
		}},
		{Name: "bad chunk size", Method: "GET", Serve: func(x *Exchange) bool {
			x.Write("HTTP/1.1 200 OK\r\nX-Tag: " + x.Tag + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + x.OK())
			return true
		}},
		{Name: "chunk size overflow", Method: "GET", Serve: func(x *Exchange) bool {
			x.Write("HTTP/1.1 200 OK\r\nX-Tag: " + x.Tag + "\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n" + x.OK())
			return true
		}},
		{Name: "negative Content-Length", Method: "GET", Serve: func(x *Exchange) bool {
			x.Write("HTTP/1.1 200 OK\r\nX-Tag: " + x.Tag + "\r\nContent-Length: -1\r\n\r\n" + x.OK())
			return true
		}},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func hex(n int) string { return strconv.FormatInt(int64(n), 16) }
