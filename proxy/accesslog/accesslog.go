// Package accesslog writes the edge's access lines off the request path:
// Line is what one line says and how it is encoded (byte for byte what
// slog's JSON handler would write, without its cost), Log is the bounded
// queue a goroutine writes out in batches, and Writer puts Lines into a
// Log as JSON or, for log.format text, through a slog text handler.
package accesslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Access log tuning. A line is about 300 bytes: the queue holds some
// 13,000 of them, in chunks of 64 KiB; the queue is written once a chunk
// has filled or a second has passed, whichever is first. Up to freeChunks
// written chunks are kept to be filled again.
const (
	queueBytes = 4 << 20
	batchBytes = 64 << 10
	flushEvery = time.Second
	freeChunks = 4
)

// Log writes access lines off the request path. Write appends a line
// to a bounded in-memory queue and returns at once; a goroutine writes the
// queue out in batches, at least every second, and at Close. A line that
// does not fit in the queue (the output is slower than the requests) is
// dropped and counted, so a slow disk never holds up a request. The
// output is a writer (stderr) or a file that Reopen opens anew (after
// logrotate has renamed it).
type Log struct {
	mu sync.Mutex
	// The queue: whole lines only, in chunks (a queue that grew by
	// copying would copy it all again at every doubling, on the request
	// path, whenever the writer falls behind).
	cur     []byte   // the chunk being filled; nil: none yet
	full    [][]byte // filled chunks, oldest first
	queued  int      // bytes in full and cur, and taken by writeOut until written
	free    [][]byte // empty chunks of batchBytes to fill again
	max     int
	closed  bool
	dropped func() // counts a dropped line (a metric)

	kick chan struct{} // a batch is ready
	ctl  chan func()   // write out the queue, then run this
	quit chan struct{}
	done chan struct{}

	// Owned by the writing goroutine.
	out     io.Writer
	file    *os.File // non-nil when logging to a file of ours
	path    string
	batch   [][]byte // scratch for writeOut
	onError func(error)
	every   time.Duration
}

// New returns a Log writing to w, or, when path is not
// empty, appending to the file path (created 0644 if missing). dropped is
// called for every line dropped because the queue was full; onError for a
// failed write or reopen (both may be nil). Call Close to flush and stop.
func New(w io.Writer, path string, dropped func(), onError func(error)) (*Log, error) {
	a := &Log{max: queueBytes, dropped: dropped, out: w, path: path, onError: onError, every: flushEvery,
		kick: make(chan struct{}, 1), ctl: make(chan func()), quit: make(chan struct{}), done: make(chan struct{})}
	if path != "" {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		a.file, a.out = f, f
	}
	if a.dropped == nil {
		a.dropped = func() {}
	}
	if a.onError == nil {
		a.onError = func(error) {}
	}
	a.cur = make([]byte, 0, batchBytes)
	go a.run()
	return a, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log.access_file: %w", err)
	}
	return f, nil
}

// Write queues p, which must be one or more whole lines, and never blocks
// on the output. It reports len(p) and no error even when the line was
// dropped (counted) or the log is closed, so that it can serve as a
// slog handler's writer.
func (a *Log) Write(p []byte) (int, error) {
	a.mu.Lock()
	if a.closed || a.queued+len(p) > a.max {
		a.mu.Unlock()
		a.dropped()
		return len(p), nil
	}
	full := false
	if len(a.cur)+len(p) > cap(a.cur) {
		if len(a.cur) > 0 {
			a.full = append(a.full, a.cur)
			full = true
		}
		a.cur = a.chunk(len(p))
	}
	a.cur = append(a.cur, p...)
	a.queued += len(p)
	a.mu.Unlock()
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Flush writes out every line queued before it was called.
func (a *Log) Flush() { a.do(func() {}) }

// Reopen writes out the queue to the current file, then opens the file
// by its path again: after logrotate renamed it, new lines go to a new
// file. Without a path it only flushes.
func (a *Log) Reopen() error {
	if a.path == "" {
		a.Flush()
		return nil
	}
	f, err := openFile(a.path)
	if err != nil {
		return err
	}
	if !a.do(func() {
		a.file.Close()
		a.file, a.out = f, f
	}) {
		f.Close()
		return errors.New("log.access_file: reopen after close")
	}
	return nil
}

// do has the writing goroutine write out the queue and then run fn; it
// reports false when the log is closed.
func (a *Log) do(fn func()) bool {
	ack := make(chan struct{})
	select {
	case a.ctl <- func() { fn(); close(ack) }:
		<-ack
		return true
	case <-a.done:
		return false
	}
}

// Close writes out the queue, stops the writer and closes the file of
// log.access_file. Lines written after Close are dropped.
func (a *Log) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.done
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.quit)
	<-a.done
	if a.file != nil {
		return a.file.Close()
	}
	return nil
}

