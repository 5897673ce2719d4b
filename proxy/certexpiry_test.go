package proxy

import (
	"crypto/tls"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// expirySeries returns the certificate expiry series of a scrape by name
// label, with the issuer label checked to be want.
func expirySeries(t *testing.T, scrape, issuer string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	const prefix = "edgeblock_tls_certificate_expiry_timestamp_seconds{"
	for _, line := range strings.Split(scrape, "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		wantPrefix := `issuer="` + issuer + `",name="`
		if !strings.HasPrefix(labels, wantPrefix) {
			t.Errorf("expiry series %s: want issuer %q", line, issuer)
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		out[strings.TrimSuffix(strings.TrimPrefix(labels, wantPrefix), `"`)] = int64(v)
	}
	return out
}

// TestCertificateExpirySeries: one series per covered name with the
// certificate visitors are served, labelled issuer="internal"; a renewal
// moves it to the new certificate's expiry (before certmagic's cache has
// the new certificate); names a reload stops covering lose their series.
func TestCertificateExpirySeries(t *testing.T) {
	e, pool := tlsEnv(t, "")
	served := func(name string) int64 {
		t.Helper()
		c, err := tls.Dial("tcp", e.srv.Addr("https"), &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Fatalf("handshake for %s: %v", name, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].NotAfter.Unix()
	}
	served("x.apps.example") // obtained on demand, under the wildcard route
	want := map[string]bool{"app.example": true, "blocked.example": true, "*.apps.example": true}
	var series map[string]int64
	edgetest.WaitFor(t, 10*time.Second, "three expiry series", func() bool {
		series = expirySeries(t, e.scrape(), "internal")
		return len(series) == len(want)
	})
	for name := range want {
		if _, ok := series[name]; !ok {
			t.Errorf("no expiry series for %s; have %v", name, series)
		}
	}
	if got, w := series["app.example"], served("app.example"); got != w {
		t.Errorf("app.example expiry = %d, the served certificate expires at %d", got, w)
	}
	if got, w := series["*.apps.example"], served("x.apps.example"); got != w {
		t.Errorf("*.apps.example expiry = %d, the served certificate expires at %d", got, w)
	}

	// A renewal: the new certificate expires at least a second later.
	old := series["app.example"]
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	if err := e.srv.tls.Renew(t.Context(), "app.example"); err != nil {
		t.Fatal(err)
	}
	edgetest.WaitFor(t, 5*time.Second, "the renewed expiry", func() bool {
		return expirySeries(t, e.scrape(), "internal")["app.example"] > old
	})

	// A reload that drops the wildcard route and the block rule deletes
	// their series; app.example keeps its.
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(cfg), `  - host: "*.apps.example"`)
	if i < 0 {
		t.Fatalf("config has no wildcard route:\n%s", cfg)
	}
	rest := string(cfg[i:])
	for range 2 { // the host line and the origins line
		_, rest, _ = strings.Cut(rest, "\n")
	}
	edgetest.WriteFile(t, e.list, "#! allow-drop\n*.other.example\n") // wildcards are not obtained ahead; the marker lets the list drop every rule
	edgetest.WriteFile(t, e.config, string(cfg[:i])+rest)
	edgetest.WaitFor(t, 10*time.Second, "the dropped names' series to go", func() bool {
		s := expirySeries(t, e.scrape(), "internal")
		_, app := s["app.example"]
		return len(s) == 1 && app
	})
}
