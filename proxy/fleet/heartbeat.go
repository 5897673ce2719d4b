package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Heartbeat is what one node last said about itself.
type Heartbeat struct {
	// Node is the node's name (Config.Node).
	Node string `json:"node"`
	// Version and SHA256 are the blocklist version the node has applied
	// (0 and "" for none).
	Version int64  `json:"version"`
	SHA256  string `json:"sha256"`
	// Divergence, if set, is why the node found the store divergent
	// from the list it runs (it keeps serving that list); Copy then
	// names where it saved a copy of that list in the store, for
	// `edgeblock fleet reseed`.
	Divergence string `json:"divergent,omitempty"`
	Copy       string `json:"copy,omitempty"`
	// Redis is how the node reaches Redis (nil: not said, as from older
	// nodes).
	Redis *RedisLink `json:"redis,omitempty"`
	// Time is when Redis received the heartbeat, by Redis's clock; Beat
	// ignores the caller's value.
	Time time.Time `json:"-"`
}

// RedisLink is a node's connection to Redis, as its Client sees it.
type RedisLink struct {
	// Mode is single, sentinel or cluster.
	Mode string `json:"mode"`
	// Primary is the address of the primary the node talks to.
	Primary string `json:"primary"`
	// Failovers and Reconnects are the node's Client's counts since it
	// started (Client.Failovers, Client.Reconnects).
	Failovers  int64 `json:"failovers"`
	Reconnects int64 `json:"reconnects"`
}

// Link describes c's connection for a heartbeat.
func (c *Client) Link() *RedisLink {
	return &RedisLink{Mode: c.Mode(), Primary: c.Primary(), Failovers: c.Failovers(), Reconnects: c.Reconnects()}
}

// NodeStatus is a node's last heartbeat judged against the fleet's current
// version and the time now.
type NodeStatus struct {
	Heartbeat
	// Age is how long ago the heartbeat was received.
	Age time.Duration
	// Behind is true when the node's version is older than the current one.
	Behind bool
	// Divergent, set by Check, says why the list the node runs is not
	// what the store holds at its number; "" when it is.
	Divergent string
	// Silent is true when Age exceeds the silence threshold given to Nodes.
	Silent bool
}

// beatScript stores a heartbeat and its time by Redis's clock (in Unix
// microseconds, in a second hash: Lua's JSON encoder would round them),
// and deletes the heartbeats older than the expiry (expireScript).
// KEYS: nodes hash, node times hash. ARGV: node, JSON, expiry in µs.
var beatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], t[1] .. string.format('%06d', tonumber(t[2])))
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local at = tonumber(all[i+1])
  if at == nil or now - at > tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], all[i])
    redis.call('HDEL', KEYS[2], all[i])
  end
end
return 1
`)

// expireScript deletes the heartbeats older than the expiry, by Redis's
// clock, and returns how many.
// KEYS: nodes hash, node times hash. ARGV: expiry in µs.
var expireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local all = redis.call('HGETALL', KEYS[2])
local n = 0
for i = 1, #all, 2 do
  local at = tonumber(all[i+1])
  if at == nil or now - at > tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], all[i])
    redis.call('HDEL', KEYS[2], all[i])
    n = n + 1
  end
end
return n
`)

// Beat records hb as node hb.Node's latest heartbeat, stamped with Redis's
// clock so that nodes with skewed clocks are judged alike.
func (s *Store) Beat(ctx context.Context, hb Heartbeat) error {
	if hb.Node == "" {
		return fmt.Errorf("fleet: heartbeat: empty node name")
	}
	b, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("fleet: heartbeat: %w", err)
	}
	if err := beatScript.Run(ctx, s.rdb, []string{s.k.nodes, s.k.nodeTimes}, hb.Node, b, s.expiry.Microseconds()).Err(); err != nil {
		return fmt.Errorf("fleet: heartbeat for %s: %w", hb.Node, err)
	}
	return nil
}

// RunHeartbeat calls Beat with state() every interval until ctx is done,
// starting at once, and at once whenever kick (which may be nil) receives.
// Errors go to onErr (if set) and do not stop the loop.
func (s *Store) RunHeartbeat(ctx context.Context, interval time.Duration, kick <-chan struct{}, state func() Heartbeat, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Beat(ctx, state()); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

// Nodes returns every node's last heartbeat, sorted by name, each judged
// against the current version (Behind) and silentAfter (Silent), with ages
// measured by Redis's clock. Heartbeats older than the store's expiry
// (Config.HeartbeatExpiry) are deleted first, and so not returned: a
// stopped node drops out once it has been silent that long, even with no
// node beating.
func (s *Store) Nodes(ctx context.Context, silentAfter time.Duration) ([]NodeStatus, error) {
	out, _, err := s.nodes(ctx, silentAfter)
	return out, err
}

// nodes is Nodes, also returning the version number read after the
// heartbeats: every version a heartbeat names was published by then.
func (s *Store) nodes(ctx context.Context, silentAfter time.Duration) ([]NodeStatus, int64, error) {
	if err := expireScript.Run(ctx, s.rdb, []string{s.k.nodes, s.k.nodeTimes}, s.expiry.Microseconds()).Err(); err != nil {
		return nil, 0, fmt.Errorf("fleet: expire heartbeats: %w", err)
	}
	pipe := s.rdb.Pipeline()
	all := pipe.HGetAll(ctx, s.k.nodes)
	times := pipe.HGetAll(ctx, s.k.nodeTimes)
	cur := pipe.Get(ctx, s.k.version)
	now := pipe.Time(ctx)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("fleet: read nodes: %w", err)
	}
	current, _ := cur.Int64() // missing: 0
	out := make([]NodeStatus, 0, len(all.Val()))
	for name, raw := range all.Val() {
		var ns NodeStatus
		if err := json.Unmarshal([]byte(raw), &ns.Heartbeat); err != nil {
			return nil, 0, fmt.Errorf("fleet: node %s: bad heartbeat: %w", name, err)
		}
		ns.Node = name
		if us, err := strconv.ParseInt(times.Val()[name], 10, 64); err == nil {
			ns.Time = time.UnixMicro(us)
		}
		ns.Age = max(now.Val().Sub(ns.Time), 0)
		ns.Behind = ns.Version < current
		ns.Silent = ns.Age > silentAfter
		out = append(out, ns)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, current, nil
}

// Forget removes nodes' heartbeats (e.g. of decommissioned nodes).
func (s *Store) Forget(ctx context.Context, nodes ...string) error {
	if len(nodes) == 0 {
		return nil
	}
	pipe := s.rdb.TxPipeline()
	pipe.HDel(ctx, s.k.nodes, nodes...)
	pipe.HDel(ctx, s.k.nodeTimes, nodes...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("fleet: forget nodes: %w", err)
	}
	return nil
}
