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
func (s *Server) adminHandler(reg *prometheus.Registry, pprofOn bool) http.Handler {
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
		enc.Encode(Explain(s.reloader.current(), host, time.Now()))
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
