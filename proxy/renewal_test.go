package proxy

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestRenewalShortLived runs the internal CA with 15-second certificates:
// certmagic renews them with a third left, for a name managed ahead, for
// a name obtained on demand that keeps getting visitors, and for one that
// had a single visitor (renewed in the background, not at a handshake).
// Visitors see no handshake error throughout, and the expiry series move
// forward.
func TestRenewalShortLived(t *testing.T) {
	if testing.Short() {
		t.Skip("real renewals of 15-second certificates: runs in .ci/run")
	}
	old := renewCheckInterval
	renewCheckInterval = time.Second
	t.Cleanup(func() { renewCheckInterval = old })
	e, pool := internalEnvAt(t, edgetest.RemovedDir(t, "edgeblock-certs-"), "  internal_lifetime: 15s\n", "")
	edgetest.WaitFor(t, 10*time.Second, "certificate for app.example", func() bool { return obtainedNames(t, e, "app.example") == 1 })
	serial := func(name string) string {
		t.Helper()
		c, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Errorf("handshake for %s during renewal: %v", name, err)
			return ""
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	expiry := func(label string) float64 {
		v, _ := strconv.ParseFloat(edgetest.MetricValue(e.scrape(), fmt.Sprintf(`edgeblock_tls_certificate_expiry_timestamp_seconds{issuer="internal",name=%q}`, label)), 64)
		return v
	}
	first := map[string]string{}
	for _, n := range []string{"app.example", "busy.apps.example", "quiet.apps.example"} {
		first[n] = serial(n)
	}
	expiryApp, expiryWild := expiry("app.example"), expiry("*.apps.example")
	if expiryApp == 0 || expiryWild == 0 {
		t.Fatalf("no expiry series: app.example %v, *.apps.example %v", expiryApp, expiryWild)
	}
	// Visitors keep coming for app.example and busy.apps.example; every
	// handshake must succeed until both have a new certificate.
	renewed := map[string]bool{}
	handshakes := 0
	deadline := time.Now().Add(40 * time.Second)
	for (!renewed["app.example"] || !renewed["busy.apps.example"]) && time.Now().Before(deadline) && !t.Failed() {
		for _, n := range []string{"app.example", "busy.apps.example"} {
			if s := serial(n); s != "" && s != first[n] {
				renewed[n] = true
			}
			handshakes++
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !renewed["app.example"] || !renewed["busy.apps.example"] {
		t.Fatalf("not renewed within 40s: %v", renewed)
	}
	// The quiet name had no visitor since its first: its renewal came
	// from certmagic's maintenance.
	edgetest.WaitFor(t, 20*time.Second, "quiet.apps.example renewed", func() bool {
		for _, l := range e.logs.Lines(t, "certificate obtained") {
			if l["name"] == "quiet.apps.example" && l["renewal"] == true {
				return true
			}
		}
		return false
	})
	// certmagic reports the renewal before it replaces the cached one.
	edgetest.WaitFor(t, 5*time.Second, "quiet.apps.example serving its renewed certificate", func() bool {
		return serial("quiet.apps.example") != first["quiet.apps.example"]
	})
	edgetest.WaitFor(t, 5*time.Second, "expiry series moved forward", func() bool {
		return expiry("app.example") > expiryApp && expiry("*.apps.example") > expiryWild
	})
	t.Logf("%d handshakes during renewal, none failed; app.example expiry +%.0fs, *.apps.example +%.0fs",
		handshakes, expiry("app.example")-expiryApp, expiry("*.apps.example")-expiryWild)
	if v := edgetest.MetricValue(e.scrape(), `edgeblock_tls_obtain_total{result="failure"}`); v != "0" {
		t.Errorf("obtain failures: %s", v)
	}
}
