package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// requireBinary returns the path of a program the test needs; outside CI a
// missing one skips the test with the reason, in CI it fails it.
func requireBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI: .ci/run installs Debian's %s package", name, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s); CI runs this test", name, pkg)
	}
	return p
}

// skipHeavyInShort skips the test under -short: it starts a heavy real
// part (pebble, BIND, Chromium, testssl.sh) that takes seconds to tens of
// seconds. The full run and CI still run it.
func skipHeavyInShort(t *testing.T, part string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("starts %s; skipped under -short", part)
	}
}

// freePort returns a loopback port that was free a moment ago, for a
// program the test starts that must be told its port (pebble, named, or
// the edge pebble validates through). It is chosen below the kernel's
// ephemeral range (ip_local_port_range, 32768 and up by default), from
// which every listener on port 0 and every outgoing connection on the
// machine takes its port: a port from there can be taken by another
// test between the choice and the bind ("address already in use", or a
// client reaching another process).
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + mrand.IntN(12768)
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			l.Close()
			return port
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a certificate and key for 127.0.0.1 and localhost,
// for pebble's own HTTPS endpoint.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "pebble-cert.pem"), filepath.Join(dir, "pebble-key.pem")
	edgetest.WriteFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	edgetest.WriteFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

// startProcess runs a program until the test ends, with its output in a
// buffer.
func startProcess(t *testing.T, env []string, name string, args ...string) *edgetest.LogBuffer {
	t.Helper()
	out := &edgetest.LogBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), out.String())
		}
	})
	return out
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	edgetest.WaitFor(t, 10*time.Second, addr+" listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestACMEWithPebble obtains certificates from a real ACME server. Pebble
// validates through pebble-challtestsrv's DNS, which answers every name
// with 127.0.0.1, on the proxy's own HTTP and HTTPS ports, so validation
// really connects to the proxy. It runs once with HTTP-01 only, answered by
// the HTTP listener (for the blocked name too), and once with TLS-ALPN-01
// only, answered by the HTTPS listener.
func TestACMEWithPebble(t *testing.T) {
	for _, ch := range []string{"http-01", "tls-alpn-01"} {
		t.Run(ch, func(t *testing.T) { testACME(t, ch) })
	}
}

// pebbleEnv is a running pebble and pebble-challtestsrv.
type pebbleEnv struct {
	dir                 string
	httpPort, httpsPort int // where pebble validates: the proxy's listeners
	acmePort, mgmtPort  int
	dnsPort, chMgmtPort int
	cert                string // pebble's own HTTPS certificate, for tls.ca_root
	roots               *x509.CertPool
	out                 *edgetest.LogBuffer
}

// startPebble starts pebble-challtestsrv (whose DNS answers every name with
// 127.0.0.1) and pebble resolving through it, validating on fresh ports
// for the proxy's HTTP and HTTPS listeners. extraEnv goes to pebble.
func startPebble(t *testing.T, extraEnv ...string) *pebbleEnv {
	t.Helper()
	return startPebbleDNS(t, "", extraEnv...)
}

// startPebbleDNS is startPebble with pebble resolving through the DNS
// server at dnsAddr instead, when not empty (no pebble-challtestsrv).
func startPebbleDNS(t *testing.T, dnsAddr string, extraEnv ...string) *pebbleEnv {
	t.Helper()
	skipHeavyInShort(t, "pebble")
	pebble := requireBinary(t, "pebble", "pebble")
	challtest := requireBinary(t, "pebble-challtestsrv", "pebble")
	pe := &pebbleEnv{dir: t.TempDir(), httpPort: freePort(t), httpsPort: freePort(t), dnsPort: freePort(t),
		acmePort: freePort(t), mgmtPort: freePort(t), chMgmtPort: freePort(t)}
	cert, key := selfSigned(t, pe.dir)
	pe.cert = cert
	pcfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", pe.acmePort), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", pe.mgmtPort),
		"certificate": cert, "privateKey": key, "httpPort": pe.httpPort, "tlsPort": pe.httpsPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	edgetest.WriteFile(t, filepath.Join(pe.dir, "pebble.json"), string(pcfg))
	if dnsAddr == "" {
		dnsAddr = fmt.Sprintf("127.0.0.1:%d", pe.dnsPort)
		startProcess(t, nil, challtest, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
			"-dns01", dnsAddr, "-http01", "", "-https01", "", "-tlsalpn01", "",
			"-management", fmt.Sprintf("127.0.0.1:%d", pe.chMgmtPort))
	}
	pe.out = startProcess(t, append([]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, extraEnv...), pebble,
		"-config", filepath.Join(pe.dir, "pebble.json"), "-dnsserver", dnsAddr)
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", pe.acmePort))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", pe.mgmtPort))
	waitListening(t, dnsAddr)

	// Pebble signs with a root it makes at start; fetch it to trust the
	// certificates it issues.
	pe.roots = x509.NewCertPool()
	mgmt := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := mgmt.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", pe.mgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !pe.roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %s", rootPEM)
	}
	return pe
}

