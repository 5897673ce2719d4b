package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// A block ends what is open: a proxied request stays registered here for
// as long as it is in flight, and when Apply swaps in a list that blocks
// its host, the request's context is canceled with errClosedByBlock. What
// that ends, depending on how far the request got:
//
//   - not yet answered by the origin (a long poll, a slow upload): the
//     round trip fails and the visitor gets the block page (kind "request");
//   - a response being streamed (server-sent events, a long download): the
//     body copy fails and httputil.ReverseProxy aborts the visitor's
//     connection or HTTP/2 stream with http.ErrAbortHandler, so the visitor
//     sees a cut-off response, never a clean end (kind "stream");
//   - an upgraded connection (WebSocket): ReverseProxy closes the origin
//     side on cancel, its copy loop ends and it closes the visitor's side
//     (kind "upgrade").
//
// Each is logged with outcome "blocked", the rule, and error_kind
// "closed_by_block", and counted in
// edgeblock_blocked_connections_closed_total{kind}; Apply logs one summary
// line per list that closed anything.

// errClosedByBlock is the cancel cause of a request ended because a reload
// blocked its host. It wraps context.Canceled so that the transport and
// errKind's callers treat it as a cancellation, not an origin failure.
var errClosedByBlock = fmt.Errorf("closed because a reload blocked the host: %w", context.Canceled)

// flightShards spreads the registry over this many locks, so that
// requests on different cores rarely wait for each other.
const flightShards = 32

// closedSample bounds the hosts and rules the summary line names.
const closedSample = 10

// flights is the registry of proxied requests in flight. The zero value is
// empty and ready to use.
type flights struct {
	shards [flightShards]flightShard
}

type flightShard struct {
	mu sync.Mutex
	m  map[*reqInfo]struct{}
	_  [64 - 16]byte // one cache line per shard
}

// flight is the registry part of a reqInfo.
type flight struct {
	cancel context.CancelCauseFunc
	// closed is set, under the shard lock and before cancel, when a block
	// ends the request.
	closed *closure
	// closedKind is "request" when the block page was served in place of
	// the origin's answer; the request's goroutine alone uses it.
	closedKind string
	shard      uint8
}

// closure is why a request was closed: the rule and the state that has it.
type closure struct {
	rule blocklist.Rule
	st   *state
	geo  geoIndex // the visitor's country, when a scoped rule decided
}

// track registers a proxied request and returns the context to forward it
// with, which a reload that blocks info.host cancels. untrack must follow.
// It costs one context, one map insert under a shard lock and, when a list
// was swapped in since info.st, one decision (decide: a Match, or for a
// host a scoped rule covers, the visitor's country and MatchWhere).
func (p *Proxy) track(ctx context.Context, info *reqInfo) context.Context {
	ctx, info.cancel = context.WithCancelCause(ctx)
	info.shard = uint8(rand.Uint32N(flightShards))
	sh := &p.flights.shards[info.shard]
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[*reqInfo]struct{})
	}
	sh.m[info] = struct{}{}
	sh.mu.Unlock()
	// A list swapped in after this request's decision and walked before
	// the insert above would have missed it: check it here. Apply stores
	// the state before it walks, so one of the two sees the other.
	if cur := p.state.Load(); cur.list != info.st.list {
		var geo geoIndex
		var rule blocklist.Rule
		if p.decide(&rule, cur, info.req, info.host, p.now(), &geo) && rule.Mode == blocklist.ModeBlock {
			sh.mu.Lock()
			p.closeLocked(info, &closure{rule: rule, st: cur, geo: geo})
			sh.mu.Unlock()
		}
	}
	return ctx
}

// closeLocked ends a registered request; the caller holds its shard lock.
func (p *Proxy) closeLocked(info *reqInfo, c *closure) {
	if info.closed != nil {
		return
	}
	info.closed = c
	info.cancel(errClosedByBlock)
}

// closedBy returns why a block closed the request, or nil.
func (p *Proxy) closedBy(info *reqInfo) *closure {
	sh := &p.flights.shards[info.shard]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return info.closed
}

// untrack removes a request from the registry. If a block closed it, the
// request is recorded as blocked by the rule, with errClosedByBlock as its
// error, and counted by kind. It runs deferred, after the handler has set
// the outcome, and also when ReverseProxy aborts with a panic.
func (p *Proxy) untrack(info *reqInfo, rec *recorder, e *accessEntry) {
	sh := &p.flights.shards[info.shard]
	sh.mu.Lock()
	delete(sh.m, info)
	c := info.closed
	sh.mu.Unlock()
	info.cancel(nil) // release the context
	if c == nil {
		return
	}
	kind := info.closedKind
	switch {
	case kind != "":
	case info.upstreamCode == http.StatusSwitchingProtocols:
		kind = metrics.ClosedUpgrade
	default:
		kind = metrics.ClosedStream
	}
	p.metrics.BlockedClosed.WithLabelValues(kind).Inc()
	e.outcome, e.rule, e.ruled, rec.err = metrics.OutcomeBlocked, c.rule, true, errClosedByBlock
	if c.geo != 0 {
		e.geo = c.geo // the country the scoped rule was decided by, for the access line
	}
}

// serveClosed serves the block page in place of the origin's answer when a
// block closed the request before the origin answered, and reports whether
// it did. upstreamError calls it first.
func (p *Proxy) serveClosed(w http.ResponseWriter, r *http.Request, info *reqInfo) bool {
	c := p.closedBy(info)
	if c == nil {
		return false
	}
	info.closedKind = metrics.ClosedRequest
	page := c.st.blockPage(c.rule.AttrsID)
	if !c.rule.Scope.IsZero() {
		page = page.InCountry(c.geo.country())
	}
	page.Serve(w, r, pages.Request{Host: info.host, RequestID: info.id, Time: p.now()})
	return true
}

// closeBlocked cancels every request in flight whose host the list of s
// blocks, after Apply has swapped s in, and logs one summary line if it
// closed any. It does nothing when the list is unchanged. Its cost is one
// decision (decide) per request in flight, each shard locked in turn: tens of
// milliseconds for 100,000 open requests (BenchmarkCloseBlocked), well
// within the reload budget of a second.
func (p *Proxy) closeBlocked(prev, s *state) {
	if prev == nil || prev.list == s.list {
		return
	}
	now := p.now()
	closed := 0
	var hosts, rules []string
	seenHost, seenRule := map[string]bool{}, map[string]bool{}
	for i := range p.flights.shards {
		sh := &p.flights.shards[i]
		sh.mu.Lock()
		for info := range sh.m {
			if info.closed != nil {
				continue
			}
			var geo geoIndex
			var rule blocklist.Rule
			if !p.decide(&rule, s, info.req, info.host, now, &geo) || rule.Mode != blocklist.ModeBlock {
				continue
			}
			p.closeLocked(info, &closure{rule: rule, st: s, geo: geo})
			closed++
			if len(hosts) < closedSample && !seenHost[info.host] {
				seenHost[info.host] = true
				hosts = append(hosts, info.host)
			}
			if pat := rule.Pattern(); len(rules) < closedSample && !seenRule[pat] {
				seenRule[pat] = true
				rules = append(rules, pat)
			}
		}
		sh.mu.Unlock()
	}
	if closed > 0 {
		p.log.Info("open requests closed by a block", "event", "blocked_close", "closed", closed,
			"file", s.list.File(), "sha256", s.list.SHA256(), "hosts", hosts, "rules", rules)
	}
}
