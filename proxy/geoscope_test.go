package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
	"github.com/edgeblock/edgeblock/proxy/geo/geotest"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// geoFixture places loopback visitors in countries: visitors dial from
// these local addresses (IPv4 and IPv6), and 203.0.113.7 stands for a
// client behind the trusted proxy 127.0.0.9.
var geoFixture = []geotest.Entry{
	{Network: "127.0.0.1/32", Country: "FR"},
	{Network: "127.0.0.2/32", Country: "DE"},
	{Network: "127.0.0.3/32", Registered: "US"},
	{Network: "203.0.113.7/32", Country: "FR"},
	{Network: "::1/128", Country: "FR"},
}

var geoBuilt = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// geoList has scoped, worldwide and mixed rules.
const geoList = `fr.example countries=FR status=451 reason="Court order 123"
court.example reason="Spam source"
court.example countries=FR status=451 reason="French order"
us.example except_countries=US
plain.example
`

// startGeoEnv starts an edge with geoList, the fixture database, the
// geo.header CF-IPCountry trusted from 127.0.0.9, and an echo origin for
// every name; listen is the HTTP listener address.
func startGeoEnv(t *testing.T, listen, extra string) (*testEnv, string) {
	t.Helper()
	o := echoOrigin(t)
	db := filepath.Join(t.TempDir(), "country.mmdb")
	geotest.Write(t, db, geoBuilt, geoFixture...)
	cfg := fmt.Sprintf("listen:\n  http: %q\n  admin: 127.0.0.1:0\ntrusted_proxies: [127.0.0.9/32]\ngeo:\n  database: %s\n  header: CF-IPCountry\n%s", listen, db, extra) +
		routeConfig("*.example", `"`+o.URL+`"`, "fr.example", `"`+o.URL+`"`, "court.example", `"`+o.URL+`"`, "us.example", `"`+o.URL+`"`, "plain.example", `"`+o.URL+`"`)
	return startEnv(t, cfg, geoList), db
}

