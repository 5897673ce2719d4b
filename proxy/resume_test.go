package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// resumeDial opens a TLS connection to addr for name with cfg (whose
// ClientSessionCache carries tickets from one connection to the next),
// sends one HTTP/1.1 request and reads the answer, so that a TLS 1.3
// ticket (sent after the handshake) reaches the cache. It returns the
// connection's state.
func resumeDial(t testing.TB, addr, name string, cfg *tls.Config) tls.ConnectionState {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+name+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 403 ") {
		t.Fatalf("answer %.40q, %v; want the block page", b, err)
	}
	return conn.ConnectionState()
}

func resumeConfig(pool *x509.CertPool, name string, version uint16) *tls.Config {
	return &tls.Config{RootCAs: pool, ServerName: name, NextProtos: []string{"http/1.1"},
		MinVersion: version, MaxVersion: version, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
}

// TestTLSResumption shows, over real TLS to the running server, that a
// returning visitor resumes its session from the ticket of its first
// connection, with TLS 1.3 and TLS 1.2; and that a visitor without a
// ticket does a full handshake.
func TestTLSResumption(t *testing.T) {
	e, pool := startTLSEnv(t, "", "blocked.example\n")
	addr := e.srv.Addr("https")
	for _, tt := range []struct {
		name    string
		version uint16
	}{
		{"TLS 1.3", tls.VersionTLS13},
		{"TLS 1.2", tls.VersionTLS12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := resumeConfig(pool, "blocked.example", tt.version)
			first := resumeDial(t, addr, "blocked.example", cfg)
			if first.Version != tt.version || first.DidResume {
				t.Fatalf("first connection: version %x, resumed %v; want %x, a full handshake", first.Version, first.DidResume, tt.version)
			}
			for i := range 3 {
				if cs := resumeDial(t, addr, "blocked.example", cfg); !cs.DidResume {
					t.Errorf("connection %d with the ticket: a full handshake, want resumed", i+2)
				}
			}
			fresh := resumeConfig(pool, "blocked.example", tt.version)
			if cs := resumeDial(t, addr, "blocked.example", fresh); cs.DidResume {
				t.Error("a visitor without a ticket resumed")
			}
		})
	}
}
