package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// openOrigin is an origin that holds requests open: /ws upgrades to a
// tunnel that echoes what it reads, /events sends an event every 50ms
// until the request ends, and /slow answers after a minute.
func openOrigin(t *testing.T) *httptest.Server {
	t.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ws":
			if r.Header.Get("Upgrade") != "websocket" {
				http.Error(w, "want upgrade", 400)
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			io.Copy(conn, brw)
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-tick.C:
				case <-r.Context().Done():
					return
				}
			}
		case "/slow":
			select {
			case <-time.After(time.Minute):
				io.WriteString(w, "late")
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(o.Close)
	return o
}

// openConn is one long-lived exchange with the edge, read in the
// background: it records when data last arrived and when and how it ended.
type openConn struct {
	name string
	mu   sync.Mutex
	last time.Time // last data received
	end  time.Time // zero while open
	err  error     // what ended it; io.EOF for a clean end
	body string    // for a plain request, the whole answer
}

func (c *openConn) got(n int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 {
		c.last = time.Now()
	}
	if err != nil && c.end.IsZero() {
		c.end, c.err = time.Now(), err
	}
}

func (c *openConn) state() (last, end time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.end, c.err
}

// tunnel opens a WebSocket-style tunnel to host through the edge over a raw
// connection, checks an echo, and then keeps sending "ping" every 50ms and
// reading the echoes.
func tunnel(t *testing.T, e *testEnv, host string) *openConn {
	t.Helper()
	conn, err := net.Dial("tcp", e.srv.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", host)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade to %s: %v %v", host, resp, err)
	}
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("first echo from %s = %q, %v", host, buf, err)
	}
	conn.SetReadDeadline(time.Time{})
	c := &openConn{name: "tunnel to " + host}
	go func() {
		for {
			time.Sleep(50 * time.Millisecond)
			if _, err := conn.Write([]byte("ping")); err != nil {
				return // the reader records the end
			}
		}
	}()
	go func() {
		for {
			n, err := br.Read(buf)
			c.got(n, err)
			if err != nil {
				return
			}
		}
	}()
	return c
}

// stream opens a server-sent-events stream from host through the edge's
// HTTP listener and reads it in the background.
func stream(t *testing.T, e *testEnv, host string) *openConn {
	t.Helper()
	return streamWith(t, http.DefaultClient, e.url("http"), host, 1)
}

// streamWith opens a server-sent-events stream from host at base with c,
// over HTTP/major, and reads it in the background.
func streamWith(t *testing.T, c *http.Client, base, host string, major int) *openConn {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/events", nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != major {
		t.Fatalf("stream from %s over %s, want HTTP/%d", host, resp.Proto, major)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream from %s: %s %s", host, resp.Status, resp.Header.Get("Content-Type"))
	}
	oc := &openConn{name: fmt.Sprintf("stream from %s over %s", host, resp.Proto)}
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := resp.Body.Read(buf)
			oc.got(n, err)
			if err != nil {
				return
			}
		}
	}()
	edgetest.WaitFor(t, 5*time.Second, "the first event from "+host, func() bool { last, _, _ := oc.state(); return !last.IsZero() })
	return oc
}

// slowRequest sends a request to host that the origin holds for a minute,
// in the background; it records the status and body of the answer.
func slowRequest(t *testing.T, e *testEnv, host string) *openConn {
	t.Helper()
	c := &openConn{name: "request to " + host}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url("http")+"/slow", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			c.got(0, err)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		c.mu.Lock()
		c.body = fmt.Sprintf("%d %s", resp.StatusCode, b)
		c.mu.Unlock()
		if err == nil {
			err = io.EOF
		}
		c.got(len(b), err)
	}()
	return c
}

// keepsFlowing checks that c still receives data 300ms after since, and
// is still open then.
func keepsFlowing(t *testing.T, c *openConn, since time.Time) {
	t.Helper()
	edgetest.WaitFor(t, 5*time.Second, c.name+" to carry data after the block", func() bool {
		last, end, _ := c.state()
		return !end.IsZero() || last.After(since.Add(300*time.Millisecond))
	})
	if _, end, err := c.state(); !end.IsZero() {
		t.Errorf("%s ended (%v) though its host was not blocked", c.name, err)
	}
}

// logTime returns the time field of a log line.
func logTime(t *testing.T, line map[string]any) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(line["time"]))
	if err != nil {
		t.Fatalf("log line time: %v", err)
	}
	return ts
}