// clientFrom returns a client whose connections come from the local
// address from.
func clientFrom(from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// getFrom sends GET / for host from the local address from.
func (e *testEnv) getFrom(from, host string, header map[string]string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url("http")+"/", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := clientFrom(from).Do(req)
	if err != nil {
		e.t.Fatalf("GET %s from %s: %v", host, from, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestGeoScopedRequests drives real requests from addresses in the fixture
// database, through a trusted proxy's header and from untrusted peers
// sending it, across scoped, worldwide and mixed rules.
func TestGeoScopedRequests(t *testing.T) {
	e, _ := startGeoEnv(t, "127.0.0.1:0", "")
	tests := []struct {
		name, from, host string
		header           map[string]string
		status           int
		body             string // in the page, or "" for a proxied answer
		country          string // in the access line; "" for none
	}{
		{"scoped rule, visitor inside", "127.0.0.1", "fr.example", nil, 451, "This site is not available in France", "FR"},
		{"scoped rule, visitor outside", "127.0.0.2", "fr.example", nil, 200, "", "DE"},
		{"sub-name of a scoped rule", "127.0.0.1", "www.fr.example", nil, 451, "Court order 123", "FR"},
		{"untrusted peer's header is ignored (outside)", "127.0.0.2", "fr.example", map[string]string{"CF-IPCountry": "FR"}, 200, "", "DE"},
		{"untrusted peer's header is ignored (inside)", "127.0.0.1", "fr.example", map[string]string{"CF-IPCountry": "DE"}, 451, "France", "FR"},
		{"untrusted peer's '_' spelling is ignored and removed", "127.0.0.2", "fr.example", map[string]string{"CF_IPCountry": "FR"}, 200, "", "DE"},
		{"trusted proxy's header decides (inside)", "127.0.0.9", "fr.example", map[string]string{"CF-IPCountry": "fr"}, 451, "France", "FR"},
		{"trusted proxy's header decides (outside)", "127.0.0.9", "fr.example", map[string]string{"CF-IPCountry": "DE", "X-Forwarded-For": "203.0.113.7"}, 200, "", "DE"},
		{"trusted proxy without the header: the database, by X-Forwarded-For", "127.0.0.9", "fr.example", map[string]string{"X-Forwarded-For": "203.0.113.7"}, 451, "France", "FR"},
		{"trusted proxy's XX: the database decides", "127.0.0.9", "fr.example", map[string]string{"CF-IPCountry": "XX", "X-Forwarded-For": "203.0.113.7"}, 451, "France", "FR"},
		{"unknown country, geo.unknown allow", "127.0.0.5", "fr.example", nil, 200, "", "unknown"},
		{"mixed: the French rule for France", "127.0.0.1", "court.example", nil, 451, "French order", "FR"},
		{"mixed: the worldwide rule elsewhere", "127.0.0.2", "court.example", nil, 403, "Spam source", "DE"},
		{"except_countries: inside the exception", "127.0.0.3", "us.example", nil, 200, "", "US"},
		{"except_countries: elsewhere", "127.0.0.2", "us.example", nil, 403, "This site is not available in Germany", "DE"},
		{"worldwide rule: no country looked up", "127.0.0.1", "plain.example", nil, 403, "This site has been blocked", ""},
		{"no rule: no country looked up", "127.0.0.1", "open.example", nil, 200, "", ""},
	}
	for i, tt := range tests {
		id := fmt.Sprintf("case-%d", i)
		h := map[string]string{"Accept-Language": "en", "X-Test": id}
		for k, v := range tt.header {
			h[k] = v
		}
		resp, body := e.getFrom(tt.from, tt.host, h)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, resp.StatusCode, tt.status, body)
			continue
		}
		if tt.body != "" && !strings.Contains(body, tt.body) {
			t.Errorf("%s: page lacks %q:\n%s", tt.name, tt.body, body)
		}
		if tt.status >= 400 && resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: block page Cache-Control %q", tt.name, resp.Header.Get("Cache-Control"))
		}
		if tt.status == 200 {
			// A scoped rule covers the host (the country was looked up):
			// no shared cache may hand this answer to a visitor it blocks.
			cc, vary := resp.Header.Get("Cache-Control"), resp.Header.Values("Vary")
			if scoped := tt.country != ""; scoped != (cc == "private") || scoped != slices.ContainsFunc(vary, func(v string) bool { return strings.EqualFold(v, "CF-IPCountry") }) {
				t.Errorf("%s: proxied answer has Cache-Control %q, Vary %q; want private and CF-IPCountry only when a scoped rule covers the host", tt.name, cc, vary)
			}
			got := decodeEcho(t, body)
			want := ""
			if tt.from == "127.0.0.9" {
				want = tt.header["CF-IPCountry"] // a trusted proxy's header goes on
			}
			if v := got.Header.Get("Cf-Ipcountry"); v != want {
				t.Errorf("%s: origin saw CF-IPCountry %q, want %q", tt.name, v, want)
			}
			for k := range got.Header {
				if tt.from != "127.0.0.9" && strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "CF-IPCountry") {
					t.Errorf("%s: origin saw %s from an untrusted peer", tt.name, k)
				}
			}
		}
	}
	e.srv.FlushAccessLog()
	lines := e.logs.Lines(t, "request")
	if len(lines) != len(tests) {
		t.Fatalf("%d access lines, want %d", len(lines), len(tests))
	}
	for i, tt := range tests {
		got, _ := lines[i]["country"].(string)
		if got != tt.country {
			t.Errorf("%s: access line country %q, want %q (%v)", tt.name, got, tt.country, lines[i])
		}
	}
	m := e.scrape()
	for _, want := range []string{
		`edgeblock_geo_blocked_requests_total{country="FR"} 7`,
		`edgeblock_geo_blocked_requests_total{country="DE"} 1`,
		`edgeblock_geo_database_loads_total{result="success"} 1`,
		fmt.Sprintf("edgeblock_geo_database_build_timestamp_seconds %g", float64(geoBuilt.Unix())),
		`edgeblock_geo_database_last_load_successful 1`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestGeoScopedIPv6 has visitors dial the edge over IPv6 loopback.
func TestGeoScopedIPv6(t *testing.T) {
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		l.Close()
	}
	e, _ := startGeoEnv(t, "[::1]:0", "")
	resp, body := e.getFrom("::1", "fr.example", map[string]string{"Accept": "application/json", "Accept-Language": "de"})
	if resp.StatusCode != 451 || !strings.Contains(body, `"country": "FR"`) || !strings.Contains(body, `"scope": "countries=FR"`) || !strings.Contains(body, "Frankreich") {
		t.Errorf("status %d:\n%s", resp.StatusCode, body)
	}
}

// TestGeoUnknownBlock: with geo.unknown: block a scoped rule applies to a
// visitor of unknown country, and says so without naming a country.
func TestGeoUnknownBlock(t *testing.T) {
	o := echoOrigin(t)
	e := startEnv(t, "geo:\n  unknown: block\n"+routeConfig("*.example", `"`+o.URL+`"`), "fr.example countries=FR\nde.example countries=DE unknown=allow\n")
	resp, body := e.get("GET", "fr.example", "/", map[string]string{"Accept": "text/plain"})
	if resp.StatusCode != 403 || !strings.Contains(body, "This site is not available in your region") || strings.Contains(body, "Country:") {
		t.Errorf("fr.example: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := e.get("GET", "de.example", "/", nil); resp.StatusCode != 200 {
		t.Errorf("de.example (unknown=allow): %d", resp.StatusCode)
	}
	if m := e.scrape(); !strings.Contains(m, `edgeblock_geo_blocked_requests_total{country="unknown"} 1`+"\n") {
		t.Error("the unknown-country block is not counted")
	}
}

// TestGeoDatabaseSwapUnderLoad replaces the database file (renamed over,
// as updaters do) again and again while visitors keep asking: every
// request gets an answer (a block page or the origin), never an error, and
// the decisions follow the database in use.
func TestGeoDatabaseSwapUnderLoad(t *testing.T) {
	skipHeavyInShort(t, "a load of requests during database swaps")
	e, db := startGeoEnv(t, "127.0.0.1:0", "")
	var stop atomic.Bool
	var requests, failures atomic.Int64
	var wg sync.WaitGroup
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		for range 2 {
			wg.Go(func() {
				c := clientFrom(from)
				c.Transport.(*http.Transport).DisableKeepAlives = false
				for !stop.Load() {
					req, _ := http.NewRequest("GET", e.url("http")+"/", nil)
					req.Host = "fr.example"
					resp, err := c.Do(req)
					requests.Add(1)
					if err != nil {
						failures.Add(1)
						t.Errorf("request from %s: %v", from, err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 && resp.StatusCode != 451 {
						failures.Add(1)
						t.Errorf("request from %s: status %d", from, resp.StatusCode)
					}
				}
			})
		}
	}
	// Swap between the fixture and one that puts 127.0.0.1 in Germany
	// and 127.0.0.2 in France, and check each time that the edge follows.
	swapped := []geotest.Entry{{Network: "127.0.0.1/32", Country: "DE"}, {Network: "127.0.0.2/32", Country: "FR"}}
	for i := range 6 {
		entries, blockedFrom := geoFixture, "127.0.0.1"
		if i%2 == 0 {
			entries, blockedFrom = swapped, "127.0.0.2"
		}
		geotest.Write(t, db, geoBuilt.Add(time.Duration(i+1)*time.Hour), entries...)
		edgetest.WaitFor(t, 10*time.Second, "the edge to use the new database", func() bool {
			resp, _ := e.getFrom(blockedFrom, "fr.example", nil)
			return resp.StatusCode == 451
		})
	}
	stop.Store(true)
	wg.Wait()
	if requests.Load() < 20 || failures.Load() != 0 {
		t.Errorf("%d requests, %d failed", requests.Load(), failures.Load())
	}
	t.Logf("%d requests during 6 database swaps, %d failed", requests.Load(), failures.Load())
	// A bad file keeps the last good database.
	edgetest.WriteFile(t, db, "not a database")
	edgetest.WaitFor(t, 10*time.Second, "the failed load to be counted", func() bool {
		return strings.Contains(e.scrape(), "edgeblock_geo_database_last_load_successful 0\n")
	})
	if resp, _ := e.getFrom("127.0.0.1", "fr.example", nil); resp.StatusCode != 451 {
		t.Errorf("after a bad file: %d, want the last good database's 451", resp.StatusCode)
	}
}

// TestGeoFleet: with blocklist.source fleet (a real redis-server) the
// scoped rules travel in the published list, and each node decides by its
// own geo.database: the same visitor address is in France for one node's
// database and in Germany for the other's.
func TestGeoFleet(t *testing.T) {
	parallelPlain(t)
	r := fleettest.Start(t)
	s := fleetStore(t, r)
	publish(t, s, "fr.example countries=FR status=451\n", "French order")
	edges := map[string]*testEnv{}
	for node, country := range map[string]string{"edge-fr": "FR", "edge-de": "DE"} {
		dir := t.TempDir()
		db := filepath.Join(dir, "country.mmdb")
		geotest.Write(t, db, geoBuilt, geotest.Entry{Network: "127.0.0.0/8", Country: country})
		e := &testEnv{t: t, dir: dir, config: filepath.Join(dir, "edgeblock.yaml"), logs: &edgetest.LogBuffer{}}
		edgetest.WriteFile(t, e.config, fleetConfig(r.Addr(), node)+"geo:\n  database: "+db+"\n")
		b, err := reload.LoadBundleForStart(e.config, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.serve(b)
		edges[node] = e
	}
	// Not blocked means the name has no route: 404.
	if c := edges["edge-fr"].status("fr.example"); c != 451 {
		t.Errorf("edge-fr: fr.example %d, want 451", c)
	}
	if c := edges["edge-de"].status("fr.example"); c != 404 {
		t.Errorf("edge-de: fr.example %d, want 404 (not blocked in Germany)", c)
	}
	publish(t, s, "fr.example countries=FR status=451\nde.example countries=DE\n", "German order")
	edges["edge-de"].waitStatus("de.example", 403, "edge-de to block de.example for German visitors")
	edges["edge-fr"].waitStatus("fr.example", 451, "edge-fr to keep fr.example")
	edgetest.WaitFor(t, 5*time.Second, "edge-fr to apply v2", func() bool { return edges["edge-fr"].metric("edgeblock_fleet_version_applied") == "2" })
	if c := edges["edge-fr"].status("de.example"); c != 404 {
		t.Errorf("edge-fr: de.example %d, want 404 (not blocked in France)", c)
	}
}

func TestGeoConfigErrors(t *testing.T) {
	base := "listen:\n  http: 127.0.0.1:0\nblocklist:\n  file: /dev/null\n"
	tests := []struct {
		config, want string
	}{
		{"geo:\n  unknown: deny\n", `geo.unknown: "deny": want allow or block`},
		{"geo:\n  header: X-Forwarded-For\ntrusted_proxies: [10.0.0.1]\n", `geo.header: "X-Forwarded-For" is a header the edge sets or reads itself`},
		{"geo:\n  header: \"CF IPCountry\"\n", `geo.header: "CF IPCountry" is not a header name`},
		{"geo:\n  header: CF_IPCountry\ntrusted_proxies: [10.0.0.1]\n", `geo.header: "CF_IPCountry": a header name with '_'`},
		{"transparency:\n  host: bad..example\n", `transparency.host: "bad..example"`},
		{"geo:\n  databse: x.mmdb\n", `geo.databse: unknown key (did you mean database?)`},
	}
	for _, tt := range tests {
		_, err := config.ParseConfig("edgeblock.yaml", []byte(base+tt.config))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v; want %q", tt.config, err, tt.want)
		}
	}
	cfg, err := config.ParseConfig("/etc/edgeblock/edgeblock.yaml", []byte(base+"geo:\n  database: country.mmdb\n  header: cf-ipcountry\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Geo.Database != "/etc/edgeblock/country.mmdb" || provision(cfg).geoHeader != "Cf-Ipcountry" || len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "trusted_proxies is empty") {
		t.Errorf("database %q header %q warnings %q", cfg.Geo.Database, provision(cfg).geoHeader, cfg.Warnings)
	}
}

// BenchmarkServeGeo measures the handler alone (as BenchmarkServe) for a
// 100,000-rule list without any scoped rule ("plain") and for the same
// list with scoped rules ("scoped"), to show what scoped rules cost:
// nothing for hosts no scoped rule covers, one country lookup for those a
// scoped rule covers. Visitors come from 127.0.0.1 (FR in the fixture)
// or 127.0.0.2 (DE).
func BenchmarkServeGeo(b *testing.B) {
	plain := genBlocklist(100_000, 0)
	scoped := append(slices.Clone(plain), "fr.example countries=FR status=451 reason=\"Court order\"\nworld.example except_countries=US\n"...)
	db := filepath.Join(b.TempDir(), "country.mmdb")
	geotest.Write(b, db, geoBuilt, geoFixture...)
	cfg, err := config.ParseConfig("bench.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\n  policy: https://policy.example/\nlog:\n  access: false\ngeo:\n  database: "+db+"\nroutes:\n  - host: app.example\n    origins: [\"http://127.0.0.1:1\"]\n"))
	if err != nil {
		b.Fatal(err)
	}
	rd, _ := pages.NewRenderer(pages.Options{BlockedBy: "https://edge.example.com"})
	for _, lc := range []struct {
		name string
		list []byte
	}{{"plain", plain}, {"scoped", scoped}} {
		list, err := blocklist.Parse("bench", lc.list)
		if err != nil {
			b.Fatal(err)
		}
		p := NewProxy(slogDiscard(), metrics.New(newRegistry(), "b", "b"), cfg)
		if err := p.Apply(cfg, list, rd); err != nil {
			b.Fatal(err)
		}
		cases := []struct {
			host, from string
			status     int
		}{{"hot.example", "127.0.0.1", 403}, {"unlisted.example.net", "127.0.0.1", 404}}
		if lc.name == "scoped" {
			cases = append(cases, struct {
				host, from string
				status     int
			}{"fr.example", "127.0.0.1", 451}, struct {
				host, from string
				status     int
			}{"fr.example", "127.0.0.2", 404})
		}
		for _, tt := range cases {
			b.Run(lc.name+"/"+tt.host+"/from="+tt.from, func(b *testing.B) {
				req := httptest.NewRequest("GET", "/", nil)
				req.Host, req.RemoteAddr = tt.host, tt.from+":40000"
				w := httptest.NewRecorder()
				if p.ServeHTTP(w, req); w.Code != tt.status {
					b.Fatalf("%s from %s: status %d, want %d", tt.host, tt.from, w.Code, tt.status)
				}
				b.ReportAllocs()
				for b.Loop() {
					p.ServeHTTP(httptest.NewRecorder(), req)
				}
			})
		}
	}
}

// TestScopedBlockClosesOpenRequests: a reload that adds a rule scoped to
// France closes what visitors from France have open to the name (a
// stream, and a held request, answered with the page naming France), and
// a visitor from Germany keeps streaming: the check of requests in flight
// decides as the request path does.
func TestScopedBlockClosesOpenRequests(t *testing.T) {
	o := openOrigin(t)
	db := filepath.Join(t.TempDir(), "country.mmdb")
	geotest.Write(t, db, geoBuilt, geoFixture...)
	cfg := fmt.Sprintf("listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:0\ngeo:\n  database: %s\n", db) +
		routeConfig("*.example", `"`+o.URL+`"`)
	e := startEnv(t, cfg, "plain.example\n")

	frStream := stream(t, e, "news.example") // from 127.0.0.1: France
	deStream := streamWith(t, clientFrom("127.0.0.2"), e.url("http"), "news.example", 1)
	frSlow := slowRequest(t, e, "news.example")
	edgetest.WaitFor(t, 5*time.Second, "the held requests to reach the origin", func() bool {
		return edgetest.MetricValue(e.scrape(), "edgeblock_requests_in_flight") == "3"
	})

	edgetest.WriteFile(t, e.list, "plain.example\nnews.example countries=FR status=451 reason=\"Court order\"\n")
	edgetest.WaitFor(t, 5*time.Second, "the new list", func() bool { return len(e.logs.Lines(t, "blocklist applied")) == 2 })
	applied := logTime(t, e.logs.Lines(t, "blocklist applied")[1])

	for _, c := range []*openConn{frStream, frSlow} {
		edgetest.WaitFor(t, 5*time.Second, c.name+" from France to end", func() bool { _, end, _ := c.state(); return !end.IsZero() })
		if _, end, _ := c.state(); end.Sub(applied) > time.Second {
			t.Errorf("%s ended %v after the list was applied; want within 1s", c.name, end.Sub(applied))
		}
	}
	frSlow.mu.Lock()
	body := frSlow.body
	frSlow.mu.Unlock()
	if !strings.HasPrefix(body, "451 ") || !strings.Contains(body, "not available in France") {
		t.Errorf("held request from France answered %.80q; want the 451 page naming France", body)
	}
	keepsFlowing(t, deStream, applied)
}

// TestPrivateToVisitor: the origin's caching directives are kept, and
// "private" is added unless shared storage is already forbidden.
func TestPrivateToVisitor(t *testing.T) {
	cfg := &edgeConfig{Config: &config.Config{}, geoHeader: "Cf-Ipcountry"}
	for _, tt := range []struct{ in, want []string }{
		{nil, []string{"private"}},
		{[]string{"public, max-age=600"}, []string{"public, max-age=600, private"}},
		{[]string{"max-age=60", "s-maxage=600"}, []string{"max-age=60, s-maxage=600, private"}},
		{[]string{"Private"}, []string{"Private"}},
		{[]string{"max-age=0, no-store"}, []string{"max-age=0, no-store"}},
		{[]string{`private="Set-Cookie"`}, []string{`private="Set-Cookie", private`}},
	} {
		h := http.Header{}
		for _, v := range tt.in {
			h.Add("Cache-Control", v)
		}
		privateToVisitor(h, cfg)
		if got := h.Values("Cache-Control"); !slices.Equal(got, tt.want) {
			t.Errorf("Cache-Control %q: got %q, want %q", tt.in, got, tt.want)
		}
		if got := h.Values("Vary"); !slices.Equal(got, []string{"Cf-Ipcountry"}) {
			t.Errorf("Vary %q, want Cf-Ipcountry", got)
		}
	}
}