// run is the writing goroutine.
func (a *Log) run() {
	defer close(a.done)
	t := time.NewTicker(a.every)
	defer t.Stop()
	for {
		select {
		case <-a.kick:
		case <-t.C:
		case fn := <-a.ctl:
			a.writeOut()
			fn()
			continue
		case <-a.quit:
			a.writeOut()
			return
		}
		a.writeOut()
	}
}

// chunk returns an empty chunk for at least n bytes; a.mu is held.
func (a *Log) chunk(n int) []byte {
	if n > batchBytes {
		return make([]byte, 0, n) // a line longer than a chunk: its own
	}
	if k := len(a.free); k > 0 {
		c := a.free[k-1]
		a.free[k-1] = nil
		a.free = a.free[:k-1]
		return c
	}
	return make([]byte, 0, batchBytes)
}

// writeOut takes the queue's chunks, writes them in order and keeps up to
// freeChunks of them to be filled again. A failed write is counted once
// per writeOut.
func (a *Log) writeOut() {
	a.mu.Lock()
	batch := append(a.batch[:0], a.full...)
	if len(a.cur) > 0 {
		batch = append(batch, a.cur)
		a.cur = nil
	}
	clear(a.full)
	a.full = a.full[:0]
	out := a.out
	a.mu.Unlock()
	// The taken chunks count against the queue's bound until written: a
	// stuck output holds at most queueBytes, not that again per take.
	taken := 0
	for _, c := range batch {
		taken += len(c)
	}
	var failed error
	for _, c := range batch {
		if _, err := out.Write(c); err != nil && failed == nil {
			failed = err
		}
	}
	if failed != nil {
		a.onError(failed)
	}
	a.mu.Lock()
	a.queued -= taken
	for _, c := range batch {
		if cap(c) == batchBytes && len(a.free) < freeChunks {
			a.free = append(a.free, c[:0])
		}
	}
	a.mu.Unlock()
	clear(batch)
	a.batch = batch[:0]
}

// Line is what an access line says. The Has fields say whether the
// optional groups are written: the rule (Rule, RuleLine, Mode), the
// visitor's country, the route,
// the origin and the error (ErrText, ErrKind); Tries is written when over 1
// and UpstreamStatus when not 0. The zero Line encodes as a line with
// empty strings and zero numbers.
type Line struct {
	Time                     time.Time
	ID, Remote, Host, Method string
	Path                     string
	Status                   int
	Outcome                  string
	Bytes                    int64
	Duration                 float64 // seconds
	Proto                    string
	TLS                      bool // Proto is written with "+tls"
	Rule                     string
	RuleLine                 int
	Mode                     string
	HasRule                  bool
	Country                  string // the visitor's, when a scoped rule was consulted
	HasCountry               bool
	Route, Origin            string
	HasRoute, HasOrigin      bool
	Tries                    int
	UpstreamStatus           int
	ErrText, ErrKind         string
	HasErr                   bool
}

// AppendJSON appends the line as slog's JSON handler would write it (same
// keys, order and formatting, "msg":"request"), ending in a newline. It is
// valid JSON for any field values.
func (l *Line) AppendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, l.Time)
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	b = appendJSONString(b, l.ID)
	b = append(b, `,"remote":`...)
	b = appendJSONString(b, l.Remote)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, l.Host)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, l.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, l.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(l.Status), 10)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, l.Outcome)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, l.Bytes, 10)
	b = append(b, `,"duration":`...)
	b = appendJSONFloat(b, l.Duration)
	b = append(b, `,"proto":`...)
	if l.TLS {
		b = appendJSONString(b, l.Proto+"+tls")
	} else {
		b = appendJSONString(b, l.Proto)
	}
	if l.HasRule {
		b = append(b, `,"rule":`...)
		b = appendJSONString(b, l.Rule)
		b = append(b, `,"rule_line":`...)
		b = strconv.AppendInt(b, int64(l.RuleLine), 10)
		b = append(b, `,"mode":`...)
		b = appendJSONString(b, l.Mode)
	}
	if l.HasCountry {
		b = append(b, `,"country":`...)
		b = appendJSONString(b, l.Country)
	}
	if l.HasRoute {
		b = append(b, `,"route":`...)
		b = appendJSONString(b, l.Route)
	}
	if l.HasOrigin {
		b = append(b, `,"origin":`...)
		b = appendJSONString(b, l.Origin)
	}
	if l.Tries > 1 {
		b = append(b, `,"tries":`...)
		b = strconv.AppendInt(b, int64(l.Tries), 10)
	}
	if l.UpstreamStatus != 0 {
		b = append(b, `,"upstream_status":`...)
		b = strconv.AppendInt(b, int64(l.UpstreamStatus), 10)
	}
	if l.HasErr {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, l.ErrText)
		b = append(b, `,"error_kind":`...)
		b = appendJSONString(b, l.ErrKind)
	}
	return append(b, "}\n"...)
}

