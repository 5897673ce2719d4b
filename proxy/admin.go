package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the admin listener: /healthz, /readyz, /metrics,
// /blocklist (status), /blocklist/rules (the rules in effect, one line
// each), /explain?host=NAME (JSON) and, when enabled, /debug/pprof/. None of these are ever
// served on the public listeners. With admin credentials configured it
// also serves the /v1 API (adminapi.go), and with admin.auth_reads the
// read endpoints but /healthz and /readyz need a credential.
//
// It is safe from browsers: every request whose Host is not the
// listener's own (adminAuth.hostAllowed) gets 421, which defeats DNS
// rebinding, and a write (any method but GET, HEAD, OPTIONS) that a
// browser marks cross-site — Sec-Fetch-Site, else an Origin other than
// the Host — gets 403 (net/http's CrossOriginProtection); the /v1 writes
// also need Content-Type application/json, which no cross-site form or
// simple request can send without a preflight.
func (s *Server) adminHandler(reg *prometheus.Registry, pprofOn bool) http.Handler {
	return s.browserSafe(s.cfg.Admin.auth, s.adminMux(reg, pprofOn))
}

// browserSafe wraps the admin handler h with the Host check and the
// cross-origin protection (see adminHandler).
func (s *Server) browserSafe(auth *adminAuth, h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.AdminAuthFailures.WithLabelValues("cross_origin").Inc()
		writeProblem(w, http.StatusForbidden, "", "%s %s: refused: a browser sent it from another site (Origin %q, Sec-Fetch-Site %q)",
			r.Method, r.URL.Path, r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site"))
	}))
	h = cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth.hostAllowed(r.Host) {
			s.metrics.AdminAuthFailures.WithLabelValues("misdirected").Inc()
			writeProblem(w, http.StatusMisdirectedRequest, "", "Host %q is not a name of this admin listener: it answers an IP address, localhost, the host of listen.admin and the names of admin.hosts", r.Host)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// adminMux routes the admin endpoints.
func (s *Server) adminMux(reg *prometheus.Registry, pprofOn bool) http.Handler {
	outer := http.NewServeMux()
	mux := http.NewServeMux()
	auth := s.cfg.Admin.auth
	s.apiRoutes(outer, auth)
	outer.Handle("/", s.readGuard(auth, mux))
	outer.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	outer.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.ready.Load() || !s.proxy.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: listeners or blocklist not up yet\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true, Registry: reg, ErrorLog: nil,
	}))
	mux.HandleFunc("GET /blocklist", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.reloader.Status())
	})
	mux.HandleFunc("GET /blocklist/rules", func(w http.ResponseWriter, r *http.Request) {
		b := s.reloader.current()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Edgeblock-Blocklist-File", b.List.File())
		w.Header().Set("X-Edgeblock-Blocklist-Sha256", b.List.SHA256())
		bw := bufio.NewWriterSize(w, 64<<10)
		fmt.Fprintf(bw, "# The blocklist in effect: %d rules from %s (sha256 %s), one per line in normalized form.\n",
			b.List.Len(), b.List.File(), b.List.SHA256())
		for rule := range b.List.Rules() {
			bw.WriteString(rule.Format())
			bw.WriteByte('\n')
		}
		bw.Flush()
	})
	mux.HandleFunc("GET /blocklist/applied", s.apiApplied)
	mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		host := r.URL.Query().Get("host")
		if host == "" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "want ?host=NAME"})
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(ExplainCountry(s.reloader.current(), host, r.URL.Query().Get("country"), time.Now()))
	})
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return outer
}
