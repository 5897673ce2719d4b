package reload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/config"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"github.com/redis/go-redis/v9"
)

// NewFleetStore is the fleet's Store on rdb with the edges' validation:
// writers build on the newest version that parses, as edges stay on it.
func NewFleetStore(rdb redis.UniversalClient, cfg fleet.Config) *fleet.Store {
	s := fleet.NewStore(rdb, cfg)
	s.Validate = func(content []byte) error {
		_, err := blocklist.Parse("fleet", content)
		return err
	}
	// block, unblock and the admin API edit with blocklist.ApplyEdit.
	s.EditsValidate = true
	return s
}

// fleetStartTimeout bounds reading the published version at start, on top
// of the client's own dial and command timeouts.
func fleetStartTimeout(cfg *fleet.Config) time.Duration {
	return cfg.Redis.DialTimeout + cfg.Redis.Timeout
}

// loadFleetList reads and parses the newest good version (intact and
// valid: a corrupt or invalid newer one is skipped, as edges refuse it),
// for a start (the Reloader follows later versions).
func loadFleetList(cfg *config.Config) (*blocklist.List, []byte, *fleet.Version, error) {
	field := []any{"fleet", "redis"}
	rdb, err := fleet.NewClient(*cfg.Fleet)
	if err != nil {
		return nil, nil, nil, cfg.FileError(field, err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetStartTimeout(cfg.Fleet))
	defer cancel()
	v, _, err := NewFleetStore(rdb, *cfg.Fleet).Head(ctx)
	switch {
	case errors.Is(err, fleet.ErrNoVersion):
		return nil, nil, nil, cfg.FileError(field, fmt.Errorf("no blocklist published yet under prefix %q: publish one with `edgeblock publish`", cfg.Fleet.Prefix))
	case err != nil:
		return nil, nil, nil, cfg.FileError(field, fmt.Errorf("cannot read the published blocklist from %s: %w", redisAddr(cfg.Fleet), err))
	}
	l, err := blocklist.Parse(fleet.ListName(v.Number), v.Content)
	content := v.Content
	v.Content = nil
	return l, content, &v, err
}

// fleetDivergentError says that at start the store's newest good version
// does not descend from the list this edge applied last (its snapshot's).
type fleetDivergentError struct{ why string }

func (e *fleetDivergentError) Error() string {
	return "fleet: the store is divergent: " + e.why + "; serving the list this edge applied last, from its snapshot (see `edgeblock fleet status`, and `edgeblock fleet reseed`)"
}

// checkFleetStart compares the published version pub (with list hash
// sha) read at start with the fleet list of the snapshot, the one this
// edge applied last: a store that lost data or was restored from an older
// dump must not roll the edge back. It returns a *fleetDivergentError
// when pub does not descend from the snapshot's list, nil when it does or
// cannot be told.
func checkFleetStart(cfg *config.Config, pub *fleet.Version, sha string, snap *Snapshot) error {
	m, ok := fleet.VersionOfListName(snap.Blocklist.Path)
	if !ok || pub == nil {
		return nil
	}
	z := snap.Blocklist.SHA256
	switch {
	case pub.Number == m && sha == z:
		return nil
	case pub.Number == m:
		return &fleetDivergentError{fmt.Sprintf("its version %d holds sha256 %.12s, not the %.12s this edge applied: the number was reused (restored from an older dump?)", m, sha, z)}
	case pub.Number < m:
		return &fleetDivergentError{fmt.Sprintf("its newest good version is %d, older than version %d this edge applied: it lost versions (restarted empty, or restored from an older dump?)", pub.Number, m)}
	}
	rdb, err := fleet.NewClient(*cfg.Fleet)
	if err != nil {
		return nil
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetStartTimeout(cfg.Fleet))
	defer cancel()
	ok, why, err := NewFleetStore(rdb, *cfg.Fleet).Descends(ctx, *pub, m, z)
	if err != nil || ok {
		return nil
	}
	return &fleetDivergentError{fmt.Sprintf("version %d does not descend from version %d this edge applied: %s", pub.Number, m, why)}
}

// redisAddr names the Redis server(s) of cfg and their mode, for
// messages.
func redisAddr(cfg *fleet.Config) string {
	s := strings.Join(cfg.Redis.Servers(), ",")
	switch cfg.Redis.EffectiveMode() {
	case fleet.ModeSentinel:
		return "sentinels " + s + " (master " + cfg.Redis.MasterName + ")"
	case fleet.ModeCluster:
		return "cluster " + s
	}
	return s
}

// fleetHeartbeat is how often an edge writes its heartbeat; `edgeblock
// fleet status` calls a node silent after several missed ones.
const fleetHeartbeat = 5 * time.Second

// fleetMonitorInterval is how often the fleet metrics are brought up to
// date from the Follower.
const fleetMonitorInterval = 250 * time.Millisecond

// fleetFollow is what a Reloader in fleet mode runs: the Redis client,
// the Follower, the heartbeat and the metrics monitor.
type fleetFollow struct {
	rdb      *fleet.Client
	store    *fleet.Store
	node     string
	follower *fleet.Follower
	cancel   context.CancelFunc
	wg       sync.WaitGroup  // the heartbeat and the monitor
	applied  atomic.Int64    // the version in effect (0: none known)
	beat     chan struct{}   // buffered 1: write the heartbeat now
	link     fleet.RedisLink // the connection as last exported (monitor only)

	mu sync.Mutex // guards the fields below
	// sha is the SHA-256 of the list in effect.
	sha string
	// refused is why the last version delivered was not applied
	// because it does not descend from the list in effect; "" once a
	// version is applied.
	refused string
	// content is the list in effect as published (nil if not known),
	// kept to save a copy of it should the store lose it.
	content []byte
	// divergent is why the store does not hold the list in effect ("":
	// it does); copyKey where this edge saved a copy of its list.
	divergent, copyKey string
	// offered is the SHA-256 of the list last saved as a copy on a
	// writer's request.
	offered string
}

// beatNow asks for a heartbeat at once.
func (f *fleetFollow) beatNow() {
	select {
	case f.beat <- struct{}{}:
	default:
	}
}

// startFleetLocked starts following the fleet's Redis from the version in
// effect. r.mu is held.
func (r *Reloader) startFleetLocked(b *Bundle, content []byte) error {
	cfg := b.Config.Fleet
	rdb, err := fleet.NewClient(*cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleetFollow{rdb: rdb, store: NewFleetStore(rdb, *cfg), node: cfg.Node, cancel: cancel, beat: make(chan struct{}, 1)}
	applied, _ := fleet.VersionOfListName(b.List.File())
	f.applied.Store(applied)
	f.sha, f.content = b.List.SHA256(), content
	// The next version is a patch against this list: no snapshot read.
	f.store.Remember(applied, content)
	var de *fleetDivergentError
	if errors.As(b.partErrs[PartBlocklist], &de) {
		f.refused = de.why
	}
	r.metrics.FleetEnabled.Set(1)
	r.metrics.FleetApplied.Set(float64(applied))
	r.metrics.FleetLatest.Set(float64(applied))
	r.fleet = f
	f.follower = fleet.Follow(ctx, f.store, r.applyVersion, fleet.FollowOptions{
		After: applied,
		OnState: func(connected bool, err error) {
			if connected {
				f.beatNow()
				r.metrics.FleetConnected.Set(1)
				r.log.Info("fleet: following Redis", "event", "fleet", "result", "connected", "redis", redisAddr(cfg), "node", cfg.Node)
				return
			}
			r.metrics.FleetConnected.Set(0)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			r.log.Error("fleet: Redis unreachable; keeping the last good list until it is back", "event", "fleet", "result", "disconnected",
				"redis", redisAddr(cfg), "node", cfg.Node, "version", f.applied.Load(), "error", msg)
		},
	})
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		f.store.RunHeartbeat(ctx, fleetHeartbeat, f.beat, r.heartbeat, func(err error) {
			r.log.Debug("fleet: heartbeat not written", "event", "fleet_heartbeat", "error", err.Error())
		})
	}()
	go func() {
		defer f.wg.Done()
		r.monitorFleet(ctx, f)
	}()
	return nil
}

// heartbeat is this node's state for its heartbeat.
func (r *Reloader) heartbeat() fleet.Heartbeat {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.fleet
	hb := fleet.Heartbeat{Node: f.node, Version: f.applied.Load(), Redis: f.rdb.Link()}
	if r.cur != nil {
		hb.SHA256 = r.cur.List.SHA256()
	}
	f.mu.Lock()
	hb.Divergence, hb.Copy = f.divergent, f.copyKey
	f.mu.Unlock()
	return hb
}

// monitorFleet keeps edgeblock_fleet_version_latest current and judges
// whether the store still holds the list in effect (see checkDivergence).
func (r *Reloader) monitorFleet(ctx context.Context, f *fleetFollow) {
	t := time.NewTicker(fleetMonitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.redisMetrics(r.metrics)
		seen, read := f.follower.Read()
		applied := f.applied.Load()
		if !read {
			continue // nothing read yet
		}
		r.metrics.FleetLatest.Set(float64(max(seen, applied)))
		why, ok := r.checkDivergence(ctx, f, seen, applied)
		if !ok {
			continue
		}
		r.setDivergent(ctx, f, why)
		r.offerCopy(ctx, f)
		if why == "" && f.follower.Connected() && seen >= applied {
			r.confirmFleet()
		}
	}
}

// checkDivergence says why the store does not hold the list in effect
// (version applied): its newest version is older (it lost data, or was
// restored from an older dump), its version of that number holds another
// list (the number was reused), or the last version delivered does not
// descend from it. ok is false when Redis could not be asked.
func (r *Reloader) checkDivergence(ctx context.Context, f *fleetFollow, seen, applied int64) (why string, ok bool) {
	f.mu.Lock()
	sha, refused := f.sha, f.refused
	f.mu.Unlock()
	if applied <= 0 {
		return "", true
	}
	if seen < applied {
		if seen == 0 {
			return fmt.Sprintf("the store holds no version, and version %d is in effect: it lost its data (restarted empty?)", applied), true
		}
		return fmt.Sprintf("the store's newest version is %d, older than version %d in effect: it lost versions (restored from an older dump?)", seen, applied), true
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	held, err := f.store.StoredSHA256(rctx, applied)
	if err != nil {
		return "", false
	}
	if held != "" && held != sha {
		return fmt.Sprintf("the store's version %d holds sha256 %.12s, not the %.12s in effect: the number was reused (restored from an older dump?)", applied, held, sha), true
	}
	return refused, true
}

// offerCopy saves a copy of the list in effect to the store when a
// writer asked for it: the store's content of that version is corrupt,
// and writers build on the copy rather than on an older version.
func (r *Reloader) offerCopy(ctx context.Context, f *fleetFollow) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	want, err := f.store.CopyWanted(rctx)
	f.mu.Lock()
	sha, content, offered := f.sha, f.content, f.offered
	f.mu.Unlock()
	if err != nil || want == "" || want != sha || offered == sha || content == nil {
		return
	}
	key, err := f.store.SaveCopy(rctx, content)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.offered = sha
	f.mu.Unlock()
	r.log.Warn("fleet: the store's content of the version in effect is corrupt; saved a copy of the list for writers to build on",
		"event", "fleet", "result", "copy_saved", "version", f.applied.Load(), "sha256", sha, "copy", key)
}

// setDivergent records the edge's judgement of the store: the metric, a
// log line on each change, and on becoming divergent a copy of the list
// in effect saved to the store (for `edgeblock fleet reseed`) and a
// heartbeat at once.
func (r *Reloader) setDivergent(ctx context.Context, f *fleetFollow, why string) {
	f.mu.Lock()
	was := f.divergent
	f.divergent = why
	f.mu.Unlock()
	if why == was {
		return
	}
	applied := f.applied.Load()
	// The heartbeat first, so that once the metric says so, writers'
	// checks (which read heartbeats) say so too.
	beat := func() {
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		f.store.Beat(bctx, r.heartbeat())
	}
	if why == "" {
		f.mu.Lock()
		f.copyKey = ""
		f.mu.Unlock()
		beat()
		r.metrics.FleetDivergent.Set(0)
		r.log.Info("fleet: the store holds the list in effect again", "event", "fleet", "result", "converged", "version", applied)
		return
	}
	f.mu.Lock()
	content := f.content
	f.mu.Unlock()
	key := ""
	if content != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		k, err := f.store.SaveCopy(cctx, content)
		cancel()
		if err == nil {
			key = k
		}
	}
	f.mu.Lock()
	f.copyKey = key
	f.mu.Unlock()
	beat()
	r.metrics.FleetDivergent.Set(1)
	r.log.Error("fleet: the store is divergent: it does not hold the list in effect; keeping it, and writers are refused until `edgeblock fleet reseed`",
		"event", "fleet", "result", "divergent", "reason", why, "version", applied, "copy", key)
}