// Attrs returns the line's fields as slog attributes, for the text format.
func (l *Line) Attrs() []slog.Attr {
	proto := l.Proto
	if l.TLS {
		proto += "+tls"
	}
	attrs := make([]slog.Attr, 0, 18)
	attrs = append(attrs,
		slog.String("request_id", l.ID), slog.String("remote", l.Remote), slog.String("host", l.Host),
		slog.String("method", l.Method), slog.String("path", l.Path), slog.Int("status", l.Status),
		slog.String("outcome", l.Outcome), slog.Int64("bytes", l.Bytes), slog.Float64("duration", l.Duration),
		slog.String("proto", proto))
	if l.HasRule {
		attrs = append(attrs, slog.String("rule", l.Rule), slog.Int("rule_line", l.RuleLine), slog.String("mode", l.Mode))
	}
	if l.HasCountry {
		attrs = append(attrs, slog.String("country", l.Country))
	}
	if l.HasRoute {
		attrs = append(attrs, slog.String("route", l.Route))
	}
	if l.HasOrigin {
		attrs = append(attrs, slog.String("origin", l.Origin))
	}
	if l.Tries > 1 {
		attrs = append(attrs, slog.Int("tries", l.Tries))
	}
	if l.UpstreamStatus != 0 {
		attrs = append(attrs, slog.Int("upstream_status", l.UpstreamStatus))
	}
	if l.HasErr {
		attrs = append(attrs, slog.String("error", l.ErrText), slog.String("error_kind", l.ErrKind))
	}
	return attrs
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD, and
// U+2028/U+2029 escaped (as encoding/json and slog do).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONFloat appends f as encoding/json writes a float64 (NaN and
// infinities, which JSON cannot hold, as 0).
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, f, fmt, -1, 64)
	if fmt == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// Writer puts access lines into a Log: encoded by hand (JSON), or through
// a slog text handler writing into the Log (text). It is safe for
// concurrent use.
type Writer struct {
	q    *Log
	text *slog.Logger // log.format text; nil for json
	pool sync.Pool    // *[]byte line buffers
}

// NewWriter returns a Writer into q, in format "text" (logfmt through slog)
// or anything else for JSON.
func NewWriter(q *Log, format string) *Writer {
	w := &Writer{q: q}
	if format == "text" {
		w.text = slog.New(slog.NewTextHandler(q, nil))
	}
	return w
}

// Write queues l; it never blocks on the output.
func (w *Writer) Write(l *Line) {
	if w.text != nil {
		w.text.LogAttrs(context.Background(), slog.LevelInfo, "request", l.Attrs()...)
		return
	}
	bp, _ := w.pool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := l.AppendJSON((*bp)[:0])
	w.q.Write(b)
	if cap(b) <= 4096 {
		*bp = b
		w.pool.Put(bp)
	}
}

// second is the RFC 3339 form of one second of one location: what comes
// before the fraction, and the zone after it.
type second struct {
	unix   int64
	loc    *time.Location
	prefix []byte // 2006-01-02T15:04:05
	zone   []byte // Z or -07:00
}

// lastSecond is the second appendTime formatted last; the lines of a busy
// second share it.
var lastSecond atomic.Pointer[second]

// appendTime appends t as t.AppendFormat(b, time.RFC3339Nano) does,
// formatting the date, clock and zone once per second (and location).
func appendTime(b []byte, t time.Time) []byte {
	u, loc := t.Unix(), t.Location()
	// Years 0 to 9999 (a day's margin for the zone): four digits.
	if u < -62167219200+86400 || u >= 253402300800-86400 {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	s := lastSecond.Load()
	if s == nil || s.unix != u || s.loc != loc {
		s = &second{unix: u, loc: loc, prefix: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastSecond.Store(s)
	}
	b = append(b, s.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		var f [10]byte
		f[0] = '.'
		for i := 9; i >= 1; i-- {
			f[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for f[n-1] == '0' {
			n--
		}
		b = append(b, f[:n]...)
	}
	return append(b, s.zone...)
}
