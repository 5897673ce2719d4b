package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestHTTP3DrainSendsLastAnswer: the drain does not close an HTTP/3
// connection as soon as the handlers of its requests returned. quic-go
// sends a small answer (under 4 KiB: it sets Content-Length) only after
// the handler returned, so a connection closed then loses the answer of
// its last request in flight; the client sees the connection close
// ("H3_NO_ERROR") instead. Here the answer cannot leave at once: the
// client has not read an earlier answer that took its connection's flow
// control credit, and reads it a second after the handler returned. The
// edge keeps the connection until the client, having both answers,
// closes it (as GOAWAY asks), which ends Stop.
func TestHTTP3DrainSendsLastAnswer(t *testing.T) {
	parallelTLS(t, "app.example")
	const (
		window = 64 << 10      // the client's connection and stream receive windows
		filler = window - 1000 // its HEADERS and DATA frames fit the window, the last answer does not
		last   = 2000          // the answer in flight: buffered by quic-go until the handler returns
	)
	release := make(chan struct{})
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/filler":
			w.Header().Set("Content-Length", strconv.Itoa(filler))
			w.Write([]byte(strings.Repeat("f", filler)))
		case "/last":
			<-release
			w.Header().Set("Content-Length", strconv.Itoa(last))
			w.Write([]byte(strings.Repeat("l", last)))
		}
	}))
	defer o.Close()
	e, pool := h3Env(t, "", routeConfig("app.example", `"`+o.URL+`"`), "")
	e.srv.quic.linger = h3Patience // the client, not this bound, ends the connection
	ctx, cancel := context.WithTimeout(context.Background(), 2*h3Patience)
	defer cancel()
	qc, err := quic.DialAddr(ctx, e.srv.Addr("quic"), &tls.Config{RootCAs: pool, ServerName: "app.example", NextProtos: []string{http3.NextProtoH3}},
		&quic.Config{HandshakeIdleTimeout: h3Patience, MaxIdleTimeout: h3Patience,
			InitialConnectionReceiveWindow: window, MaxConnectionReceiveWindow: window,
			InitialStreamReceiveWindow: window, MaxStreamReceiveWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(qc)
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://app.example"+path, nil)
		return cc.RoundTrip(req)
	}
	type answer struct {
		resp *http.Response
		err  error
	}
	lastc := make(chan answer, 1)
	go func() {
		resp, err := get("/last")
		lastc <- answer{resp, err}
	}()
	edgetest.WaitFor(t, h3Patience, "the last request in flight", func() bool { return e.srv.quic.inFlight.Load() == 1 })
	// The filler's answer takes the connection's credit; unread, it
	// holds it.
	fill, err := get("/filler")
	if err != nil {
		t.Fatal(err)
	}
	defer fill.Body.Close()
	edgetest.WaitFor(t, h3Patience, "the filler's handler to return", func() bool { return e.srv.quic.inFlight.Load() == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- e.srv.Stop(context.Background(), 0, 2*h3Patience) }()
	edgetest.WaitFor(t, h3Patience, "the drain", func() bool { return e.srv.draining.Load() })
	close(release)
	edgetest.WaitFor(t, h3Patience, "the last handler to return", func() bool { return e.srv.quic.inFlight.Load() == 0 })
	time.Sleep(time.Second) // the edge closed the connection here before

	if n, err := io.Copy(io.Discard, fill.Body); n != filler || err != nil {
		t.Fatalf("filler: %d bytes, %v; want %d", n, err, filler)
	}
	a := <-lastc
	if a.err != nil {
		t.Fatalf("the answer in flight as the drain closed the connection: %v", a.err)
	}
	b, err := io.ReadAll(a.resp.Body)
	a.resp.Body.Close()
	if a.resp.StatusCode != 200 || len(b) != last || err != nil {
		t.Errorf("the answer in flight: %s, %d bytes, %v; want 200 and %d bytes", a.resp.Status, len(b), err, last)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(h3Patience / 2):
		t.Errorf("Stop still waits %v after the client had its answers (it closes the connection then)", h3Patience/2)
	}
}
