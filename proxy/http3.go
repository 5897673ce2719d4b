package proxy

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// HTTP/3: listen.quic is a UDP socket bound at start beside the TCP
// listeners, served by quic-go's http3 server with the handler chain of
// the HTTPS listener (the same host decision, block pages, limits and
// access log) and TLS config from the same certmagic config
// (certmgr.Manager.TLSConfigs). What quic-go would otherwise default to is set
// here: no 0-RTT (replayable requests), limits.max_streams_per_conn
// streams per connection, a stateless-reset key and a token key from the
// state directory, or in fleet mode from the fleet's certificate storage
// (the same across restarts, and across the fleet: quickeys.go), and
// address validation (Retry) for every new
// connection while more than quicRetryAbove arrive per second.

// quicRetryAbove is the rate of new QUIC connection attempts (per second,
// all clients together) above which every further attempt must prove its
// source address with a Retry round trip first: spoofed Initial packets
// then cost the edge no handshake.
var quicRetryAbove = 200 // a variable for tests

// quicKeysFile is the file in the state directory that holds the
// stateless-reset key and the token key (32 bytes each).
const quicKeysFile = "quic-keys"

// quicMetrics are the HTTP/3 listener's own series.
type quicMetrics struct {
	recvBuf, sendBuf prometheus.Gauge
	gso, ecn         prometheus.Gauge
	retries          prometheus.Counter
	pending          prometheus.Gauge
	refused          prometheus.Counter
	serving          prometheus.Gauge
	byProto          *prometheus.CounterVec
}

func newQUICMetrics(reg prometheus.Registerer) *quicMetrics {
	m := &quicMetrics{
		recvBuf: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeblock_quic_udp_receive_buffer_bytes",
			Help: "The receive buffer of the QUIC listener's UDP socket, as the kernel granted it (net.core.rmem_max bounds it)."}),
		sendBuf: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeblock_quic_udp_send_buffer_bytes",
			Help: "The send buffer of the QUIC listener's UDP socket, as the kernel granted it (net.core.wmem_max bounds it)."}),
		gso: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeblock_quic_gso_enabled",
			Help: "1 when the QUIC listener may send with UDP generic segmentation offload (GSO)."}),
		ecn: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeblock_quic_ecn_enabled",
			Help: "1 when the QUIC listener reads ECN marks (not disabled by QUIC_GO_DISABLE_ECN)."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeblock_quic_retries_total",
			Help: "New QUIC connection attempts sent a Retry to validate their address (more than the Retry threshold arrived in a second, or limits.quic_pending_handshakes handshakes were under way)."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeblock_quic_handshakes_pending",
			Help: "QUIC handshakes under way (bounded by limits.quic_pending_handshakes)."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeblock_quic_handshakes_refused_total",
			Help: "Initial packets of new QUIC connections refused (CONNECTION_REFUSED) after proving their address, because limits.quic_pending_handshakes handshakes were under way."}),
		serving: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeblock_quic_serving",
			Help: "1 while the QUIC (HTTP/3) listener serves and HTTPS responses advertise it in Alt-Svc."}),
		byProto: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeblock_requests_by_protocol_total",
			Help: "Requests on the public listeners by HTTP version (HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0, other)."}, []string{"proto"}),
	}
	reg.MustRegister(m.recvBuf, m.sendBuf, m.gso, m.ecn, m.retries, m.pending, m.refused, m.serving, m.byProto)
	for _, p := range []string{"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3.0"} {
		m.byProto.WithLabelValues(p)
	}
	return m
}

// protoCounter counts the requests of the public listeners by HTTP version.
type protoCounter struct {
	next http.Handler
	by   [4]prometheus.Counter // HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0
	etc  prometheus.Counter
}

func newProtoCounter(next http.Handler, m *quicMetrics) *protoCounter {
	c := &protoCounter{next: next, etc: m.byProto.WithLabelValues("other")}
	for i, p := range []string{"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3.0"} {
		c.by[i] = m.byProto.WithLabelValues(p)
	}
	return c
}

func (c *protoCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		c.by[0].Inc()
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		c.by[1].Inc()
	case r.ProtoMajor == 2:
		c.by[2].Inc()
	case r.ProtoMajor == 3 && r.Proto == "HTTP/3.0":
		c.by[3].Inc()
	default:
		c.etc.Inc()
	}
	c.next.ServeHTTP(w, r)
}

