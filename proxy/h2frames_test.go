package proxy

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// recordCounter counts the TLS records that arrive on a connection, by
// following the record headers in the raw byte stream.
type recordCounter struct {
	net.Conn
	records atomic.Int64
	hdr     [5]byte
	nhdr    int // header bytes seen of the current record
	left    int // body bytes left of the current record
}

func (c *recordCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.left > 0 {
			k := min(c.left, len(b))
			c.left -= k
			b = b[k:]
			continue
		}
		c.hdr[c.nhdr] = b[0]
		c.nhdr++
		b = b[1:]
		if c.nhdr == len(c.hdr) {
			c.nhdr, c.left = 0, int(c.hdr[3])<<8|int(c.hdr[4])
			c.records.Add(1)
		}
	}
	return n, err
}

// dialCounted is dialFrames over a connection whose TLS records are
// counted.
func dialCounted(t *testing.T, addr string, pool *x509.CertPool, serverName string, settings ...http2.Setting) (*frameConn, *recordCounter) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordCounter{Conn: raw}
	conn := tls.Client(rc, &tls.Config{RootCAs: pool, ServerName: serverName, NextProtos: []string{"h2"}})
	if err := conn.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return startFrames(t, conn, settings...), rc
}

// TestHTTP2ResponseFrames pins what one response costs on HTTP/2: a body
// that fits net/http's 4 KiB stream buffer (the block page, an error page,
// a small proxied answer) goes as HEADERS and one DATA frame with the
// whole body, and END_STREAM on an empty DATA frame after it (the edge
// flushes the body under its write idle bound before the handler returns,
// see guardWriter.finish), in at most three TLS records. Larger bodies
// arrive whole.
func TestHTTP2ResponseFrames(t *testing.T) {
	parallelTLS(t, "app.example", "blocked.example")
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n)) // else a body past 2 KiB is chunked, and streamed
		io.WriteString(w, strings.Repeat("x", n))
	}))
	defer o.Close()
	e, pool := startTLSEnv(t, "timeouts:\n  write_idle: 1s\n"+routeConfig("app.example", `"`+o.URL+`"`), "blocked.example\n")
	for _, tt := range []struct {
		name, host, path string
		method           string // GET if empty
		status           string
		// small: the body fits the stream buffer, so it goes in one
		// DATA frame.
		small bool
		size  int // 0: any
	}{
		{name: "block page", host: "blocked.example", path: "/", status: "403", small: true},
		{name: "405 page", host: "app.example", method: "TRACE", path: "/", status: "405", small: true},
		{name: "proxied 1 KiB", host: "app.example", path: "/?n=1024", status: "200", small: true, size: 1024},
		{name: "proxied 3 KiB", host: "app.example", path: "/?n=3072", status: "200", small: true, size: 3072},
		{name: "proxied 20 KiB", host: "app.example", path: "/?n=20480", status: "200", size: 20480},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, rc := dialCounted(t, e.srv.Addr("https"), pool, tt.host)
			method := cmp.Or(tt.method, "GET")
			get := func(id uint32) {
				c.request(id, true, ":method", method, ":scheme", "https", ":authority", tt.host, ":path", tt.path)
			}
			get(1) // the first: connection set-up frames aside
			if evs, err := c.waitStream(1, 10*time.Second); err != nil || firstStatus(evs) != tt.status {
				t.Fatalf("stream 1: %+v %v", evs, err)
			}
			before := rc.records.Load()
			get(3)
			evs, err := c.waitStream(3, 10*time.Second)
			if err != nil {
				t.Fatalf("stream 3: %+v %v", evs, err)
			}
			records := rc.records.Load() - before
			var frames []string
			body := 0
			for _, ev := range evs {
				switch {
				case ev.status != "":
					frames = append(frames, fmt.Sprintf("HEADERS(%s,end=%v)", ev.status, ev.endStrm))
				case ev.isRST:
					frames = append(frames, "RST_STREAM")
				default:
					frames = append(frames, fmt.Sprintf("DATA(%d,end=%v)", ev.data, ev.endStrm))
					body += ev.data
				}
			}
			t.Logf("%s: %s in %d TLS records", tt.name, strings.Join(frames, " "), records)
			if firstStatus(evs) != tt.status {
				t.Errorf("status %q, want %s", firstStatus(evs), tt.status)
			}
			if tt.size > 0 && body != tt.size {
				t.Errorf("body %d bytes, want %d", body, tt.size)
			}
			if body == 0 {
				t.Errorf("no body")
			}
			if !tt.small {
				return
			}
			if len(evs) != 3 || evs[1].data != body || evs[2].data != 0 || !evs[2].endStrm {
				t.Errorf("frames %s, want HEADERS, one DATA with the whole body, an empty DATA with END_STREAM", strings.Join(frames, " "))
			}
			if records > 3 {
				t.Errorf("%d TLS records for one response, want at most 3", records)
			}
		})
	}
}

// TestHTTP2WriteIdleSmallResponse shows that the write idle bound holds
// for a small response, which the edge flushes as its handler ends: a
// peer that grants no window has the stream reset after
// timeouts.write_idle, and its connection serves on; and that the bound
// ends with the stream: a connection that got its answers and sits idle
// longer than write_idle is left alone.
func TestHTTP2WriteIdleSmallResponse(t *testing.T) {
	parallelTLS(t, "stalled.example")
	e, pool := startTLSEnv(t, "timeouts:\n  write_idle: 1s\n", "stalled.example\n")
	t.Run("zero window", func(t *testing.T) {
		c := dialFrames(t, e.srv.Addr("https"), pool, "stalled.example", nil, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		for _, id := range []uint32{1, 3} {
			start := time.Now()
			c.get(id, "stalled.example", "/")
			evs, err := c.waitStream(id, 10*time.Second)
			took := time.Since(start)
			if err != nil || firstStatus(evs) != "403" || len(evs) != 2 || !evs[1].isRST {
				t.Errorf("stream %d: %+v %v, want HEADERS then RST_STREAM on a connection that serves on", id, evs, err)
			}
			if took < 900*time.Millisecond || took > 8*time.Second {
				t.Errorf("stream %d reset after %v, want about write_idle (1s)", id, took)
			}
			t.Logf("zero-window peer, stream %d: reset after %v", id, took.Round(time.Millisecond))
		}
	})
	t.Run("answered then idle", func(t *testing.T) {
		c := dialFrames(t, e.srv.Addr("https"), pool, "stalled.example", nil)
		for i, id := range []uint32{1, 3, 5} {
			c.get(id, "stalled.example", "/")
			if evs, err := c.waitStream(id, 10*time.Second); err != nil || firstStatus(evs) != "403" {
				t.Fatalf("stream %d: %+v %v", id, evs, err)
			}
			if i == 1 {
				time.Sleep(2 * time.Second) // twice write_idle
			}
		}
	})
}
