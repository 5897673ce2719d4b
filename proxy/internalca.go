package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/certmagic"
)

// internalLeafLifetime is the default of how long leaf certificates of
// the internal CA are valid (tls.internal_lifetime); certmagic renews them
// when a third of that is left.
const internalLeafLifetime = 7 * 24 * time.Hour

// internalCA is a local certificate authority for tls.mode internal. Its
// root is created on first use and kept in the storage directory, so that a
// restart keeps trust. It implements certmagic.Issuer.
type internalCA struct {
	root *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	// lifetime is how long leaves are valid; zero means
	// internalLeafLifetime.
	lifetime time.Duration
}

// internalCAPaths returns where the root certificate and key live.
func internalCAPaths(storage string) (certFile, keyFile string) {
	dir := filepath.Join(storage, "internal-ca")
	return filepath.Join(dir, "root.crt"), filepath.Join(dir, "root.key")
}

// loadInternalCA loads the internal CA from storage, creating it when it
// does not exist yet.
func loadInternalCA(storage string) (*internalCA, error) {
	certFile, keyFile := internalCAPaths(storage)
	certPEM, err1 := os.ReadFile(certFile)
	keyPEM, err2 := os.ReadFile(keyFile)
	if errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist) {
		return createInternalCA(certFile, keyFile)
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("internal CA: %s or %s is not PEM", certFile, keyFile)
	}
	root, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("internal CA: %s: %w", certFile, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("internal CA: %s: %w", keyFile, err)
	}
	return &internalCA{root: root, key: key, pem: certPEM}, nil
}

func createInternalCA(certFile, keyFile string) (*internalCA, error) {
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("edgeblock internal CA %x", serial.Bytes()[:4]), Organization: []string{"edgeblock"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	root, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	return &internalCA{root: root, key: key, pem: certPEM}, nil
}

// RootPEM returns the root certificate, PEM encoded.
func (ca *internalCA) RootPEM() []byte { return ca.pem }

// Issue implements certmagic.Issuer: it signs a leaf certificate for the
// names of csr.
func (ca *internalCA) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	lifetime := ca.lifetime
	if lifetime <= 0 {
		lifetime = internalLeafLifetime
	}
	// Backdated for clocks a little behind, by at most a tenth of the
	// lifetime so that a short lifetime is not mostly in the past.
	backdate := min(5*time.Minute, lifetime/10)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: firstName(csr)},
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("internal CA: signing: %w", err)
	}
	// The root signs leaves directly, and a root is never sent: clients
	// hold it as their trust anchor (RFC 8446 4.4.2 lets a server omit
	// it, and sending it makes scanners report a self-signed
	// certificate in the chain).
	return &certmagic.IssuedCertificate{Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func firstName(csr *x509.CertificateRequest) string {
	if len(csr.DNSNames) > 0 {
		return csr.DNSNames[0]
	}
	if len(csr.IPAddresses) > 0 {
		return csr.IPAddresses[0].String()
	}
	return csr.Subject.CommonName
}

// IssuerKey implements certmagic.Issuer.
func (ca *internalCA) IssuerKey() string { return "edgeblock-internal" }

// InternalRootPEM returns the internal CA's root certificate for the
// config's storage, creating the CA if it does not exist yet.
func InternalRootPEM(cfg *Config) ([]byte, error) {
	ca, err := loadInternalCA(cfg.TLS.Storage)
	if err != nil {
		return nil, err
	}
	return ca.RootPEM(), nil
}
