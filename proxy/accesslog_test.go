package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// slogLine encodes l with slog's JSON handler, the encoder appendJSON
// replaces: the bytes must be the same.
func slogLine(t testing.TB, l *accessLine) []byte {
	t.Helper()
	var buf bytes.Buffer
	r := slog.NewRecord(l.time, slog.LevelInfo, "request", 0)
	r.AddAttrs(l.attrs()...)
	if err := slog.NewJSONHandler(&buf, nil).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAccessLineMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 26, 11, 24, 39, 783851291, time.UTC)
	base := accessLine{time: at, id: "4de387763f15d357", remote: "127.0.0.1:45842", host: "app.example", method: "GET",
		path: "/", status: 200, outcome: "proxied", bytes: 76, duration: 0.000748036, proto: "HTTP/1.1"}
	for _, c := range []struct {
		name string
		edit func(*accessLine)
	}{
		{"plain", func(*accessLine) {}},
		{"tls, rule, route, origin, upstream status, error", func(l *accessLine) {
			l.tls, l.hasRule, l.rule, l.ruleLine, l.mode = true, true, "*.example", 7, "report"
			l.hasRoute, l.route, l.hasOrigin, l.origin = true, "app.example", true, "http://127.0.0.1:1"
			l.upstreamStatus, l.hasErr, l.errText, l.errKind = 200, true, `read tcp: "reset"`, "reset"
			l.tries = 3
		}},
		{"route without origin", func(l *accessLine) { l.hasRoute, l.route = true, "app.example" }},
		{"escapes", func(l *accessLine) { l.path = "/a\"b\\c\n\r\t\x00\x1f\x7f<>&" }},
		{"invalid UTF-8", func(l *accessLine) { l.path = "/\xff\xfe\xc3(\xe2\x82" }},
		{"line separators and non-ASCII", func(l *accessLine) { l.path = "/\u2028\u2029é日本\U0001F600" }},
		{"tiny duration", func(l *accessLine) { l.duration = 3.5e-7 }},
		{"zero duration", func(l *accessLine) { l.duration = 0 }},
		{"long duration", func(l *accessLine) { l.duration = 123456.789 }},
		{"huge numbers", func(l *accessLine) { l.bytes, l.status, l.duration = math.MaxInt64, -1, 1e22 }},
		{"other time zone", func(l *accessLine) { l.time = at.In(time.FixedZone("X", 5*3600+1800)) }},
		{"whole second", func(l *accessLine) { l.time = at.Truncate(time.Second) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := base
			c.edit(&l)
			got, want := l.appendJSON(nil), slogLine(t, &l)
			if !bytes.Equal(got, want) {
				t.Errorf("appendJSON:\n%s\nslog:\n%s", got, want)
			}
		})
	}
}

// FuzzAccessLine checks that an access line is valid JSON, byte for byte
// what slog would write, and gives back what went in (for valid UTF-8).
func FuzzAccessLine(f *testing.F) {
	f.Add("/", "app.example", "GET", "error text", 200, 0.001)
	f.Add("/\xff\"\\\n\u2028", "h\x00st", "M\tX", "\x7f", -1, 3e-9)
	f.Fuzz(func(t *testing.T, path, host, method, errText string, status int, d float64) {
		if math.IsNaN(d) || math.IsInf(d, 0) {
			return // slog refuses them; durations are finite
		}
		l := accessLine{time: time.Unix(1700000000, 123), id: "id", remote: "127.0.0.1:1", host: host, method: method, path: path,
			status: status, outcome: "proxied", duration: d, proto: "HTTP/1.1", hasRoute: true, route: host,
			hasErr: errText != "", errText: errText, errKind: "other"}
		got := l.appendJSON(nil)
		if !json.Valid(got) {
			t.Fatalf("not JSON: %q", got)
		}
		if want := slogLine(t, &l); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON %q\nslog       %q", got, want)
		}
		var m map[string]any
		if err := json.Unmarshal(got, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"path": path, "host": host, "method": method, "route": host} {
			if utf8.ValidString(v) && m[k] != v {
				t.Errorf("%s: got %q, want %q", k, m[k], v)
			}
		}
		if m["msg"] != "request" || m["status"] != float64(status) {
			t.Errorf("msg %v status %v", m["msg"], m["status"])
		}
	})
}

