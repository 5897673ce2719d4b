package main

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestDemoPortInUse occupies each of the demo's ports in turn: the demo
// names the address and the flag to change, prints no banner, and leaves
// nothing listening.
func TestDemoPortInUse(t *testing.T) {
	for _, flag := range []string{"http", "https", "admin"} {
		t.Run(flag, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			addrs := map[string]string{"http": freeAddr(t), "https": freeAddr(t), "admin": freeAddr(t)}
			addrs[flag] = busy.Addr().String()
			code, out, errOut := runCmd("demo", "-http", addrs["http"], "-https", addrs["https"], "-admin", addrs["admin"], "-dir", edgetest.RemovedDir(t, "edgeblock-demo-"))
			want := "demo: " + busy.Addr().String() + " is in use (pass -" + flag + " ADDR)\n"
			if code != 1 || out != "" || !strings.HasSuffix(errOut, want) {
				t.Errorf("demo with %s taken: exit %d, stdout %q, stderr:\n%s\nwant it to end in %q", flag, code, out, errOut, want)
			}
			// The listeners bound before the failure were closed again.
			for name, addr := range addrs {
				if name == flag {
					continue
				}
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Errorf("%s (%s) is still listening after the failed start", name, addr)
				}
			}
		})
	}
}

// TestDemoBindsBeforeBanner: by the time the banner is printed, every
// address it names accepts connections.
func TestDemoBindsBeforeBanner(t *testing.T) {
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var stdout, stderr edgetest.LogBuffer
	done := make(chan int)
	go func() {
		done <- run([]string{"demo", "-http", addrs[0], "-https", addrs[1], "-admin", addrs[2], "-dir", edgetest.RemovedDir(t, "edgeblock-demo-")}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "Press Ctrl-C to stop.") {
		select {
		case code := <-done:
			t.Fatalf("demo exited %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			t.Errorf("banner printed, but %s is not listening: %v", a, err)
			continue
		}
		c.Close()
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT) // Ctrl-C, as the banner says: no drain
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo exited %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop on SIGINT")
	}
}
