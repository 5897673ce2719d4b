package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestTLSSettings checks what the HTTPS listener negotiates: TLS 1.2 only
// with ECDHE and AEAD suites, TLS 1.3, ECDSA keys of tls.key_type, and the
// unrecognized_name alert for a name nothing covers.
func TestTLSSettings(t *testing.T) {
	for _, tt := range []struct {
		keyType string
		curve   elliptic.Curve
	}{{"", elliptic.P256()}, {"p384", elliptic.P384()}} {
		t.Run("key_type="+tt.keyType, func(t *testing.T) {
			extra := ""
			if tt.keyType != "" {
				extra = "  key_type: " + tt.keyType + "\n"
			}
			e, pool := internalEnvAt(t, edgetest.RemovedDir(t, "edgeblock-certs-"), extra, "")
			edgetest.WaitFor(t, 10*time.Second, "certificate for app.example", func() bool { return obtainedNames(t, e, "app.example") == 1 })
			dial := func(c *tls.Config) (tls.ConnectionState, error) {
				c.RootCAs, c.ServerName = pool, "app.example"
				conn, err := tls.Dial("tcp", e.srv.Addr("https"), c)
				if err != nil {
					return tls.ConnectionState{}, err
				}
				defer conn.Close()
				return conn.ConnectionState(), nil
			}
			st, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatal(err)
			}
			if name := tls.CipherSuiteName(st.CipherSuite); !strings.HasPrefix(name, "TLS_ECDHE_ECDSA_WITH_") || (!strings.Contains(name, "GCM") && !strings.Contains(name, "CHACHA20")) {
				t.Errorf("TLS 1.2 suite %s", name)
			}
			pub, ok := st.PeerCertificates[0].PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != tt.curve {
				t.Errorf("certificate key %T %v, want ECDSA %s", st.PeerCertificates[0].PublicKey, pub, tt.curve.Params().Name)
			}
			if len(st.PeerCertificates) != 1 {
				t.Errorf("chain of %d certificates, want the leaf alone (never the root)", len(st.PeerCertificates))
			}
			if st, err := dial(&tls.Config{}); err != nil || st.Version != tls.VersionTLS13 {
				t.Errorf("TLS 1.3: %x, %v", st.Version, err)
			}
			for _, refused := range []struct {
				what string
				cfg  *tls.Config
			}{
				{"TLS 1.1", &tls.Config{MaxVersion: tls.VersionTLS11}},
				{"TLS 1.2 with CBC suites only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
					tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}},
			} {
				if _, err := dial(refused.cfg); err == nil {
					t.Errorf("%s: handshake succeeded", refused.what)
				}
			}
			// A name nothing covers: alert 112, unrecognized_name, in
			// TLS 1.2 and 1.3.
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				_, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pool, ServerName: "stranger.example", MaxVersion: v})
				if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
					t.Errorf("TLS %x, uncovered name: %v, want the unrecognized_name alert", v, err)
				}
			}
		})
	}
}