// redisMetrics brings the Redis connection's metrics up to date from the
// client: the info series (mode and primary; one series, replaced when
// the primary moves) and the failover and reconnect counters.
func (f *fleetFollow) redisMetrics(m *metrics.Metrics) {
	l := f.rdb.Link()
	if l.Primary != f.link.Primary || l.Mode != f.link.Mode {
		m.FleetRedis.Reset()
		if l.Primary != "" {
			m.FleetRedis.WithLabelValues(l.Mode, l.Primary).Set(1)
		}
	}
	if d := l.Failovers - f.link.Failovers; d > 0 {
		m.FleetFailovers.Add(float64(d))
	}
	if d := l.Reconnects - f.link.Reconnects; d > 0 {
		m.FleetReconnects.Add(float64(d))
	}
	f.link = *l
}

// confirmFleet marks what came from the snapshot at start as confirmed
// once Redis is reached and holds the same version.
func (r *Reloader) confirmFleet() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.listSt.FromSnapshot {
		return
	}
	now := time.Now()
	r.listSt.FromSnapshot = false
	if was := r.listSt.clearError(); was != "" {
		r.log.Info("blocklist error cleared: the fleet's Redis is reached and holds the version in effect", "event", "blocklist_reload",
			"result", "recovered", "trigger", "fleet", "file", r.cur.List.File(), "sha256", r.cur.List.SHA256(), "previous_error", was)
	}
	r.metrics.Blocklist.Record("unchanged", now)
	if !r.cfgSt.FromSnapshot {
		r.metrics.RunningFromSnapshot.Set(0)
	}
}

