package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/admin"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// The tokens of the API tests: ops-bot writes (stored as a hash), auditor
// reads (stored in the clear).
const (
	writeToken = "w-0123456789abcdef0123456789abcdef"
	readToken  = "r-fedcba9876543210fedcba9876543210"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// tokensFile writes a tokens file in both forms and returns its path.
func tokensFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	edgetest.WriteFile(t, p, "# name:scope:sha256, or name scope token\nops-bot:write:"+sha256Hex(writeToken)+"\n\nauditor read "+readToken+"\n")
	return p
}

// apiEnv starts an edge with the admin API on, a route for *.example and
// list as the blocklist; extra is added to the admin section.
func apiEnv(t *testing.T, list, extra string) *testEnv {
	t.Helper()
	o := echoOrigin(t)
	return startEnv(t, fmt.Sprintf("admin:\n  tokens_file: %s\n%s", tokensFile(t), extra)+routeConfig("*.example", `"`+o.URL+`"`), list)
}

// api sends a request to the admin listener with token (none if "").
func (e *testEnv) api(c *http.Client, method, path, token, body string) (int, map[string]any) {
	e.t.Helper()
	base := e.url("admin")
	if c != nil {
		base = "https://" + e.srv.Addr("admin")
	} else {
		c = noRedirect
	}
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &m); err != nil {
			e.t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, b)
		}
	} else {
		m = map[string]any{"text": string(b)}
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode >= 400 && m["text"] == nil && ct != "application/problem+json" {
		e.t.Errorf("%s %s: %d with Content-Type %q, want application/problem+json", method, path, resp.StatusCode, ct)
	}
	return resp.StatusCode, m
}

// TestAdminAPIOffWithoutCredentials: with neither tokens_file nor
// client_ca, the /v1 endpoints do not exist and the reads stay open.
func TestAdminAPIOffWithoutCredentials(t *testing.T) {
	e := startEnv(t, "", "a.example\n")
	for _, tt := range []struct{ method, path string }{
		{"POST", "/v1/block"}, {"POST", "/v1/unblock"}, {"GET", "/v1/version"}, {"GET", "/v1/explain?host=a.example"},
	} {
		if code, _ := e.api(nil, tt.method, tt.path, writeToken, `{"pattern":"b.example"}`); code != 404 {
			t.Errorf("%s %s without credentials configured: %d, want 404", tt.method, tt.path, code)
		}
	}
	if code, m := e.api(nil, "GET", "/explain?host=a.example", "", ""); code != 200 || m["host"] != "a.example" {
		t.Errorf("GET /explain: %d %v", code, m)
	}
	if b, _ := os.ReadFile(e.list); string(b) != "a.example\n" {
		t.Errorf("the list changed: %q", b)
	}
}