// TestBlockClosesOpenRequests opens a WebSocket tunnel, a server-sent
// events stream and a request the origin holds, each to a host about to be
// blocked (one of them in report mode until then) and to one that stays
// allowed, then blocks the hosts through the watched file. The blocked
// ones must end within a second of the apply log line — the tunnel and the
// stream cut off, the held request answered with the block page — counted
// and logged; the others keep flowing.
func TestBlockClosesOpenRequests(t *testing.T) {
	o := openOrigin(t)
	e := startEnv(t, routeConfig("*.example", `"`+o.URL+`"`), "sse.example mode=report\n")

	blockedTunnel, okTunnel := tunnel(t, e, "ws.example"), tunnel(t, e, "ok.example")
	blockedStream, okStream := stream(t, e, "sse.example"), stream(t, e, "ok.example")
	blockedSlow, okSlow := slowRequest(t, e, "slow.example"), slowRequest(t, e, "ok.example")
	edgetest.WaitFor(t, 5*time.Second, "the held requests to reach the origin", func() bool {
		return edgetest.MetricValue(e.scrape(), "edgeblock_requests_in_flight") == "6"
	})

	edgetest.WriteFile(t, e.list, "sse.example\nws.example reason=\"tunnel closed\"\n*.example-not-this\nslow.example status=451\n")
	edgetest.WaitFor(t, 5*time.Second, "the new list", func() bool { return len(e.logs.Lines(t, "blocklist applied")) == 2 })
	applied := logTime(t, e.logs.Lines(t, "blocklist applied")[1])

	for _, c := range []*openConn{blockedTunnel, blockedStream, blockedSlow} {
		edgetest.WaitFor(t, 5*time.Second, c.name+" to end", func() bool { _, end, _ := c.state(); return !end.IsZero() })
		_, end, err := c.state()
		if d := end.Sub(applied); d > time.Second {
			t.Errorf("%s ended %v after the list was applied; want within 1s", c.name, d)
		}
		t.Logf("%s ended %v after the apply log line: %v", c.name, end.Sub(applied), err)
	}
	// A cut-off stream must not look complete to the visitor.
	if _, _, err := blockedStream.state(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("blocked stream ended with %v; want an unexpected EOF (cut off, not a clean end)", err)
	}
	blockedSlow.mu.Lock()
	body := blockedSlow.body
	blockedSlow.mu.Unlock()
	if !strings.HasPrefix(body, "451 ") || !strings.Contains(body, "slow.example") {
		t.Errorf("held request to a newly blocked host answered %.60q; want the 451 block page", body)
	}

	// No collateral: the other host's tunnel and stream flow, its request waits.
	for _, c := range []*openConn{okTunnel, okStream} {
		keepsFlowing(t, c, applied)
	}
	if _, end, err := okSlow.state(); !end.IsZero() {
		t.Errorf("%s ended (%v) though its host was not blocked", okSlow.name, err)
	}

	s := e.scrape()
	for kind, want := range map[string]string{"upgrade": "1", "stream": "1", "request": "1"} {
		if got := edgetest.MetricValue(s, `edgeblock_blocked_connections_closed_total{kind="`+kind+`"}`); got != want {
			t.Errorf("closed kind=%s = %q, want %s", kind, got, want)
		}
	}
	if got := edgetest.MetricValue(s, "edgeblock_requests_in_flight"); got != "3" {
		t.Errorf("requests in flight = %s, want 3 (the allowed host's)", got)
	}

	sum := e.logs.Lines(t, "open requests closed by a block")
	if len(sum) != 1 || sum[0]["closed"] != 3.0 || !strings.Contains(fmt.Sprint(sum[0]["rules"]), "ws.example") {
		t.Errorf("summary lines = %v", sum)
	}
	closed := map[string]map[string]any{}
	for _, l := range e.logs.Lines(t, "request") {
		if l["error_kind"] == "closed_by_block" {
			closed[fmt.Sprint(l["host"])] = l
		}
	}
	for host, rule := range map[string]string{"ws.example": "ws.example", "sse.example": "sse.example", "slow.example": "slow.example"} {
		l := closed[host]
		if l == nil || l["outcome"] != metrics.OutcomeBlocked || l["rule"] != rule || l["mode"] != "block" {
			t.Errorf("access line of the closed request to %s = %v", host, l)
		}
	}
	if len(closed) != 3 {
		t.Errorf("%d access lines with error_kind closed_by_block, want 3", len(closed))
	}
}

// TestBlockCloseSkipsUnchangedList checks that applying a config with the
// same list closes nothing, and that a list whose only change is elsewhere
// leaves open requests alone.
func TestBlockCloseSkipsUnchangedList(t *testing.T) {
	parallelPlain(t)
	o := openOrigin(t)
	e := startEnv(t, routeConfig("*.example", `"`+o.URL+`"`), "other.example\n")
	c := stream(t, e, "sse.example")
	edgetest.WriteFile(t, e.list, "other.example\nmore.example mode=report\nsse.example expires=2020-01-01\n")
	edgetest.WaitFor(t, 5*time.Second, "the new list", func() bool { return len(e.logs.Lines(t, "blocklist applied")) == 2 })
	applied := logTime(t, e.logs.Lines(t, "blocklist applied")[1])
	keepsFlowing(t, c, applied)
	if got := edgetest.MetricValue(e.scrape(), `edgeblock_blocked_connections_closed_total{kind="stream"}`); got != "0" {
		t.Errorf("closed streams = %q, want 0", got)
	}
}

