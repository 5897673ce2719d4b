package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// copyTestdata copies the named testdata files into a temp dir.
func copyTestdata(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheck(t *testing.T) {
	dir := copyTestdata(t, "edgeblock.yaml", "blocklist.txt")
	code, out, errOut := runCmd("check", "-config", filepath.Join(dir, "edgeblock.yaml"))
	if code != 0 || !strings.Contains(out, "2 routes") || !strings.Contains(out, "2 rules") {
		t.Errorf("check good config: exit %d\n%s%s", code, out, errOut)
	}
	// Every problem of the config is listed with file and line; the
	// blocklist problems come with it once the config itself is good.
	code, _, errOut = runCmd("check", "-config", "testdata/bad.yaml")
	if code != 1 || !strings.Contains(errOut, "testdata/bad.yaml:6: routes[0].host") {
		t.Errorf("check bad config: exit %d\n%s", code, errOut)
	}
	writeBad := filepath.Join(dir, "blocklist.txt")
	os.WriteFile(writeBad, []byte("ok.example\nbad..example\nx.example status=200\n"), 0o644)
	code, _, errOut = runCmd("check", "-config", filepath.Join(dir, "edgeblock.yaml"))
	if code != 1 || !strings.Contains(errOut, writeBad+":2: ") || !strings.Contains(errOut, writeBad+":3: ") {
		t.Errorf("check bad blocklist: exit %d\n%s", code, errOut)
	}
}

// TestCheckExpiry checks that check accepts expiries up to the year 9999
// (once overflowing and silently ignored) and rejects the ones a rule
// cannot hold, naming file and line.
func TestCheckExpiry(t *testing.T) {
	dir := copyTestdata(t, "edgeblock.yaml", "blocklist.txt")
	list := filepath.Join(dir, "blocklist.txt")
	config := filepath.Join(dir, "edgeblock.yaml")
	os.WriteFile(list, []byte("a.example expires=9999-12-31\nb.example expires=2263-01-01\nc.example expires=1969-12-31T23:59:59Z\n"), 0o644)
	if code, out, errOut := runCmd("check", "-config", config); code != 0 || !strings.Contains(out, "3 rules") {
		t.Errorf("check far expiries: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := runCmd("explain", "-config", config, "a.example")
	if code != 0 || !strings.Contains(out, "expires=9999-12-31T00:00:00Z") {
		t.Errorf("explain a.example: exit %d\n%s%s", code, out, errOut)
	}
	tests := []struct{ value, want string }{
		{"0001-01-01", "zero time"},
		{"0000-12-31T23:00:00Z", "before 0001-01-01"},
		{"9999-12-31T23:59:59-01:00", "after 9999-12-31"},
		{"2016-12-31T23:59:60Z", "leap second"},
		{"2027-01-01T00:00:00+24:00", "offset"},
	}
	for _, tt := range tests {
		os.WriteFile(list, []byte("ok.example\nx.example expires="+tt.value+"\n"), 0o644)
		code, _, errOut := runCmd("check", "-config", config)
		if code != 1 || !strings.Contains(errOut, list+":2: attribute expires=") || !strings.Contains(errOut, tt.want) {
			t.Errorf("check expires=%s: exit %d\n%s", tt.value, code, errOut)
		}
	}
}

func TestExplain(t *testing.T) {
	dir := copyTestdata(t, "edgeblock.yaml", "blocklist.txt")
	cfg := filepath.Join(dir, "edgeblock.yaml")
	tests := []struct {
		host string
		want []string
	}{
		{"www.forum.example", []string{"rule: forum.example at " + filepath.Join(dir, "blocklist.txt") + ":2", "visitor gets: 403 block page", `reason="Imminent threat to human life"`}},
		{"court.example", []string{"status=451", "policy=https://lumendatabase.org/notices/1", "visitor gets: 451 block page"}},
		{"APP.example.com:443", []string{"host: app.example.com", "route: app.example.com (routes[0])", "visitor gets: proxied"}},
		{"shop.example.com", []string{"route: *.example.com (routes[1])"}},
		{"nothing.example", []string{"route: none", "visitor gets: 404 page"}},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd("explain", "-config", cfg, tt.host)
		if code != 0 {
			t.Errorf("explain %s: exit %d %s", tt.host, code, errOut)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("explain %s lacks %q:\n%s", tt.host, w, out)
			}
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeSignals runs the real serve command: SIGHUP reloads (with file
// watching off, so only the signal can), and SIGTERM drains (readiness 503,
// still serving) and lets an in-flight request finish before serve exits 0.
func TestServeSignals(t *testing.T) {
	release := make(chan struct{})
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "origin")
	})}
	ol, _ := net.Listen("tcp", "127.0.0.1:0")
	go origin.Serve(ol)
	defer origin.Close()
	dir := t.TempDir()
	addr, admin := freeAddr(t), freeAddr(t)
	os.WriteFile(filepath.Join(dir, "blocklist.txt"), []byte("old.example\nkept.example\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "edgeblock.yaml"), []byte(fmt.Sprintf(
		"listen:\n  http: %s\n  admin: %s\ntimeouts:\n  drain: 3s\nblocklist:\n  file: blocklist.txt\n  watch: false\n  poll_interval: -1s\nroutes:\n  - host: \"*.example\"\n    origins: [\"http://%s\"]\n",
		addr, admin, ol.Addr())), 0o644)
	done := make(chan int)
	var stderr edgetest.LogBuffer
	go func() {
		done <- run([]string{"serve", "-config", filepath.Join(dir, "edgeblock.yaml"), "-state-dir", t.TempDir()}, io.Discard, &stderr)
	}()
	get := func(host, path string) (int, string) { return hostGet(addr, host, path, "") }
	deadline := time.Now().Add(5 * time.Second)
	for code, _ := get("old.example", "/"); code != 403; code, _ = get("old.example", "/") {
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.WriteFile(filepath.Join(dir, "blocklist.txt"), []byte("new.example\nkept.example\n"), 0o644)
	time.Sleep(200 * time.Millisecond)
	if code, _ := get("new.example", "/"); code != 200 {
		t.Fatal("the edit applied before SIGHUP")
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	deadline = time.Now().Add(5 * time.Second)
	for code, _ := get("new.example", "/"); code != 403; code, _ = get("new.example", "/") {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// SIGTERM: /readyz turns 503 at once while the listener keeps serving
	// for timeouts.drain, with Connection: close; an in-flight request
	// finishes; after the drain new connections are refused.
	slow := make(chan string)
	go func() {
		code, body := get("app.example", "/slow")
		slow <- fmt.Sprint(code, " ", body)
	}()
	time.Sleep(100 * time.Millisecond)
	sigterm := time.Now()
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	// The signal is handled after any reload still finishing its work (a
	// snapshot write), which a loaded machine can make take a while: wait
	// for /readyz to turn, well inside the drain, rather than a fixed sleep.
	for code, _ := hostGet(admin, "", "/readyz", ""); code != 503; code, _ = hostGet(admin, "", "/readyz", "") {
		if time.Since(sigterm) > 2*time.Second {
			t.Fatalf("/readyz during the drain = %d 2s after SIGTERM, want 503", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = "app.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Errorf("request during the drain: %v %v, want 200 with Connection: close", resp, err)
	} else {
		resp.Body.Close()
	}
	close(release)
	if got := <-slow; got != "200 origin" {
		t.Errorf("in-flight request during shutdown: %s", got)
	}
	for code, _ := get("app.example", "/"); code != 0; code, _ = get("app.example", "/") {
		if time.Since(sigterm) > 8*time.Second {
			t.Fatal("the listener still serves 8s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(sigterm); d < 3*time.Second {
		t.Errorf("connections refused %v after SIGTERM, before timeouts.drain (3s) ran out", d)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after SIGTERM:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
	if !strings.Contains(stderr.String(), `"trigger":"sighup"`) {
		t.Errorf("no sighup reload in the log:\n%s", stderr.String())
	}
}

func TestServeRefusesBadStart(t *testing.T) {
	code, _, errOut := runCmd("serve", "-config", "testdata/bad.yaml")
	if code != 1 || !strings.Contains(errOut, "testdata/bad.yaml:6:") || !strings.Contains(errOut, "not started") {
		t.Errorf("serve with a bad config: exit %d\n%s", code, errOut)
	}
}

// TestDemo runs the README's first command as a newcomer would, on free
// ports: the proxied and the blocked hostname answer as the printed curl
// lines promise, and Ctrl-C (SIGINT) ends it with exit 0.
func TestDemo(t *testing.T) {
	httpAddr, httpsAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	var stdout, stderr edgetest.LogBuffer
	done := make(chan int)
	go func() {
		done <- run([]string{"demo", "-http", httpAddr, "-https", httpsAddr, "-admin", adminAddr, "-dir", edgetest.RemovedDir(t, "edgeblock-demo-")}, &stdout, &stderr)
	}()
	get := func(host, accept string) (int, string) { return hostGet(httpAddr, host, "/", accept) }
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := get("app.localhost", ""); code != 200; code, _ = get("app.localhost", "") {
		if time.Now().After(deadline) {
			t.Fatalf("demo did not come up:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get("app.localhost", ""); code != 200 || !strings.Contains(body, "Hello from the origin of app.localhost") {
		t.Errorf("proxied: %d %s", code, body)
	}
	if code, body := get("blocked.localhost", "application/json"); code != 403 || !strings.Contains(body, `"type": "https://blog.example.com/why-we-dropped-a-customer"`) {
		t.Errorf("blocked: %d %s", code, body)
	}
	if code, body := get("court.localhost", "text/plain"); code != 451 || !strings.Contains(body, "Court order 123") {
		t.Errorf("court: %d %s", code, body)
	}
	if code, _ := get("nothing.localhost", ""); code != 404 {
		t.Errorf("unknown: %d", code)
	}
	for _, want := range []string{"curl -i -H 'Host: app.localhost' http://" + httpAddr + "/", "--cacert", "edgeblock block -config"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("demo instructions lack %q:\n%s", want, stdout.String())
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT) // Ctrl-C: no drain
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo exited %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop on SIGTERM")
	}
}

// hostGet sends GET path to addr with the given Host and Accept headers and
// returns the status (0 when the request failed) and body.
func hostGet(addr, host, path, accept string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
