package certmgr

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
	"io/fs"
	"math/big"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// DefaultInternalLifetime is the default of how long leaf certificates of
// the internal CA are valid (tls.internal_lifetime); certmagic renews them
// when a third of that is left.
const DefaultInternalLifetime = 7 * 24 * time.Hour

// internalCA is a local certificate authority for tls.mode internal. Its
// root is created on first use and kept in the certificate storage (the
// tls.storage directory, or the fleet's Redis), so that a restart keeps
// trust and, in a fleet, every edge signs with the one root. It implements
// certmagic.Issuer. The root is read from the storage when first needed,
// so that an edge whose fleet Redis is down still starts and serves the
// certificates it has; until the root can be read, Issue fails and
// certmagic tries again on a later handshake.
type internalCA struct {
	storage certmagic.Storage

	mu   sync.Mutex
	root *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	// lifetime is how long leaves are valid; zero means
	// DefaultInternalLifetime.
	lifetime time.Duration
}

// The storage keys of the internal CA. With a FileStorage at tls.storage
// they are the files internal-ca/root.crt and internal-ca/root.key, where
// earlier versions kept them.
const (
	internalCACertKey = "internal-ca/root.crt"
	internalCAKeyKey  = "internal-ca/root.key"
	internalCALock    = "internal-ca"
)

// newInternalCA returns the internal CA kept in storage; nothing is read
// until it is used.
func newInternalCA(storage certmagic.Storage) *internalCA {
	return &internalCA{storage: storage}
}

// load reads the root from storage, creating it when it does not exist
// yet. The creation happens under the storage's lock, and the storage is
// read again once the lock is held, so that edges starting together
// create one root, not one each.
func (ca *internalCA) load(ctx context.Context) error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.root != nil {
		return nil
	}
	err := ca.read(ctx)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := ca.storage.Lock(ctx, internalCALock); err != nil {
		return fmt.Errorf("internal CA: %w", err)
	}
	defer ca.storage.Unlock(context.WithoutCancel(ctx), internalCALock)
	if err := ca.read(ctx); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return ca.create(ctx)
}

// read loads the root and key; the error matches fs.ErrNotExist when
// neither exists.
func (ca *internalCA) read(ctx context.Context) error {
	certPEM, err1 := ca.storage.Load(ctx, internalCACertKey)
	keyPEM, err2 := ca.storage.Load(ctx, internalCAKeyKey)
	if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
		return fmt.Errorf("internal CA: %w", fs.ErrNotExist)
	}
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("internal CA: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return fmt.Errorf("internal CA: %s or %s in %v is not PEM", internalCACertKey, internalCAKeyKey, ca.storage)
	}
	root, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return fmt.Errorf("internal CA: %s: %w", internalCACertKey, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return fmt.Errorf("internal CA: %s: %w", internalCAKeyKey, err)
	}
	ca.root, ca.key, ca.pem = root, key, certPEM
	return nil
}

// create makes a new root and stores it, the key first.
func (ca *internalCA) create(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
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
		return err
	}
	root, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := ca.storage.Store(ctx, internalCAKeyKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})); err != nil {
		return fmt.Errorf("internal CA: %w", err)
	}
	if err := ca.storage.Store(ctx, internalCACertKey, certPEM); err != nil {
		return fmt.Errorf("internal CA: %w", err)
	}
	ca.root, ca.key, ca.pem = root, key, certPEM
	return nil
}

// RootPEM returns the root certificate, PEM encoded.
func (ca *internalCA) RootPEM() []byte {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.pem
}

// Issue implements certmagic.Issuer: it signs a leaf certificate for the
// names of csr.
func (ca *internalCA) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := ca.load(ctx); err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	lifetime := ca.lifetime
	if lifetime <= 0 {
		lifetime = DefaultInternalLifetime
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
