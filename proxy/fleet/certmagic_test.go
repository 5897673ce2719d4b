package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// countingIssuer signs every CSR with a throwaway CA and counts the orders.
// Each order takes a while, as an ACME order does, so concurrent callers
// really overlap.
type countingIssuer struct {
	orders atomic.Int32
	ca     *x509.Certificate
	key    *ecdsa.PrivateKey
}

func newCountingIssuer(t *testing.T) *countingIssuer {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &countingIssuer{ca: ca, key: key}
}

func (i *countingIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	n := i.orders.Add(1)
	select {
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(100 + n)), Subject: pkix.Name{CommonName: csr.Subject.CommonName},
		DNSNames:  csr.DNSNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.ca, csr.PublicKey, i.key)
	if err != nil {
		return nil, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.ca.Raw})...)
	return &certmagic.IssuedCertificate{Certificate: chain}, nil
}

func (i *countingIssuer) IssuerKey() string { return "fleet-test" }

// TestCertmagicOneOrderPerName drives certmagic itself on three "nodes"
// (each its own client, Storage, cache and config) asking for the same new
// name at the same moment: the shared lock lets exactly one order it; the
// others find it in storage and load it.
func TestCertmagicOneOrderPerName(t *testing.T) {
	r := startRedis(t)
	iss := newCountingIssuer(t)
	const nodes = 3
	var cfgs []*certmagic.Config
	for i := 0; i < nodes; i++ {
		c, fcfg := newTestClient(t, r.Addr(), "")
		st := NewStorage(c, fcfg)
		st.LockPoll = 20 * time.Millisecond
		t.Cleanup(st.Close)
		var cfg *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
			Logger:           zap.NewNop(),
		})
		t.Cleanup(cache.Stop)
		cfg = certmagic.New(cache, certmagic.Config{Storage: st, Issuers: []certmagic.Issuer{iss}, Logger: zap.NewNop()})
		cfgs = append(cfgs, cfg)
	}
	ctx := ctxT(t)
	for _, name := range []string{"a.example", "b.example"} {
		before := iss.orders.Load()
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, cfg := range cfgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := cfg.ObtainCertSync(ctx, name); err != nil {
					t.Errorf("node %d: obtain %s: %v", i, name, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := iss.orders.Load() - before; got != 1 {
			t.Fatalf("%s: %d orders from %d nodes at once, want 1", name, got, nodes)
		}
		// Every node can now serve it from the shared storage.
		for i, cfg := range cfgs {
			if _, err := cfg.CacheManagedCertificate(ctx, name); err != nil {
				t.Errorf("node %d: load %s from shared storage: %v", i, name, err)
			}
		}
	}
}
