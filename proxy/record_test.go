package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/config"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// TestRecordReuse: the records of requests the edge answers itself are
// reused (Proxy.end), and reuse changes nothing a visitor or operator
// sees. Requests of different outcomes take turns (block page, unknown
// host, a refused method, a host that is not valid); for each, the
// X-Request-Id the visitor got is checked after many later requests
// (net/http reads the header after the handler, when the record serves
// another request) and against its own access line, and every access line
// carries what its own request had and nothing of the one before (the
// rule of a block page, the outcome, status and bytes).
func TestRecordReuse(t *testing.T) {
	cfg, err := config.ParseConfig("reuse.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\nroutes:\n  - host: app.example\n    origins: [\"http://127.0.0.1:1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := blocklist.Parse("reuse", []byte("hot.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := pages.NewRenderer(pages.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	p := NewProxy(NewLogger(&logBuf, "json", slog.LevelInfo), metrics.New(newRegistry(), "t", "t"), cfg)
	if err := p.Apply(cfg, list, rd); err != nil {
		t.Fatal(err)
	}
	type want struct {
		method, host string
		status       int
		outcome      string
		rule         bool
	}
	cases := []want{
		{"GET", "hot.example", 403, metrics.OutcomeBlocked, true},
		{"GET", "nowhere.example", 404, metrics.OutcomeUnknown, false},
		{"TRACE", "hot.example", 405, metrics.OutcomeRejected, false},
		{"GET", "bad host!", 400, metrics.OutcomeUnknown, false},
	}
	type served struct {
		w    want
		rec  *httptest.ResponseRecorder
		id   string // X-Request-Id when the handler returned
		body int
	}
	var all []served
	for i := range 200 {
		w := cases[i%len(cases)]
		r := httptest.NewRequest(w.method, "/", nil)
		r.Host = w.host
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, r)
		if rec.Code != w.status {
			t.Fatalf("request %d (%s %s): status %d, want %d", i, w.method, w.host, rec.Code, w.status)
		}
		all = append(all, served{w, rec, rec.Header().Get("X-Request-Id"), rec.Body.Len()})
	}

	dec := json.NewDecoder(&logBuf)
	seen := map[string]bool{}
	for i, s := range all {
		var line struct {
			ID      string `json:"request_id"`
			Host    string `json:"host"`
			Status  int    `json:"status"`
			Outcome string `json:"outcome"`
			Bytes   int    `json:"bytes"`
			Rule    *string
		}
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("access line %d: %v", i, err)
		}
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &line); err != nil {
			t.Fatal(err)
		}
		_, hasRule := raw["rule"]
		got := s.rec.Header().Get("X-Request-Id")
		switch {
		case len(got) != 16 || got != s.id:
			t.Errorf("request %d: X-Request-Id %q after later requests, %q when served", i, got, s.id)
		case seen[got]:
			t.Errorf("request %d: X-Request-Id %q given twice", i, got)
		case line.ID != got:
			t.Errorf("request %d: access line request_id %q, response X-Request-Id %q", i, line.ID, got)
		}
		seen[got] = true
		if line.Status != s.w.status || line.Outcome != s.w.outcome || hasRule != s.w.rule || line.Bytes != s.body {
			t.Errorf("request %d (%s %s): access line status %d outcome %q rule %v bytes %d; want %d %q %v %d (%s)",
				i, s.w.method, s.w.host, line.Status, line.Outcome, hasRule, line.Bytes, s.w.status, s.w.outcome, s.w.rule, s.body, b)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("more access lines than requests (%v)", err)
	}
	if len(all) != 200 || len(seen) != 200 {
		t.Fatalf("%d requests, %d IDs", len(all), len(seen))
	}
}
