package certmgr

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/proxy/certs"
)

// TLSConfigs returns the TLS configs of the HTTPS listener and of the QUIC
// listener: certificates from certmagic, with the same in-process decision
// (getCertificate) and session ticket keys that rotate together (hourly).
// The HTTPS one offers TLS 1.2 with ECDHE and AEAD suites only (AES-GCM,
// ChaCha20-Poly1305), or TLS 1.3, and HTTP/2 and HTTP/1.1 through ALPN;
// the QUIC one offers TLS 1.3 only (QUIC needs it) and ALPN h3 only (the
// tls-alpn-01 challenge is answered over TCP). A name that the edge does
// not cover, or may not get a certificate for now, gets the
// unrecognized_name alert. Call it once: each call starts a rotation.
func (t *Manager) TLSConfigs() (tcp, quic *tls.Config) {
	c := t.magic.TLSConfig()
	c.GetCertificate = t.getCertificate
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	q := c.Clone()
	q.MinVersion, q.CipherSuites = tls.VersionTLS13, nil
	q.NextProtos = []string{"h3"}
	c.NextProtos = append([]string{"h2", "http/1.1"}, c.NextProtos...)
	t.tickets.Rotate(t.ctx, c, q)
	return c, q
}

// getCertificate is the listener's GetCertificate. When the policy
// refused the name it returns no certificate and no error: crypto/tls
// then finds no certificate at all and sends the unrecognized_name alert
// (112), where an error would send internal_error (80). Other errors
// (the storage or the CA failed) are counted and logged by handshakeError.
func (t *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := t.magic.GetCertificate(hello)
	var r *certs.Refusal
	if errors.As(err, &r) {
		return nil, nil
	}
	if err != nil {
		t.handshakeError(hello.ServerName, err)
	}
	return cert, err
}

// handshakeError counts and logs a handshake that got no certificate for a
// name a route or rule covers (names nothing covers are counted by decide).
func (t *Manager) handshakeError(name string, err error) {
	if ok, _ := t.edge.Covers(name); !ok {
		return
	}
	reason := "obtain"
	if strings.Contains(err.Error(), "fleet storage") || strings.Contains(err.Error(), "redis") {
		reason = "storage"
	}
	t.metrics.TLSHandshakeErrors.WithLabelValues(reason).Inc()
	t.log.Warn("no certificate for a covered name; the handshake failed and the next one tries again", "event", "tls_handshake_error",
		"name", name, "reason", reason, "error", err.Error())
}

// decide is certmagic's on-demand DecisionFunc: the policy decides, a
// refusal is counted by reason and logged.
func (t *Manager) decide(ctx context.Context, name string) error {
	d, err := t.policy.Decide(ctx, name)
	if err != nil {
		reason := certs.ReasonNotCovered
		var r *certs.Refusal
		if errors.As(err, &r) {
			reason = r.Reason
		}
		t.metrics.TLSHandshakeRefuse.WithLabelValues(reason).Inc()
		t.log.Info("certificate refused", "event", "tls_refused", "name", name, "reason", reason, "error", err.Error())
		t.setBudgets()
		return err
	}
	if d.New {
		t.log.Info("new name allowed", "event", "tls_new_name", "name", name, "pattern", d.Pattern.String())
		t.setBudgets()
	}
	return nil
}

// configForCert is certmagic's GetConfigForCert: certificates whose names
// are still covered get the config without on-demand, so that certmagic's
// maintenance renews them in the background like the names managed ahead
// (certmagic leaves on-demand certificates to be renewed at a handshake,
// which a quiet name may not have before it expires). A certificate no
// longer covered gets the on-demand config, which maintenance skips, and
// whose handshake renewal the policy refuses.
func (t *Manager) configForCert(c certmagic.Certificate) (*certmagic.Config, error) {
	if len(c.Names) == 1 {
		t.mu.Lock()
		cfg := t.wildCfgs[c.Names[0]]
		t.mu.Unlock()
		if cfg != nil {
			return cfg, nil
		}
	}
	for _, n := range c.Names {
		if _, ok := t.policy.Covering(n); !ok {
			return t.magic, nil
		}
	}
	return t.ahead, nil
}

// refreshBudgets sets edgeblock_tls_issuance_budget_remaining now and
// then, since budgets come back with time, not with events.
func (t *Manager) refreshBudgets() {
	tick := time.NewTicker(budgetRefresh)
	defer tick.Stop()
	for {
		t.setBudgets()
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *Manager) setBudgets() {
	for pattern, n := range t.policy.Remaining() {
		if l := t.patLabels.Label(pattern); l != certs.OtherLabel {
			t.metrics.TLSBudgetRemaining.WithLabelValues(l).Set(float64(n))
		}
	}
}

// SetPorts tells the ACME issuer where the edge's own listeners answer
// HTTP-01 and TLS-ALPN-01 challenges, so that certmagic finds them in use
// and relies on the edge's handlers instead of binding its own.
func (t *Manager) SetPorts(httpAddr, httpsAddr string) {
	for _, iss := range t.acme {
		if host, port, err := net.SplitHostPort(httpAddr); err == nil {
			iss.ListenHost = host
			iss.AltHTTPPort, _ = strconv.Atoi(port)
		}
		if _, port, err := net.SplitHostPort(httpsAddr); err == nil {
			iss.AltTLSALPNPort, _ = strconv.Atoi(port)
		}
	}
}

// IsHTTPChallenge reports whether r is for the manager to answer with
// HandleHTTPChallenge: in mode acme, a request under
// /.well-known/acme-challenge/ (HTTP-01). In mode internal nothing is.
func (t *Manager) IsHTTPChallenge(r *http.Request) bool {
	return len(t.acme) > 0 && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/")
}

// HandleHTTPChallenge answers an HTTP-01 challenge request (see
// IsHTTPChallenge) with the key authorization of its token, or a 404 when
// no order of ours waits for that token.
func (t *Manager) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) {
	if len(t.acme) == 0 || !t.acme[0].HandleHTTPChallenge(w, r) {
		http.NotFound(w, r)
	}
}
