package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// callWriter is a ResponseWriter that records the Flush and
// SetWriteDeadline calls http.ResponseController makes on it.
type callWriter struct {
	h         http.Header
	calls     []string
	deadlines []time.Time
}

func (w *callWriter) Header() http.Header         { return w.h }
func (w *callWriter) WriteHeader(int)             {}
func (w *callWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *callWriter) FlushError() error           { w.calls = append(w.calls, "flush"); return nil }
func (w *callWriter) SetWriteDeadline(t time.Time) error {
	w.calls = append(w.calls, "deadline")
	w.deadlines = append(w.deadlines, t)
	return nil
}

// TestGuardWriterFinishHTTP1: an HTTP/1.1 response whose body is whole
// (Content-Length written in full) is flushed by the guard, under its
// watchdog, and no connection deadline is set; any other response (no
// Content-Length, a short or empty body, no header at all) leaves the end
// to net/http under a write deadline of write_idle from now.
func TestGuardWriterFinishHTTP1(t *testing.T) {
	const idle = 3 * time.Second
	for _, tt := range []struct {
		name   string
		length string // Content-Length header, "" for none
		body   []string
		want   string
	}{
		{"whole body in one write", "10", []string{"0123456789"}, "flush"},
		{"whole body in pieces", "10", []string{"01234", "", "56789"}, "flush"},
		{"no Content-Length (chunked)", "", []string{"0123456789"}, "deadline"},
		{"short body", "10", []string{"01234"}, "deadline"},
		{"empty body", "0", nil, "deadline"},
		{"malformed Content-Length", "1O", []string{"1O"}, "deadline"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &callWriter{h: http.Header{}}
			if tt.length != "" {
				w.h.Set("Content-Length", tt.length)
			}
			g := newGuardWriter(w, idle, nil, false)
			g.WriteHeader(http.StatusForbidden)
			for _, b := range tt.body {
				g.Write([]byte(b))
			}
			before := time.Now()
			g.finish()
			if got := strings.Join(w.calls, ","); got != tt.want {
				t.Fatalf("calls %q, want %q", got, tt.want)
			}
			if tt.want == "deadline" && (w.deadlines[0].Before(before.Add(idle)) || w.deadlines[0].After(time.Now().Add(idle))) {
				t.Errorf("deadline %v, want write_idle (%v) from finish", w.deadlines[0], idle)
			}
		})
	}
	t.Run("pooled writer forgets the last length", func(t *testing.T) {
		w := &callWriter{h: http.Header{"Content-Length": {"2"}}}
		g := newGuardWriter(w, idle, nil, false)
		g.Write([]byte("ok"))
		g.finish()
		w2 := &callWriter{h: http.Header{}}
		g2 := newGuardWriter(w2, idle, nil, false)
		g2.Write([]byte("ok"))
		g2.finish()
		if got := strings.Join(w2.calls, ","); got != "deadline" {
			t.Errorf("second response without Content-Length: calls %q, want a deadline", got)
		}
	})
}

// TestWriteIdlePipelined: a client that pipelines block-page requests and
// never reads is cut off after write_idle although every response is
// whole when its handler returns (the flush that finish makes is bounded
// by the watchdog), and a client that reads gets every response.
func TestWriteIdlePipelined(t *testing.T) {
	e, _ := startTLSEnv(t, "timeouts:\n  write_idle: 1s\n", "blocked.example\n")
	const n = 3000 // 3000 block pages: megabytes, beyond any socket buffer

	t.Run("reads", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.srv.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go fmt.Fprint(conn, strings.Repeat("GET / HTTP/1.1\r\nHost: blocked.example\r\n\r\n", 100))
		br := bufio.NewReader(conn)
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		for i := range 100 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			b := make([]byte, resp.ContentLength)
			if _, err := io.ReadFull(br, b); err != nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "blocked.example") {
				t.Fatalf("response %d: %d, %d bytes, %v", i, resp.StatusCode, len(b), err)
			}
		}
	})
	t.Run("does not read", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.srv.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.(*net.TCPConn).SetReadBuffer(4096)
		go fmt.Fprint(conn, strings.Repeat("GET / HTTP/1.1\r\nHost: blocked.example\r\n\r\n", n))
		took := edgetest.WaitFor(t, 20*time.Second, "the edge to close the connection of a client that does not read", func() bool {
			return edgetest.MetricValue(e.scrape(), `edgeblock_connections_open{listener="http"}`) == "0"
		})
		t.Logf("closed %v after the requests were sent", took.Round(time.Millisecond))
	})
}