// TestAdminAPIScopes checks every endpoint with no token, a wrong one, a
// read token and a write token; the open reads stay open.
func TestAdminAPIScopes(t *testing.T) {
	e := apiEnv(t, "a.example\n", "")
	tests := []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/v1/version", "", "", 401},
		{"GET", "/v1/version", "wrong-token-0123456789", "", 401},
		{"GET", "/v1/version", writeToken[:len(writeToken)-1], "", 401}, // a prefix of a good one
		{"GET", "/v1/version", readToken, "", 200},
		{"GET", "/v1/version", writeToken, "", 200},
		{"GET", "/v1/explain?host=a.example", readToken, "", 200},
		{"GET", "/v1/explain", readToken, "", 400},
		{"POST", "/v1/block", "", `{"pattern":"b.example"}`, 401},
		{"POST", "/v1/block", readToken, `{"pattern":"b.example"}`, 403},
		{"POST", "/v1/unblock", readToken, `{"pattern":"a.example"}`, 403},
		{"POST", "/v1/block", writeToken, `{"pattern":"b.example"}`, 200},
		{"GET", "/v1/block", writeToken, "", 405},
		{"GET", "/v1/nothing", writeToken, "", 404},
		{"GET", "/metrics", "", "", 200},
		{"GET", "/healthz", "", "", 200},
		{"GET", "/blocklist", "", "", 200},
	}
	for _, tt := range tests {
		code, m := e.api(nil, tt.method, tt.path, tt.token, tt.body)
		if code != tt.want {
			t.Errorf("%s %s (token %.3s): %d %v, want %d", tt.method, tt.path, tt.token, code, m, tt.want)
		}
	}
	// A Basic header is no bearer token.
	req, _ := http.NewRequest("GET", e.url("admin")+"/v1/version", nil)
	req.SetBasicAuth("ops-bot", writeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("Basic auth: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	scrape := e.scrape()
	if v := edgetest.MetricValue(scrape, `edgeblock_admin_auth_failures_total{reason="unauthenticated"}`); v != "5" {
		t.Errorf("unauthenticated = %s, want 5", v)
	}
	if v := edgetest.MetricValue(scrape, `edgeblock_admin_auth_failures_total{reason="forbidden"}`); v != "2" {
		t.Errorf("forbidden = %s, want 2", v)
	}
	code, m := e.api(nil, "GET", "/v1/version", readToken, "")
	file, _ := os.ReadFile(e.list)
	if code != 200 || m["source"] != "file" || m["sha256"] != sha256Hex(string(file)) || m["rules"] != 2.0 || m["file"] != e.list {
		t.Errorf("version: %d %v", code, m)
	}
}

// TestAdminAPIAuthReads: with auth_reads the read endpoints want a
// credential, but the probes do not.
func TestAdminAPIAuthReads(t *testing.T) {
	e := apiEnv(t, "a.example\n", "  auth_reads: true\n")
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", 401}, {"/metrics", readToken, 200}, {"/blocklist", "", 401}, {"/blocklist/rules", readToken, 200},
		{"/explain?host=a.example", "", 401}, {"/explain?host=a.example", writeToken, 200},
		{"/healthz", "", 200}, {"/readyz", "", 200}, {"/v1/version", "", 401},
	} {
		if code, m := e.api(nil, "GET", tt.path, tt.token, ""); code != tt.want {
			t.Errorf("GET %s (token %.3s): %d %v, want %d", tt.path, tt.token, code, m, tt.want)
		}
	}
}

// TestAdminAPIBlockServed blocks, changes and unblocks a name through the
// API: each answer says the change is in effect, the public listener
// serves it at once, the file records the actor and comment, and every
// write is logged.
func TestAdminAPIBlockServed(t *testing.T) {
	e := apiEnv(t, "a.example\n", "")
	if resp, _ := e.get("GET", "bad.example", "/", nil); resp.StatusCode != 200 {
		t.Fatalf("bad.example before the block: %d", resp.StatusCode)
	}
	code, m := e.api(nil, "POST", "/v1/block", writeToken,
		`{"pattern":"Bad.Example","attrs":{"status":451,"reason":"Court order 7"},"comment":"TICKET-1"}`)
	if code != 200 || m["applied"] != true {
		t.Fatalf("block: %d %v", code, m)
	}
	ch := m["changes"].([]any)[0].(map[string]any)
	if ch["kind"] != "added" || ch["pattern"] != "bad.example" || ch["new"] != `bad.example reason="Court order 7" status=451` {
		t.Errorf("change = %v", ch)
	}
	// In effect when the answer came: no waiting here.
	resp, body := e.get("GET", "bad.example", "/", nil)
	if resp.StatusCode != 451 || !strings.Contains(body, "Court order 7") {
		t.Errorf("bad.example after the block: %d\n%.300s", resp.StatusCode, body)
	}
	file, _ := os.ReadFile(e.list)
	if m["written_sha256"] != sha256Hex(string(file)) || m["sha256"] != sha256Hex(string(file)) {
		t.Errorf("sha256 %v, written %v; the file hashes to %s", m["sha256"], m["written_sha256"], sha256Hex(string(file)))
	}
	l, err := blocklist.Parse(e.list, file)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := l.Lookup("bad.example")
	if n, ok := l.Note(r); !ok || n.By != "token:ops-bot" || n.Comment != "TICKET-1" {
		t.Errorf("note %+v (%v); file:\n%s", n, ok, file)
	}

	// A change merges into the rule; the same again changes nothing.
	code, m = e.api(nil, "POST", "/v1/block", writeToken, `{"pattern":"bad.example","attrs":{"status":"403"}}`)
	ch = m["changes"].([]any)[0].(map[string]any)
	if code != 200 || m["applied"] != true || ch["kind"] != "changed" || fmt.Sprint(ch["attrs"]) != "[map[key:status new:403 old:451]]" {
		t.Errorf("change: %d %v", code, m)
	}
	code, m = e.api(nil, "POST", "/v1/block", writeToken, `{"pattern":"bad.example","attrs":{"status":403}}`)
	if code != 200 || m["applied"] != true || len(m["changes"].([]any)) != 0 || m["written_sha256"] != nil {
		t.Errorf("same again: %d %v", code, m)
	}
	if resp, _ := e.get("GET", "bad.example", "/", nil); resp.StatusCode != 403 {
		t.Errorf("after the change: %d", resp.StatusCode)
	}

	code, m = e.api(nil, "POST", "/v1/unblock", writeToken, `{"pattern":"bad.example","comment":"appeal won"}`)
	if code != 200 || m["applied"] != true || m["changes"].([]any)[0].(map[string]any)["kind"] != "removed" {
		t.Errorf("unblock: %d %v", code, m)
	}
	if resp, _ := e.get("GET", "bad.example", "/", nil); resp.StatusCode != 200 {
		t.Errorf("after the unblock: %d", resp.StatusCode)
	}
	if file, _ := os.ReadFile(e.list); !strings.Contains(string(file), "by token:ops-bot unblocked bad.example: appeal won") {
		t.Errorf("no unblock record:\n%s", file)
	}

	var results []string
	for _, l := range e.logs.Lines(t, "admin write") {
		if l["event"] != "admin_write" || l["actor"] != "token:ops-bot" || l["auth"] != "token" {
			t.Errorf("log line %v", l)
		}
		results = append(results, fmt.Sprint(l["op"], ":", l["result"], ":", l["applied"]))
	}
	if got := strings.Join(results, " "); got != "block:added:true block:changed:true block:unchanged:<nil> unblock:removed:true" {
		t.Errorf("admin_write log lines: %s", got)
	}
	if v := edgetest.MetricValue(e.scrape(), `edgeblock_admin_writes_total{op="block",result="added"}`); v != "1" {
		t.Errorf("writes added = %q", v)
	}
}