// orders returns how many new orders pebble has received.
func (pe *pebbleEnv) orders() int { return strings.Count(pe.out.String(), "POST /order-plz") }

// tlsConfig returns the tls: section of a config obtaining from this
// pebble with challenge.
func (pe *pebbleEnv) tlsConfig(storage, challenge string) string {
	return fmt.Sprintf(`listen:
  http: 127.0.0.1:%d
  https: 127.0.0.1:%d
  admin: 127.0.0.1:0
tls:
  mode: acme
  ca: https://127.0.0.1:%d/dir
  ca_root: %s
  email: ops@edgeblock.test
  storage: %s
  challenges: [%s]
`, pe.httpPort, pe.httpsPort, pe.acmePort, pe.cert, storage, challenge)
}

func testACME(t *testing.T, challenge string) {
	pe := startPebble(t)
	o := echoOrigin(t)
	storage := edgetest.RemovedDir(t, "edgeblock-certs-")
	config := pe.tlsConfig(storage, challenge) + routeConfig("app.edgeblock.test", `"`+o.URL+`"`)
	list := "blocked.edgeblock.test reason=\"Blocked over ACME TLS\"\n"
	pebbleRoots, pebbleOut := pe.roots, pe.out

	run := func(e *testEnv) {
		t.Helper()
		for _, tt := range []struct {
			host   string
			status int
			want   string
		}{
			{"app.edgeblock.test", 200, `"host":"app.edgeblock.test"`},
			{"blocked.edgeblock.test", 403, "Blocked over ACME TLS"},
		} {
			c := tlsClient(pebbleRoots, tt.host)
			var resp *http.Response
			var err error
			// Managed ahead: wait for the order to finish.
			edgetest.WaitFor(t, 60*time.Second, "certificate for "+tt.host, func() bool {
				req, _ := http.NewRequest("GET", e.url("https")+"/", nil)
				req.Host = tt.host
				resp, err = c.Do(req)
				return err == nil
			})
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Errorf("%s over TLS: %d\n%s", tt.host, resp.StatusCode, body)
			}
			if resp.TLS.PeerCertificates[0].Issuer.CommonName == "" || !strings.Contains(resp.TLS.PeerCertificates[0].Issuer.CommonName, "Pebble") {
				t.Errorf("%s: certificate issued by %q, want Pebble", tt.host, resp.TLS.PeerCertificates[0].Issuer.CommonName)
			}
		}
		// An unknown name: the handshake fails and no order is placed.
		if _, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pebbleRoots, ServerName: "stranger.edgeblock.test"}); err == nil {
			t.Error("handshake for an unknown name succeeded")
		}
	}

	e := startEnv(t, config, list)
	run(e)
	obtained := map[string]bool{}
	for _, l := range e.logs.Lines(t, "certificate obtained") {
		obtained[fmt.Sprint(l["name"])] = true
	}
	if !obtained["app.edgeblock.test"] || !obtained["blocked.edgeblock.test"] || len(obtained) != 2 {
		t.Errorf("obtained %v, want exactly the routed and the blocked name", obtained)
	}
	for _, l := range e.logs.Lines(t, "obtaining certificate") {
		if l["name"] == "stranger.edgeblock.test" {
			t.Error("an order was started for an unknown name")
		}
	}
	if v := edgetest.MetricValue(e.scrape(), `edgeblock_tls_obtain_total{result="success"}`); v != "2" {
		t.Errorf("obtain success = %q, want 2", v)
	}
	// Validation reached the proxy: with HTTP-01 the HTTP listener
	// answered the challenges of both names, the blocked one included;
	// with TLS-ALPN-01 it answered none.
	answered := map[string]bool{}
	for _, l := range e.logs.Lines(t, "request") {
		if l["outcome"] == "acme" && l["status"] == 200.0 {
			answered[fmt.Sprint(l["host"])] = true
		}
	}
	if challenge == "http-01" && (!answered["app.edgeblock.test"] || !answered["blocked.edgeblock.test"]) {
		t.Errorf("HTTP-01 challenges answered on the HTTP listener for %v, want both names", answered)
	}
	if challenge == "tls-alpn-01" && len(answered) > 0 {
		t.Errorf("HTTP-01 challenges answered with only tls-alpn-01 offered: %v", answered)
	}
	ordersBefore := strings.Count(pebbleOut.String(), "POST /order-plz")
	if ordersBefore < 2 {
		t.Logf("pebble output has %d order lines", ordersBefore)
	}
	e.srv.Shutdown(t.Context())

	// A restart reuses the stored certificates: no new order.
	e2 := startEnv(t, config, list)
	run(e2)
	if n := len(e2.logs.Lines(t, "obtaining certificate")); n != 0 {
		t.Errorf("restart started %d new orders", n)
	}
	if n := len(e2.logs.Lines(t, "certificate loaded from storage")); n < 2 {
		t.Errorf("restart loaded %d certificates from storage, want 2", n)
	}
	if after := strings.Count(pebbleOut.String(), "POST /order-plz"); after != ordersBefore {
		t.Errorf("pebble saw %d orders after the restart, %d before", after, ordersBefore)
	}
}
