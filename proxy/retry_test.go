package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// resetOrigin reads each request (and its body) and then resets the
// connection without answering; it counts the requests by method.
type resetOrigin struct {
	*httptest.Server
	posts, others atomic.Int64
}

func newResetOrigin(t *testing.T) *resetOrigin {
	t.Helper()
	o := &resetOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == "POST" {
			o.posts.Add(1)
		} else {
			o.others.Add(1)
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}))
	t.Cleanup(o.Server.Close)
	return o
}

// bodyEcho answers with the method and body it got.
func bodyEcho(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// TestRetries: a request that reached an origin which then failed is sent
// to another origin only if its method is idempotent; one that never
// reached an origin (refused) is always sent on; bodies go again intact
// when within retries.body_limit, and a larger one is never resent.
func TestRetries(t *testing.T) {
	reset := newResetOrigin(t)
	good, goodHits := bodyEcho(t)
	refused := "http://" + refusedAddr(t)
	e := startEnv(t, "origins:\n  lb: first\n  passive: {max_fails: -1}\n  retries: {body_limit: 1024}\n"+
		routeConfig("reset.example", fmt.Sprintf("%q, %q", reset.URL, good.URL), "refused.example", fmt.Sprintf("%q, %q", refused, good.URL)), "")
	send := func(method, host, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, e.url("http")+"/", strings.NewReader(body))
		req.Host = host
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	big := strings.Repeat("b", 4096)
	for _, tt := range []struct {
		name, method, host, body string
		status                   int
		answer                   string
		posts, others, good      int64 // what each origin got, added up
	}{
		{"GET after a reset goes on", "GET", "reset.example", "", 200, "GET ", 0, 1, 1},
		{"PUT after a reset goes on with its body", "PUT", "reset.example", "put-body", 200, "PUT put-body", 0, 2, 2},
		{"DELETE after a reset goes on", "DELETE", "reset.example", "", 200, "DELETE ", 0, 3, 3},
		{"POST after a reset is not repeated", "POST", "reset.example", "post-body", 502, "", 1, 3, 3},
		{"PATCH after a reset is not repeated", "PATCH", "reset.example", "x", 502, "", 1, 4, 3},
		{"POST never sent (refused) goes on", "POST", "refused.example", "post-body", 200, "POST post-body", 1, 4, 4},
		{"PUT larger than body_limit is not resent", "PUT", "reset.example", big, 502, "", 1, 5, 4},
		{"PUT larger than body_limit, refused, goes on", "PUT", "refused.example", big, 200, "PUT " + big, 1, 5, 5},
	} {
		status, answer := send(tt.method, tt.host, tt.body)
		if status != tt.status || (tt.answer != "" && answer != tt.answer) {
			t.Errorf("%s: %d %.40q, want %d %.40q", tt.name, status, answer, tt.status, tt.answer)
		}
		if p, o, g := reset.posts.Load(), reset.others.Load(), goodHits.Load(); p != tt.posts || o != tt.others || g != tt.good {
			t.Errorf("%s: reset origin got %d POST and %d others, good origin %d; want %d, %d, %d", tt.name, p, o, g, tt.posts, tt.others, tt.good)
		}
	}
	m := e.scrape()
	for series, want := range map[string]string{
		`edgeblock_upstream_retries_total{kind="reset",route="reset.example"}`:     "3",
		`edgeblock_upstream_retries_total{kind="refused",route="refused.example"}`: "2",
	} {
		if v := edgetest.MetricValue(m, series); v != want {
			t.Errorf("%s = %q, want %q", series, v, want)
		}
	}
}

// TestRetryLimits: max_tries bounds how many origins one request tries.
func TestRetryLimits(t *testing.T) {
	var origins []string
	var resets []*resetOrigin
	for range 4 {
		o := newResetOrigin(t)
		resets = append(resets, o)
		origins = append(origins, `"`+o.URL+`"`)
	}
	e := startEnv(t, "origins:\n  passive: {max_fails: -1}\n  retries: {max_tries: 2}\n"+routeConfig("tries.example", strings.Join(origins, ", ")), "")
	resp, _ := e.get("GET", "tries.example", "/", nil)
	var total int64
	for _, o := range resets {
		total += o.others.Load()
	}
	if resp.StatusCode != 502 || total != 2 {
		t.Errorf("status %d after %d attempts, want 502 after max_tries 2", resp.StatusCode, total)
	}
	l := e.logs.Lines(t, "request")
	if len(l) != 1 || l[0]["tries"] != 2.0 || l[0]["error_kind"] != "reset" {
		t.Errorf("access line %v, want tries 2 and error_kind reset", l)
	}
}

// TestRetryOntoRestingOrigin: with one origin in its passive-health skip
// window (it hung) and the other refusing connections, a request that
// reached no origin is tried on the resting one before the visitor gets
// an error page, whatever its method; all_down "503" answers its 503 page
// instead, as it does whenever every origin is out. A request that
// reached an origin (the other one hung too) is not sent to a resting
// one.
func TestRetryOntoRestingOrigin(t *testing.T) {
	parallelPlain(t)
	for _, tt := range []struct {
		name, allDown, other, method string
		status                       int
		restingHits                  int64 // requests the resting origin gets
	}{
		{"GET, other refuses", "", "refuse", "GET", 200, 1},
		{"POST, other refuses", "", "refuse", "POST", 200, 1},
		{"GET, other refuses, all_down 503", "    all_down: \"503\"\n", "refuse", "GET", 503, 0},
		{"GET, other hangs", "", "hang", "GET", 504, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resting, other := newSwitchOrigin(t, "resting"), newSwitchOrigin(t, "other")
			// 1s: the healthy origin, behind the same timeout, must
			// answer within it on a loaded machine.
			e := startEnv(t, "timeouts:\n  response_header: 1s\norigins:\n  lb: first\n  passive: {max_fails: 1, fail_timeout: 1m}\n"+
				routeConfig("r.example", fmt.Sprintf("%q, %q", resting.URL, other.URL))+tt.allDown, "")
			// The first origin hangs: the request times out there and
			// goes on to the other; the first is out for a minute.
			resting.mode.Store("hang")
			if resp, body := e.get("GET", "r.example", "/", nil); resp.StatusCode != 200 || body != "other" {
				t.Fatalf("first request: %d %.80q, want the other origin's answer", resp.StatusCode, body)
			}
			if v := upValue(t, e, "r.example", resting.URL); v != "0" {
				t.Fatalf("the hung origin is up (%q), want it resting", v)
			}
			resting.mode.Store("ok")
			before := resting.hits.Load()
			if tt.other == "refuse" {
				other.Close() // refuses connections from now on
			} else {
				other.mode.Store(tt.other)
			}
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader("body") // one that a refused attempt did not send
			}
			req, _ := http.NewRequest(tt.method, e.url("http")+"/", body)
			req.Host = "r.example"
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || (tt.status == 200 && string(b) != "resting") {
				t.Errorf("%d %.80q, want %d", resp.StatusCode, b, tt.status)
			}
			if n := resting.hits.Load() - before; n != tt.restingHits {
				t.Errorf("the resting origin got %d requests, want %d", n, tt.restingHits)
			}
		})
	}
}
