package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// firstFlight sends a QUIC client's first datagram (an Initial packet
// with the ClientHello) to addr from a fresh socket and walks away: the
// edge makes a handshake's state and waits for the rest. It returns the
// packet type of the edge's answer: "initial" (the handshake goes on),
// "retry", or "" (none within 5s).
func firstFlight(t *testing.T, addr string) string {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	catch, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	defer catch.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go quic.DialAddr(ctx, catch.LocalAddr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: "app.example",
		NextProtos: []string{"h3"}, CurvePreferences: []tls.CurveID{tls.X25519}}, nil)
	buf := make([]byte, 2048)
	catch.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := catch.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("the client's first flight: %v", err)
	}
	cancel()
	out, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	to, _ := net.ResolveUDPAddr("udp", addr)
	if _, err := out.WriteToUDP(buf[:n], to); err != nil {
		t.Fatal(err)
	}
	out.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err = out.ReadFromUDP(buf)
	if err != nil || n == 0 || buf[0]&0x80 == 0 {
		return ""
	}
	switch (buf[0] >> 4) & 3 { // QUIC v1 long header packet type
	case 0:
		return "initial"
	case 3:
		return "retry"
	}
	return "other"
}

// TestQUICPendingHandshakeCap: limits.quic_pending_handshakes bounds the
// QUIC handshakes under way. With a cap of 3, three first flights left
// unfinished hold three (edgeblock_quic_handshakes_pending); a fourth
// attempt is sent a Retry, and a client that answers it (its address
// proven) is refused with CONNECTION_REFUSED and counted. The held
// handshakes end at timeouts.read_header, not before; then a client
// connects and is served, and its completed handshake no longer counts
// while its connection stays open.
func TestQUICPendingHandshakeCap(t *testing.T) {
	o := echoOrigin(t)
	const readHeader = 3 * time.Second
	e, pool := h3Env(t, "limits:\n  quic_pending_handshakes: 3\ntimeouts:\n  read_header: 3s\n", routeConfig("app.example", `"`+o.URL+`"`), "")
	addr := e.srv.Addr("quic")
	metric := func(series string) string { return edgetest.MetricValue(e.scrape(), series) }
	if got := metric("edgeblock_quic_handshakes_pending"); got != "0" {
		t.Fatalf("pending handshakes at start = %q, want 0", got)
	}
	held := time.Now()
	for i := range 3 {
		if got := firstFlight(t, addr); got != "initial" {
			t.Fatalf("first flight %d under the cap: the edge answered %q, want its Initial", i+1, got)
		}
	}
	if got := metric("edgeblock_quic_handshakes_pending"); got != "3" {
		t.Fatalf("pending handshakes = %q, want 3", got)
	}
	if got := firstFlight(t, addr); got != "retry" {
		t.Errorf("a first flight at the cap: the edge answered %q, want a Retry", got)
	}
	if got := metric("edgeblock_quic_retries_total"); got != "1" {
		t.Errorf("edgeblock_quic_retries_total = %q, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h3Patience)
	defer cancel()
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "app.example", NextProtos: []string{"h3"}}
	_, err := quic.DialAddr(ctx, addr, tlsConf, &quic.Config{HandshakeIdleTimeout: h3Patience})
	var te *quic.TransportError
	if !errors.As(err, &te) || te.ErrorCode != quic.ConnectionRefused || !te.Remote {
		t.Errorf("a client with its address proven, at the cap: %v; want CONNECTION_REFUSED from the edge", err)
	}
	// Each Initial packet of the refused attempt counts (a ClientHello
	// with a post-quantum key share takes two, and a loaded machine makes
	// the client send its Initial again), but one attempt is a handful.
	if got, err := strconv.Atoi(metric("edgeblock_quic_handshakes_refused_total")); err != nil || got < 1 || got > 8 {
		t.Errorf("edgeblock_quic_handshakes_refused_total = %d (%v), want 1 to 8 for one refused attempt", got, err)
	}
	if got := metric("edgeblock_quic_handshakes_pending"); got != "3" {
		t.Errorf("pending handshakes after the refusals = %q, want still 3", got)
	}

	edgetest.WaitFor(t, readHeader+10*time.Second, "the held handshakes to time out", func() bool {
		return metric("edgeblock_quic_handshakes_pending") == "0"
	})
	if d := time.Since(held); d < readHeader*9/10 {
		t.Errorf("held handshakes released after %v, before timeouts.read_header (%v)", d, readHeader)
	}
	c3, _ := h3Client(t, pool, "app.example")
	if resp, body := fetch(t, c3, "https://"+addr, "app.example", "/after"); resp.StatusCode != 200 || !strings.Contains(body, `"path":"/after"`) {
		t.Errorf("after the handshakes timed out: %s %.80q", resp.Status, body)
	}
	if got := metric(`edgeblock_connections_open{listener="quic"}`); got != "1" {
		t.Errorf("open QUIC connections = %q, want 1", got)
	}
	if got := metric("edgeblock_quic_handshakes_pending"); got != "0" {
		t.Errorf("pending handshakes with one connection open = %q, want 0 (its handshake completed)", got)
	}
}
