package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// writeSelfSigned writes a self-signed server certificate and its key to
// dir/name.crt and dir/name.key. Its only name is a DNS name the test
// never dials, so a command that trusts it must trust the certificate
// itself, not a name check against the address it dials.
func writeSelfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name + ".admin.internal"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	edgetest.WriteFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	edgetest.WriteFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	return certFile, keyFile
}

// waitReadyTLS waits for /readyz of an admin listener that speaks HTTPS.
func (p *edgeProc) waitReadyTLS(admin string) {
	p.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := c.Get("https://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("edgeblock exited %d:\n%s", p.code, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("not ready over HTTPS:\n%s", p.stderr.String())
		}
	}
}

// TestBlockAppliedAdminTLS runs the real edge with its admin listener on
// HTTPS: block and unblock ask it over HTTPS, trusting the certificate of
// admin.tls_cert, and report applied: true, with the token of
// $EDGEBLOCK_ADMIN_TOKEN when admin.auth_reads wants one; when the
// listener needs a credential the command lacks they say so instead of
// "no edge answered", and an edge serving another certificate is not
// trusted.
func TestBlockAppliedAdminTLS(t *testing.T) {
	bin := edgeblockBin(t)
	const token = "0123456789abcdef0123456789abcdef"
	sum := sha256.Sum256([]byte(token))
	tests := []struct {
		name  string
		admin string // extra admin: keys ({cert} and {tokens} are replaced)
		token string // $EDGEBLOCK_ADMIN_TOKEN
		want  string // in block's output
	}{
		{"tls", "", "", "  applied: true (the running edge at "},
		{"tls with tokens, reads open", "  tokens_file: {tokens}\n", "", "  applied: true (the running edge at "},
		{"auth_reads with a token", "  tokens_file: {tokens}\n  auth_reads: true\n", token, "  applied: true (the running edge at "},
		{"auth_reads without the token", "  tokens_file: {tokens}\n  auth_reads: true\n", "", "  applied: cannot ask the edge: admin listener requires a credential (admin.auth_reads): set EDGEBLOCK_ADMIN_TOKEN"},
		{"auth_reads with client certificates only", "  client_ca: {cert}\n  auth_reads: true\n", "", "  applied: cannot ask the edge: admin listener requires a client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(adminTokenEnv, tt.token)
			f := newEdgeFiles(t, "a.example\nb.example\n")
			cert, key := writeSelfSigned(t, f.dir, "edge")
			tokens := filepath.Join(f.dir, "tokens")
			edgetest.WriteFile(t, tokens, "deploy-bot:write:"+hex.EncodeToString(sum[:])+"\n")
			extra := strings.NewReplacer("{cert}", cert, "{tokens}", tokens).Replace(tt.admin)
			b, err := os.ReadFile(f.config)
			if err != nil {
				t.Fatal(err)
			}
			edgetest.WriteFile(t, f.config, string(b)+"admin:\n  tls_cert: "+cert+"\n  tls_key: "+key+"\n"+extra)
			p := startProc(t, bin, "serve", "-config", f.config, "-state-dir", "off")
			p.waitReadyTLS(f.admin)

			code, stdout, stderr := runCmd("block", "-config", f.config, "c.example")
			if code != 0 || !strings.Contains(stdout, tt.want) {
				t.Errorf("block: exit %d, want %q in\n%s%s", code, tt.want, stdout, stderr)
			}
			if strings.Contains(stdout, "no edge answered") {
				t.Errorf("block says no edge answered:\n%s", stdout)
			}
			code, stdout, _ = runCmd("unblock", "-json", "-config", f.config, "c.example")
			var e editJSON
			decodeJSON(t, "unblock -json", stdout, &e)
			if applied := strings.HasPrefix(tt.want, "  applied: true"); code != 0 || (e.Applied != nil && *e.Applied) != applied || (e.EdgeError == "") != applied {
				t.Errorf("unblock -json: exit %d, %+v, want applied %v", code, e, applied)
			}
			if tt.name != "tls" {
				return
			}
			// The edge serves the certificate it started with; a config
			// naming another one is not the edge the command trusts.
			writeSelfSigned(t, f.dir, "edge")
			code, stdout, _ = runCmd("block", "-config", f.config, "d.example")
			if code != 0 || !strings.Contains(stdout, "  applied: no edge answered at "+f.admin) || !strings.Contains(stdout, "not the one in admin.tls_cert") {
				t.Errorf("block with another certificate in the config: exit %d\n%s", code, stdout)
			}
			p.stop()
		})
	}
}