// TestAdminAPIBadRequests: bad JSON and unknown or mistyped fields get a
// 400 naming the field; a value the blocklist parser refuses gets a 422
// with the parser's message; the file is never touched.
func TestAdminAPIBadRequests(t *testing.T) {
	const list = "a.example\n*.wild.example\n"
	e := apiEnv(t, list, "")
	tests := []struct {
		path, body string
		status     int
		field      string
		detail     string
	}{
		{"/v1/block", ``, 400, "", "empty body"},
		{"/v1/block", `{"pattern":`, 400, "", "malformed JSON"},
		{"/v1/block", `[1]`, 400, "", "want a JSON object"},
		{"/v1/block", `{"patern":"b.example"}`, 400, "patern", "unknown field"},
		{"/v1/block", `{"pattern":"b.example","attrs":{"sttus":451}}`, 400, "attrs.sttus", "unknown field"},
		{"/v1/block", `{"pattern":5}`, 400, "pattern", "want a string"},
		{"/v1/block", `{"pattern":"b.example","replace":"yes"}`, 400, "replace", "want true or false"},
		{"/v1/block", `{"pattern":"b.example","attrs":{"status":true}}`, 400, "attrs.status", "want a status"},
		{"/v1/block", `{"pattern":"b.example","attrs":{"status":4510000}}`, 400, "attrs.status", "want a status"},
		{"/v1/block", `{"pattern":"b.example","attrs":"x"}`, 400, "attrs", "want an object"},
		{"/v1/block", `{"pattern":"b.example"} {}`, 400, "", "trailing data"},
		{"/v1/block", `{"pattern":"b.example","comment":"line\nbreak"}`, 400, "comment", "control characters"},
		{"/v1/block", `{"pattern":"b.example","attrs":{"reason":"x\nevil.example"}}`, 400, "attrs.reason", "control characters"},
		{"/v1/block", `{"attrs":{"status":451}}`, 400, "pattern", "required"},
		{"/v1/block", `{"pattern":"b..example"}`, 422, "pattern", "empty label"},
		{"/v1/block", `{"pattern":"b.example","attrs":{"status":200}}`, 422, "attrs.status", "status"},
		{"/v1/block", `{"pattern":"b.example","attrs":{"mode":"maybe"}}`, 422, "attrs.mode", "mode"},
		{"/v1/block", `{"pattern":"b.example","attrs":{"expires":"soon"}}`, 422, "attrs.expires", "expires"},
		{"/v1/block", `{"pattern":"b.example","attrs":{"policy":"ftp://x"}}`, 422, "attrs.policy", "policy"},
		{"/v1/unblock", `{"pattern":"wild.example"}`, 404, "pattern", "no rule of its own"},
		{"/v1/unblock", `{"pattern":"x.wild.example"}`, 404, "pattern", "blocked by *.wild.example"},
		{"/v1/unblock", `{"pattern":"a.example","replace":true}`, 400, "replace", "unknown field"},
		{"/v1/block", strings.Repeat(" ", admin.MaxBody+1), 400, "", "larger than"},
	}
	for _, tt := range tests {
		code, m := e.api(nil, "POST", tt.path, writeToken, tt.body)
		detail, _ := m["detail"].(string)
		field, _ := m["field"].(string)
		if code != tt.status || field != tt.field || !strings.Contains(detail, tt.detail) || m["status"] != float64(code) {
			t.Errorf("POST %s %.60q: %d field %q %q; want %d field %q with %q", tt.path, tt.body, code, field, detail, tt.status, tt.field, tt.detail)
		}
	}
	if b, _ := os.ReadFile(e.list); string(b) != list {
		t.Errorf("the list changed:\n%s", b)
	}
	if n := len(e.logs.Lines(t, "admin write refused")); n != len(tests) {
		t.Errorf("%d refused writes logged, want %d", n, len(tests))
	}
}

