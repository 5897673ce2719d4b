// Package metrics defines every Prometheus metric edgeblock exports, on a
// registry the caller passes in (nothing is registered globally), and the
// label values they take: outcomes, refusal reasons, the kinds of requests
// a block closes, admin write results. Every label takes values from a
// bounded set; nothing a visitor sends becomes a label value.
package metrics

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/geo"
	"github.com/edgeblock/edgeblock/proxy/origin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every metric edgeblock exports. Create it once with
// New and a registry; nothing is registered globally. Every label
// takes values from a bounded set: outcomes, methods and status codes are
// fixed sets, policies come from the blocklist, routes and origins from the
// config, names from the certificates we manage. Nothing a visitor sends
// becomes a label value.
type Metrics struct {
	Requests         *prometheus.CounterVec
	Duration         *prometheus.HistogramVec
	InFlight         prometheus.Gauge
	Blocked          *prometheus.CounterVec
	UpstreamRequests *prometheus.CounterVec
	UpstreamErrors   *prometheus.CounterVec
	// UpstreamRetries counts requests sent again to another origin, by
	// route and the kind of failure that caused it.
	UpstreamRetries *prometheus.CounterVec
	// HealthChecks counts active health check probes by route, origin
	// and result (pass, fail).
	HealthChecks *prometheus.CounterVec
	// BlockedClosed counts proxied requests in flight that a reload
	// ended because it blocked their host, by kind (ClosedUpgrade,
	// ClosedStream, ClosedRequest).
	BlockedClosed *prometheus.CounterVec
	// Geo are the country database's metrics and the scoped-block
	// counter (proxy/geo).
	Geo *geo.Metrics

	BlocklistEntries prometheus.Gauge
	// Blocklist and Config are the reload metrics of the two files.
	Blocklist, Config FileMetrics
	// RestartNeeded is 1 while the config in effect differs from the
	// running one in a setting only a restart applies.
	RestartNeeded prometheus.Gauge
	// RunningFromSnapshot is 1 while a part of the state in use came
	// from the state directory's snapshot at start.
	RunningFromSnapshot prometheus.Gauge

	// The fleet (blocklist.source fleet); all 0 in file mode, exported
	// anyway so that alerts and dashboards see them on every node.
	// FleetEnabled is 1 in fleet mode; FleetConnected is 1 while the
	// edge follows Redis; FleetApplied is the version in effect,
	// FleetLatest the newest version seen published.
	FleetEnabled, FleetConnected prometheus.Gauge
	FleetApplied, FleetLatest    prometheus.Gauge
	// FleetDivergent is 1 while the store's history does not hold the
	// list in effect (it lost data or was restored from an older dump):
	// the edge keeps its list and writers are refused until a reseed.
	FleetDivergent prometheus.Gauge
	// FleetExplicitApplied counts versions applied because they were
	// recorded as forced, rollback or reseed, by kind.
	FleetExplicitApplied *prometheus.CounterVec
	// SnapshotWriteFailures counts failed writes of the state
	// directory's snapshot; SnapshotStale is 1 while the snapshot on disk
	// is older than the state in effect.
	SnapshotWriteFailures prometheus.Counter
	SnapshotStale         prometheus.Gauge
	// FleetRedis is 1 for the edge's Redis mode and the primary it talks
	// to (one series); FleetFailovers and FleetReconnects count the
	// primary's moves and the notification subscription's re-makings.
	FleetRedis                      *prometheus.GaugeVec
	FleetFailovers, FleetReconnects prometheus.Counter

	TLSObtain *prometheus.CounterVec
	// TLSObtainByPattern counts obtains and renewals by covering
	// pattern (at most 100 pattern values, then "other") and result.
	TLSObtainByPattern *prometheus.CounterVec
	// TLSHandshakeRefuse counts certificates refused at a handshake, by
	// reason (certs.Reasons).
	TLSHandshakeRefuse *prometheus.CounterVec
	// TLSBudgetRemaining is how many more new names a pattern may get a
	// certificate for now.
	TLSBudgetRemaining *prometheus.GaugeVec
	// CertExpiry is the expiry time of each covered name's certificate,
	// by name and issuer.
	CertExpiry *prometheus.GaugeVec
	// TLSHandshakeErrors counts handshakes for a covered name that got no
	// certificate (the storage or the CA failed), by reason.
	TLSHandshakeErrors *prometheus.CounterVec

	// AdminWrites counts /v1 block and unblock requests by op and
	// result; AdminAuthFailures the admin requests refused for want of a
	// credential (unauthenticated) or of its scope (forbidden).
	AdminWrites       *prometheus.CounterVec
	AdminAuthFailures *prometheus.CounterVec

	// blocklistInfo has exactly one series once a list is applied: the
	// hash of the list in use.
	blocklistInfo *prometheus.GaugeVec
	infoMu        sync.Mutex
	infoSHA       string

	// ConnectionsOpen counts open public connections by listener;
	// ConnectionsRefused the ones closed at accept, by reason;
	// RequestsRefused the requests answered 429 by the edge, by reason;
	// HTTP2Errors the HTTP/2 protocol errors of the public servers, by
	// the kind net/http reports (a fixed set in its source).
	ConnectionsOpen    *prometheus.GaugeVec
	ConnectionsRefused *prometheus.CounterVec
	RequestsRefused    *prometheus.CounterVec
	HTTP2Errors        *prometheus.CounterVec

	// AccessLogDropped counts access lines dropped because the access
	// log's queue was full (its output slower than the requests);
	// AccessLogErrors the failed writes of the access log.
	AccessLogDropped prometheus.Counter
	AccessLogErrors  prometheus.Counter

	// durationBy caches the Duration child of each outcome, so that the
	// request path does no label lookup for it.
	durationBy map[string]prometheus.Observer
	// requestsBy caches the Requests child of each outcome, status and
	// method seen (a bounded set: the labels are).
	requestsBy sync.Map // requestKey -> prometheus.Counter
	// requestSlots is a lock-free cache in front of requestsBy: a slot
	// per hash of the key, holding the last key that hashed there.
	requestSlots [64]atomic.Pointer[requestSlot]
}

