package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// TestTicketKeysRotate resumes TLS 1.2 sessions on a real loopback
// listener: a ticket resumes while its key is among the kept ones and not
// after it rotated out.
func TestTicketKeysRotate(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"}, DNSNames: []string{"t.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	const every = 300 * time.Millisecond
	NewTicketKeys(every, 2).Rotate(t.Context(), cfg)
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	cache := tls.NewLRUClientSessionCache(4)
	dial := func() bool {
		t.Helper()
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: "t.test",
			MaxVersion: tls.VersionTLS12, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().DidResume
	}
	if dial() {
		t.Fatal("first connection resumed")
	}
	if !dial() {
		t.Error("second connection, same key: not resumed")
	}
	// The ticket from the second connection was made with the newest key
	// or one before; after three rotations both are gone.
	time.Sleep(3*every + every/2)
	if dial() {
		t.Error("resumed with a ticket whose key rotated out")
	}
	if !dial() {
		t.Error("a fresh ticket did not resume")
	}
}
