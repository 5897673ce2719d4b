package proxy

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// startBIND runs BIND's named on a loopback port as the primary of zone,
// taking TXT updates signed with the TSIG key "edgeblock." (hmac-sha256),
// every name of the zone pointing at 127.0.0.1. It returns the server's
// address and the file holding the key's secret.
func startBIND(t *testing.T, zone string) (addr, secretFile string) {
	t.Helper()
	skipHeavyInShort(t, "BIND (named)")
	named := requireBinary(t, "named", "bind9")
	dir := t.TempDir()
	port := freePort(t)
	key := make([]byte, 32)
	rand.Read(key)
	secret := base64.StdEncoding.EncodeToString(key)
	secretFile = filepath.Join(dir, "tsig.secret")
	edgetest.WriteFile(t, secretFile, secret+"\n")
	edgetest.WriteFile(t, filepath.Join(dir, "zone.db"), fmt.Sprintf(`$TTL 60
@    IN SOA ns.%[1]s. hostmaster.%[1]s. 1 60 60 600 60
@    IN NS  ns.%[1]s.
ns   IN A   127.0.0.1
@    IN A   127.0.0.1
*    IN A   127.0.0.1
`, zone))
	edgetest.WriteFile(t, filepath.Join(dir, "named.conf"), fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
};
controls { };
key "edgeblock." { algorithm hmac-sha256; secret "%[3]s"; };
zone "%[4]s" {
	type primary;
	file "%[1]s/zone.db";
	update-policy { grant edgeblock. zonesub TXT; };
};
`, dir, port, secret, zone))
	startProcess(t, nil, named, "-g", "-4", "-c", filepath.Join(dir, "named.conf"))
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr)
	return addr, secretFile
}

// TestWildcardDNS01 obtains one wildcard certificate from pebble through
// DNS-01, with BIND as the zone's primary updated by RFC 2136 + TSIG and
// pebble resolving through BIND: many names under the wildcard route are
// served by that one certificate, from one order.
func TestWildcardDNS01(t *testing.T) {
	bind, secret := startBIND(t, "dns.test")
	pe := startPebbleDNS(t, bind)
	o := echoOrigin(t)
	before := pe.orders()
	e := startEnv(t, pe.tlsConfig(edgetest.RemovedDir(t, "edgeblock-certs-"), "http-01")+fmt.Sprintf(`  dns:
    provider: rfc2136
    server: %[1]s
    key_name: edgeblock.
    key_secret_file: %[2]s
    resolvers: [%[1]s]
    propagation_timeout: -1s
`, bind, secret)+routeConfig("*.dns.test", `"`+o.URL+`"`)+"    tls:\n      wildcard: true\n", "")
	var names []string
	for i := range 8 {
		names = append(names, fmt.Sprintf("made-up-%d.dns.test", i))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range e.logs.Lines(t, "certificate obtain failed") {
				t.Logf("obtain failed: %v", l)
			}
		}
	})
	edgetest.WaitFor(t, 60*time.Second, "the wildcard certificate", func() bool { return handshake(t, e, pe.roots, names[0]) == "" })
	for _, n := range names {
		req, _ := http.NewRequest("GET", e.url("https")+"/", nil)
		req.Host = n
		resp, err := tlsClient(pe.roots, n).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		resp.Body.Close()
		if got := resp.TLS.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "*.dns.test" {
			t.Errorf("%s served a certificate for %v, want [*.dns.test]", n, got)
		}
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", n, resp.StatusCode)
		}
	}
	orders := pe.orders() - before
	t.Logf("DNS-01 through BIND: %d names under *.dns.test, %d order(s)", len(names), orders)
	if orders != 1 {
		t.Errorf("pebble received %d orders, want 1", orders)
	}
	obtained := e.logs.Lines(t, "certificate obtained")
	if len(obtained) != 1 || obtained[0]["name"] != "*.dns.test" {
		t.Errorf("certificates obtained: %v, want *.dns.test alone", obtained)
	}
	m := e.scrape()
	if v := edgetest.MetricValue(m, `edgeblock_tls_certificate_expiry_timestamp_seconds{issuer="acme",name="*.dns.test"}`); v == "" {
		t.Error("no expiry series for *.dns.test")
	}
	if v := edgetest.MetricValue(m, `edgeblock_tls_obtain_by_pattern_total{pattern="*.dns.test",result="success"}`); v != "1" {
		t.Errorf("obtained under *.dns.test: %q, want 1", v)
	}
}

// TestWildcardInternal: with tls.mode internal a wildcard route with
// tls.wildcard gets one certificate for *.name from the internal CA, and
// made-up names under it mint nothing more.
func TestWildcardInternal(t *testing.T) {
	o := echoOrigin(t)
	e, pool := internalTLSEnv(t, edgetest.RemovedDir(t, "edgeblock-certs-"), "", routeConfig("*.apps.example", `"`+o.URL+`"`)+"    tls:\n      wildcard: true\n", "")
	edgetest.WaitFor(t, 10*time.Second, "the wildcard certificate", func() bool { return handshake(t, e, pool, "a.apps.example") == "" })
	for i := range 50 {
		if err := handshake(t, e, pool, fmt.Sprintf("made-up-%d.apps.example", i)); err != "" {
			t.Fatalf("made-up-%d: %s", i, err)
		}
	}
	var names []string
	for _, l := range e.logs.Lines(t, "certificate obtained") {
		names = append(names, fmt.Sprint(l["name"]))
	}
	t.Logf("internal CA, wildcard route: 51 names, certificates signed: %v", names)
	if strings.Join(names, " ") != "*.apps.example" {
		t.Errorf("certificates signed for %v, want *.apps.example alone", names)
	}
}

// servedNames returns the names of the certificate the edge serves for
// name.
func servedNames(e *testEnv, pool *x509.CertPool, name string) ([]string, error) {
	c, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pool, ServerName: name})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames, nil
}
