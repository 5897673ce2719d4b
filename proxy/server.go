package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/proxy/accesslog"
	"github.com/edgeblock/edgeblock/proxy/certmgr"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Server runs edgeblock: the public HTTP and HTTPS listeners, the admin
// listener, the reloader and the certificate manager.
type Server struct {
	log      *slog.Logger
	cfg      *config.Config // as at start; listener settings never reload
	proxy    *Proxy
	reloader *reload.Reloader
	tls      *certmgr.Manager
	metrics  *metrics.Metrics
	reg      *prometheus.Registry

	servers   map[string]*http.Server
	listeners map[string]net.Listener
	public    []*stopListener // what the public servers accept from
	fresh     freshConns      // public connections before their first request
	ready     atomic.Bool
	draining  atomic.Bool
	wg        sync.WaitGroup
	access    *accesslog.Log // nil: access lines go through the logger
	quic      *quicEdge      // nil: no HTTP/3 listener (http3.go)
	quicM     *quicMetrics
	stopOnce  sync.Once
	stopErr   error
}

// NewServer prepares a server for a loaded bundle; Start runs it.
// configPath is the file reloads read.
func NewServer(log *slog.Logger, configPath string, b *reload.Bundle) (*Server, error) {
	reg := prometheus.NewRegistry()
	version, revision := Version()
	m := metrics.New(reg, version, revision)
	p := NewProxy(log, m, b.Config)
	reg.MustRegister(newUpstreamCollector(p))
	s := &Server{log: log, cfg: b.Config, proxy: p, metrics: m, reg: reg,
		servers: map[string]*http.Server{}, listeners: map[string]net.Listener{}}
	s.quicM = newQUICMetrics(reg)
	s.reloader = reload.NewReloader(p, log, m, configPath)
	if b.Config.TLS.Mode != "off" {
		t, err := newCertManager(b.Config, log, m, p)
		if err != nil {
			return nil, err
		}
		s.tls = t
		s.reloader.OnApply = func(b *reload.Bundle) { t.ManageAhead(aheadNames(b)) }
	}
	// Last, so that no error above leaves its goroutine behind.
	out, format, ok := logOutput(log)
	if ok || b.Config.Log.AccessFile != "" {
		if !ok {
			out, format = io.Discard, b.Config.Log.Format
		}
		a, err := accesslog.New(out, b.Config.Log.AccessFile, m.AccessLogDropped.Inc, func(error) { m.AccessLogErrors.Inc() })
		if err != nil {
			return nil, err
		}
		s.access = a
		p.access = accesslog.NewWriter(a, format)
	}
	return s, nil
}

// Reloader returns the server's reloader (for SIGHUP).
func (s *Server) Reloader() *reload.Reloader { return s.reloader }

// Addr returns the address a listener ("http", "https", "admin", "quic")
// is bound to, or "" if it is not running.
func (s *Server) Addr(name string) string {
	if name == "quic" && s.quic != nil {
		return s.quic.Addr()
	}
	if l, ok := s.listeners[name]; ok {
		return l.Addr().String()
	}
	return ""
}

