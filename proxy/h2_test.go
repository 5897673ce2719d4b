package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// frameConn is a hand-driven HTTP/2 client connection: frames are written
// exactly as a test says, with golang.org/x/net/http2's Framer.
type frameConn struct {
	t        *testing.T
	conn     net.Conn
	fr       *http2.Framer
	hbuf     bytes.Buffer
	enc      *hpack.Encoder
	settings map[http2.SettingID]uint32 // the server's first SETTINGS
}

// dialFrames opens a TLS connection with ALPN h2 to addr for serverName (from
// local, when not nil), sends the preface and settings, reads the server's
// SETTINGS and acknowledges them.
func dialFrames(t *testing.T, addr string, pool *x509.CertPool, serverName string, local net.Addr, settings ...http2.Setting) *frameConn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: local}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: serverName, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("dial h2: %v", err)
	}
	return startFrames(t, conn, settings...)
}

// startFrames is dialFrames on a TLS connection already made.
func startFrames(t *testing.T, conn *tls.Conn, settings ...http2.Setting) *frameConn {
	t.Helper()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	c := &frameConn{t: t, conn: conn, fr: http2.NewFramer(conn, conn), settings: map[http2.SettingID]uint32{}}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			sf.ForeachSetting(func(s http2.Setting) error { c.settings[s.ID] = s.Val; return nil })
			break
		}
	}
	if err := c.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Time{})
	t.Cleanup(func() { conn.Close() })
	return c
}

// headerBlock encodes name/value pairs in order, pseudo-headers first as
// given.
func (c *frameConn) headerBlock(fields ...string) []byte {
	c.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(c.hbuf.Bytes())
}

// request sends a HEADERS frame on stream id with the given fields.
func (c *frameConn) request(id uint32, endStream bool, fields ...string) {
	c.t.Helper()
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.headerBlock(fields...), EndStream: endStream, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// get sends a GET for host and path on stream id.
func (c *frameConn) get(id uint32, host, path string) {
	c.t.Helper()
	c.request(id, true, ":method", "GET", ":scheme", "https", ":authority", host, ":path", path)
}

// h2Event is what the server sent about one stream, or the connection.
type h2Event struct {
	stream  uint32
	status  string // from a response HEADERS
	rst     http2.ErrCode
	isRST   bool
	goAway  bool
	code    http2.ErrCode // GOAWAY code
	data    int           // DATA bytes
	endStrm bool
}

// next reads frames until one about a stream or the connection that
// matters (HEADERS, DATA, RST_STREAM, GOAWAY) arrives, or the timeout.
func (c *frameConn) next(timeout time.Duration) (h2Event, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return h2Event{}, err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			return h2Event{stream: f.StreamID, status: f.PseudoValue("status"), endStrm: f.StreamEnded()}, nil
		case *http2.DataFrame:
			return h2Event{stream: f.StreamID, data: len(f.Data()), endStrm: f.StreamEnded()}, nil
		case *http2.RSTStreamFrame:
			return h2Event{stream: f.StreamID, isRST: true, rst: f.ErrCode}, nil
		case *http2.GoAwayFrame:
			return h2Event{goAway: true, code: f.ErrCode}, nil
		}
	}
}

// waitStream reads events until stream id ends (END_STREAM or RST_STREAM)
// or the connection is closed with an error (a GOAWAY with an error code),
// and returns the events of id, and GOAWAYs.
func (c *frameConn) waitStream(id uint32, timeout time.Duration) ([]h2Event, error) {
	deadline := time.Now().Add(timeout)
	var evs []h2Event
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return evs, errors.New("timed out")
		}
		ev, err := c.next(left)
		if err != nil {
			return evs, err
		}
		if ev.goAway {
			evs = append(evs, ev)
			if ev.code != http2.ErrCodeNo {
				return evs, nil
			}
			continue
		}
		if ev.stream != id {
			continue
		}
		evs = append(evs, ev)
		if ev.isRST || ev.endStrm {
			return evs, nil
		}
	}
}

// TestHTTP2Conformance pins the three places where Go's HTTP/2 server
// departs from RFC 9113 ("HTTP/2 conformance" in cmd/edgeblock/help/threat-model.md lists them),
// with hand-made frames, and shows that none lets a malformed request
// reach an origin unsanitized.
func TestHTTP2Conformance(t *testing.T) {
	parallelTLS(t, "app.example")
	var mu sync.Mutex
	var seen []http.Header
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		io.WriteString(w, "origin")
	}))
	defer o.Close()
	e, pool := startTLSEnv(t, routeConfig("app.example", `"`+o.URL+`"`), "")
	get := []string{":method", "GET", ":scheme", "https", ":authority", "app.example", ":path", "/"}
	for _, tt := range []struct {
		name string
		send func(c *frameConn)
		// want is the status of stream 1, or "GOAWAY PROTOCOL_ERROR".
		want string
		// forwarded is how many requests reach the origin; check
		// looks at their headers.
		forwarded int
		check     func(h http.Header) string
	}{
		{
			// RFC 9113 §6.5.3: values are processed in order, the last
			// wins. Go treats duplicates as a connection error (stricter).
			name: "duplicate SETTINGS",
			send: func(c *frameConn) {
				c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 16}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
				c.request(1, true, get...)
			},
			want: "GOAWAY PROTOCOL_ERROR",
		},
		{
			// RFC 9113 §8.2.2: a request with a connection-specific field
			// is malformed, a stream error PROTOCOL_ERROR (§8.1.1). Go
			// answers 400 instead of resetting the stream (looser in form,
			// the same in effect).
			name: "connection-specific header fields",
			send: func(c *frameConn) {
				c.request(1, true, append(get, "connection", "keep-alive", "keep-alive", "timeout=5", "transfer-encoding", "chunked", "upgrade", "h2c")...)
			},
			want: "400",
		},
		{
			name: "TE other than trailers",
			send: func(c *frameConn) { c.request(1, true, append(get, "te", "gzip")...) },
			want: "400",
		},
		{
			// RFC 9113 §8.2.2: TE "MUST NOT contain any value other than
			// trailers". Go lets an empty TE through (looser); the reverse
			// proxy drops TE, a hop-by-hop field, so the origin never sees it.
			name:      "empty TE",
			send:      func(c *frameConn) { c.request(1, true, append(get, "te", "")...) },
			want:      "200",
			forwarded: 1,
			check: func(h http.Header) string {
				if _, ok := h["Te"]; ok {
					return fmt.Sprintf("origin got TE %q", h.Values("Te"))
				}
				return ""
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			c := dialFrames(t, e.srv.Addr("https"), pool, "app.example", nil)
			tt.send(c)
			evs, err := c.waitStream(1, 5*time.Second)
			got := "nothing"
			for _, ev := range evs {
				switch {
				case ev.goAway && ev.code != http2.ErrCodeNo:
					got = "GOAWAY " + ev.code.String()
				case ev.isRST:
					got = "RST_STREAM " + ev.rst.String()
				case ev.status != "":
					got = ev.status
				}
				if got != "nothing" {
					break
				}
			}
			if got != tt.want {
				t.Errorf("server answered %s (%v), want %s", got, err, tt.want)
			}
			time.Sleep(100 * time.Millisecond) // anything forwarded has arrived by now
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != tt.forwarded {
				t.Fatalf("origin got %d requests, want %d: %v", len(seen), tt.forwarded, seen)
			}
			for _, h := range seen {
				if msg := tt.check(h); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}
