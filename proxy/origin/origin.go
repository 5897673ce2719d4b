// Package origin keeps the origin servers of one route: the pool they
// form, how a request picks one (balancing), whether each is healthy
// (passive failure counting and active probes), and the transport that
// sends a request, retrying it on another origin when that is safe.
//
// It knows nothing of blocking, pages or serving: the proxy builds one
// Pool per route from a Config, puts a Trip in each request's context,
// and hands the request to a Transport.
package origin

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Spec is one origin of a route as configured.
type Spec struct {
	// URL is the origin's http:// or https:// base URL.
	URL *url.URL
	// Weight is the origin's share of requests relative to the others
	// of its route; 0 means 1.
	Weight int
}

// Config is what a Pool is built from: a route's origins and how they are
// balanced, checked and retried. The zero value of every field but Route
// and Origins means the default documented on it.
type Config struct {
	// Route names the route in logs and metrics.
	Route string
	// Origins are the route's origins, at least one.
	Origins []Spec
	// Policy is round_robin (default), least_conn, random_two, first,
	// ip_hash or cookie.
	Policy string
	// Cookie names the sticky cookie of the cookie policy; default
	// "edgeblock_origin".
	Cookie string
	// CookieKey signs the sticky cookie's value (HMAC-SHA256). Required
	// for the cookie policy.
	CookieKey []byte

	// Passive is the counting of failed requests.
	Passive Passive
	// Health is the active check; a zero Interval turns it off.
	Health Health
	// AllDown is what happens when every origin is out: "least_bad"
	// (default) sends the request to the origin that is least out, "503"
	// refuses it with ErrAllDown.
	AllDown string
	// Retry bounds trying a request on another origin.
	Retry Retry
	// Base sends the pool's attempts; nil means the Transport's Base.
	Base http.RoundTripper
}

// The balancing policies.
const (
	RoundRobin = "round_robin"
	LeastConn  = "least_conn"
	RandomTwo  = "random_two"
	First      = "first"
	IPHash     = "ip_hash"
	Cookie     = "cookie"
)

// Policies lists the balancing policies, for validation.
var Policies = []string{RoundRobin, LeastConn, RandomTwo, First, IPHash, Cookie}

// The AllDown choices.
const (
	AllDownLeastBad = "least_bad"
	AllDown503      = "503"
)

// Observer is told what happens to origins, for metrics. Its methods are
// called on the request path and from health checks, concurrently.
type Observer interface {
	// Response: o answered an attempt with status code.
	Response(o *Origin, code int)
	// Failure: an attempt on o failed with an error of kind (see Kind).
	Failure(o *Origin, kind string)
	// Retry: a request that failed on o with kind is sent to another origin.
	Retry(o *Origin, kind string)
	// Probe: an active check of o ended with result "pass" or "fail".
	Probe(o *Origin, result string)
}

// Origin is one origin server of a route. Its health and counters outlive
// config reloads as long as the route keeps an origin of the same label.
type Origin struct {
	// URL is the origin's base URL.
	URL *url.URL
	// Label is the origin in logs and metrics: scheme://host[:port][/path].
	Label string
	// Route is the route's name.
	Route string

	inflight atomic.Int64 // attempts under way

	// Passive health: downUntil is 0 while the origin is in, else the
	// Unix nanoseconds at which it may take one trial request; trial is
	// set while that request is under way.
	downUntil atomic.Int64
	trial     atomic.Bool
	mu        sync.Mutex
	fails     []time.Time // failures within the window, oldest first

	// Active health, written only by the origin's checker goroutine
	// (probeDown is also read by pickers).
	probeDown   atomic.Bool
	probeFails  int
	probePasses int
	checking    sync.Mutex // held by the one checker of this origin
}

// Label returns the label of an origin URL.
func Label(u *url.URL) string {
	l := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" {
		l += u.Path
	}
	return l
}

// Up reports whether o takes full traffic: not out after failed requests
// and not down by the active check.
func (o *Origin) Up() bool { return o.downUntil.Load() == 0 && !o.probeDown.Load() }

// InFlight returns the number of attempts under way on o.
func (o *Origin) InFlight() int64 { return o.inflight.Load() }

// usable reports whether a pick may choose o now: up, or out after
// failures with its fail timeout over and no trial request under way.
func (o *Origin) usable(now int64) bool {
	if o.probeDown.Load() {
		return false
	}
	d := o.downUntil.Load()
	return d == 0 || (now >= d && !o.trial.Load())
}

// claim is called on the origin a pick chose: for an origin past its
// fail timeout it takes the one trial slot, and reports false if another
// request took it first.
func (o *Origin) claim() bool {
	if o.downUntil.Load() == 0 {
		return true
	}
	return o.trial.CompareAndSwap(false, true)
}

// result is how an attempt on an origin ended, for passive health.
type result int

const (
	resultOK      result = iota // an answer that does not count as a failure
	resultFailed                // counts as a failure
	resultNeutral               // says nothing of the origin (visitor went away, edge limit)
)

// done records the end of an attempt on o.
func (p *Pool) done(o *Origin, r result, why string) {
	o.inflight.Add(-1)
	switch r {
	case resultOK:
		if o.downUntil.Swap(0) != 0 {
			o.trial.Store(false)
			p.log.Info("origin up", "event", "origin_up", "route", o.Route, "origin", o.Label, "by", "passive")
		}
	case resultFailed:
		p.fail(o, why)
	case resultNeutral:
		o.trial.Store(false)
	}
}

// fail counts a failure of o and takes it out when MaxFails failures fell
// within the window, or when its trial request failed.
func (p *Pool) fail(o *Origin, why string) {
	pc := p.cfg.Passive
	if pc.MaxFails < 0 {
		return
	}
	now := time.Now()
	o.mu.Lock()
	cut := 0
	for cut < len(o.fails) && now.Sub(o.fails[cut]) > pc.Window {
		cut++
	}
	o.fails = append(o.fails[cut:], now)
	over := len(o.fails) >= pc.MaxFails
	if over {
		o.fails = o.fails[:0]
	}
	o.mu.Unlock()
	wasTrial := o.trial.Load()
	if !over && !wasTrial {
		return
	}
	prev := o.downUntil.Swap(now.Add(pc.FailTimeout).UnixNano())
	o.trial.Store(false)
	if prev == 0 {
		p.log.Warn("origin down", "event", "origin_down", "route", o.Route, "origin", o.Label,
			"by", "passive", "error", why, "skip_for", pc.FailTimeout.String())
	}
}

// String returns the origin's label.
func (o *Origin) String() string { return o.Label }

// ErrAllDown is returned for a request when every origin of its route is
// out and the route's all_down is "503".
var ErrAllDown = fmt.Errorf("every origin of the route is down (all_down: 503)")

// discardLogger is used when a Pool is given no logger.
var discardLogger = slog.New(slog.DiscardHandler)