// gateWriter blocks every Write until open is closed.
type gateWriter struct {
	open chan struct{}
	mu   sync.Mutex
	b    bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Write(p)
}

// TestAccessLogDropsWhenFull: with the output stuck, Write never blocks;
// what does not fit in the queue is counted as dropped, and once the
// output moves again, every queued line is written whole.
func TestAccessLogDropsWhenFull(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	var dropped atomic.Int64
	a, err := NewAccessLog(g, "", func() { dropped.Add(1) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 999) + "\n")
	n := 2 * accessQueueBytes / len(line) // twice what the queue holds
	done := make(chan struct{})
	go func() {
		for range n {
			a.Write(line)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a stuck output")
	}
	if d := dropped.Load(); d < int64(n/3) || d >= int64(n) {
		t.Errorf("dropped %d of %d lines, want about half", d, n)
	}
	close(g.open)
	a.Close()
	out := g.b.String()
	written := strings.Count(out, "\n")
	if int64(written)+dropped.Load() != int64(n) {
		t.Errorf("written %d + dropped %d != %d", written, dropped.Load(), n)
	}
	if strings.Trim(out, "x\n") != "" || len(out) != written*len(line) {
		t.Errorf("output is not whole lines")
	}
	if _, err := a.Write(line); err != nil || dropped.Load() != int64(n-written+1) {
		t.Errorf("a Write after Close: err %v, not counted as dropped", err)
	}
}

// TestAccessLogFlushesWithinASecond: a lone line (far below a batch)
// reaches the output without Flush or Close.
func TestAccessLogFlushesWithinASecond(t *testing.T) {
	var out syncBuffer
	a, err := NewAccessLog(&out, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Write([]byte("one line\n"))
	start := time.Now()
	for out.String() == "" {
		if time.Since(start) > 3*time.Second {
			t.Fatal("the line was not written within 3 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

func TestAccessLogWriteErrorsCounted(t *testing.T) {
	var errs atomic.Int64
	a, _ := NewAccessLog(failWriter{}, "", nil, func(error) { errs.Add(1) })
	a.Write([]byte("x\n"))
	a.Close()
	if errs.Load() != 1 {
		t.Errorf("%d write errors counted, want 1", errs.Load())
	}
}

// TestShutdownFlushesAccessLog: the line of the last request before
// Shutdown is in the output once Shutdown returns, with no flush asked.
func TestShutdownFlushesAccessLog(t *testing.T) {
	e := startEnv(t, "routes: []\n", "blocked.example\n")
	e.logs.flush = nil // no help from the test's reads
	for i := range 3 {
		e.get("GET", "blocked.example", "/n"+string(rune('0'+i)), nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	lines := e.logs.logLines(t, "request")
	if len(lines) != 3 || lines[2]["path"] != "/n2" || lines[2]["outcome"] != OutcomeBlocked {
		t.Fatalf("access lines after Shutdown: %v", lines)
	}
}

// TestAccessLogDroppedMetric: the dropped counter is exported from start.
func TestAccessLogDroppedMetric(t *testing.T) {
	e := startEnv(t, "routes: []\n", "blocked.example\n")
	if got := e.metric("edgeblock_access_log_dropped_total"); got != "0" {
		t.Errorf("edgeblock_access_log_dropped_total = %q, want 0", got)
	}
}

// TestAccessLogTextFormat: with a text logger the access lines go through
// the queue in logfmt, with the same fields.
func TestAccessLogTextFormat(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "edgeblock.yaml")
	writeFile(t, config, "listen:\n  http: 127.0.0.1:0\n  admin: off\nblocklist:\n  file: blocklist.txt\nroutes: []\n")
	writeFile(t, filepath.Join(dir, "blocklist.txt"), "blocked.example\n")
	b, err := LoadBundle(config)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	srv, err := NewServer(NewLogger(&out, "text", slog.LevelInfo), config, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(b); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+srv.Addr("http")+"/x?y", nil)
	req.Host = "blocked.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	var line string
	for l := range strings.SplitSeq(out.String(), "\n") {
		if strings.Contains(l, "msg=request") {
			line = l
		}
	}
	for _, want := range []string{"level=INFO", "host=blocked.example", "path=/x", "status=403", "outcome=blocked", "rule=blocked.example", "mode=block", "proto=HTTP/1.1"} {
		if !strings.Contains(line, " "+want) {
			t.Errorf("text access line %q lacks %q", line, want)
		}
	}
}
