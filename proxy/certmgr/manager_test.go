package certmgr

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeEdge covers a fixed set of patterns.
type fakeEdge struct{ pats *certs.Patterns }

func (e fakeEdge) Covers(name string) (bool, error) {
	_, ok := e.pats.Match(strings.ToLower(name), time.Now())
	return ok, nil
}
func (e fakeEdge) CoveredPatterns() *certs.Patterns { return e.pats }
func (e fakeEdge) ExpiryLabel(name string) string   { return name }

// testManager is a Manager of the internal CA in a temporary directory,
// serving handshakes on a loopback listener.
type testManager struct {
	*Manager
	addr string
	pool *x509.CertPool
	logs *edgetest.LogBuffer
}

func newTestManager(t *testing.T, o Options, pats []certs.Pattern) *testManager {
	t.Helper()
	if o.Mode == "" {
		o.Mode = "internal"
	}
	if o.Storage == "" {
		o.Storage = t.TempDir()
	}
	if o.ManageAheadLimit == 0 {
		o.ManageAheadLimit = 1000
	}
	if o.OnDemand == (certs.Limits{}) {
		o.OnDemand = certs.Limits{MaxNewPerHour: 10, MaxNames: 1000}
	}
	logs := &edgetest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	m, err := New(o, log, metrics.New(prometheus.NewRegistry(), "test", "test"), fakeEdge{certs.NewPatterns(pats)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	root, err := InternalRootPEM(o.Storage, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		t.Fatal("no root")
	}
	tcp, _ := m.TLSConfigs()
	l, err := tls.Listen("tcp", "127.0.0.1:0", tcp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return &testManager{Manager: m, addr: l.Addr().String(), pool: pool, logs: logs}
}

// served returns the names of the certificate served for name.
func (m *testManager) served(name string) ([]string, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", m.addr, &tls.Config{RootCAs: m.pool, ServerName: name})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames, nil
}

// TestWildcardHalfStored: a handshake for a name under a wildcard
// pattern that comes while the wildcard certificate is in storage but not
// whole, and not in the cache, gets no certificate of its own. certmagic
// stores a certificate's key, certificate and metadata one after another
// and caches it after that; a handshake in between was allowed (a
// certificate file was there), could not load the wildcard, and obtained
// one for its own name. Once the certificate is whole, the name is served
// by it from storage.
func TestWildcardHalfStored(t *testing.T) {
	tm := newTestManager(t, Options{}, []certs.Pattern{{Name: "apps.example", Kind: certs.Wildcard, WildcardCert: true}})
	tm.ManageAhead([]Ahead{{Name: "*.apps.example"}})
	edgetest.WaitFor(t, 10*time.Second, "the wildcard certificate", func() bool { _, err := tm.served("a.apps.example"); return err == nil })
	ctx := t.Context()
	meta := certmagic.StorageKeys.SiteMeta(tm.issuerKey(), "*.apps.example")
	saved, err := tm.ahead.Storage.Load(ctx, meta)
	if err != nil {
		t.Fatal(err)
	}
	// The moment between the certificate file and the metadata.
	if err := tm.ahead.Storage.Delete(ctx, meta); err != nil {
		t.Fatal(err)
	}
	tm.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: "*.apps.example"}})
	if names, err := tm.served("b.apps.example"); err == nil {
		t.Errorf("b.apps.example got a certificate for %v while the wildcard's was half stored", names)
	}
	if err := tm.ahead.Storage.Store(ctx, meta, saved); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b.apps.example", "c.apps.example"} {
		if names, err := tm.served(name); err != nil || len(names) != 1 || names[0] != "*.apps.example" {
			t.Errorf("%s: served %v (%v), want the wildcard certificate from storage", name, names, err)
		}
	}
	if signed := logNames(t, tm.logs, "certificate obtained"); strings.Join(signed, " ") != "*.apps.example" {
		t.Errorf("certificates signed for %v, want *.apps.example alone", signed)
	}
}

// logNames returns the "name" of each JSON log line of logs with message
// msg.
func logNames(t *testing.T, logs *edgetest.LogBuffer, msg string) []string {
	t.Helper()
	var out []string
	for _, m := range logs.Lines(t, msg) {
		n, _ := m["name"].(string)
		out = append(out, n)
	}
	return out
}
