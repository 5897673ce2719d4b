package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// tlsAPIEnv starts an edge whose admin listener serves TLS with client
// certificates of a test CA (and the tokens of tokensFile); extra is added
// to the admin section. client returns an HTTPS client presenting a
// certificate with cn and ous (none if cn is "").
func tlsAPIEnv(t *testing.T, list, extra string) (e *testEnv, client func(cn string, ous ...string) *http.Client) {
	t.Helper()
	dir := t.TempDir()
	serverCA, clientCA := newTestCA(t, "admin server CA"), newTestCA(t, "admin client CA")
	sc, sk := serverCA.issue(t, true, "edge admin")
	edgetest.WriteFile(t, filepath.Join(dir, "admin.crt"), string(sc))
	edgetest.WriteFile(t, filepath.Join(dir, "admin.key"), string(sk))
	edgetest.WriteFile(t, filepath.Join(dir, "clients.pem"), string(clientCA.pem))
	e = apiEnv(t, list, fmt.Sprintf("  client_ca: %s/clients.pem\n  tls_cert: %s/admin.crt\n  tls_key: %s/admin.key\n%s", dir, dir, dir, extra))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.pem)
	return e, func(cn string, ous ...string) *http.Client {
		tc := &tls.Config{RootCAs: roots}
		if cn != "" {
			c, k := clientCA.issue(t, false, cn, ous...)
			pair, err := tls.X509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
}

// adminReq is one request to the admin listener as a browser or a tool
// sends it.
type adminReq struct {
	method, path, body string
	host               string            // the Host header; "" for the listener's address
	header             map[string]string // Content-Type, Origin, Sec-Fetch-Site, Authorization
}

// do sends rq over c to e's TLS admin listener and returns the status and
// the body.
func (rq adminReq) do(t *testing.T, e *testEnv, c *http.Client) (int, string) {
	t.Helper()
	req, err := http.NewRequest(rq.method, "https://"+e.srv.Addr("admin")+rq.path, strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	if rq.host != "" {
		req.Host = rq.host
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminCrossSiteWrites: a browser carries the operator's client
// certificate to the admin listener; a write it sends from another site
// (a form or fetch with text/plain, an Origin of another site, or
// Sec-Fetch-Site cross-site) is refused and writes nothing, while a
// tool's write (application/json, no Origin) and a same-origin one pass.
func TestAdminCrossSiteWrites(t *testing.T) {
	e, client := tlsAPIEnv(t, "a.example\n", "")
	alice := client("alice", "write")
	self := "https://" + e.srv.Addr("admin")
	tests := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"cross-site form: text/plain, foreign Origin", map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example"}, 403},
		{"cross-site form: text/plain, no Origin", map[string]string{"Content-Type": "text/plain"}, 415},
		{"form-encoded", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"no Content-Type", map[string]string{}, 415},
		{"JSON, foreign Origin", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, 403},
		{"JSON, Origin of another port", map[string]string{"Content-Type": "application/json", "Origin": "https://127.0.0.1:1"}, 403},
		{"JSON, Sec-Fetch-Site cross-site", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403},
		{"JSON, Sec-Fetch-Site same-site", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, 403},
		{"JSON, Sec-Fetch-Site same-origin", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}, 200},
		{"JSON, own Origin", map[string]string{"Content-Type": "application/json", "Origin": self}, 200},
		{"JSON with charset, a tool", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 200},
	}
	for i, tt := range tests {
		pattern := fmt.Sprintf("w%d.example", i)
		code, body := adminReq{method: "POST", path: "/v1/block", body: fmt.Sprintf(`{"pattern":%q}`, pattern), header: tt.header}.do(t, e, alice)
		if code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
		l, err := blocklist.Load(e.list)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := l.Lookup(pattern); ok != (tt.want == 200) {
			t.Errorf("%s: rule written %v, want %v", tt.name, ok, tt.want == 200)
		}
	}
	for reason, min := range map[string]float64{"cross_origin": 5, "content_type": 3} {
		if got := authFailures(t, e, client(""), reason); got < min {
			t.Errorf("edgeblock_admin_auth_failures_total{reason=%q} = %v, want at least %v", reason, got, min)
		}
	}
}

// TestAdminHostCheck: reads and writes answer only a Host that is the
// listener's own (an IP address, localhost, the host of listen.admin) or
// a name of admin.hosts; a name rebound to the admin address gets 421.
func TestAdminHostCheck(t *testing.T) {
	e, client := tlsAPIEnv(t, "a.example\n", "  hosts: [edge-1.internal, \"*.edges.example\", Edge-2.Internal.]\n")
	alice, anon := client("alice", "write"), client("")
	_, port, _ := strings.Cut(e.srv.Addr("admin"), ":")
	json := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name string
		c    *http.Client
		rq   adminReq
		want int
	}{
		{"rebound name reads the rules", anon, adminReq{method: "GET", path: "/blocklist/rules", host: "attacker.example:" + port}, 421},
		{"rebound name reads metrics", anon, adminReq{method: "GET", path: "/metrics", host: "attacker.example"}, 421},
		{"rebound name explains", anon, adminReq{method: "GET", path: "/explain?host=a.example", host: "attacker.example:" + port}, 421},
		{"rebound name, v1 version with a cert", alice, adminReq{method: "GET", path: "/v1/version", host: "attacker.example:" + port}, 421},
		{"rebound name writes with a cert", alice, adminReq{method: "POST", path: "/v1/block", body: `{"pattern":"r.example"}`, host: "attacker.example:" + port, header: json}, 421},
		{"suffix is not the name", anon, adminReq{method: "GET", path: "/blocklist", host: "edges.example"}, 421},
		{"a name ending like a listed one", anon, adminReq{method: "GET", path: "/blocklist", host: "evil-edge-1.internal"}, 421},
		{"bad Host", anon, adminReq{method: "GET", path: "/blocklist", host: "a..b"}, 421},
		{"own address", anon, adminReq{method: "GET", path: "/blocklist"}, 200},
		{"localhost", anon, adminReq{method: "GET", path: "/blocklist", host: "localhost:" + port}, 200},
		{"another IP (a port-forward or a Service)", anon, adminReq{method: "GET", path: "/metrics", host: "10.96.0.7:9090"}, 200},
		{"IPv6", anon, adminReq{method: "GET", path: "/healthz", host: "[::1]:" + port}, 200},
		{"listed name", anon, adminReq{method: "GET", path: "/blocklist", host: "edge-1.internal:" + port}, 200},
		{"listed name, other case and a dot", anon, adminReq{method: "GET", path: "/blocklist", host: "EDGE-2.internal.:" + port}, 200},
		{"under a listed suffix", alice, adminReq{method: "POST", path: "/v1/block", body: `{"pattern":"s.example"}`, host: "n7.edges.example:" + port, header: json}, 200},
	}
	for _, tt := range tests {
		if code, body := tt.rq.do(t, e, tt.c); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
	}
	l, _ := blocklist.Load(e.list)
	if _, ok := l.Lookup("r.example"); ok {
		t.Error("a write through a rebound name landed")
	}
	if got := authFailures(t, e, anon, "misdirected"); got != 8 {
		t.Errorf("misdirected refusals counted %v, want 8", got)
	}
}

// TestAdminCertScopes: only an exact OU that maps to write grants write
// (default: "write"); any other certificate of the CA reads. With
// admin.cert_scopes the mapping is the config's.
func TestAdminCertScopes(t *testing.T) {
	json := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		ous       []string
		wantWrite bool
	}{
		{[]string{"write"}, true},
		{[]string{"Write"}, false},
		{[]string{"WRITE"}, false},
		{[]string{"read"}, false},
		{[]string{"Read"}, false},
		{[]string{"readers"}, false},
		{nil, false},
		{[]string{"write", "read"}, false},
		{[]string{"ops", "write"}, true},
	}
	e, client := tlsAPIEnv(t, "a.example\n", "")
	for i, tt := range tests {
		c := client(fmt.Sprintf("user%d", i), tt.ous...)
		if code, body := (adminReq{method: "GET", path: "/v1/version"}).do(t, e, c); code != 200 {
			t.Errorf("OU %q reads: %d %s, want 200", tt.ous, code, body)
		}
		want := 403
		if tt.wantWrite {
			want = 200
		}
		if code, body := (adminReq{method: "POST", path: "/v1/block", body: fmt.Sprintf(`{"pattern":"u%d.example"}`, i), header: json}).do(t, e, c); code != want {
			t.Errorf("OU %q writes: %d %s, want %d", tt.ous, code, body, want)
		}
	}

	// A mapping of the config replaces the default.
	e, client = tlsAPIEnv(t, "a.example\n", "  cert_scopes:\n    edgeblock-operators: write\n    auditors: read\n")
	for _, tt := range []struct {
		ous  []string
		want int
	}{
		{[]string{"edgeblock-operators"}, 200},
		{[]string{"Edgeblock-Operators"}, 403},
		{[]string{"write"}, 403},
		{[]string{"edgeblock-operators", "auditors"}, 403},
		{[]string{"auditors"}, 403},
	} {
		c := client("mapped", tt.ous...)
		if code, body := (adminReq{method: "POST", path: "/v1/block", body: `{"pattern":"m.example"}`, header: json}).do(t, e, c); code != tt.want {
			t.Errorf("cert_scopes, OU %q writes: %d %s, want %d", tt.ous, code, body, tt.want)
		}
	}
}

