package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/redis/go-redis/v9"
)

// FleetListName is the name a fleet blocklist version is parsed and
// reported under, "fleet:v42": problems read "fleet:v42:7: ...", and
// GET /blocklist and the audit log name the version.
func FleetListName(n int64) string { return "fleet:v" + strconv.FormatInt(n, 10) }

// FleetVersionOf returns the version a FleetListName names.
func FleetVersionOf(name string) (int64, bool) {
	s, ok := strings.CutPrefix(name, "fleet:v")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// fleetStartTimeout bounds reading the published version at start, on top
// of the client's own dial and command timeouts.
func fleetStartTimeout(cfg *fleet.Config) time.Duration {
	return cfg.Redis.DialTimeout + cfg.Redis.Timeout
}

// loadFleetList reads and parses the newest published version, for a
// start (the Reloader follows later versions).
func loadFleetList(cfg *Config) (*blocklist.List, []byte, *fleet.Version, error) {
	field := []any{"fleet", "redis"}
	rdb, err := fleet.NewClient(*cfg.Fleet)
	if err != nil {
		return nil, nil, nil, cfg.fileError(field, err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetStartTimeout(cfg.Fleet))
	defer cancel()
	v, err := fleet.NewStore(rdb, *cfg.Fleet).Current(ctx)
	switch {
	case errors.Is(err, fleet.ErrNoVersion):
		return nil, nil, nil, cfg.fileError(field, fmt.Errorf("no blocklist published yet under prefix %q: publish one with `edgeblock publish`", cfg.Fleet.Prefix))
	case err != nil:
		return nil, nil, nil, cfg.fileError(field, fmt.Errorf("cannot read the published blocklist from %s: %w", redisAddr(cfg.Fleet), err))
	}
	l, err := blocklist.Parse(FleetListName(v.Number), v.Content)
	content := v.Content
	v.Content = nil
	return l, content, &v, err
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
	rdb      redis.UniversalClient
	store    *fleet.Store
	node     string
	follower *fleet.Follower
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the heartbeat and the monitor
	applied  atomic.Int64   // the version in effect (0: none known)
	ahead    atomic.Bool    // Redis's version is below the applied one
}

// startFleetLocked starts following the fleet's Redis from the version in
// effect. r.mu is held.
func (r *Reloader) startFleetLocked(b *Bundle) error {
	cfg := b.Config.Fleet
	rdb, err := fleet.NewClient(*cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleetFollow{rdb: rdb, store: fleet.NewStore(rdb, *cfg), node: cfg.Node, cancel: cancel}
	applied, _ := FleetVersionOf(b.List.File())
	f.applied.Store(applied)
	r.metrics.FleetEnabled.Set(1)
	r.metrics.FleetApplied.Set(float64(applied))
	r.metrics.FleetLatest.Set(float64(applied))
	r.fleet = f
	f.follower = fleet.Follow(ctx, f.store, r.applyVersion, fleet.FollowOptions{
		After: applied,
		OnState: func(connected bool, err error) {
			if connected {
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
		f.store.RunHeartbeat(ctx, fleetHeartbeat, r.heartbeat, func(err error) {
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
	hb := fleet.Heartbeat{Node: r.fleet.node, Version: r.fleet.applied.Load()}
	if r.cur != nil {
		hb.SHA256 = r.cur.List.SHA256()
	}
	return hb
}

// monitorFleet keeps edgeblock_fleet_version_latest current and notices
// a Redis whose version went below the applied one (its data was lost:
// the versions published next are not followed until they pass it).
func (r *Reloader) monitorFleet(ctx context.Context, f *fleetFollow) {
	t := time.NewTicker(fleetMonitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seen, applied := f.follower.Seen(), f.applied.Load()
		if seen == 0 {
			continue // nothing read yet
		}
		r.metrics.FleetLatest.Set(float64(max(seen, applied)))
		if ahead := seen < applied; ahead != f.ahead.Swap(ahead) && ahead {
			r.log.Error("fleet: Redis's newest version is older than the one in effect: its data was lost or replaced; keeping the list in effect, and new versions are not followed until they pass it (republish with `edgeblock publish`)",
				"event", "fleet", "result", "redis_behind", "redis_version", seen, "version", applied)
		}
		if f.follower.Connected() && seen == applied {
			r.confirmFleet()
		}
	}
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
	r.metrics.Blocklist.record("unchanged", now)
	if !r.cfgSt.FromSnapshot {
		r.metrics.RunningFromSnapshot.Set(0)
	}
}

// fleetCurrent reports, for a poll, whether the version in effect is the
// newest published one, as last read from a reachable Redis.
func (r *Reloader) fleetCurrent() bool {
	f := r.fleet
	return f.follower.Connected() && f.follower.Seen() == f.applied.Load() && !r.listSt.FromSnapshot
}

// applyVersion is the Follower's callback: it validates version v as a
// file reload validates the blocklist file (parse, drop guard) and applies
// it through the same path, or refuses it and keeps the last good list.
func (r *Reloader) applyVersion(v fleet.Version) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.cur == nil {
		return
	}
	now := time.Now()
	const trigger = "fleet"
	name := FleetListName(v.Number)
	r.metrics.FleetLatest.Set(float64(max(v.Number, r.fleet.follower.Seen())))
	meta := []any{"version", v.Number, "actor", v.Actor, "comment", v.Comment, "published_at", v.Time.UTC()}
	l, err := blocklist.Parse(name, v.Content)
	if err != nil {
		r.metrics.Blocklist.record("failure", now)
		r.listSt.setError(now, err)
		r.log.Error("fleet blocklist version not applied: it fails validation; keeping the last good list", append([]any{"event", "blocklist_reload",
			"result", "failure", "trigger", trigger, "file", name, "sha256", v.SHA256, "error", err.Error(),
			"serving", r.cur.List.File(), "serving_sha256", r.cur.List.SHA256(), "serving_rules", r.cur.List.Len()}, meta...)...)
		return
	}
	if err := CheckDrop(l, r.cur.List, r.cur.Config.Blocklist.MaxDrop, now); err != nil {
		r.listRefused(now, trigger, l, err.(*DropError))
		return
	}
	if err := r.p.Apply(r.cur.Config, l, r.cur.Renderer); err != nil {
		r.metrics.Blocklist.record("failure", now)
		r.listSt.setError(now, err)
		r.log.Error("fleet blocklist version not applied; keeping the last good list", "event", "blocklist_reload", "result", "failure",
			"trigger", trigger, "file", name, "error", err.Error())
		return
	}
	prev := r.cur
	next := *r.cur
	next.raw, next.FromSnapshot, next.Problems, next.Snapshot = nil, nil, nil, nil
	next.List = l
	vm := v
	vm.Content = nil
	next.Fleet = &vm
	r.cur = &next
	r.fleet.applied.Store(v.Number)
	r.metrics.FleetApplied.Set(float64(v.Number))
	r.listSt = fileStatus{File: name, SHA256: l.SHA256(), LoadedAt: now}
	r.metrics.Blocklist.record("success", now)
	if !r.cfgSt.FromSnapshot {
		r.metrics.RunningFromSnapshot.Set(0)
	}
	r.audit(l, prev.List, trigger, meta...)
	r.scheduleExpiryLocked()
	r.snapshot(now, nil, nil, v.Content)
	if r.OnApply != nil {
		go r.OnApply(&next)
	}
	// Tell the fleet at once, rather than at the next heartbeat.
	go func(hb fleet.Heartbeat) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r.fleet.store.Beat(ctx, hb)
	}(fleet.Heartbeat{Node: r.fleet.node, Version: v.Number, SHA256: l.SHA256()})
}

// stop ends following; the caller must not hold r.mu (a delivery in
// progress takes it).
func (f *fleetFollow) stop() {
	f.cancel()
	f.follower.Close()
	f.wg.Wait()
	f.rdb.Close()
}
