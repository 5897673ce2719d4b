package proxy

import (
	"net/http"
	"time"

	"github.com/edgeblock/edgeblock/proxy/admin"
	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// adminHandler returns the admin listener's handler, on the admin
// section of the config the server started with (it needs a restart).
func (s *Server) adminHandler() http.Handler {
	return admin.New(admin.Options{Auth: s.cfg.Admin.Auth(), Edge: adminEdge{s}, Metrics: s.metrics, Registry: s.reg,
		Log: s.log, Pprof: s.cfg.Admin.Pprof})
}

// adminEdge is the running edge as the admin listener sees it.
type adminEdge struct{ s *Server }

var _ admin.Edge = adminEdge{}

func (e adminEdge) Ready() bool { return e.s.ready.Load() && e.s.proxy.Ready() }

func (e adminEdge) Status() any { return e.s.reloader.Status() }

func (e adminEdge) Blocklist() admin.ListState {
	r := e.s.reloader
	r.mu.Lock()
	defer r.mu.Unlock()
	return admin.ListState{List: r.cur.List, File: r.cur.Config.Blocklist.File, MaxDrop: r.cur.Config.Blocklist.MaxDrop,
		LoadedAt: r.listSt.LoadedAt, ErrorAt: r.listSt.ErrorAt, LastError: r.listSt.LastError}
}

func (e adminEdge) Explain(host, country string, now time.Time) any {
	return ExplainCountry(e.s.reloader.current(), host, country, now)
}

func (e adminEdge) FleetStore() *fleet.Store { return e.s.reloader.fleetStore() }

func (e adminEdge) Reload(trigger string) { e.s.reloader.Reload(trigger) }

// fleetStore returns the fleet's version store when the blocklist follows
// the fleet, else nil.
func (r *Reloader) fleetStore() *fleet.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fleet == nil {
		return nil
	}
	return r.fleet.store
}