// TestAdminAPIDropGuard: an unblock that would drop every block rule is
// refused before it is written, as the reload would refuse it; with the
// allow-drop line it goes through.
func TestAdminAPIDropGuard(t *testing.T) {
	e := apiEnv(t, "a.example\n", "")
	code, m := e.api(nil, "POST", "/v1/unblock", writeToken, `{"pattern":"a.example"}`)
	if detail, _ := m["detail"].(string); code != 409 || !strings.Contains(detail, "would drop 1 of 1 block rules") || !strings.Contains(detail, blocklist.AllowDropMarker) {
		t.Errorf("unblock of the last rule: %d %v", code, m)
	}
	if b, _ := os.ReadFile(e.list); string(b) != "a.example\n" {
		t.Errorf("the list changed: %q", b)
	}
	if resp, _ := e.get("GET", "a.example", "/", nil); resp.StatusCode != 403 {
		t.Errorf("a.example: %d", resp.StatusCode)
	}
	edgetest.WriteFile(t, e.list, blocklist.AllowDropMarker+"\na.example\n")
	edgetest.WaitFor(t, 5*time.Second, "the marker applied", func() bool { return e.srv.reloader.Current().List.AllowsDrop() })
	if code, m := e.api(nil, "POST", "/v1/unblock", writeToken, `{"pattern":"a.example"}`); code != 200 || m["applied"] != true {
		t.Errorf("unblock with the marker: %d %v", code, m)
	}
}