// quicEdge is the public HTTP/3 listener. Its UDP socket is bound and its
// keys loaded by bindQUIC, at start with the TCP listeners; listen
// prepares it, serve starts it, goAway begins its drain and wait ends it.
type quicEdge struct {
	log      *slog.Logger
	m        *quicMetrics
	udp      *net.UDPConn
	reset    *quic.StatelessResetKey
	token    *quic.TokenGeneratorKey
	keys     quicKeySet // the keys' source and any warning (not the keys)
	tr       *quic.Transport
	ln       *quicLimitListener
	srv      *http3.Server
	altSvc   []string // the Alt-Svc value HTTPS responses carry
	serving  atomic.Bool
	inFlight atomic.Int64  // HTTP/3 requests being handled
	linger   time.Duration // 0: quicCloseLinger (a field for tests)
	gate     retryGate
	hs       handshakeCap // handshakes under way, limits.quic_pending_handshakes
	done     chan error   // ServeListener's result
	stopCtx  context.Context
	stop     context.CancelFunc
	goOnce   sync.Once
	shut     chan error // the result of the Shutdown goAway began
}

// bindQUIC binds the UDP socket of listen.quic and loads (or makes) the
// QUIC keys: from fleetStore, the fleet's certificate storage, when set,
// else from stateDir ("" keeps them in memory only); see quicKeysFor.
func bindQUIC(addr, stateDir string, fleetStore certmagic.Storage) (*quicEdge, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	keys, err := quicKeysFor(context.Background(), fleetStore, stateDir)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	return &quicEdge{udp: udp, reset: keys.reset, token: keys.token, keys: keys, done: make(chan error, 1)}, nil
}

// Addr returns the bound UDP address.
func (q *quicEdge) Addr() string { return q.udp.LocalAddr().String() }

// quicSettings are what the HTTP/3 listener takes from the config.
type quicSettings struct {
	advertisePort  int
	maxStreams     int
	idle           time.Duration
	readHeader     time.Duration
	maxHeaderBytes int
	retryAbove     int // new connections per second; 0: quicRetryAbove
	pendingMax     int // limits.quic_pending_handshakes; 0: config.DefaultQUICPendingHandshakes
}

func quicSettingsOf(c *config.Config) quicSettings {
	return quicSettings{advertisePort: c.Listen.QUICAdvertisePort, maxStreams: c.Limits.MaxStreamsPerConn,
		idle: c.Timeouts.Idle, readHeader: c.Timeouts.ReadHeader, maxHeaderBytes: c.MaxHeaderBytes,
		pendingMax: c.Limits.QUICPendingHandshakes}
}

// listen starts QUIC on the bound socket: tlsConf is the QUIC TLS config,
// lim the per-client connection cap shared with the TCP listeners. It
// logs the start line with the UDP buffers obtained and GSO/ECN.
func (q *quicEdge) listen(log *slog.Logger, m *quicMetrics, tlsConf *tls.Config, lim *quicLimitListener, set quicSettings) error {
	q.log, q.m = log, m
	q.gate.limit = int64(set.retryAbove)
	if q.gate.limit <= 0 {
		q.gate.limit = int64(quicRetryAbove)
	}
	q.gate.retries = m.retries
	q.hs.max, q.hs.gauge, q.hs.refused = int64(set.pendingMax), m.pending, m.refused
	if q.hs.max <= 0 {
		q.hs.max = config.DefaultQUICPendingHandshakes
	}
	q.gate.full = q.hs.full
	q.stopCtx, q.stop = context.WithCancel(context.Background())
	port := set.advertisePort
	if port == 0 {
		port = q.udp.LocalAddr().(*net.UDPAddr).Port
	}
	q.altSvc = []string{`h3=":` + strconv.Itoa(port) + `"; ma=86400`}
	if _, set := os.LookupEnv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING"); !set {
		// The buffers obtained are in the start line and the metrics,
		// with what raises them; quic-go's own warning would say it once
		// more, unstructured, through the standard logger.
		os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	}
	q.tr = &quic.Transport{Conn: q.udp, StatelessResetKey: q.reset, TokenGeneratorKey: q.token,
		VerifySourceAddress: q.gate.verify, ConnContext: q.hs.connContext}
	streams := int64(set.maxStreams)
	if streams <= 0 {
		streams = 100
	}
	qc := &quic.Config{
		Allow0RTT:             false, // 0-RTT requests can be replayed: never offered
		MaxIncomingStreams:    streams,
		MaxIncomingUniStreams: 16, // HTTP/3 needs 3: control, QPACK encoder and decoder
		MaxIdleTimeout:        set.idle,
		HandshakeIdleTimeout:  set.readHeader,
	}
	ln, err := q.tr.Listen(tlsConf, qc)
	if err != nil {
		return fmt.Errorf("listen.quic: %w", err)
	}
	lim.ln = ln
	q.ln = lim
	q.srv = &http3.Server{
		QUICConfig:        qc,
		MaxHeaderBytes:    set.maxHeaderBytes,
		ReadHeaderTimeout: set.readHeader,
		IdleTimeout:       set.idle,
		Logger:            log.With("listener", "quic"),
	}
	st := probeUDP(q.udp)
	m.recvBuf.Set(float64(st.recvBuf))
	m.sendBuf.Set(float64(st.sendBuf))
	m.gso.Set(b2f(st.gso))
	m.ecn.Set(b2f(st.ecn))
	args := []any{"event", "quic", "addr", q.Addr(), "alt_svc", q.altSvc[0],
		"udp_receive_buffer_bytes", st.recvBuf, "udp_send_buffer_bytes", st.sendBuf, "gso", st.gso, "ecn", st.ecn,
		"zero_rtt", false, "max_streams_per_conn", streams, "retry_above_per_second", q.gate.limit, "pending_handshakes_max", q.hs.max}
	if q.keys.source != "" {
		args = append(args, "keys", q.keys.source)
	} else {
		args = append(args, "keys", "memory (no state directory: stateless resets and address tokens do not survive a restart)")
	}
	if q.keys.warning != "" {
		log.Warn("HTTP/3 keys not shared with the fleet", "event", "quic_keys_local", "warning", q.keys.warning)
	}
	if st.recvBuf < quicWantBuffer || st.sendBuf < quicWantBuffer {
		args = append(args, "hint", fmt.Sprintf("UDP buffers below %d bytes limit HTTP/3 throughput: raise net.core.rmem_max and net.core.wmem_max on the host (sysctl; a container cannot)", quicWantBuffer))
	}
	log.Info("HTTP/3 listener", args...)
	return nil
}

