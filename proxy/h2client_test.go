package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Conn is a hand-made HTTP/2 client over TLS: it sends exactly the
// header fields a test gives, in order, which Go's own client would
// never do (no :authority, an absolute :path, several Host fields).
type h2Conn struct {
	t      *testing.T
	conn   *tls.Conn
	fr     *http2.Framer
	hbuf   bytes.Buffer
	enc    *hpack.Encoder
	nextID uint32
}

// dialH2 opens a TLS connection with ALPN h2 and sends the preface and
// SETTINGS.
func dialH2(t *testing.T, addr, serverName string, pool *x509.CertPool) *h2Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: serverName, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("dial h2 %s: %v", serverName, err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN negotiated %q, want h2", p)
	}
	t.Cleanup(func() { conn.Close() })
	c := &h2Conn{t: t, conn: conn, nextID: 1}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr = http2.NewFramer(conn, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// h2Result is what came back on one stream.
type h2Result struct {
	status int
	header map[string][]string
	body   string
	// reset is the RST_STREAM code, if the stream was reset.
	reset    bool
	resetErr http2.ErrCode
}

// do sends one request made of fields (name, value pairs, sent as given)
// with no body and reads the answer on its stream.
func (c *h2Conn) do(fields ...string) h2Result {
	c.t.Helper()
	c.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	id := c.nextID
	c.nextID += 2
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
	return c.read(id)
}

func (c *h2Conn) read(id uint32) h2Result {
	c.t.Helper()
	res := h2Result{header: map[string][]string{}}
	var body bytes.Buffer
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("stream %d: read frame: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			c.t.Fatalf("stream %d: GOAWAY %v", id, f.ErrCode)
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			for _, hf := range f.Fields {
				if hf.Name == ":status" {
					res.status, _ = strconv.Atoi(hf.Value)
				} else {
					res.header[hf.Name] = append(res.header[hf.Name], hf.Value)
				}
			}
			if f.StreamEnded() {
				return res
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			body.Write(f.Data())
			if n := len(f.Data()); n > 0 {
				c.fr.WriteWindowUpdate(0, uint32(n))
				if !f.StreamEnded() {
					c.fr.WriteWindowUpdate(id, uint32(n))
				}
			}
			if f.StreamEnded() {
				res.body = body.String()
				return res
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				res.body, res.reset, res.resetErr = body.String(), true, f.ErrCode
				return res
			}
		}
	}
}
