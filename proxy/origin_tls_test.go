package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// originCA is a private certificate authority made for one test.
type originCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newOriginCA(t *testing.T) *originCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgeblock test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &originCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for name signed by the CA, usable for
// servers and clients, as a tls.Certificate and as PEM certificate and key.
func (ca *originCA) issue(t *testing.T, name string, serial int64) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM, keyPEM
}

// TestHTTPSOrigin: an HTTPS origin with a private CA that demands a
// client certificate is reached with origin_tls.ca_file, client_cert, client_key
// and server_name, over HTTP/2 unless http2 is false; without the CA or
// the client certificate the visitor gets a 502 and the error counts as
// kind="tls".
func TestHTTPSOrigin(t *testing.T) {
	ca := newOriginCA(t)
	serverCert, _, _ := ca.issue(t, "origin.internal", 2)
	_, clientPEM, clientKey := ca.issue(t, "edge-client", 3)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	o.EnableHTTP2 = true
	o.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	o.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	o.StartTLS()
	t.Cleanup(o.Close)

	dir := t.TempDir()
	for name, b := range map[string][]byte{"ca.pem": ca.pem, "client.pem": clientPEM, "client.key": clientKey} {
		edgetest.WriteFile(t, filepath.Join(dir, name), string(b))
	}
	tlsBlock := fmt.Sprintf("{ca_file: %s, client_cert: %s, client_key: %s, server_name: origin.internal}",
		filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	cfg := routeConfig("mtls.example", `"`+o.URL+`"`, "h1.example", `"`+o.URL+`"`, "untrusted.example", `"`+o.URL+`"`, "nocert.example", `"`+o.URL+`"`)
	for host, extra := range map[string]string{
		"mtls.example":      "    origin_tls: " + tlsBlock + "\n",
		"h1.example":        "    origin_tls: " + tlsBlock + "\n    http2: false\n",
		"nocert.example":    fmt.Sprintf("    origin_tls: {ca_file: %s, server_name: origin.internal}\n", filepath.Join(dir, "ca.pem")),
		"untrusted.example": "",
	} {
		cfg = strings.Replace(cfg, fmt.Sprintf("  - host: %q\n    origins: [%q]\n", host, o.URL), fmt.Sprintf("  - host: %q\n    origins: [%q]\n%s", host, o.URL, extra), 1)
	}
	e := startEnv(t, "origins:\n  retries: {max_tries: 1}\n"+cfg, "")
	for _, tt := range []struct {
		host   string
		status int
		body   string
	}{
		{"mtls.example", 200, "HTTP/2.0 edge-client"},
		{"h1.example", 200, "HTTP/1.1 edge-client"},
		{"untrusted.example", 502, ""},
		{"nocert.example", 502, ""},
	} {
		resp, body := e.get("GET", tt.host, "/", nil)
		if resp.StatusCode != tt.status || (tt.body != "" && body != tt.body) {
			t.Errorf("%s: %d %.60q, want %d %q", tt.host, resp.StatusCode, body, tt.status, tt.body)
		}
	}
	m := e.scrape()
	// untrusted.example: the edge refuses the origin's certificate, a
	// TLS error every time. nocert.example: under TLS 1.3 the origin
	// refuses the missing client certificate after the edge's handshake
	// is done, and closes; the edge reads either its alert (tls) or the
	// closed connection (reset), whichever the socket holds first.
	for host, kinds := range map[string][]string{"untrusted.example": {"tls"}, "nocert.example": {"tls", "reset"}} {
		n := 0
		for _, kind := range kinds {
			v, _ := strconv.Atoi(edgetest.MetricValue(m, fmt.Sprintf(`edgeblock_upstream_errors_total{kind="%s",origin="%s",route="%s"}`, kind, o.URL, host)))
			n += v
		}
		if n != 1 {
			t.Errorf("%s: %d errors of kinds %v, want 1", host, n, kinds)
			for _, l := range e.logs.Lines(t, "request") {
				if l["host"] == host {
					t.Logf("access line: %v", l)
				}
			}
		}
	}
}

// TestOriginTLSConfig: bad TLS files are config errors naming the field,
// and insecure_skip_verify loads with a warning.
func TestOriginTLSConfig(t *testing.T) {
	dir := t.TempDir()
	edgetest.WriteFile(t, filepath.Join(dir, "list.txt"), "")
	edgetest.WriteFile(t, filepath.Join(dir, "notpem.pem"), "hello")
	base := "listen: {http: 127.0.0.1:0}\nblocklist: {file: list.txt}\nroutes:\n  - host: a.test\n    origins: [\"https://10.0.0.1\"]\n"
	for _, tt := range []struct {
		name, extra, want string
		warn              bool
	}{
		{"missing ca", "    origin_tls: {ca_file: nope.pem}\n", "routes[0].origin_tls: ca_file: " + filepath.Join(dir, "nope.pem") + ": no such file", false},
		{"not pem", "    origin_tls: {ca_file: notpem.pem}\n", "routes[0].origin_tls: ca_file: " + filepath.Join(dir, "notpem.pem") + ": no PEM certificate in it", false},
		{"cert without key", "    origin_tls: {client_cert: notpem.pem}\n", "routes[0].origin_tls: client_cert and client_key go together", false},
		{"bad lb", "    lb: fastest\n", `routes[0].lb: "fastest": want one of round_robin, least_conn, random_two, first, ip_hash, cookie`, false},
		{"bad all_down", "    all_down: panic\n", `routes[0].all_down: "panic": want least_bad or 503`, false},
		{"bad status", "    health: {interval: 1s, expect_status: 1000}\n", "routes[0].health.expect_status: 1000 is not an HTTP status", false},
		{"insecure", "    origin_tls: {insecure_skip_verify: true}\n", "routes[0].origin_tls.insecure_skip_verify: true: origin certificates are not verified", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "c.yaml")
			c, err := config.ParseConfig(path, []byte(base+tt.extra))
			got := fmt.Sprint(err)
			if tt.warn {
				if err != nil {
					t.Fatal(err)
				}
				got = strings.Join(c.Warnings, "\n")
			}
			if !strings.Contains(got, path+":6: "+tt.want) {
				t.Errorf("got %q, want it to hold %q", got, path+":6: "+tt.want)
			}
		})
	}
}
