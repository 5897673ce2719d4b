package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestConnKeptPerConnection serves requests through a public listener's
// wrapping (limitListener, TLS for the secure one, withConn, connState)
// over HTTP/1.1, HTTP/1.1 over TLS and HTTP/2, and checks that what the
// connection keeps for its requests is what the request path would work
// out itself: the peer (requestPeer against peerAddr(RemoteAddr)), HTTP/2
// or not (isH2 against ConnectionState, asked twice: the cached answer
// too), the per-client request count on the slot the connection keeps
// (one unit held during each request, the slot gone from the counter once
// the connection closed), and the count of fresh connections going back
// to zero.
func TestConnKeptPerConnection(t *testing.T) {
	cert, pool := selfSignedFor(t, "conninfo.test")
	for _, tc := range []struct {
		name   string
		tls    bool
		client []string // ALPN the client offers
		wantH2 bool
	}{
		{"http1", false, nil, false},
		{"http1-tls", true, []string{"http/1.1"}, false},
		{"http2", true, []string{"h2"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fresh freshConns
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var l net.Listener = &limitListener{Listener: raw, conns: newClientCounter(0), trusted: func(netip.Addr) bool { return false },
				open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "open"}), refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "refused"})}
			srv := &http.Server{ConnState: fresh.connState, ConnContext: withConn, Protocols: new(http.Protocols)}
			srv.Protocols.SetHTTP1(true)
			if tc.tls {
				srv.Protocols.SetHTTP2(true)
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
				l = tls.NewListener(l, srv.TLSConfig)
			}
			type seen struct {
				peer, want netip.Addr
				kept       bool
				h2, wantH2 []bool
				// slotHeld: units on the slot the connection keeps in
				// inFlight, -1 when it keeps none.
				slotHeld int64
			}
			got := make(chan seen, 10)
			inFlight := newClientCounter(2)
			srv.Handler = &requestLimiter{inFlight: inFlight, config: func() *edgeConfig { return nil }, next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := seen{peer: requestPeer(r), want: peerAddr(r.RemoteAddr), slotHeld: -1}
				c, _ := r.Context().Value(connKey{}).(net.Conn)
				lc := limitConnOf(c)
				s.kept = lc != nil
				if lc != nil {
					if slot := lc.slot.Load(); slot != nil {
						s.slotHeld = slot.held.Load()
					}
				}
				if tc, ok := c.(*tls.Conn); ok {
					for range 2 {
						s.h2 = append(s.h2, isH2(tc))
						s.wantH2 = append(s.wantH2, tc.ConnectionState().NegotiatedProtocol == "h2")
					}
				}
				got <- s
				io.WriteString(w, "ok")
			})}
			go srv.Serve(l)
			defer srv.Close()

			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "conninfo.test", NextProtos: tc.client},
				ForceAttemptHTTP2: tc.wantH2}
			if !tc.wantH2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			scheme := "http"
			if tc.tls {
				scheme = "https"
			}
			for i := range 3 { // one connection, three requests
				resp, err := (&http.Client{Transport: tr}).Get(scheme + "://" + raw.Addr().String() + "/")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if gotH2 := resp.ProtoMajor == 2; gotH2 != tc.wantH2 {
					t.Fatalf("request %d over %s, want HTTP/2 %v", i, resp.Proto, tc.wantH2)
				}
				s := <-got
				if !s.kept {
					t.Fatalf("request %d: the connection in its context is not a public listener's", i)
				}
				if s.peer != s.want || !s.peer.IsValid() {
					t.Errorf("request %d: requestPeer %v, peerAddr(RemoteAddr) %v", i, s.peer, s.want)
				}
				if strings.Join(fmtBools(s.h2), ",") != strings.Join(fmtBools(s.wantH2), ",") || (tc.tls && s.h2[0] != tc.wantH2) {
					t.Errorf("request %d: isH2 %v, ConnectionState says %v, want %v", i, s.h2, s.wantH2, tc.wantH2)
				}
				if s.slotHeld != 1 {
					t.Errorf("request %d: %d units on the connection's kept slot during the request, want 1 (-1: no slot kept)", i, s.slotHeld)
				}
			}
			tr.CloseIdleConnections()
			clientsLeft := func() int {
				inFlight.mu.Lock()
				defer inFlight.mu.Unlock()
				return len(inFlight.n)
			}
			edgetest.WaitFor(t, 5*time.Second, "the closed connection's slot to leave the counter", func() bool { return clientsLeft() == 0 })
			deadline := time.Now().Add(5 * time.Second)
			for fresh.n.Load() != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := fresh.n.Load(); n != 0 {
				t.Errorf("fresh connections after the requests: %d, want 0", n)
			}

			// A connection that never sends a request is fresh until it closes.
			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			for fresh.n.Load() != 1 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := fresh.n.Load(); n != 1 {
				t.Errorf("fresh connections with one silent connection open: %d, want 1", n)
			}
			c.Close()
			for fresh.n.Load() != 0 && time.Now().Before(deadline.Add(5*time.Second)) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := fresh.n.Load(); n != 0 {
				t.Errorf("fresh connections after the silent one closed: %d, want 0", n)
			}
		})
	}
}

func fmtBools(b []bool) []string {
	s := make([]string, len(b))
	for i, v := range b {
		if v {
			s[i] = "true"
		} else {
			s[i] = "false"
		}
	}
	return s
}