type requestSlot struct {
	k requestKey
	c prometheus.Counter
}

type requestKey struct {
	outcome, method string
	code            int
}

// Reasons a connection or request is refused, the values of the reason label.
const (
	RefusedConnsPerClient    = "max_conns_per_client"
	RefusedRequestsPerClient = "max_requests_per_client"
)

// Outcomes of a request, the values of the outcome label.
const (
	OutcomeProxied  = "proxied"
	OutcomeBlocked  = "blocked"
	OutcomeReport   = "report"
	OutcomeUnknown  = "unknown"
	OutcomeError    = "error"
	OutcomeRedirect = "redirect"
	OutcomeACME     = "acme"
	// OutcomeCanceled: the visitor went away before the response was
	// complete; logged and counted with status 499, as nginx does.
	OutcomeCanceled = "canceled"
	// OutcomeRejected: the edge refused the request itself, without
	// forwarding it: host names that disagree (400), a method it never
	// forwards (405), a loop through this edge (508).
	OutcomeRejected = "rejected"
	// OutcomeTransparency: the transparency feed on transparency.host.
	OutcomeTransparency = "transparency"
)

// Kinds of requests a block closes, the values of the kind label of
// edgeblock_blocked_connections_closed_total.
const (
	ClosedUpgrade = "upgrade"
	ClosedStream  = "stream"
	ClosedRequest = "request"
)

// AdminWriteResults are the result label values of
// edgeblock_admin_writes_total.
var AdminWriteResults = []string{"added", "changed", "removed", "unchanged", "bad_request", "refused", "no_rule", "error"}

var outcomes = []string{OutcomeProxied, OutcomeBlocked, OutcomeReport, OutcomeUnknown, OutcomeError, OutcomeRedirect, OutcomeACME,
	OutcomeCanceled, OutcomeRejected, OutcomeTransparency}