// TestAdminAPIConcurrentWrites: API writes racing each other and
// in-process CLI-style edits (the same locked EditFile the block command
// uses) keep every rule, and the edge ends up serving all of them.
func TestAdminAPIConcurrentWrites(t *testing.T) {
	parallelPlain(t)
	e := apiEnv(t, "a.example\n", "")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			code, m := e.apiQuiet("POST", "/v1/block", writeToken, fmt.Sprintf(`{"pattern":"api%d.example","comment":"T-%d"}`, i, i))
			if code != 200 && code != 202 {
				errs <- fmt.Sprintf("api%d: %d %v", i, code, m)
			}
		}()
		go func() {
			defer wg.Done()
			note := blocklist.NewNote(time.Now(), "cli", "")
			err := blocklist.EditFile(e.list, func(data []byte) ([]byte, error) {
				out, _, err := blocklist.ApplyEdit(e.list, data, blocklist.Edit{Pattern: fmt.Sprintf("cli%d.example", i), Note: &note}, 0.5, time.Now())
				return out, err
			})
			if err != nil {
				errs <- fmt.Sprintf("cli%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l, err := blocklist.Load(e.list)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 2*n+1 {
		t.Errorf("%d rules, want %d", l.Len(), 2*n+1)
	}
	edgetest.WaitFor(t, 5*time.Second, "every rule in effect", func() bool { return e.srv.reloader.Current().List.Len() == 2*n+1 })
	for i := range n {
		for _, h := range []string{fmt.Sprintf("api%d.example", i), fmt.Sprintf("cli%d.example", i)} {
			if _, ok := l.Lookup(h); !ok {
				t.Errorf("%s lost", h)
			}
		}
	}
	if resp, _ := e.get("GET", "api7.example", "/", nil); resp.StatusCode != 403 {
		t.Errorf("api7.example: %d", resp.StatusCode)
	}
}

// apiQuiet is api for goroutines: no t.Fatal.
func (e *testEnv) apiQuiet(method, path, token, body string) (int, map[string]any) {
	req, _ := http.NewRequest(method, e.url("admin")+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf: a server certificate for 127.0.0.1, or a client
// certificate with subject cn and ou.
func (ca *testCA) issue(t *testing.T, server bool, cn string, ou ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ou},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestAdminAPIClientCerts: the admin listener serves TLS; a client
// certificate of admin.client_ca authenticates with its CN as the actor
// (OU "write": write, "read": read only); without one the open reads still answer, a
// certificate of another CA fails the handshake, and tokens still work.
func TestAdminAPIClientCerts(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newTestCA(t, "admin server CA"), newTestCA(t, "admin client CA"), newTestCA(t, "stranger CA")
	sc, sk := serverCA.issue(t, true, "edge admin")
	edgetest.WriteFile(t, filepath.Join(dir, "admin.crt"), string(sc))
	edgetest.WriteFile(t, filepath.Join(dir, "admin.key"), string(sk))
	edgetest.WriteFile(t, filepath.Join(dir, "clients.pem"), string(clientCA.pem))
	e := apiEnv(t, "a.example\n", fmt.Sprintf("  client_ca: %s/clients.pem\n  tls_cert: %s/admin.crt\n  tls_key: %s/admin.key\n", dir, dir, dir))

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.pem)
	client := func(ca *testCA, cn string, ou ...string) *http.Client {
		tc := &tls.Config{RootCAs: roots}
		if ca != nil {
			c, k := ca.issue(t, false, cn, ou...)
			pair, err := tls.X509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	alice, bob, anon := client(clientCA, "alice", "write"), client(clientCA, "bob", "read"), client(nil, "")
	tests := []struct {
		name   string
		c      *http.Client
		method string
		path   string
		token  string
		body   string
		want   int
	}{
		{"alice blocks", alice, "POST", "/v1/block", "", `{"pattern":"cert.example","comment":"by cert"}`, 200},
		{"bob reads", bob, "GET", "/v1/version", "", "", 200},
		{"bob may not write", bob, "POST", "/v1/block", "", `{"pattern":"bob.example"}`, 403},
		{"no cert, no token", anon, "POST", "/v1/block", "", `{"pattern":"anon.example"}`, 401},
		{"no cert, a token", anon, "POST", "/v1/block", writeToken, `{"pattern":"token.example"}`, 200},
		{"no cert, probe", anon, "GET", "/healthz", "", "", 200},
		{"no cert, metrics", anon, "GET", "/metrics", "", "", 200},
	}
	for _, tt := range tests {
		if code, m := e.api(tt.c, tt.method, tt.path, tt.token, tt.body); code != tt.want {
			t.Errorf("%s: %d %v, want %d", tt.name, code, m, tt.want)
		}
	}
	// Plain HTTP to the TLS listener is not served.
	if resp, err := http.Get(e.url("admin") + "/v1/version"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("plain HTTP to the TLS admin listener: %d", resp.StatusCode)
		}
	}
	// A certificate of another CA: Go's client does not even offer it
	// (it is not of a CA the server asks for), so the request is
	// anonymous; sent anyway, it fails the handshake.
	mallory := client(otherCA, "mallory")
	if code, m := e.api(mallory, "GET", "/v1/version", "", ""); code != 401 {
		t.Errorf("a certificate of another CA: %d %v", code, m)
	}
	tr := mallory.Transport.(*http.Transport).Clone() // a new connection
	pair := tr.TLSClientConfig.Certificates[0]
	tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	mallory = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	if resp, err := mallory.Get("https://" + e.srv.Addr("admin") + "/v1/version"); err == nil {
		resp.Body.Close()
		t.Errorf("a certificate of another CA, forced: %d, want a failed handshake", resp.StatusCode)
	}
	l, err := blocklist.Load(e.list)
	if err != nil {
		t.Fatal(err)
	}
	for name, by := range map[string]string{"cert.example": "cert:alice", "token.example": "token:ops-bot"} {
		r, ok := l.Lookup(name)
		n, _ := l.Note(r)
		if !ok || n.By != by {
			t.Errorf("%s: rule %v, note by %q, want %q", name, ok, n.By, by)
		}
	}
	if _, ok := l.Lookup("bob.example"); ok {
		t.Error("a read certificate wrote")
	}
	var actors []string
	for _, l := range e.logs.Lines(t, "admin write") {
		actors = append(actors, fmt.Sprint(l["actor"], "/", l["auth"]))
	}
	if got := strings.Join(actors, " "); got != "cert:alice/cert token:ops-bot/token" {
		t.Errorf("writes logged by %s", got)
	}
}

// TestAdminConfigErrors: the admin section's problems name the field and
// line; the tokens file's name its file and line.
func TestAdminConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "tokens")
	edgetest.WriteFile(t, bad, "ok read 0123456789abcdef\nnope\n")
	tests := []struct{ admin, want string }{
		{"  tokens_file: " + bad + "\n", bad + ":2: want name:scope"},
		{"  tokens_file: " + dir + "/missing\n", "admin.tokens_file: " + dir + "/missing: no such file"},
		{"  auth_reads: true\n", "admin.auth_reads: needs admin.tokens_file or admin.client_ca"},
		{"  tls_cert: x.pem\n", "admin.tls_cert: tls_cert and tls_key go together"},
		{"  client_ca: " + bad + "\n", "admin.client_ca: " + bad + " holds no PEM certificate"},
		{"  cert_scopes:\n    ops: admin\n", "c.yaml:7: admin.cert_scopes.ops: \"admin\": want read or write"},
		{"  cert_scopes:\n    ops: write\n", "c.yaml:7: admin.cert_scopes: needs admin.client_ca"},
		{"  hosts: [edge.internal, \"bad..name\"]\n", "c.yaml:6: admin.hosts[1]: invalid host name \"bad..name\""},
	}
	for _, tt := range tests {
		_, err := config.ParseConfig(filepath.Join(dir, "c.yaml"), []byte("listen:\n  http: 127.0.0.1:0\nblocklist:\n  file: b.txt\nadmin:\n"+tt.admin))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("admin %q: error %v, want %q", tt.admin, err, tt.want)
		}
	}
	// Tokens over plain HTTP on a non-loopback admin address: a warning.
	good := filepath.Join(dir, "good")
	edgetest.WriteFile(t, good, "ok read 0123456789abcdef\n")
	c, err := config.ParseConfig(filepath.Join(dir, "c.yaml"), []byte("listen:\n  http: 127.0.0.1:0\n  admin: 0.0.0.0:9090\nblocklist:\n  file: b.txt\nadmin:\n  tokens_file: "+good+"\n"))
	if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "plain HTTP") {
		t.Errorf("warnings %v, err %v", c, err)
	}
}

