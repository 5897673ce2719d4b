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

func (e adminEdge) Blocklist() admin.ListState { return e.s.reloader.ListState() }

func (e adminEdge) Explain(host, country string, now time.Time) any {
	return ExplainCountry(e.s.reloader.Current(), host, country, now)
}

func (e adminEdge) FleetStore() *fleet.Store { return e.s.reloader.FleetStore() }

func (e adminEdge) Reload(trigger string) { e.s.reloader.Reload(trigger) }
