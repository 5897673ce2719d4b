package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// originProcessEnv makes the test binary run as an origin process (see
// TestHelperOriginProcess).
const originProcessEnv = "EDGEBLOCK_TEST_ORIGIN_PROCESS"

// TestHelperOriginProcess is not a test: started by startOriginProcess
// with originProcessEnv set, the test binary becomes an origin process
// that prints its address and answers "ok" after a short pause.
func TestHelperOriginProcess(t *testing.T) {
	if os.Getenv(originProcessEnv) == "" {
		t.Skip("runs only as a child process of startOriginProcess")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().String())
	mode, p, _ := strings.Cut(os.Getenv(originProcessEnv), " ")
	pause, _ := time.ParseDuration(p)
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mode == "close" {
			w.Header().Set("Connection", "close")
		}
		time.Sleep(pause)
		io.WriteString(w, "ok")
	}))
	os.Exit(0)
}

// startOriginProcess starts the test binary as an origin process on a
// loopback port and returns its URL and the process, which the test may
// kill; it is killed at cleanup in any case. With closeConns the origin
// closes every connection after its response (Connection: close), as
// origins with keep-alive off do.
func startOriginProcess(t *testing.T, pause time.Duration, closeConns bool) (string, *os.Process) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOriginProcess$")
	mode := "keep-alive"
	if closeConns {
		mode = "close"
	}
	cmd.Env = append(os.Environ(), originProcessEnv+"="+mode+" "+pause.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "127.0.0.1:") {
		t.Fatalf("origin process said %q, %v", line, err)
	}
	return "http://" + strings.TrimSpace(line), cmd.Process
}

// killableOrigin is a loopback origin that answers after a short pause
// (so that requests are in flight when it is killed) and counts requests.
type killableOrigin struct {
	*httptest.Server
	hits atomic.Int64
}

func newKillableOrigin(t *testing.T, pause time.Duration) *killableOrigin {
	t.Helper()
	o := &killableOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		time.Sleep(pause)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(o.Server.Close)
	return o
}

// kill stops the origin the hard way: no new connections, and every open
// one (idle or mid-request) closed under the edge.
func (o *killableOrigin) kill() {
	o.Listener.Close()
	o.CloseClientConnections()
}

// loadResult counts what visitors saw during a load run.
type loadResult struct {
	ok, errors atomic.Int64
	mu         sync.Mutex
	samples    []string
}

// runLoad sends GET requests for host from clients goroutines for d,
// calling mid once halfway, and counts the answers that were not 200.
func runLoad(t *testing.T, e *testEnv, host string, clients int, d time.Duration, mid func()) *loadResult {
	t.Helper()
	res := &loadResult{}
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(stop) {
				req, _ := http.NewRequest("GET", e.url("http")+"/", nil)
				req.Host = host
				resp, err := client.Do(req)
				if err != nil {
					res.fail(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "ok" {
					res.fail(fmt.Sprintf("%d %.60q", resp.StatusCode, body))
					continue
				}
				res.ok.Add(1)
			}
		})
	}
	time.Sleep(d / 2)
	mid()
	wg.Wait()
	return res
}

func (r *loadResult) fail(what string) {
	r.errors.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 5 {
		r.samples = append(r.samples, what)
	}
}

// TestOriginKilledUnderLoad kills one of three origins while four
// visitors send GET requests for 2 s: no visitor may see an error, since
// every failed attempt (reset mid-request, refused) is retried elsewhere.
func TestOriginKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test killing origin processes: runs in .ci/run")
	}
	for _, tt := range []struct {
		name       string
		closeConns bool
	}{{"keep-alive", false}, {"connection-close", true}} {
		t.Run(tt.name, func(t *testing.T) {
			var urls []string
			var procs []*os.Process
			for range 3 {
				u, p := startOriginProcess(t, 2*time.Millisecond, tt.closeConns)
				urls = append(urls, `"`+u+`"`)
				procs = append(procs, p)
			}
			e := startEnv(t, routeConfig("kill.example", strings.Join(urls, ", ")), "")
			res := runLoad(t, e, "kill.example", 4, 2*time.Second, func() { procs[0].Kill() })
			t.Logf("visitor-facing errors: %d of %d requests; samples %q", res.errors.Load(), res.errors.Load()+res.ok.Load(), res.samples)
			if res.ok.Load() < 100 {
				t.Errorf("only %d requests succeeded; the load did not run", res.ok.Load())
			}
			if n := res.errors.Load(); n != 0 {
				t.Errorf("%d visitor-facing errors after killing one origin of three, want 0", n)
			}
		})
	}
}
