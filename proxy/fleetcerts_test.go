package proxy

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/certmgr"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// TestFleetCertificatesSlowStore: with the certificates in the fleet's
// Redis (tls.mode internal, on-demand names under *.new.edgeblock.test), a
// handshake for a name not in memory gets its alert within 2 s whether
// Redis is slow (CLIENT PAUSE), hung (SIGSTOP) or dead (SIGKILL); names in
// memory are served throughout. An edge started while Redis is dead serves
// the certificates it served before, chained to the same internal root,
// from its local copy under tls.storage; once Redis is back (empty), new
// names get certificates again.
func TestFleetCertificatesSlowStore(t *testing.T) {
	if testing.Short() {
		t.Skip("real redis-server, paused and killed; skipped under -short")
	}
	rd := fleettest.Start(t)
	o := echoOrigin(t)
	storage := t.TempDir()
	config := fmt.Sprintf(`listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  mode: internal
  storage: %s
fleet:
  redis:
    addr: %s
  node: edge-1
`, storage, rd.Addr()) + routeConfig("app.edgeblock.test", `"`+o.URL+`"`, "*.new.edgeblock.test", `"`+o.URL+`"`)

	envs, bundles := newEdges(t, []string{config}, "")
	startTogether(t, envs, bundles)
	e := envs[0]
	serve := func(e *testEnv, name string, within time.Duration) *x509.Certificate {
		t.Helper()
		var chain []*x509.Certificate
		edgetest.WaitFor(t, within, "a certificate for "+name, func() bool {
			var err error
			chain, err = leafOf(e.srv.Addr("https"), name)
			return err == nil
		})
		return chain[0]
	}
	app := serve(e, "app.edgeblock.test", 20*time.Second)
	one := serve(e, "one.new.edgeblock.test", 20*time.Second)

	// refused handshakes for a new name within 2s, in each fault.
	const bound = 2 * time.Second
	alert := func(fault, name string) {
		t.Helper()
		start := time.Now()
		_, err := leafOf(e.srv.Addr("https"), name)
		took := time.Since(start)
		t.Logf("Redis %s: the handshake for a new name failed after %v (%v)", fault, took.Round(time.Millisecond), err)
		if err == nil {
			t.Errorf("Redis %s: %s got a certificate", fault, name)
		}
		if took > bound {
			t.Errorf("Redis %s: the handshake for %s took %v, want an alert within %v", fault, name, took, bound)
		}
		if _, err := leafOf(e.srv.Addr("https"), "app.edgeblock.test"); err != nil {
			t.Errorf("Redis %s: the certificate in memory is not served: %v", fault, err)
		}
	}
	back := func(name string) {
		t.Helper()
		serve(e, name, 3*certmgr.StorageProbeInterval+5*time.Second)
	}

	// Slow: Redis answers, three seconds late.
	if err := rd.Client().Do(context.Background(), "CLIENT", "PAUSE", 3000, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	alert("slow (CLIENT PAUSE 3000)", "slow.new.edgeblock.test")
	time.Sleep(3 * time.Second)
	back("after-slow.new.edgeblock.test")

	// Hung: the process stopped; connections open, nothing answers.
	rd.Pause()
	alert("hung (SIGSTOP)", "hung.new.edgeblock.test")
	rd.Resume()
	back("after-hung.new.edgeblock.test")

	// Dead.
	rd.Stop()
	alert("dead (SIGKILL)", "dead.new.edgeblock.test")

	// A new edge on the same tls.storage, started while Redis is dead.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	e.srv.Shutdown(ctx)
	cancel()
	envs2, bundles2 := newEdges(t, []string{config}, "")
	start := time.Now()
	startTogether(t, envs2, bundles2)
	e2 := envs2[0]
	for _, want := range []*x509.Certificate{app, one} {
		name := want.DNSNames[0]
		got := serve(e2, name, 5*time.Second)
		if !got.Equal(want) {
			t.Errorf("started without Redis: %s served another certificate (serial %v, want %v)", name, got.SerialNumber, want.SerialNumber)
		}
	}
	t.Logf("started without Redis: the certificates served before are served again %v after the start", time.Since(start).Round(time.Millisecond))

	// Redis back, empty: a new name gets a certificate from the same root.
	rd.Start()
	e = e2
	fresh := serve(e2, "fresh.new.edgeblock.test", 3*certmgr.StorageProbeInterval+10*time.Second)
	if fresh.Issuer.String() != app.Issuer.String() {
		t.Errorf("after Redis came back: issuer %q, want the fleet's %q", fresh.Issuer, app.Issuer)
	}
}
