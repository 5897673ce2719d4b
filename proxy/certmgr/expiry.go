package certmgr

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/edgeblock/edgeblock/proxy/certs"
)

// onEvent logs certmagic's certificate events and keeps the metrics.
func (t *Manager) onEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining":
		t.log.Info("obtaining certificate", "event", "tls_obtaining", "name", name)
	case "cert_obtained":
		renewal, _ := data["renewal"].(bool)
		t.metrics.TLSObtain.WithLabelValues("success").Inc()
		t.metrics.TLSObtainByPattern.WithLabelValues(t.patternLabel(name), "success").Inc()
		t.log.Info("certificate obtained", "event", "tls_obtained", "name", name, "renewal", renewal, "issuer", fmt.Sprint(data["issuer"]))
		// The event comes before certmagic puts a renewed certificate
		// in its cache: the expiry is read from what it stored.
		key, _ := data["certificate_path"].(string)
		t.recordStored(ctx, name, key)
	case "cert_failed":
		renewal, _ := data["renewal"].(bool)
		t.metrics.TLSObtain.WithLabelValues("failure").Inc()
		t.metrics.TLSObtainByPattern.WithLabelValues(t.patternLabel(name), "failure").Inc()
		t.log.Error("certificate obtain failed", "event", "tls_failed", "name", name, "renewal", renewal, "error", fmt.Sprint(data["error"]))
	case "cached_managed_cert":
		if sans, ok := data["sans"].([]string); ok {
			for _, s := range sans {
				t.log.Info("certificate loaded from storage", "event", "tls_cached", "name", s)
				t.recordCached(s)
			}
		}
	}
	return nil
}

// patternLabel is the pattern label of name in the issuance metrics.
func (t *Manager) patternLabel(name string) string {
	p, ok := t.policy.Covering(name)
	if !ok {
		return certs.OtherLabel
	}
	return t.patLabels.Label(p.String())
}

// issuerLabel is the issuer label of the expiry series: "internal" for the
// internal CA, whose certificates are renewed locally and never page, and
// "acme" for a public or private ACME CA.
func (t *Manager) issuerLabel() string {
	if t.mode == "internal" {
		return "internal"
	}
	return "acme"
}

// recordStored notes the expiry of the certificate certmagic just stored
// under key for name.
func (t *Manager) recordStored(ctx context.Context, name, key string) {
	pemData, err := t.ahead.Storage.Load(ctx, key)
	if err != nil {
		t.log.Warn("certificate expiry unknown", "event", "tls_expiry", "name", name, "error", err.Error())
		t.recordCached(name)
		return
	}
	block, _ := pem.Decode(pemData)
	if block == nil {
		return
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return
	}
	t.recordExpiry(name, leaf.NotAfter)
}

// recordCached notes the expiry of the newest certificate in the cache for
// name.
func (t *Manager) recordCached(name string) {
	var notAfter time.Time
	for _, c := range t.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && c.Leaf.NotAfter.After(notAfter) {
			notAfter = c.Leaf.NotAfter
		}
	}
	if !notAfter.IsZero() {
		t.recordExpiry(name, notAfter)
	}
}

// recordExpiry notes that name's newest certificate expires at notAfter
// and updates the series.
func (t *Manager) recordExpiry(name string, notAfter time.Time) {
	t.mu.Lock()
	if old, ok := t.certs[name]; !ok || notAfter.After(old) {
		t.certs[name] = notAfter
	}
	t.mu.Unlock()
	t.refreshExpiry()
}

// refreshExpiry sets edgeblock_tls_certificate_expiry_timestamp_seconds
// from the certificates of the names the current routes and rules cover,
// under a bounded label (Edge.ExpiryLabel; the earliest expiry under a
// label wins). Series of labels nothing covers any more are deleted, so an
// alert never fires for a name that was dropped.
func (t *Manager) refreshExpiry() {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := map[string]time.Time{}
	for name, notAfter := range t.certs {
		if _, ok := t.policy.Covering(name); !ok {
			continue
		}
		label := t.edge.ExpiryLabel(name)
		if old, ok := want[label]; !ok || notAfter.Before(old) {
			want[label] = notAfter
		}
	}
	issuer := t.issuerLabel()
	for label := range t.labels {
		if _, ok := want[label]; !ok {
			t.metrics.CertExpiry.DeleteLabelValues(label, issuer)
			delete(t.labels, label)
		}
	}
	for label, notAfter := range want {
		t.metrics.CertExpiry.WithLabelValues(label, issuer).Set(float64(notAfter.Unix()))
		t.labels[label] = true
	}
}