// TestAdminActorKinds: a certificate whose CN equals a token's name does
// not write under the token's name: the audit trail (the #@ note, the log
// line) names the credential's kind.
func TestAdminActorKinds(t *testing.T) {
	e, client := tlsAPIEnv(t, "a.example\n", "")
	json := map[string]string{"Content-Type": "application/json"}
	impostor := client("ops-bot", "write") // the name of the write token
	if code, body := (adminReq{method: "POST", path: "/v1/block", body: `{"pattern":"cert.example"}`, header: json}).do(t, e, impostor); code != 200 {
		t.Fatalf("cert write: %d %s", code, body)
	}
	tokHeader := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + writeToken}
	if code, body := (adminReq{method: "POST", path: "/v1/block", body: `{"pattern":"token.example"}`, header: tokHeader}).do(t, e, client("")); code != 200 {
		t.Fatalf("token write: %d %s", code, body)
	}
	if code, body := (adminReq{method: "POST", path: "/v1/unblock", body: `{"pattern":"a.example"}`, header: json}).do(t, e, impostor); code != 200 {
		t.Fatalf("cert unblock: %d %s", code, body)
	}
	l, err := blocklist.Load(e.list)
	if err != nil {
		t.Fatal(err)
	}
	for name, by := range map[string]string{"cert.example": "cert:ops-bot", "token.example": "token:ops-bot"} {
		r, ok := l.Lookup(name)
		n, _ := l.Note(r)
		if !ok || n.By != by {
			t.Errorf("%s: rule %v, note by %q, want %q", name, ok, n.By, by)
		}
	}
	if data, _ := os.ReadFile(e.list); !strings.Contains(string(data), " by cert:ops-bot unblocked a.example") {
		t.Errorf("no unblock record by cert:ops-bot:\n%s", data)
	}
	var actors []string
	for _, l := range e.logs.Lines(t, "admin write") {
		actors = append(actors, fmt.Sprint(l["actor"]))
	}
	if got := strings.Join(actors, " "); got != "cert:ops-bot token:ops-bot cert:ops-bot" {
		t.Errorf("writes logged by %s", got)
	}
}