// Start binds every listener, applies the bundle and serves. It returns
// once all listeners are bound; an error means none is left running.
func (s *Server) Start(b *reload.Bundle) error {
	cfg := s.cfg
	// Bind first, so that handlers and the ACME issuer know the ports
	// actually bound before any certificate is ordered.
	addrs := map[string]string{"http": cfg.Listen.HTTP, "admin": cfg.Listen.Admin}
	if s.tls != nil {
		addrs["https"] = cfg.Listen.HTTPS
	}
	for _, w := range cfg.Warnings {
		s.log.Warn("config warning", "event", "config_warning", "warning", w)
	}
	for name, addr := range addrs {
		if addr == "" || addr == "off" {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen.%s: %w", name, err)
		}
		s.listeners[name] = l
	}
	if cfg.Listen.QUIC != "" && s.tls != nil {
		q, err := bindQUIC(cfg.Listen.QUIC, b.StateDir, s.quicKeyStore())
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen.quic: %w", err)
		}
		s.quic = q
	}
	if s.tls != nil {
		s.tls.SetPorts(s.Addr("http"), s.Addr("https"))
	}
	// Apply the bundle (which starts managing certificates) before any
	// request is served.
	if err := s.reloader.Start(b); err != nil {
		s.closeListeners()
		return err
	}
	// One count per client across both public listeners.
	conns, inFlight := newClientCounter(cfg.Limits.MaxConnsPerClient), newClientCounter(cfg.Limits.MaxRequestsPerClient)
	chain := func(h http.Handler) http.Handler {
		return publicChain(h, cfg, inFlight, s.proxy.config, s.metrics, s.quicM, &s.draining)
	}
	public := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           chain(h),
			ReadHeaderTimeout: cfg.Timeouts.ReadHeader,
			IdleTimeout:       cfg.Timeouts.Idle,
			MaxHeaderBytes:    cfg.MaxHeaderBytes,
			HTTP2:             s.http2Config(),
			ConnState:         s.fresh.connState,
			ConnContext:       withConn,
			// OPTIONS * goes through the proxy like any request (the
			// block page for a blocked name, else forwarded), instead
			// of Go's own 200 for every host.
			DisableGeneralOptionsHandler: true,
			ErrorLog:                     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
	}
	if _, ok := s.listeners["http"]; ok {
		var h http.Handler = s.proxy
		if s.tls != nil {
			port := cfg.TLS.RedirectPort
			if port == 0 {
				port = s.listeners["https"].Addr().(*net.TCPAddr).Port
			}
			h = httpHandler(s.tls, s.proxy, *cfg.TLS.RedirectHTTP, port)
		}
		srv := public(h)
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true) // no cleartext HTTP/2 (h2c)
		s.servers["http"] = srv
	}
	if _, ok := s.listeners["https"]; ok {
		var h http.Handler = s.proxy
		tcpTLS, quicTLS := s.tls.TLSConfigs()
		if s.quic != nil {
			lim := &quicLimitListener{conns: conns, trusted: s.proxy.trusts,
				open: s.metrics.ConnectionsOpen.WithLabelValues("quic"), refused: s.metrics.ConnectionsRefused.WithLabelValues(metrics.RefusedConnsPerClient)}
			if err := s.quic.listen(s.log, s.quicM, quicTLS, lim, quicSettingsOf(cfg)); err != nil {
				s.reloader.Close()
				s.tls.Stop()
				s.closeListeners()
				return err
			}
			h = s.quic.advertise(h)
		}
		srv := public(h)
		srv.TLSConfig = tcpTLS
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetHTTP2(true)
		s.servers["https"] = srv
	}
	if _, ok := s.listeners["admin"]; ok {
		s.servers["admin"] = &http.Server{
			Handler:           s.adminHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			TLSConfig:         cfg.Admin.TLSConfig(),
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
	}
	for name, srv := range s.servers {
		l := s.listeners[name]
		if name != "admin" {
			l = &limitListener{Listener: l, conns: conns,
				trusted: s.proxy.trusts, open: s.metrics.ConnectionsOpen.WithLabelValues(name),
				refused: s.metrics.ConnectionsRefused.WithLabelValues(metrics.RefusedConnsPerClient)}
		}
		if name == "https" || srv.TLSConfig != nil {
			l = tls.NewListener(l, srv.TLSConfig)
		}
		if name != "admin" {
			sl := &stopListener{Listener: l}
			s.public = append(s.public, sl)
			l = sl
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// A public listener closed by shutdown before srv.Shutdown
			// ends Serve with net.ErrClosed.
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !(s.draining.Load() && errors.Is(err, net.ErrClosed)) {
				s.log.Error("server stopped", "listener", name, "error", err.Error())
			}
		}()
		s.log.Info("listening", "event", "listen", "listener", name, "addr", l.Addr().String())
	}
	if s.quic != nil {
		s.quic.serve(chain(s.proxy), s.servers["https"])
		s.log.Info("listening", "event", "listen", "listener", "quic", "addr", s.quic.Addr())
	}
	s.ready.Store(true)
	return nil
}

// publicChain returns the chain around a public listener's handler h:
// deadlines and drain outermost, so that the 429 of the per-client
// request cap (inFlight) is bounded too; requests counted by protocol
// (q). config is the config in use.
func publicChain(h http.Handler, cfg *config.Config, inFlight *clientCounter, config func() *edgeConfig, m *metrics.Metrics, q *quicMetrics, draining *atomic.Bool) http.Handler {
	h = newProtoCounter(h, q)
	h = &requestLimiter{next: h, inFlight: inFlight, config: config, refused: m.RequestsRefused.WithLabelValues(metrics.RefusedRequestsPerClient)}
	return &guardHandler{next: h, writeIdle: cfg.Timeouts.WriteIdle, bodyRead: cfg.Timeouts.BodyRead, draining: draining}
}

// ReopenAccessLog writes out the access lines queued and opens
// log.access_file anew (SIGUSR1, after logrotate renamed it).
func (s *Server) ReopenAccessLog() error {
	if s.access == nil {
		return nil
	}
	return s.access.Reopen()
}

// FlushAccessLog writes out the access lines queued so far.
func (s *Server) FlushAccessLog() {
	if s.access != nil {
		s.access.Flush()
	}
}

// stopListener is a public server's listener, which shutdown closes
// before http.Server.Shutdown does; the second Close does nothing.
type stopListener struct {
	net.Listener
	once sync.Once
}