// TestTrackAfterSwap covers the request whose decision used the old list
// and which registers only after Apply has walked the registry: track must
// see the new list itself and close it.
func TestTrackAfterSwap(t *testing.T) {
	cfg, err := config.ParseConfig("t.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\nroutes:\n  - host: \"*.example\"\n    origins: [\"http://127.0.0.1:1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := pages.NewRenderer(pages.Options{})
	p := NewProxy(slogDiscard(), metrics.New(newRegistry(), "t", "t"), cfg)
	apply := func(list string) *state {
		l, err := blocklist.Parse("b", []byte(list))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(cfg, l, rd); err != nil {
			t.Fatal(err)
		}
		return p.state.Load()
	}
	old := apply("a.example mode=report\n")
	for _, tt := range []struct {
		list   string
		closed bool
	}{
		{"a.example mode=report\nother.example\n", false},
		{"a.example\n", true},
		{"*.a.example\n", false},
	} {
		apply(tt.list)
		info := &reqInfo{host: "a.example", st: old}
		ctx := p.track(context.Background(), info)
		if got := context.Cause(ctx) == errClosedByBlock; got != tt.closed {
			t.Errorf("list %q: closed = %v, want %v (cause %v)", tt.list, got, tt.closed, context.Cause(ctx))
		}
		rec, e := &recorder{}, &accessEntry{outcome: metrics.OutcomeReport}
		p.untrack(info, rec, e)
		if tt.closed && (e.outcome != metrics.OutcomeBlocked || !e.ruled || e.rule.Pattern() != "a.example" || errKind(rec.err) != "closed_by_block") {
			t.Errorf("list %q: entry = %+v, err %v", tt.list, e, rec.err)
		}
		if !tt.closed && e.outcome != metrics.OutcomeReport {
			t.Errorf("list %q: outcome changed to %s", tt.list, e.outcome)
		}
		if ctx.Err() == nil {
			t.Error("untrack did not release the context")
		}
	}
	for i := range p.flights.shards {
		if n := len(p.flights.shards[i].m); n != 0 {
			t.Errorf("shard %d keeps %d entries after untrack", i, n)
		}
	}
}

// TestBlockClosesHTTP2Stream checks a stream over HTTP/2 and TLS: the block
// resets the blocked host's stream (an error for the visitor, not a clean
// end of the body) and leaves another host's stream flowing.
func TestBlockClosesHTTP2Stream(t *testing.T) {
	o := openOrigin(t)
	storage := edgetest.RemovedDir(t, "edgeblock-certs-")
	e := startEnv(t, fmt.Sprintf("listen:\n  http: 127.0.0.1:0\n  https: 127.0.0.1:0\n  admin: 127.0.0.1:0\ntls:\n  mode: internal\n  storage: %s\n", storage)+
		routeConfig("*.example", `"`+o.URL+`"`), "")
	pool := edgetest.InternalCAPool(t, storage)
	client := func(host string) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host}, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	blocked := streamWith(t, client("sse.example"), e.url("https"), "sse.example", 2)
	kept := streamWith(t, client("ok.example"), e.url("https"), "ok.example", 2)
	edgetest.WriteFile(t, e.list, "sse.example\n")
	edgetest.WaitFor(t, 5*time.Second, "the new list", func() bool { return len(e.logs.Lines(t, "blocklist applied")) == 2 })
	applied := logTime(t, e.logs.Lines(t, "blocklist applied")[1])
	edgetest.WaitFor(t, 5*time.Second, blocked.name+" to end", func() bool { _, end, _ := blocked.state(); return !end.IsZero() })
	_, end, err := blocked.state()
	if d := end.Sub(applied); d > time.Second {
		t.Errorf("%s ended %v after the list was applied; want within 1s", blocked.name, d)
	}
	if err == io.EOF || !strings.Contains(fmt.Sprint(err), "stream error") {
		t.Errorf("%s ended with %v; want a stream reset", blocked.name, err)
	}
	t.Logf("%s ended %v after the apply log line: %v", blocked.name, end.Sub(applied), err)
	keepsFlowing(t, kept, applied)
	if got := edgetest.MetricValue(e.scrape(), `edgeblock_blocked_connections_closed_total{kind="stream"}`); got != "1" {
		t.Errorf("closed streams = %q, want 1", got)
	}
}
