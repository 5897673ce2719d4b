package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// slogLine encodes l with slog's JSON handler, the encoder appendJSON
// replaces: the bytes must be the same.
func slogLine(t testing.TB, l *Line) []byte {
	t.Helper()
	var buf bytes.Buffer
	r := slog.NewRecord(l.Time, slog.LevelInfo, "request", 0)
	r.AddAttrs(l.Attrs()...)
	if err := slog.NewJSONHandler(&buf, nil).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAccessLineMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 26, 11, 24, 39, 783851291, time.UTC)
	base := Line{Time: at, ID: "4de387763f15d357", Remote: "127.0.0.1:45842", Host: "app.example", Method: "GET",
		Path: "/", Status: 200, Outcome: "proxied", Bytes: 76, Duration: 0.000748036, Proto: "HTTP/1.1"}
	for _, c := range []struct {
		name string
		edit func(*Line)
	}{
		{"plain", func(*Line) {}},
		{"tls, rule, route, origin, upstream status, error", func(l *Line) {
			l.TLS, l.HasRule, l.Rule, l.RuleLine, l.Mode = true, true, "*.example", 7, "report"
			l.HasRoute, l.Route, l.HasOrigin, l.Origin = true, "app.example", true, "http://127.0.0.1:1"
			l.UpstreamStatus, l.HasErr, l.ErrText, l.ErrKind = 200, true, `read tcp: "reset"`, "reset"
			l.Tries = 3
		}},
		{"country", func(l *Line) { l.HasCountry, l.Country = true, "FR" }},
		{"route without origin", func(l *Line) { l.HasRoute, l.Route = true, "app.example" }},
		{"escapes", func(l *Line) { l.Path = "/a\"b\\c\n\r\t\x00\x1f\x7f<>&" }},
		{"invalid UTF-8", func(l *Line) { l.Path = "/\xff\xfe\xc3(\xe2\x82" }},
		{"line separators and non-ASCII", func(l *Line) { l.Path = "/\u2028\u2029é日本\U0001F600" }},
		{"tiny duration", func(l *Line) { l.Duration = 3.5e-7 }},
		{"zero duration", func(l *Line) { l.Duration = 0 }},
		{"long duration", func(l *Line) { l.Duration = 123456.789 }},
		{"huge numbers", func(l *Line) { l.Bytes, l.Status, l.Duration = math.MaxInt64, -1, 1e22 }},
		{"other time zone", func(l *Line) { l.Time = at.In(time.FixedZone("X", 5*3600+1800)) }},
		{"whole second", func(l *Line) { l.Time = at.Truncate(time.Second) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := base
			c.edit(&l)
			got, want := l.AppendJSON(nil), slogLine(t, &l)
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
		l := Line{Time: time.Unix(1700000000, 123), ID: "id", Remote: "127.0.0.1:1", Host: host, Method: method, Path: path,
			Status: status, Outcome: "proxied", Duration: d, Proto: "HTTP/1.1", HasRoute: true, Route: host,
			HasErr: errText != "", ErrText: errText, ErrKind: "other"}
		got := l.AppendJSON(nil)
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
	a, err := New(g, "", func() { dropped.Add(1) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 999) + "\n")
	n := 2 * queueBytes / len(line) // twice what the queue holds
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
	var out edgetest.LogBuffer
	a, err := New(&out, "", nil, nil)
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
	a, _ := New(failWriter{}, "", nil, func(error) { errs.Add(1) })
	a.Write([]byte("x\n"))
	a.Close()
	if errs.Load() != 1 {
		t.Errorf("%d write errors counted, want 1", errs.Load())
	}
}

// TestAccessLogChunksKeepOrder: lines of many sizes, one longer than a
// chunk, queued while the output is stuck and across many chunks, come
// out whole and in the order written, also in a second round that fills
// the chunks kept from the first.
func TestAccessLogChunksKeepOrder(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	a, err := New(g, "", func() { t.Error("a line was dropped") }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	write := func(from, to int) {
		for i := from; i < to; i++ {
			n := 1 + i*37%900
			if i == from+500 {
				n = batchBytes + 1000 // longer than a chunk
			}
			line := fmt.Appendf(nil, "%d %s\n", i, strings.Repeat("y", n))
			want.Write(line)
			a.Write(line)
		}
	}
	write(0, 2000) // about 15 chunks, all queued behind the stuck output
	close(g.open)
	a.Flush()
	write(2000, 4000)
	a.Close()
	if got := g.b.String(); got != want.String() {
		gl, wl := strings.Split(got, "\n"), strings.Split(want.String(), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("line %d differs: got %.40q, want %.40q (%d lines, want %d)", i, gl[i], wl[i], len(gl), len(wl))
			}
		}
		t.Fatalf("got %d lines, want %d", len(gl), len(wl))
	}
}

// TestAppendTimeMatchesFormat checks appendTime against time's own
// RFC3339Nano formatting: nanoseconds with and without trailing zeros,
// consecutive times within one second and across seconds, several zones,
// both sides of a daylight saving change, and years outside 0-9999.
func TestAppendTimeMatchesFormat(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	locs := []*time.Location{time.UTC, time.Local, ny, time.FixedZone("", -(3*3600 + 30*60)), time.FixedZone("X", 5*3600+45*60)}
	starts := []time.Time{
		time.Date(2026, 12, 7, 10, 30, 27, 0, time.UTC),
		time.Date(2026, 3, 8, 6, 59, 59, 999_999_990, time.UTC), // 01:59:59 in New York, just before the change
		time.Date(2026, 11, 1, 5, 59, 58, 100, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC), // before the epoch
		time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	steps := []time.Duration{0, 1, 10, 120, 1000, 1_000_000, 250 * time.Millisecond, 999_999_999, time.Second}
	n := 0
	for _, s := range starts {
		for _, loc := range locs {
			tt := s.In(loc)
			for range 4 {
				for _, d := range steps {
					tt = tt.Add(d)
					want := tt.AppendFormat([]byte("x"), time.RFC3339Nano)
					if got := appendTime([]byte("x"), tt); string(got) != string(want) {
						t.Fatalf("appendTime(%v) = %s, want %s", tt, got, want)
					}
					n++
				}
			}
		}
	}
	now := time.Now() // with a monotonic reading, as the access line's
	for i := range 1000 {
		tt := now.Add(time.Duration(i) * 1234567 * time.Nanosecond)
		if got, want := appendTime(nil, tt), tt.AppendFormat(nil, time.RFC3339Nano); string(got) != string(want) {
			t.Fatalf("appendTime(%v) = %s, want %s", tt, got, want)
		}
	}
	t.Logf("%d times in fixed zones checked", n)
}