// startFleetAPIEnv starts an edge in fleet mode (blocklist.source fleet)
// on the Redis at addr, with the admin API on.
func startFleetAPIEnv(t *testing.T, addr string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, config: filepath.Join(dir, "edgeblock.yaml"), logs: &edgetest.LogBuffer{}}
	edgetest.WriteFile(t, e.config, fleetConfig(addr, "edge-api")+"admin:\n  tokens_file: "+tokensFile(t)+"\n")
	b, err := reload.LoadBundleForStart(e.config, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.serve(b)
	return e
}

// TestAdminAPIFleet: in fleet mode a write publishes a new version (with
// the token's name as its actor) instead of editing a file, the answer
// comes once this edge applies it, concurrent writes all land (the
// compare-and-set retries), the drop guard refuses before publishing, and
// GET /v1/version reports the applied and the published version.
func TestAdminAPIFleet(t *testing.T) {
	parallelPlain(t)
	r := fleettest.Start(t)
	store := fleetStore(t, r)
	publish(t, store, "a.example\n", "seed")
	e := startFleetAPIEnv(t, r.Addr())

	code, m := e.api(nil, "POST", "/v1/block", writeToken, `{"pattern":"bad.example","attrs":{"status":451},"comment":"TICKET-9"}`)
	if code != 200 || m["applied"] != true || m["version"] != 2.0 || m["file"] != "fleet:v2" {
		t.Fatalf("block in fleet mode: %d %v", code, m)
	}
	if resp, _ := e.get("GET", "bad.example", "/", nil); resp.StatusCode != 451 {
		t.Errorf("bad.example: %d, want 451", resp.StatusCode)
	}
	v, err := store.Current(t.Context())
	if err != nil || v.Number != 2 || v.Actor != "token:ops-bot" || v.Comment != "TICKET-9" || v.SHA256 != m["written_sha256"] ||
		!strings.Contains(string(v.Content), "by token:ops-bot: TICKET-9\nbad.example status=451\n") {
		t.Errorf("published %d by %q (%q), sha %s, err %v:\n%s", v.Number, v.Actor, v.Comment, v.SHA256, err, v.Content)
	}
	// The same again publishes nothing.
	if code, m := e.api(nil, "POST", "/v1/block", writeToken, `{"pattern":"bad.example","attrs":{"status":"451"}}`); code != 200 || len(m["changes"].([]any)) != 0 || m["version"] != nil {
		t.Errorf("same again: %d %v", code, m)
	}

	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if code, m := e.apiQuiet("POST", "/v1/block", writeToken, fmt.Sprintf(`{"pattern":"c%d.example"}`, i)); code != 200 {
				t.Errorf("c%d: %d %v", i, code, m)
			}
		})
	}
	wg.Wait()
	v, _ = store.Current(t.Context())
	l, err := blocklist.Parse("fleet", v.Content)
	if err != nil || l.Len() != n+2 || v.Number != n+2 {
		t.Errorf("version %d with %d rules (%v), want version %d with %d", v.Number, l.Len(), err, n+2, n+2)
	}

	code, m = e.api(nil, "GET", "/v1/version", readToken, "")
	pub, _ := m["published"].(map[string]any)
	if code != 200 || m["source"] != "fleet" || m["version"] != float64(n+2) || pub["version"] != float64(n+2) || pub["sha256"] != v.SHA256 || m["sha256"] != v.SHA256 {
		t.Errorf("version: %d %v", code, m)
	}

	// Unblocking everything: refused before anything is published.
	writeBody := func(p string) string { return fmt.Sprintf(`{"pattern":%q}`, p) }
	for i := range n {
		if code, _ := e.api(nil, "POST", "/v1/unblock", writeToken, writeBody(fmt.Sprintf("c%d.example", i))); code != 200 {
			t.Fatalf("unblock c%d: %d", i, code)
		}
	}
	before, _ := store.CurrentNumber(t.Context())
	code, m = e.api(nil, "POST", "/v1/unblock", writeToken, writeBody("a.example"))
	code2, _ := e.api(nil, "POST", "/v1/unblock", writeToken, writeBody("bad.example"))
	after, _ := store.CurrentNumber(t.Context())
	if code != 200 || code2 != 409 || after != before+1 {
		t.Errorf("unblocking the last rules: %d %v then %d; versions %d -> %d, want one more", code, m, code2, before, after)
	}

	// Redis down: a write says nothing was published; the version says
	// what this edge applies and why the published one is unknown.
	r.Stop()
	code, m = e.api(nil, "POST", "/v1/block", writeToken, writeBody("late.example"))
	if detail, _ := m["detail"].(string); code != 503 || !strings.Contains(detail, "nothing published") {
		t.Errorf("block with Redis down: %d %v", code, m)
	}
	code, m = e.api(nil, "GET", "/v1/version", readToken, "")
	if code != 200 || m["version"] != float64(after) || m["published"] != nil || m["published_error"] == nil {
		t.Errorf("version with Redis down: %d %v", code, m)
	}
}
