// Package fleettest starts real redis-server processes for tests: on a
// loopback port, in a temporary directory, killed with the test (and with
// the test binary, should it die first). Tests that need Redis skip
// without the redis-server binary, except under CI=true, where they fail.
package fleettest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a real redis-server process on a loopback port, in a
// temporary directory, owned by one test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string
	tls  *tls.Config // set: the port speaks TLS only, and PING uses this
	// sentinel, if set, is the Sentinel configuration written to
	// sentinel.conf before the first start; the process runs as a Sentinel.
	sentinel string

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *os.File
	exited chan error // receives cmd.Wait's result
}

// StartSentinel starts a Sentinel (redis-server --sentinel) for t that
// watches the primary at primaryAddr under the name master, with the given
// quorum, and declares it down after 1s without an answer (so a failover
// starts about a second after the primary dies). extra are more
// command-line options.
func StartSentinel(t testing.TB, master, primaryAddr string, quorum int, extra ...string) *Server {
	t.Helper()
	return StartSentinelTLS(t, nil, master, primaryAddr, quorum, extra...)
}

// StartSentinelTLS is StartSentinel with its port speaking TLS only (extra
// must name the certificate files, and "--tls-replication", "yes" for it
// to reach TLS servers); tc is the client side for PING.
func StartSentinelTLS(t testing.TB, tc *tls.Config, master, primaryAddr string, quorum int, extra ...string) *Server {
	t.Helper()
	host, port, _ := strings.Cut(primaryAddr, ":")
	conf := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s %[4]d\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 4000\n"+
		"sentinel parallel-syncs %[1]s 1\n", master, host, port, quorum)
	return start(t, tc, conf, extra)
}

// Start starts a redis-server for t and stops it at the end of the test.
// extra are more command-line options (e.g. "--appendonly", "yes").
// Without the binary it skips the test, except under CI=true, where it
// fails: CI must run these tests.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return StartTLS(t, nil, extra...)
}

// StartTLS is Start with the port speaking TLS only (extra must name the
// server's certificate files); tc is the client side for PING.
func StartTLS(t testing.TB, tc *tls.Config, extra ...string) *Server {
	t.Helper()
	return start(t, tc, "", extra)
}

// start starts a server or (with a sentinel configuration) a Sentinel.
func start(t testing.TB, tc *tls.Config, sentinel string, extra []string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found (CI=true, so this fails; .ci/run installs Debian's redis-server): %v", err)
		}
		t.Skipf("redis-server not found, skipping (install Debian's redis-server to run this test): %v", err)
	}
	r := &Server{t: t, bin: bin, dir: t.TempDir(), args: extra, tls: tc, sentinel: sentinel}
	// A free port: bind :0, release, hand to redis. Another process may
	// grab it in between, so retry a few times.
	for attempt := 0; ; attempt++ {
		r.port = freePort(t)
		err := r.start()
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("start redis-server: %v", err)
		}
	}
	t.Cleanup(r.Stop)
	return r
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Dir is the server's working directory (its log is redis.log there).
func (r *Server) Dir() string { return r.dir }

// Addr is the server's host:port.
func (r *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start runs redis-server on r.port and waits until it answers PING.
func (r *Server) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ports := []string{"--port", strconv.Itoa(r.port)}
	if r.tls != nil {
		ports = []string{"--port", "0", "--tls-port", strconv.Itoa(r.port)}
	}
	args := append(append(ports,
		"--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--protected-mode", "no", "--daemonize", "no",
	), r.args...)
	if r.sentinel != "" {
		conf := filepath.Join(r.dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil { // a restart keeps what the Sentinel rewrote
			if err := os.WriteFile(conf, []byte(r.sentinel), 0o644); err != nil {
				return err
			}
		}
		args = append([]string{conf, "--sentinel"}, args...)
	}
	log, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// If the test binary dies (a timeout panic skips Cleanup), so does
	// the server, rather than lingering on its port.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond, TLSConfig: r.tls})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// NOAUTH: up, and wanting a password the test will give.
		if err := c.Ping(context.Background()).Err(); err == nil || strings.HasPrefix(err.Error(), "NOAUTH") {
			break
		}
		select {
		case err := <-exited:
			log.Close()
			out, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server exited (%v): %s", err, lastLines(string(out), 5))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			log.Close()
			return errors.New("redis-server did not answer PING within 10s")
		}
	}
	r.cmd, r.log, r.exited = cmd, log, exited
	return nil
}

// Start starts a stopped server again on the same port and directory.
func (r *Server) Start() {
	r.t.Helper()
	if err := r.start(); err != nil {
		r.t.Fatalf("restart redis-server: %v", err)
	}
}

// Stop kills the server (SIGKILL: no chance to save or say goodbye) and
// waits until its port is closed.
func (r *Server) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited // the process is gone, and its listening socket with it
	r.log.Close()
	r.cmd = nil
}

// Pause stops the process (SIGSTOP): it keeps its connections and port
// but answers nothing, like a hung server, until Resume.
func (r *Server) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (r *Server) Resume() { r.signal(syscall.SIGCONT) }

func (r *Server) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		r.t.Fatalf("signal %v: redis-server is not running", sig)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Running reports whether the process is running (started and not
// stopped with Stop).
func (r *Server) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// Client returns a new client to the server, closed at the end of the test.
func (r *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), TLSConfig: r.tls})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// lastLines returns s's last n lines.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