// fleetCurrent reports, for a poll, whether the version in effect is the
// newest published one, as last read from a reachable Redis.
func (r *Reloader) fleetCurrent() bool {
	f := r.fleet
	f.mu.Lock()
	divergent := f.divergent != ""
	f.mu.Unlock()
	return f.follower.Connected() && f.follower.Seen() == f.applied.Load() && !r.listSt.FromSnapshot && !divergent
}

// applyVersion is the Follower's callback: it validates version v as a
// file reload validates the blocklist file (parse, drop guard) and applies
// it through the same path, or refuses it and keeps the last good list.
func (r *Reloader) applyVersion(v fleet.Version) {
	f := r.fleet
	base := f.applied.Load()
	f.mu.Lock()
	baseSHA := f.sha
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	ok, why, err := f.store.Descends(ctx, v, base, baseSHA)
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.cur == nil {
		return
	}
	now := time.Now()
	const trigger = "fleet"
	name := fleet.ListName(v.Number)
	r.metrics.FleetLatest.Set(float64(max(v.Number, r.fleet.follower.Seen())))
	meta := []any{"version", v.Number, "actor", v.Actor, "comment", v.Comment, "published_at", v.Time.UTC(),
		"kind", string(v.Kind), "parent_version", v.ParentNumber, "parent_sha256", v.Parent}
	if err != nil || !ok {
		if err != nil {
			why = "cannot check its history: " + err.Error()
		}
		why = fmt.Sprintf("version %d does not descend from version %d in effect: %s", v.Number, base, why)
		r.metrics.Blocklist.Record("refused", now)
		r.listSt.setError(now, errors.New(why))
		f.mu.Lock()
		f.refused = why
		f.mu.Unlock()
		r.log.Error("fleet blocklist version not applied: it does not descend from the list in effect (a store that lost data, or was restored from an older dump); keeping the list in effect",
			append([]any{"event", "blocklist_reload", "result", "refused_divergent", "trigger", trigger, "file", name, "sha256", v.SHA256,
				"reason", why, "serving", r.cur.List.File(), "serving_sha256", r.cur.List.SHA256()}, meta...)...)
		return
	}
	// In proportion to the change from the list in effect, whose next
	// version this is (a full parse when the change is large). The store
	// checked the content against v.SHA256: it is not hashed again.
	l, err := blocklist.ReparseSum(r.cur.List, name, v.Content, v.SHA256)
	if err != nil {
		r.metrics.Blocklist.Record("failure", now)
		r.listSt.setError(now, err)
		r.log.Error("fleet blocklist version not applied: it fails validation; keeping the last good list", append([]any{"event", "blocklist_reload",
			"result", "failure", "trigger", trigger, "file", name, "sha256", v.SHA256, "error", err.Error(),
			"serving", r.cur.List.File(), "serving_sha256", r.cur.List.SHA256(), "serving_rules", r.cur.List.Len()}, meta...)...)
		return
	}
	if err := blocklist.CheckDrop(l, r.cur.List, r.cur.Config.Blocklist.MaxDrop, now); err != nil {
		r.listRefused(now, trigger, l, err.(*blocklist.DropError))
		return
	}
	prev := r.cur
	next := *r.cur
	next.raw, next.FromSnapshot, next.Problems, next.Snapshot = nil, nil, nil, nil
	next.List = l
	vm := v
	vm.Content = nil
	next.Fleet = &vm
	if err := r.commit(&next, commitInfo{trigger: trigger, now: now, list: true, meta: meta, raw: &rawFiles{list: v.Content}}); err != nil {
		r.metrics.Blocklist.Record("failure", now)
		r.listSt.setError(now, err)
		r.log.Error("fleet blocklist version not applied; keeping the last good list", "event", "blocklist_reload", "result", "failure",
			"trigger", trigger, "file", name, "error", err.Error())
		return
	}
	r.fleet.applied.Store(v.Number)
	// The store holds what was just read from it: not divergent.
	f.mu.Lock()
	f.sha, f.refused, f.content = l.SHA256(), "", v.Content
	wasDivergent := f.divergent
	f.divergent, f.copyKey = "", ""
	f.mu.Unlock()
	if wasDivergent != "" {
		r.metrics.FleetDivergent.Set(0)
		r.log.Info("fleet: the store holds the list in effect again", "event", "fleet", "result", "converged", "version", v.Number)
	}
	if why != "" {
		// Applied on the strength of its kind (or a history no longer
		// kept), not as a fast-forward: say so.
		if v.Kind.Explicit() {
			r.metrics.FleetExplicitApplied.WithLabelValues(string(v.Kind)).Inc()
		}
		r.log.Warn("fleet blocklist version applied without a fast-forward: "+why, append([]any{"event", "fleet", "result", "explicit",
			"file", name, "sha256", v.SHA256, "previous", prev.List.File(), "previous_sha256", prev.List.SHA256()}, meta...)...)
	}
	r.metrics.FleetApplied.Set(float64(v.Number))
	// Tell the fleet at once, rather than at the next heartbeat.
	f.beatNow()
	if l.NeedsCompaction() {
		go r.compactList(l)
	}
}

// compactList replaces the list in effect, l, with the same list parsed
// whole (see blocklist.List.Compact), off the request path and outside
// r.mu while parsing, so that the next versions (fleet) or reloads (file)
// are again reparsed in proportion to their change rather than parsed
// whole on the way to the edge. Nothing changes for requests: the same
// rules.
func (r *Reloader) compactList(l *blocklist.List) {
	c := l.Compact()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.cur == nil || r.cur.List != l || c == l {
		return // a newer version came meanwhile: it is compacted in turn
	}
	if err := r.p.Apply(r.cur.Config, c, r.cur.Renderer); err != nil {
		r.log.Warn("compacting the list in effect failed; keeping it as is", "event", "blocklist_compact", "result", "failure", "file", l.File(), "error", err.Error())
		return
	}
	next := *r.cur
	next.List = c
	r.cur = &next
	r.mem.applied(time.Now()) // the parse's garbage, and the overlay's
}

// stop ends following; the caller must not hold r.mu (a delivery in
// progress takes it).
func (f *fleetFollow) stop() {
	f.cancel()
	f.follower.Close()
	f.wg.Wait()
	f.rdb.Close()
}