// New creates the metrics and registers them, with the Go and
// process collectors and edgeblock_build_info, on reg. version and revision
// label the build.
func New(reg prometheus.Registerer, version, revision string) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_requests_total", Help: "Requests served on the public listeners, by outcome, status code and method.",
		}, []string{"outcome", "code", "method"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgeblock_request_duration_seconds", Help: "Time from reading the request headers to the end of the response, by outcome.",
			Buckets:                         []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"outcome"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_requests_in_flight", Help: "Requests being served on the public listeners.",
		}),
		Blocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_blocked_requests_total", Help: "Requests that matched a block rule, by the rule's policy link, status and mode (block or report).",
		}, []string{"policy", "status", "mode"}),
		UpstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_upstream_requests_total", Help: "Responses received from origins, by route, origin and status code.",
		}, []string{"route", "origin", "code"}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_upstream_errors_total", Help: "Failed attempts to reach an origin, by route, origin and kind (refused, timeout, reset, tls, busy, other), and origin connections closed for bytes no request asked for (unsolicited).",
		}, []string{"route", "origin", "kind"}),
		UpstreamRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_upstream_retries_total", Help: "Requests sent again to another origin after an attempt failed, by route and the kind of failure (refused, timeout, reset, tls, busy, other).",
		}, []string{"route", "kind"}),
		HealthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_upstream_health_checks_total", Help: "Active health check probes of origins, by route, origin and result (pass, fail).",
		}, []string{"route", "origin", "result"}),
		BlockedClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_blocked_connections_closed_total",
			Help: "Proxied requests in flight ended because a reload blocked their host, by kind: upgrade (a WebSocket or other upgraded connection), stream (a response being sent) or request (not yet answered by the origin; the block page is served).",
		}, []string{"kind"}),
		BlocklistEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_blocklist_entries", Help: "Rules in the blocklist in use.",
		}),
		blocklistInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgeblock_blocklist_info", Help: "The blocklist in use, by the SHA-256 of its file; the value is always 1, and there is one series.",
		}, []string{"sha256"}),
		RestartNeeded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_config_restart_needed", Help: "1 while the config file changes a setting that only a restart applies (listeners, TLS, timeouts, ...), else 0.",
		}),
		RunningFromSnapshot: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_running_from_snapshot", Help: "1 while the config, blocklist or template in use came from the state directory's snapshot because the file was bad or missing at start; 0 once the files themselves are in effect.",
		}),
		FleetEnabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_fleet_enabled", Help: "1 when the blocklist comes from the fleet's Redis (blocklist.source fleet), 0 in file mode.",
		}),
		FleetConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_fleet_connected", Help: "1 while the edge reaches the fleet's Redis and is subscribed to new versions; 0 when it cannot (it keeps its last good list) and in file mode.",
		}),
		FleetApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_fleet_version_applied", Help: "The fleet blocklist version in effect (0: none, or file mode).",
		}),
		FleetLatest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_fleet_version_latest", Help: "The newest fleet blocklist version the edge has seen published; above edgeblock_fleet_version_applied, the edge is behind (a version pending, or refused).",
		}),
		FleetDivergent: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_fleet_divergent", Help: "1 while the fleet's store does not hold the list in effect in its history (it lost data, or was restored from an older dump): the edge keeps its list, and writers are refused until `edgeblock fleet reseed`; 0 otherwise and in file mode.",
		}),
		FleetExplicitApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_fleet_explicit_applied_total", Help: "Fleet versions applied although recorded as an explicit replacement rather than an edit of the list in effect, by kind (force, rollback, reseed).",
		}, []string{"kind"}),
		SnapshotWriteFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeblock_snapshot_write_failures_total", Help: "Failed writes of the state directory's snapshot (a full or read-only disk): the state is applied, but a start with bad files cannot fall back to it.",
		}),
		SnapshotStale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_snapshot_stale", Help: "1 while the state directory's snapshot is older than the state in effect because its last write failed (a start from it is refused), else 0.",
		}),
		FleetRedis: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgeblock_fleet_redis_info", Help: "1 for the fleet Redis mode (single, sentinel, cluster) and the primary's address the edge talks to; one series, replaced when the primary moves. None in file mode or before the first connection.",
		}, []string{"mode", "primary"}),
		FleetFailovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeblock_fleet_redis_failovers_total", Help: "Times the fleet Redis primary the edge talks to moved to another address (a Sentinel or Cluster failover).",
		}),
		FleetReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeblock_fleet_redis_reconnects_total", Help: "Times the edge subscribed again to new-version notifications after losing the subscription or leaving a demoted primary; each is followed at once by a version check.",
		}),
		Blocklist: newFileMetrics("blocklist"),
		Config:    newFileMetrics("config"),
		TLSObtain: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_tls_obtain_total", Help: "Certificate obtain and renew attempts by result (success, failure).",
		}, []string{"result"}),
		TLSObtainByPattern: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_tls_obtain_by_pattern_total", Help: "Certificate obtain and renew attempts by covering pattern (the first 100 patterns, then other) and result (success, failure).",
		}, []string{"pattern", "result"}),
		TLSHandshakeRefuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_tls_handshake_refused_total", Help: "Certificates refused at a TLS handshake, by reason: not_covered (no route or block rule covers the name), budget (tls.on_demand.max_new_per_hour), max_names (tls.on_demand.max_names), ask_denied, ask_error.",
		}, []string{"reason"}),
		TLSBudgetRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgeblock_tls_issuance_budget_remaining", Help: "New names a covering pattern may get certificates for now (the lesser of what is left of tls.on_demand.max_new_per_hour in the last hour and of max_names), for the patterns that have had a new name.",
		}, []string{"pattern"}),
		TLSHandshakeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_tls_handshake_errors_total", Help: "TLS handshakes for a name a route or rule covers that failed to get a certificate, by reason (storage: the certificate store, such as the fleet's Redis, failed; obtain: the CA failed).",
		}, []string{"reason"}),
		AdminWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_admin_writes_total", Help: "Admin API writes (POST /v1/block, /v1/unblock) by op and result (added, changed, removed, unchanged, bad_request, refused, no_rule, error).",
		}, []string{"op", "result"}),
		AdminAuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_admin_auth_failures_total", Help: "Admin requests refused by reason: unauthenticated (no or an unknown credential, 401), forbidden (a read credential on a write, 403), misdirected (a Host that is not the admin listener's, 421), cross_origin (a browser's cross-site write, 403) or content_type (a write that is not application/json, 415).",
		}, []string{"reason"}),
		CertExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgeblock_tls_certificate_expiry_timestamp_seconds",
			Help: "Unix time at which the certificate of each name a route or rule covers expires (the earliest under a wildcard), by issuer (acme or internal).",
		}, []string{"name", "issuer"}),
		ConnectionsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgeblock_connections_open", Help: "Open connections on the public listeners, by listener (http, https).",
		}, []string{"listener"}),
		ConnectionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_connections_refused_total", Help: "Connections closed at accept on the public listeners, by reason (max_conns_per_client).",
		}, []string{"reason"}),
		RequestsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_requests_refused_total", Help: "Requests answered 429 by the edge, by reason (max_requests_per_client).",
		}, []string{"reason"}),
		HTTP2Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_http2_errors_total", Help: "HTTP/2 protocol errors on the public listeners, by the kind net/http reports.",
		}, []string{"kind"}),
		AccessLogDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeblock_access_log_dropped_total", Help: "Access lines dropped because the access log's queue was full (the log's output slower than the requests).",
		}),
		AccessLogErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeblock_access_log_write_errors_total", Help: "Failed writes of the access log (its lines lost).",
		}),
		durationBy: map[string]prometheus.Observer{},
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "edgeblock_build_info", Help: "Build information; the value is always 1.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(version, revision, runtime.Version()).Set(1)
	m.Geo = geo.NewMetrics(reg)
	reg.MustRegister(m.Requests, m.Duration, m.InFlight, m.Blocked, m.UpstreamRequests, m.UpstreamErrors, m.UpstreamRetries, m.HealthChecks, m.BlockedClosed,
		m.BlocklistEntries, m.blocklistInfo, m.RestartNeeded, m.Blocklist.Reloads, m.Blocklist.LastSuccess, m.Blocklist.LastSuccessful,
		m.Config.Reloads, m.Config.LastSuccess, m.Config.LastSuccessful, m.RunningFromSnapshot,
		m.FleetEnabled, m.FleetConnected, m.FleetApplied, m.FleetLatest,
		m.FleetDivergent, m.FleetExplicitApplied, m.SnapshotWriteFailures, m.SnapshotStale,
		m.FleetRedis, m.FleetFailovers, m.FleetReconnects,
		m.TLSObtain, m.TLSObtainByPattern, m.TLSHandshakeRefuse, m.TLSBudgetRemaining, m.CertExpiry, buildInfo,
		m.ConnectionsOpen, m.ConnectionsRefused, m.RequestsRefused, m.HTTP2Errors,
		m.TLSHandshakeErrors, m.AdminWrites, m.AdminAuthFailures, m.AccessLogDropped, m.AccessLogErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Start every series of a fixed label set at zero so that rate() and
	// absent() work from the first scrape.
	for _, r := range []string{"success", "failure", "unchanged", "refused"} {
		m.Blocklist.Reloads.WithLabelValues(r)
		m.Config.Reloads.WithLabelValues(r)
	}
	m.TLSObtain.WithLabelValues("success")
	m.TLSObtain.WithLabelValues("failure")
	for _, k := range []string{"force", "rollback", "reseed"} {
		m.FleetExplicitApplied.WithLabelValues(k)
	}
	for _, r := range []string{"storage", "obtain"} {
		m.TLSHandshakeErrors.WithLabelValues(r)
	}
	for _, r := range []string{"unauthenticated", "forbidden", "misdirected", "cross_origin", "content_type"} {
		m.AdminAuthFailures.WithLabelValues(r)
	}
	for _, op := range []string{"block", "unblock"} {
		for _, r := range AdminWriteResults {
			m.AdminWrites.WithLabelValues(op, r)
		}
	}
	for _, r := range certs.Reasons {
		m.TLSHandshakeRefuse.WithLabelValues(r)
	}
	for _, k := range []string{ClosedUpgrade, ClosedStream, ClosedRequest} {
		m.BlockedClosed.WithLabelValues(k)
	}
	for _, o := range outcomes {
		m.durationBy[o] = m.Duration.WithLabelValues(o)
	}
	m.ConnectionsRefused.WithLabelValues(RefusedConnsPerClient)
	m.RequestsRefused.WithLabelValues(RefusedRequestsPerClient)
	return m
}

