// Package admin is the edge's admin listener: /healthz, /readyz,
// /metrics, the blocklist's status and rules, /explain, pprof, and the /v1
// API for block and unblock with bearer tokens or client certificates. It
// is safe from browsers (Host check, cross-origin protection, JSON-only
// writes). It asks the running edge for what it serves through Edge, and
// owns the admin: config section (Config) and its credentials (Auth).
package admin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/metrics"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// New returns the handler of the admin listener: /healthz, /readyz, /metrics,
// /blocklist (status), /blocklist/rules (the rules in effect, one line
// each), /explain?host=NAME (JSON) and, when enabled, /debug/pprof/. None of these are ever
// served on the public listeners. With admin credentials configured it
// also serves the /v1 API (api.go), and with admin.auth_reads the
// read endpoints but /healthz and /readyz need a credential.
//
// It is safe from browsers: every request whose Host is not the
// listener's own (Auth.hostAllowed) gets 421, which defeats DNS
// rebinding, and a write (any method but GET, HEAD, OPTIONS) that a
// browser marks cross-site — Sec-Fetch-Site, else an Origin other than
// the Host — gets 403 (net/http's CrossOriginProtection); the /v1 writes
// also need Content-Type application/json, which no cross-site form or
// simple request can send without a preflight.
func New(o Options) http.Handler {
	s := &handler{Options: o}
	return s.browserSafe(o.Auth, s.adminMux(o.Registry, o.Pprof))
}

// Options are what the admin listener serves from.
type Options struct {
	// Auth is the credentials of the admin: section (Config.Auth); nil:
	// none, so no /v1 API.
	Auth *Auth
	// Edge is the running edge.
	Edge Edge
	// Metrics counts admin writes and refused requests; Registry is what
	// /metrics serves.
	Metrics  *metrics.Metrics
	Registry *prometheus.Registry
	// Log gets a line for every write.
	Log *slog.Logger
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
}

// Edge is what the admin listener asks of the running edge.
type Edge interface {
	// Ready reports whether the listeners are up and a config and a
	// blocklist are applied (/readyz).
	Ready() bool
	// Status is the reload status of the edge's files, served as JSON
	// by GET /blocklist.
	Status() any
	// Blocklist returns the list in effect and how its last load went.
	Blocklist() ListState
	// Explain returns what the edge does with a request for host from a
	// visitor in country (ISO 3166-1 code; "": any), as JSON (GET
	// /explain, /v1/explain).
	Explain(host, country string, now time.Time) any
	// FleetStore is the fleet's version store when the blocklist
	// follows the fleet, else nil.
	FleetStore() *fleet.Store
	// Reload applies the blocklist file now (after a file-mode write);
	// trigger names the cause in logs.
	Reload(trigger string)
}

// ListState is the blocklist in effect and how its last load went.
type ListState struct {
	List *blocklist.List
	// File is blocklist.file (the file a file-mode write edits) and
	// MaxDrop blocklist.max_drop, both of the config in effect.
	File    string
	MaxDrop float64
	// LoadedAt is when List was applied; ErrorAt and LastError are the
	// last failed load since (nil, "": none).
	LoadedAt  time.Time
	ErrorAt   *time.Time
	LastError string
}

// handler serves the admin listener.
type handler struct{ Options }

// browserSafe wraps the admin handler h with the Host check and the
// cross-origin protection (see adminHandler).
func (s *handler) browserSafe(auth *Auth, h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Metrics.AdminAuthFailures.WithLabelValues("cross_origin").Inc()
		writeProblem(w, http.StatusForbidden, "", "%s %s: refused: a browser sent it from another site (Origin %q, Sec-Fetch-Site %q)",
			r.Method, r.URL.Path, r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site"))
	}))
	h = cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth.hostAllowed(r.Host) {
			s.Metrics.AdminAuthFailures.WithLabelValues("misdirected").Inc()
			writeProblem(w, http.StatusMisdirectedRequest, "", "Host %q is not a name of this admin listener: it answers an IP address, localhost, the host of listen.admin and the names of admin.hosts", r.Host)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// adminMux routes the admin endpoints.
func (s *handler) adminMux(reg *prometheus.Registry, pprofOn bool) http.Handler {
	outer := http.NewServeMux()
	mux := http.NewServeMux()
	auth := s.Auth
	s.apiRoutes(outer, auth)
	outer.Handle("/", s.readGuard(auth, mux))
	outer.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	outer.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.Edge.Ready() {
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
		enc.Encode(s.Edge.Status())
	})
	mux.HandleFunc("GET /blocklist/rules", func(w http.ResponseWriter, r *http.Request) {
		b := s.Edge.Blocklist()
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
		enc.Encode(s.Edge.Explain(host, r.URL.Query().Get("country"), time.Now()))
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