// quicWantBuffer is the UDP buffer size quic-go asks the kernel for.
const quicWantBuffer = 7 << 20

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// serve serves HTTP/3 with h (the HTTPS listener's handler chain) and
// starts the Alt-Svc advertisement. twin is the HTTPS listener's server:
// requests carry it under http.ServerContextKey, because
// httputil.ReverseProxy aborts a response whose body broke off (a
// block closing it, an origin failing mid-body) by panicking with
// http.ErrAbortHandler, which resets the HTTP/3 stream, only when it finds
// a net/http server there; without one it returns, and the cut-off
// response ends like a complete one (TestHTTP3BlockClosesStream,
// TestHTTP3OriginBreaksOff).
func (q *quicEdge) serve(h http.Handler, twin *http.Server) {
	q.srv.ConnContext = func(ctx context.Context, _ *quic.Conn) context.Context {
		return context.WithValue(ctx, http.ServerContextKey, twin)
	}
	q.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q.inFlight.Add(1)
		defer q.inFlight.Add(-1)
		h.ServeHTTP(w, r)
	})
	go func() {
		err := q.srv.ServeListener(q.ln)
		// Whatever ended it, Alt-Svc must stop sending browsers here.
		q.serving.Store(false)
		q.m.serving.Set(0)
		if !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
			q.log.Error("HTTP/3 listener stopped; HTTPS responses no longer advertise it", "event", "quic_stopped", "error", err.Error())
		}
		q.done <- err
	}()
	q.serving.Store(true)
	q.m.serving.Set(1)
}

// advertise wraps the HTTPS listener's handler: its responses carry
// Alt-Svc for HTTP/3 while the QUIC listener serves (not before it
// started, not once it drains), so that no browser is sent to a UDP port
// nobody answers.
func (q *quicEdge) advertise(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q.serving.Load() {
			w.Header()["Alt-Svc"] = q.altSvc
		}
		next.ServeHTTP(w, r)
	})
}

// goAway begins the drain: Alt-Svc stops, every connection gets GOAWAY
// (a client opens new requests elsewhere: over TCP, which still serves
// through the drain), new QUIC connections are refused, and requests
// in flight go on. Later calls do nothing.
func (q *quicEdge) goAway() {
	if q.srv == nil {
		return // never served
	}
	q.goOnce.Do(func() {
		q.serving.Store(false)
		q.m.serving.Set(0)
		q.shut = make(chan error, 1)
		go func() { q.shut <- q.srv.Shutdown(q.stopCtx) }()
		q.ln.Close()
	})
}

// wait ends the listener: after goAway, the requests in flight have
// until ctx is done to finish, their connections then up to
// quicCloseLinger more for their clients to close them (and so to have
// had the last answers), then every connection is closed.
func (q *quicEdge) wait(ctx context.Context) error {
	if q.srv == nil {
		q.close()
		return nil
	}
	q.goAway()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for q.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-tick.C:
		}
	}
	// A handler that returned has not yet sent its answer: quic-go writes
	// the buffered response and ends the stream after it, and closing the
	// connection now would drop what is still unsent (CONNECTION_CLOSE
	// discards stream data; the client saw "parsing frame failed:
	// H3_NO_ERROR" instead of the answer). A client that got GOAWAY closes
	// the connection itself once its requests are answered, which ends
	// Shutdown; one that does not is closed after quicCloseLinger, or when
	// ctx ends.
	linger := time.NewTimer(cmp.Or(q.linger, quicCloseLinger))
	shut := q.shut
	select {
	case <-shut:
		shut = nil // every connection is closed
	case <-linger.C:
	case <-ctx.Done():
	}
	linger.Stop()
	q.stop() // what is left is idle: it need not wait for its client
	if shut != nil {
		<-shut
	}
	if e := <-q.done; e != nil && !errors.Is(e, http.ErrServerClosed) && !errors.Is(e, quic.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	q.tr.Close()
	q.udp.Close()
	return err
}