// GeoMetrics returns the geo metrics; nil for a nil m.
func (m *Metrics) GeoMetrics() *geo.Metrics {
	if m == nil {
		return nil
	}
	return m.Geo
}

// Served counts one request served on a public listener: its outcome,
// status code and method in edgeblock_requests_total and its duration in
// edgeblock_request_duration_seconds. The series are looked up in the
// registry only the first time.
func (m *Metrics) Served(outcome string, code int, method string, d time.Duration) {
	m.request(outcome, code, method).Inc()
	m.duration(outcome).Observe(d.Seconds())
}

// duration returns the edgeblock_request_duration_seconds series of an
// outcome, looked up once at start.
func (m *Metrics) duration(outcome string) prometheus.Observer {
	if o, ok := m.durationBy[outcome]; ok {
		return o
	}
	return m.Duration.WithLabelValues(outcome)
}

// request returns the edgeblock_requests_total series of an outcome,
// status and method, looked up in the registry only the first time.
func (m *Metrics) request(outcome string, code int, method string) prometheus.Counter {
	k := requestKey{outcome, methodLabel(method), code}
	slot := &m.requestSlots[k.slot()]
	if e := slot.Load(); e != nil && e.k == k {
		return e.c
	}
	var c prometheus.Counter
	if v, ok := m.requestsBy.Load(k); ok {
		c = v.(prometheus.Counter)
	} else {
		c = m.Requests.WithLabelValues(outcome, codeLabel(code), k.method)
		m.requestsBy.Store(k, c)
	}
	slot.Store(&requestSlot{k, c})
	return c
}

