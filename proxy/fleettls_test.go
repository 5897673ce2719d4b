package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/proxy/certmgr"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// newEdges prepares n edges (not started) from the configs, each with the
// blocklist list, in their own directories.
func newEdges(t *testing.T, configs []string, list string) ([]*testEnv, []*reload.Bundle) {
	t.Helper()
	var envs []*testEnv
	var bundles []*reload.Bundle
	for _, config := range configs {
		dir := t.TempDir()
		e := &testEnv{t: t, dir: dir, config: filepath.Join(dir, "edgeblock.yaml"), list: filepath.Join(dir, "blocklist.txt"), logs: &edgetest.LogBuffer{}}
		edgetest.WriteFile(t, e.config, config+"\nblocklist:\n  file: blocklist.txt\n  policy: https://policy.example/default\n")
		edgetest.WriteFile(t, e.list, list)
		b, err := reload.LoadBundle(e.config)
		if err != nil {
			t.Fatalf("LoadBundle: %v", err)
		}
		srv, err := NewServer(NewLogger(e.logs, "json", slog.LevelDebug), e.config, b)
		if err != nil {
			t.Fatal(err)
		}
		e.srv = srv
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		})
		envs, bundles = append(envs, e), append(bundles, b)
	}
	return envs, bundles
}

// startTogether starts every edge at the same moment.
func startTogether(t *testing.T, envs []*testEnv, bundles []*reload.Bundle) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(envs))
	for i := range envs {
		wg.Go(func() { errs[i] = envs[i].srv.Start(bundles[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("edge %d: %v", i, err)
		}
	}
}

// leafOf does a TLS handshake with an edge for name and returns the chain
// it presents (not verified).
func leafOf(addr, name string) ([]*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates, nil
}

// TestFleetCertificatesOneOrder runs three edges sharing one Redis for
// their certificates, against pebble. They start at the same moment and
// all manage the same new name: exactly one ACME order is placed, and all
// three serve the one certificate. Pebble validates HTTP-01 on the first
// edge's port only, so when another edge wins the lock, the first answers
// the challenge from the shared storage. Then Redis goes away: the
// certificate in memory is still served, a new name fails the handshake
// cleanly and is counted, and once Redis is back the next handshake gets
// it.
func TestFleetCertificatesOneOrder(t *testing.T) {
	rd := fleettest.Start(t)
	// No authorization reuse: every order of a name needs its own
	// validation, so a second order could not hide behind the first.
	p := startPebble(t, "PEBBLE_AUTHZREUSE=0")
	o := echoOrigin(t)
	var configs []string
	for i := range 3 {
		http := "127.0.0.1:0"
		if i == 0 {
			http = fmt.Sprintf("127.0.0.1:%d", p.httpPort)
		}
		configs = append(configs, fmt.Sprintf(`listen:
  http: %s
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  mode: acme
  ca: %s
  ca_root: %s
  email: ops@edgeblock.test
  challenges: [http-01]
fleet:
  redis:
    addr: %s
    dial_timeout: 300ms
    timeout: 500ms
  node: edge-%d
`, http, fmt.Sprintf("https://127.0.0.1:%d/dir", p.acmePort), p.cert, rd.Addr(), i)+routeConfig("app.edgeblock.test", `"`+o.URL+`"`, "*.new.edgeblock.test", `"`+o.URL+`"`))
	}
	envs, bundles := newEdges(t, configs, "blocked.edgeblock.test\n")
	startTogether(t, envs, bundles)

	serials := map[string]bool{}
	for i, e := range envs {
		for _, name := range []string{"app.edgeblock.test", "blocked.edgeblock.test"} {
			var resp *http.Response
			edgetest.WaitFor(t, 90*time.Second, fmt.Sprintf("edge %d serving %s", i, name), func() bool {
				req, _ := http.NewRequest("GET", e.url("https")+"/", nil)
				req.Host = name
				var err error
				resp, err = tlsClient(p.roots, name).Do(req)
				return err == nil
			})
			resp.Body.Close()
			serials[name+" "+resp.TLS.PeerCertificates[0].SerialNumber.String()] = true
		}
	}
	obtained := 0
	for _, e := range envs {
		obtained += len(e.logs.Lines(t, "certificate obtained"))
	}
	t.Logf("pebble orders: %d; certificates obtained by the three edges: %d", p.orders(), obtained)
	if p.orders() != 2 || obtained != 2 || len(serials) != 2 {
		t.Errorf("%d orders, %d obtained, %d distinct certificates served (%v); want 2 of each: one per name for the whole fleet",
			p.orders(), obtained, len(serials), serials)
	}

	// Redis goes away.
	rd.Stop()
	ordersBefore := p.orders()
	for i, e := range envs {
		if _, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: p.roots, ServerName: "app.edgeblock.test"}); err != nil {
			t.Errorf("edge %d, Redis down: the certificate in memory is not served: %v", i, err)
		}
	}
	start := time.Now()
	if _, err := leafOf(envs[1].srv.Addr("https"), "one.new.edgeblock.test"); err == nil {
		t.Error("Redis down: a new name got a certificate")
	}
	t.Logf("Redis down: the handshake for a new name failed after %v", time.Since(start).Round(time.Millisecond))
	edgetest.WaitFor(t, 5*time.Second, "the failed handshake counted", func() bool {
		return edgetest.MetricValue(envs[1].scrape(), `edgeblock_tls_handshake_errors_total{reason="storage"}`) != "0"
	})
	// The storage now knows Redis is down: the next new name fails at
	// once instead of waiting out the client's retries again.
	start = time.Now()
	if _, err := leafOf(envs[1].srv.Addr("https"), "two.new.edgeblock.test"); err == nil {
		t.Error("Redis down: a second new name got a certificate")
	}
	fast := time.Since(start)
	t.Logf("Redis down: the next handshake for a new name failed after %v", fast.Round(time.Millisecond))
	if fast > certmgr.StorageProbeInterval {
		t.Errorf("the second failure took %v; the storage should fail fast while Redis is down", fast)
	}
	edgetest.WaitFor(t, 5*time.Second, "both failed handshakes counted", func() bool {
		return edgetest.MetricValue(envs[1].scrape(), `edgeblock_tls_handshake_errors_total{reason="storage"}`) == "2"
	})
	if len(envs[1].logs.Lines(t, "no certificate for a covered name; the handshake failed and the next one tries again")) == 0 {
		t.Error("the failed handshake was not logged")
	}
	if p.orders() != ordersBefore {
		t.Errorf("an order was placed while Redis was down")
	}

	// Redis is back (empty: it kept nothing): the next handshake for the
	// name gets it.
	rd.Start()
	var chain []*x509.Certificate
	edgetest.WaitFor(t, 90*time.Second, "the new name once Redis is back", func() bool {
		var err error
		chain, err = leafOf(envs[1].srv.Addr("https"), "one.new.edgeblock.test")
		return err == nil
	})
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: p.roots, DNSName: "one.new.edgeblock.test", Intermediates: pool(chain[1:])}); err != nil {
		t.Errorf("the new name's certificate: %v", err)
	}
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TestFleetInternalCA starts two edges in tls.mode internal on one Redis at
// the same moment: one root is created, and both edges' certificates chain
// to it, which is what InternalRootPEM (the ca-root command) returns.
func TestFleetInternalCA(t *testing.T) {
	rd := fleettest.Start(t)
	o := echoOrigin(t)
	var configs []string
	for i := range 2 {
		configs = append(configs, fmt.Sprintf(`listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  mode: internal
fleet:
  redis:
    addr: %s
  node: edge-%d
`, rd.Addr(), i)+routeConfig("app.edgeblock.test", `"`+o.URL+`"`))
	}
	envs, bundles := newEdges(t, configs, "")
	startTogether(t, envs, bundles)
	rootPEM, err := InternalRootPEM(envs[0].srv.cfg)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	issuers := map[string]bool{}
	for i, e := range envs {
		var chain []*x509.Certificate
		edgetest.WaitFor(t, 20*time.Second, fmt.Sprintf("edge %d's certificate", i), func() bool {
			chain, err = leafOf(e.srv.Addr("https"), "app.edgeblock.test")
			return err == nil
		})
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: "app.edgeblock.test"}); err != nil {
			t.Errorf("edge %d: its certificate does not chain to the fleet's root: %v", i, err)
		}
		issuers[chain[0].Issuer.CommonName] = true
	}
	if len(issuers) != 1 {
		t.Errorf("issuers %v, want one", issuers)
	}
	// The root is in Redis, not in a directory: a third reader with only
	// the fleet section gets the same.
	again, err := InternalRootPEM(&config.Config{Fleet: envs[1].srv.cfg.Fleet, TLS: config.TLSConfig{Config: certmgr.Config{Storage: filepath.Join(t.TempDir(), "unused")}}})
	if err != nil || string(again) != string(rootPEM) {
		t.Errorf("root read again differs (%v)", err)
	}
}