// authFailures returns edgeblock_admin_auth_failures_total{reason} from
// e's TLS admin listener, scraped over c.
func authFailures(t *testing.T, e *testEnv, c *http.Client, reason string) float64 {
	t.Helper()
	code, body := adminReq{method: "GET", path: "/metrics"}.do(t, e, c)
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	v, err := strconv.ParseFloat(edgetest.MetricValue(body, `edgeblock_admin_auth_failures_total{reason="`+reason+`"}`), 64)
	if err != nil {
		t.Fatalf("no edgeblock_admin_auth_failures_total{reason=%q}: %v", reason, err)
	}
	return v
}

// TestBlocklistApplied: GET /blocklist/applied, the check the /v1 writes
// and the block command share, says whether a rule as written (or, with
// no rule given, no rule of the pattern) is in effect.
func TestBlocklistApplied(t *testing.T) {
	e := apiEnv(t, "a.example status=451\n", "")
	tests := []struct {
		query   string
		code    int
		applied bool
	}{
		{"pattern=a.example&rule=a.example+status%3D451&wait=0s", 200, true},
		{"pattern=A.Example.&rule=a.example+status%3D451&wait=0s", 200, true},
		{"pattern=a.example&rule=a.example&wait=0s", 200, false},
		{"pattern=a.example&wait=0s", 200, false},
		{"pattern=gone.example&wait=0s", 200, true},
		{"pattern=a..example", 400, false},
		{"pattern=a.example&rule=b.example", 400, false},
		{"pattern=a.example&wait=1h", 400, false},
	}
	for _, tt := range tests {
		code, m := e.api(nil, "GET", "/blocklist/applied?"+tt.query, "", "")
		if code != tt.code || (code == 200 && m["applied"] != tt.applied) {
			t.Errorf("%s: %d %v, want %d applied %v", tt.query, code, m, tt.code, tt.applied)
		}
		if code == 200 && !tt.applied && !strings.Contains(fmt.Sprint(m["pending"]), "not yet in effect") {
			t.Errorf("%s: pending %v", tt.query, m["pending"])
		}
	}
}

// TestBlocklistAppliedReload: with reload=1 (what edgeblock block sends
// after renaming the file into place), a file-mode edge applies the file
// at once instead of after its watcher's debounce (made 30s here, so only
// the request can apply it in time); without it, the edge waits for the
// watcher.
func TestBlocklistAppliedReload(t *testing.T) {
	e := apiEnv(t, "a.example\n", "blocklist:\n  file: blocklist.txt\n  debounce: 30s\n  poll_interval: 1h\n")
	tests := []struct {
		name, rule, query string
		applied           bool
	}{
		{"no reload", "b.example", "pattern=b.example&rule=b.example&wait=300ms", false},
		{"reload", "c.example", "pattern=c.example&rule=c.example&wait=2s&reload=1", true},
		{"reload, removed", "", "pattern=a.example&wait=2s&reload=1", true},
	}
	content := "a.example\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rule != "" {
				content += tt.rule + "\n"
			} else {
				content = strings.Replace(content, "a.example\n", "", 1)
			}
			tmp := e.list + ".tmp"
			if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, e.list); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			code, m := e.api(nil, "GET", "/blocklist/applied?"+tt.query, "", "")
			if code != 200 || m["applied"] != tt.applied {
				t.Fatalf("%s: %d %v, want applied %v", tt.query, code, m, tt.applied)
			}
			t.Logf("%s: answered in %v", tt.name, time.Since(start).Round(time.Millisecond))
		})
	}
}