// slot returns k's index in Metrics.requestSlots: a hash that sets apart
// the outcomes, methods and codes a busy edge sees at once (blocked 403
// GET beside proxied 200 GET and HEAD), cheaper than sync.Map's.
func (k requestKey) slot() int {
	h := uint(k.code)*31 + uint(len(k.outcome))*7 + uint(len(k.method))*5
	if k.outcome != "" {
		h += uint(k.outcome[0]) * 3
	}
	if k.method != "" {
		h += uint(k.method[0])
	}
	return int(h % 64)
}

// FileMetrics are the reload metrics of one watched file:
// edgeblock_<file>_reloads_total{result},
// edgeblock_<file>_last_reload_success_timestamp_seconds and
// edgeblock_<file>_last_reload_successful.
type FileMetrics struct {
	Reloads        *prometheus.CounterVec
	LastSuccess    prometheus.Gauge
	LastSuccessful prometheus.Gauge
}

func newFileMetrics(file string) FileMetrics {
	return FileMetrics{
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_" + file + "_reloads_total", Help: "Reload attempts of the " + file + " file by result (success, failure, unchanged; refused: a blocklist that would drop too many rules).",
		}, []string{"result"}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_" + file + "_last_reload_success_timestamp_seconds",
			Help: "Unix time the " + file + " file was last read and found in effect (applied, or unchanged).",
		}),
		LastSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_" + file + "_last_reload_successful", Help: "1 if the last reload attempt of the " + file + " file succeeded, else 0.",
		}),
	}
}