// Close closes the listener the first time and returns nil after.
func (l *stopListener) Close() error {
	var err error
	l.once.Do(func() { err = l.Listener.Close() })
	return err
}

// freshConns counts the public connections that have not begun a request
// (http.StateNew): accepted, or in the TLS handshake.
type freshConns struct {
	conns sync.Map // net.Conn -> struct{}
	n     atomic.Int64
}

// connState is the public servers' ConnState hook. A public listener's
// connection keeps its own mark (limitConn.fresh); the map is for others.
func (f *freshConns) connState(c net.Conn, st http.ConnState) {
	if lc := limitConnOf(c); lc != nil {
		if st == http.StateNew {
			lc.fresh.Store(true)
			f.n.Add(1)
		} else if lc.fresh.Load() && lc.fresh.CompareAndSwap(true, false) {
			f.n.Add(-1)
		}
		clearWriteDeadline(c, st)
		return
	}
	if st == http.StateNew {
		f.conns.Store(c, struct{}{})
		f.n.Add(1)
	} else if _, ok := f.conns.LoadAndDelete(c); ok {
		f.n.Add(-1)
	}
	clearWriteDeadline(c, st)
}

// wait returns when no connection is fresh, ctx is done, or max passed.
func (f *freshConns) wait(ctx context.Context, max time.Duration) {
	t := time.NewTimer(max)
	defer t.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for f.n.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-tick.C:
		}
	}
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		l.Close()
	}
	if s.quic != nil {
		s.quic.close()
	}
}

// http2Config returns the public servers' HTTP/2 settings: frames of at
// most 16 KiB (the RFC 9113 minimum every peer must accept), at most
// limits.max_streams_per_conn concurrent streams, a connection whose
// writes make no progress for timeouts.write_idle is closed, a peer silent
// for timeouts.idle is pinged and dropped if it does not answer within
// 15 s (a vanished client with streams open), and protocol errors are
// counted.
func (s *Server) http2Config() *http.HTTP2Config {
	errs := s.metrics.HTTP2Errors
	return &http.HTTP2Config{
		MaxConcurrentStreams: s.cfg.Limits.MaxStreamsPerConn,
		MaxReadFrameSize:     16 << 10,
		WriteByteTimeout:     s.cfg.Timeouts.WriteIdle,
		SendPingTimeout:      s.cfg.Timeouts.Idle,
		PingTimeout:          15 * time.Second,
		CountError:           func(kind string) { errs.WithLabelValues(kind).Inc() },
	}
}

// Stop stops the server in two steps. Drain: /readyz answers 503 at
// once while the public listeners keep serving for drain, every response
// carrying Connection: close (HTTP/1.1 connections close after it,
// HTTP/2 ones get GOAWAY), so that a load balancer sees the 503 and moves
// away before any connection is refused; HTTP/3 connections get GOAWAY as
// the drain begins, Alt-Svc stops and QUIC refuses new connections
// (http3.go), their requests in flight go on. Then stop: the listeners close,
// idle connections close, HTTP/2 connections get GOAWAY, and in-flight
// requests have grace (0: no limit but ctx) to finish before what is left
// is closed. Blocklist and config reloads go on during the drain. ctx,
// when done, cuts the drain and the grace short. Only the first call of
// Stop or Shutdown does anything; later ones return its result.
func (s *Server) Stop(ctx context.Context, drain, grace time.Duration) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx, drain, grace) })
	return s.stopErr
}

// Shutdown is Stop without a drain: it stops accepting connections at
// once and waits for in-flight requests until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error { return s.Stop(ctx, 0, 0) }

func (s *Server) shutdown(ctx context.Context, drain, grace time.Duration) error {
	s.ready.Store(false)
	s.draining.Store(true)
	if s.quic != nil {
		s.quic.goAway() // HTTP/3 connections get GOAWAY as the drain begins
	}
	if drain > 0 {
		s.log.Info("draining", "event", "drain", "drain", drain.String())
		t := time.NewTimer(drain)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	s.reloader.Close()
	if grace > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, grace)
		defer cancel()
	}
	// http.Server.Shutdown drops, unanswered, an HTTP/1.1 request it reads
	// after it began, the first one of a connection too, which a client
	// cannot know is safe to retry. So the public listeners close first
	// and the connections they accepted get to begin their request (the
	// drain answers it with Connection: close) before Shutdown; Shutdown
	// itself waits as long (5 s) for connections that send nothing.
	for _, l := range s.public {
		l.Close()
	}
	s.fresh.wait(ctx, 5*time.Second)
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, srv := range s.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	if s.quic != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.quic.wait(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("quic: %w", err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.wg.Wait()
	if s.tls != nil {
		s.tls.Stop()
	}
	s.proxy.Close() // origin health checks
	if s.access != nil {
		s.access.Close() // every request has ended: its line is queued
	}
	return errors.Join(errs...)
}