// quicCloseLinger is how long the drain leaves the HTTP/3 connections
// open once their requests are done, for their last answers to reach the
// clients, unless the clients close them first (after GOAWAY they do so
// as soon as their requests are answered).
const quicCloseLinger = 2 * time.Second

// close releases the socket of a listener that never served.
func (q *quicEdge) close() {
	if q.tr != nil {
		q.tr.Close()
	}
	q.udp.Close()
}

// quicLimitListener caps open connections per client with the counter of
// the TCP listeners (limitListener), so that the cap counts a client's
// TCP and QUIC connections together. A connection beyond it is closed
// as soon as its handshake completes (the address then proven) with
// H3_EXCESSIVE_LOAD, and counted. Peers in trusted_proxies are not capped.
type quicLimitListener struct {
	ln      *quic.Listener
	conns   *clientCounter
	trusted func(netip.Addr) bool
	open    prometheus.Gauge
	refused prometheus.Counter
}

// Accept returns the next connection within the caps.
func (l *quicLimitListener) Accept(ctx context.Context) (*quic.Conn, error) {
	for {
		c, err := l.ln.Accept(ctx)
		if err != nil {
			return nil, err
		}
		handshakeDone(c)
		a := peerAddr(c.RemoteAddr().String())
		if !a.IsValid() || l.trusted(a) {
			l.open.Inc()
			context.AfterFunc(c.Context(), l.open.Dec)
			return c, nil
		}
		k := clientKey(a)
		if !l.conns.acquire(k) {
			l.refused.Inc()
			c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad), "too many connections from this client")
			continue
		}
		l.open.Inc()
		context.AfterFunc(c.Context(), func() { l.conns.release(k); l.open.Dec() })
		return c, nil
	}
}

// Addr returns the UDP address.
func (l *quicLimitListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting: handshakes under way are refused, established
// connections go on.
func (l *quicLimitListener) Close() error { return l.ln.Close() }

// retryGate is the Transport's VerifySourceAddress: once more than limit
// new connections arrived in the current second, or while full reports
// the handshake cap reached, every further one is sent a Retry (RFC 9000
// section 8.1.2) and must come back with its token, which a spoofed
// source address cannot.
type retryGate struct {
	limit   int64
	full    func() bool // nil: no cap
	retries prometheus.Counter
	mu      sync.Mutex
	window  time.Time
	n       int64
}

func (g *retryGate) verify(net.Addr) bool {
	now := time.Now()
	g.mu.Lock()
	if now.Sub(g.window) >= time.Second {
		g.window, g.n = now, 0
	}
	g.n++
	over := g.n > g.limit
	g.mu.Unlock()
	if !over && g.full != nil {
		over = g.full()
	}
	if over {
		g.retries.Inc()
	}
	return over
}

// loadQUICKeys returns the stateless-reset key and the token key from
// dir/quic-keys, made (64 random bytes, mode 0600) when the file does not
// exist, and the file's path. The same keys across restarts let a
// restarted edge reset the connections of its previous run at once
// (stateless reset) and honour the address tokens it gave out; copied to
// every node of a fleet, they let any node do so for any other. dir ""
// gives random keys and no path.
func loadQUICKeys(dir string) (*quic.StatelessResetKey, *quic.TokenGeneratorKey, string, error) {
	if dir == "" {
		b := make([]byte, quicKeysLen)
		rand.Read(b)
		reset, token, err := splitQUICKeys(b, "memory")
		return reset, token, "", err
	}
	path := filepath.Join(dir, quicKeysFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = makeQUICKeys(dir, path)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("QUIC keys: %w", err)
	}
	reset, token, err := splitQUICKeys(b, path+" (remove it to make new keys)")
	if err != nil {
		return nil, nil, "", err
	}
	return reset, token, path, nil
}

// makeQUICKeys writes new keys to path unless another process made the
// file first (the link fails then), and returns what path holds.
func makeQUICKeys(dir, path string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".quic-keys-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	b := make([]byte, quicKeysLen)
	rand.Read(b)
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return os.ReadFile(path)
}

// udpState is what the kernel granted the QUIC socket.
type udpState struct {
	recvBuf, sendBuf int
	gso, ecn         bool
}