// Record counts a reload attempt with result success, unchanged, failure
// or refused. Success and unchanged both mean the file on disk was read and
// is what is in effect, so the timestamp moves with every poll while all
// is well; failure and refused mean it is not in effect.
func (f FileMetrics) Record(result string, now time.Time) {
	f.Reloads.WithLabelValues(result).Inc()
	if result == "failure" || result == "refused" {
		f.LastSuccessful.Set(0)
		return
	}
	f.LastSuccess.Set(float64(now.UnixNano()) / 1e9)
	f.LastSuccessful.Set(1)
}

// SetBlocklist records the list in use: its rule count, and its hash as
// the one series of edgeblock_blocklist_info (the previous hash's series
// is deleted), so that `count by (sha256)` shows which nodes agree.
func (m *Metrics) SetBlocklist(rules int, sha256 string) {
	m.BlocklistEntries.Set(float64(rules))
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	if m.infoSHA != sha256 && m.infoSHA != "" {
		m.blocklistInfo.DeleteLabelValues(m.infoSHA)
	}
	m.infoSHA = sha256
	m.blocklistInfo.WithLabelValues(sha256).Set(1)
}

// methodLabel maps a request method to a bounded label value.
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "OTHER"
}

// codeLabels holds the label text of every status code, so that counting a
// response does not format a number.
var codeLabels = func() []string {
	s := make([]string, 1000)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func codeLabel(code int) string {
	if code >= 0 && code < len(codeLabels) {
		return codeLabels[code]
	}
	return "other"
}

// OriginObserver counts what happens to origins (responses, failures,
// retries, health probes) in the metrics; it implements origin.Observer.
type OriginObserver struct{ M *Metrics }

var _ origin.Observer = OriginObserver{}

// Response implements origin.Observer.
func (ob OriginObserver) Response(o *origin.Origin, code int) {
	ob.M.UpstreamRequests.WithLabelValues(o.Route, o.Label, codeLabel(code)).Inc()
}

// Failure implements origin.Observer.
func (ob OriginObserver) Failure(o *origin.Origin, kind string) {
	ob.M.UpstreamErrors.WithLabelValues(o.Route, o.Label, kind).Inc()
}

// Retry implements origin.Observer.
func (ob OriginObserver) Retry(o *origin.Origin, kind string) {
	ob.M.UpstreamRetries.WithLabelValues(o.Route, kind).Inc()
}

// Probe implements origin.Observer.
func (ob OriginObserver) Probe(o *origin.Origin, result string) {
	ob.M.HealthChecks.WithLabelValues(o.Route, o.Label, result).Inc()
}
