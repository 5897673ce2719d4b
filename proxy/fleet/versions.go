package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrConflict is matched (errors.Is) by the *ConflictError Publish returns
// when the published version is not the one the caller expected.
var ErrConflict = errors.New("fleet: version conflict")

// ErrNoVersion is returned by Current when nothing has been published yet.
var ErrNoVersion = errors.New("fleet: no version published")

// ErrNotFound is returned by Get for a version that was never published or
// has been trimmed from the history.
var ErrNotFound = errors.New("fleet: version not found")

// ErrCorrupt is returned by Get when a version's content does not match its
// recorded SHA-256.
var ErrCorrupt = errors.New("fleet: version content does not match its sha256")

// ConflictError reports a lost compare-and-set: the caller expected version
// Expected to be the newest, but Current is.
type ConflictError struct {
	Expected, Current int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("fleet: version conflict: expected version %d to be current, but %d is", e.Expected, e.Current)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Meta is who made a change and why; it is recorded with the version.
type Meta struct {
	Actor   string
	Comment string
}

// Kind says how a version came to be, and so whether an edge may apply it
// when it does not descend from the list the edge runs.
type Kind string

const (
	// KindEdit is a version written over its parent (publish, block,
	// unblock): edges apply it only as a fast-forward.
	KindEdit Kind = "edit"
	// KindForce is a publish told to replace a version it did not start
	// from (publish -force).
	KindForce Kind = "force"
	// KindRollback republishes an older version's content.
	KindRollback Kind = "rollback"
	// KindReseed restarts the history of a divergent store from the
	// newest list an edge applied (edgeblock fleet reseed).
	KindReseed Kind = "reseed"
)

// Explicit reports whether an edge applies a version of this kind even
// when it does not descend from the list in effect: the operator said so.
func (k Kind) Explicit() bool { return k == KindForce || k == KindRollback || k == KindReseed }

// Version is one published blocklist.
type Version struct {
	// Number counts from 1; each publish adds one.
	Number int64
	// Content is the blocklist, opaque to this package.
	Content []byte
	// SHA256 is the lower-case hex SHA-256 of Content.
	SHA256 string
	// Parent is the SHA-256 of the list this version replaces and
	// ParentNumber that list's version number; "" and 0 for the first
	// version of a store. A version's identity is its content and its
	// parent: numbers alone can be reused by a store that lost data.
	Parent       string
	ParentNumber int64
	// Kind is how the version was made; "" (with Legacy) for versions
	// written before parents were recorded.
	Kind Kind
	// Legacy is true for a version without a parent field, written by an
	// older edgeblock: it is trusted as a base, as before.
	Legacy bool
	// Problem is set by History on a version it could not vouch for (its
	// content does not match its SHA-256: ErrCorrupt); nil otherwise.
	Problem error
	// Repaired is set by Head on a version whose stored content is
	// corrupt, when Content is instead an edge's copy of the list with
	// the recorded SHA-256 (see SaveCopy).
	Repaired bool
	Meta
	// Time is when Redis accepted the version, by Redis's clock (one clock
	// for the whole fleet).
	Time time.Time
}

// Store is the fleet's versioned blocklist in Redis. It is safe for
// concurrent use; writers on different nodes never overwrite each other,
// because every publish is one compare-and-set on the version number.
type Store struct {
	rdb  redis.UniversalClient
	k    keys
	keep int
	// expiry is Config.HeartbeatExpiry (DefaultHeartbeatExpiry if zero).
	expiry time.Duration
	// Validate, if set, tells a version's content that edges would
	// refuse (it fails validation): writers build on the last version
	// that passes it, as edges stay on it. Nil: every intact version is
	// good. Set it before the Store is used.
	Validate func(content []byte) error
}

// keys are the Redis names derived from the prefix.
type keys struct {
	prefix    string
	version   string // string: newest version number
	vprefix   string // + n: hash of version n
	versions  string // zset of kept version numbers
	channel   string // pub/sub: new version numbers
	copies    string // + sha256: a divergent edge's copy of its list
	want      string // string: sha256 of a list a writer wants a copy of
	nodes     string // hash: node -> heartbeat JSON
	nodeTimes string // hash: node -> heartbeat time, Unix µs by Redis's clock
}

func newKeys(prefix string) keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return keys{
		prefix:    prefix,
		version:   prefix + "list:version",
		vprefix:   prefix + "list:v:",
		versions:  prefix + "list:versions",
		channel:   prefix + "list:notify",
		copies:    prefix + "list:copy:",
		want:      prefix + "list:want-copy",
		nodes:     prefix + "nodes",
		nodeTimes: prefix + "nodes:time",
	}
}

// NewStore returns the store for cfg.Prefix and cfg.Keep on rdb (zero
// values mean the defaults).
func NewStore(rdb redis.UniversalClient, cfg Config) *Store {
	keep := cfg.Keep
	if keep <= 0 {
		keep = DefaultKeep
	}
	expiry := cfg.HeartbeatExpiry
	if expiry <= 0 {
		expiry = DefaultHeartbeatExpiry
	}
	return &Store{rdb: rdb, k: newKeys(cfg.Prefix), keep: keep, expiry: expiry}
}

// publishScript is the compare-and-set: if the current version number is
// not ARGV[1], it returns {0, current}; else it writes version
// max(current, ARGV[10])+1 with its hash, parent and kind, adds it to the
// history, trims the history to ARGV[6] entries, publishes the number, and
// returns {1, new, time-µs}. An empty ARGV[8] (parent number) names
// version ARGV[1] as the parent, by its recorded SHA-256.
//
// KEYS: version, versions zset, version-hash prefix (a key name prefix, for
// cluster slot checks it shares the hash tag), channel.
// ARGV: expect, content, sha256, actor, comment, keep, parent sha256,
// parent number, kind, lowest new number - 1.
var publishScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
local parent, pnum = ARGV[7], ARGV[8]
if pnum == '' then
  pnum = tostring(cur)
  parent = ''
  if cur > 0 then
    parent = redis.call('HGET', KEYS[3] .. cur, 'sha256') or ''
  end
  if parent == '' then pnum = '0' end
end
local floor = tonumber(ARGV[10])
if floor > cur then
  redis.call('SET', KEYS[1], floor)
end
local v = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
-- a string: Lua would print a number this large with 14 digits
local us = t[1] .. string.format('%06d', tonumber(t[2]))
redis.call('HSET', KEYS[3] .. v, 'content', ARGV[2], 'sha256', ARGV[3], 'version', v,
  'actor', ARGV[4], 'comment', ARGV[5], 'time', us, 'parent', parent, 'parent_version', pnum, 'kind', ARGV[9])
redis.call('ZADD', KEYS[2], v, v)
local keep = tonumber(ARGV[6])
local n = redis.call('ZCARD', KEYS[2])
if n > keep then
  local old = redis.call('ZRANGE', KEYS[2], 0, n - keep - 1)
  for _, o in ipairs(old) do
    redis.call('DEL', KEYS[3] .. o)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - keep - 1)
end
redis.call('PUBLISH', KEYS[4], v)
return {1, v, tonumber(us), tonumber(pnum)}
`)

// Write says where a new version goes in the history.
type Write struct {
	// Expect is the version number that must be the newest (0 for an
	// empty store): the compare-and-set.
	Expect int64
	// Base is the version the new one replaces, its parent. Nil means
	// version Expect as recorded. With a bad newest version (corrupt, or
	// failing validation) Base is the last good one, below Expect.
	Base *Version
	// Kind is recorded with the version; "" means KindEdit.
	Kind Kind
	// Floor, if above the current number, is where numbering goes on
	// from (the new version is Floor+1): a reseed numbers past every
	// version an edge has seen.
	Floor int64
}

// Publish makes content the new version if expect is the current version
// number (0 when nothing is published yet), as a child of version expect.
// Otherwise it publishes nothing and returns a *ConflictError
// (errors.Is(err, ErrConflict)) carrying the current number. On success
// the new number is announced on the channel Followers listen to, and
// versions beyond Keep are dropped, oldest first.
func (s *Store) Publish(ctx context.Context, content []byte, meta Meta, expect int64) (Version, error) {
	return s.Commit(ctx, content, meta, Write{Expect: expect})
}

// Commit is Publish with the parent and kind given by w.
func (s *Store) Commit(ctx context.Context, content []byte, meta Meta, w Write) (Version, error) {
	sum := sha256.Sum256(content)
	hexsum := hex.EncodeToString(sum[:])
	kind := w.Kind
	if kind == "" {
		kind = KindEdit
	}
	parent, pnum := "", ""
	if w.Base != nil {
		parent, pnum = w.Base.SHA256, strconv.FormatInt(w.Base.Number, 10)
	}
	res, err := publishScript.Run(ctx, s.rdb,
		[]string{s.k.version, s.k.versions, s.k.vprefix, s.k.channel},
		w.Expect, content, hexsum, meta.Actor, meta.Comment, s.keep, parent, pnum, string(kind), w.Floor).Int64Slice()
	if err != nil {
		return Version{}, fmt.Errorf("fleet: publish: %w", err)
	}
	if len(res) < 2 {
		return Version{}, fmt.Errorf("fleet: publish: unexpected reply %v", res)
	}
	if res[0] == 0 {
		return Version{}, &ConflictError{Expected: w.Expect, Current: res[1]}
	}
	if len(res) < 4 {
		return Version{}, fmt.Errorf("fleet: publish: unexpected reply %v", res)
	}
	v := Version{
		Number:       res[1],
		Content:      bytes.Clone(content),
		SHA256:       hexsum,
		ParentNumber: res[3],
		Parent:       parent,
		Kind:         kind,
		Meta:         meta,
		Time:         time.UnixMicro(res[2]),
	}
	if w.Base == nil && v.ParentNumber > 0 {
		if p, err := s.rdb.HGet(ctx, s.k.vprefix+strconv.FormatInt(v.ParentNumber, 10), "sha256").Result(); err == nil {
			v.Parent = p
		}
	}
	return v, nil
}

// CurrentNumber returns the newest version number, 0 if none.
func (s *Store) CurrentNumber(ctx context.Context) (int64, error) {
	n, err := s.rdb.Get(ctx, s.k.version).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fleet: read current version: %w", err)
	}
	return n, nil
}

// Current returns the newest version, ErrNoVersion if none. Like Get, it
// checks the content against its SHA-256. A publish racing with Current may
// trim the version just read; Current then retries.
func (s *Store) Current(ctx context.Context) (Version, error) {
	for attempt := 0; ; attempt++ {
		n, err := s.CurrentNumber(ctx)
		if err != nil {
			return Version{}, err
		}
		if n == 0 {
			return Version{}, ErrNoVersion
		}
		v, err := s.Get(ctx, n)
		if errors.Is(err, ErrNotFound) && attempt < 3 {
			continue
		}
		return v, err
	}
}

// Get returns version n. It returns ErrNotFound if n was never published
// or has been trimmed, and an error matching ErrCorrupt if the content does
// not hash to the recorded SHA-256.
func (s *Store) Get(ctx context.Context, n int64) (Version, error) {
	m, err := s.rdb.HGetAll(ctx, s.k.vprefix+strconv.FormatInt(n, 10)).Result()
	if err != nil {
		return Version{}, fmt.Errorf("fleet: read version %d: %w", n, err)
	}
	if len(m) == 0 {
		return Version{}, fmt.Errorf("fleet: version %d: %w", n, ErrNotFound)
	}
	return parseVersion(n, m)
}

// parseVersion checks and converts version n's hash fields.
func parseVersion(n int64, m map[string]string) (Version, error) {
	v := versionMeta(n, m)
	v.Content = []byte(m["content"])
	sum := sha256.Sum256(v.Content)
	if got := hex.EncodeToString(sum[:]); got != v.SHA256 {
		return Version{}, fmt.Errorf("fleet: version %d: content hashes to %s, recorded %q: %w", n, got, v.SHA256, ErrCorrupt)
	}
	return v, nil
}

// versionMeta converts version n's hash fields other than the content.
func versionMeta(n int64, m map[string]string) Version {
	v := Version{
		Number: n,
		SHA256: m["sha256"],
		Parent: m["parent"],
		Kind:   Kind(m["kind"]),
		Meta:   Meta{Actor: m["actor"], Comment: m["comment"]},
	}
	pnum, hasParent := m["parent_version"]
	v.Legacy = !hasParent
	v.ParentNumber, _ = strconv.ParseInt(pnum, 10, 64)
	if us, err := strconv.ParseInt(m["time"], 10, 64); err == nil {
		v.Time = time.UnixMicro(us)
	}
	return v
}

// metaFields are the fields of a version hash other than its content.
var metaFields = []string{"sha256", "parent", "parent_version", "kind", "actor", "comment", "time"}

// getMeta returns version n without its content, unchecked: for walking
// the history by parents without reading every list. ok is false when the
// version is not kept.
func (s *Store) getMeta(ctx context.Context, n int64) (Version, bool, error) {
	vals, err := s.rdb.HMGet(ctx, s.k.vprefix+strconv.FormatInt(n, 10), metaFields...).Result()
	if err != nil {
		return Version{}, false, fmt.Errorf("fleet: read version %d: %w", n, err)
	}
	m := make(map[string]string, len(vals))
	for i, x := range vals {
		if str, ok := x.(string); ok {
			m[metaFields[i]] = str
		}
	}
	if _, ok := m["sha256"]; !ok {
		return Version{}, false, nil
	}
	return versionMeta(n, m), true, nil
}

// History returns up to n versions, newest first (all kept ones if n <= 0).
// Each is checked like Get; one that fails the check is returned with
// Problem set rather than failing the whole history.
func (s *Store) History(ctx context.Context, n int) ([]Version, error) {
	stop := int64(-1)
	if n > 0 {
		stop = int64(n) - 1
	}
	nums, err := s.rdb.ZRevRange(ctx, s.k.versions, 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("fleet: read history: %w", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(nums))
	for i, num := range nums {
		cmds[i] = pipe.HGetAll(ctx, s.k.vprefix+num)
	}
	if len(nums) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("fleet: read history: %w", err)
		}
	}
	out := make([]Version, 0, len(nums))
	for i, num := range nums {
		m := cmds[i].Val()
		if len(m) == 0 {
			continue // trimmed between the two reads
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("fleet: history: bad version number %q", num)
		}
		ver, err := parseVersion(v, m)
		if err != nil {
			ver = versionMeta(v, m)
			ver.Content = []byte(m["content"])
			ver.Problem = err
		}
		out = append(out, ver)
	}
	return out, nil
}

// maxUpdateAttempts bounds Update's retries; contention beyond it is
// reported rather than retried forever.
const maxUpdateAttempts = 100

// Update applies fn to the content of the head, the newest good version
// (nil if there is none), and publishes the result as its child, retrying
// from a fresh read when another writer publishes first. A newest version
// that is corrupt or fails Validate does not stop it: the result builds on
// the last good version, and Skipped in the returned Result names what was
// passed over. On a divergent store (see Check) nothing is published and
// the error matches ErrDivergent. fn may be called several times and must
// not have side effects beyond its result; an error from fn stops Update
// and is returned as is. If fn returns content equal to the head's,
// nothing is published and the head is returned (Number 0 if none).
func (s *Store) Update(ctx context.Context, fn func(cur []byte) ([]byte, error), meta Meta) (Version, error) {
	r, err := s.UpdateResult(ctx, fn, meta)
	return r.Version, err
}

// Result is what UpdateResult did.
type Result struct {
	// Version is the version published, or the head when nothing was.
	Version
	// Published is false when fn changed nothing.
	Published bool
	// Skipped are the versions newer than the base that were passed over
	// because they are corrupt or fail validation.
	Skipped []Version
	// Base is the version built on, without its content (Repaired when
	// its stored content was corrupt and an edge's copy was used).
	Base Version
}

// UpdateResult is Update, saying whether it published and what it skipped.
func (s *Store) UpdateResult(ctx context.Context, fn func(cur []byte) ([]byte, error), meta Meta) (Result, error) {
	var lastErr error
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		h, err := s.Check(ctx, LiveAfter)
		if err != nil {
			return Result{}, err
		}
		if err := h.Writable(); err != nil {
			return Result{}, err
		}
		next, err := fn(h.Head.Content)
		if err != nil {
			return Result{}, err
		}
		base := h.Head
		base.Content = nil
		if h.Head.Number != 0 && bytes.Equal(next, h.Head.Content) {
			return Result{Version: h.Head, Skipped: h.Bad, Base: base}, nil
		}
		w := Write{Expect: h.Number}
		if h.Head.Number != 0 {
			w.Base = &h.Head
		}
		v, err := s.Commit(ctx, next, meta, w)
		if !errors.Is(err, ErrConflict) {
			return Result{Version: v, Published: err == nil, Skipped: h.Bad, Base: base}, err
		}
		lastErr = err
		// A short random pause spreads out writers that collided.
		d := time.Duration(1+rand.IntN(5*(attempt+1))) * time.Millisecond
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("fleet: update: %w (last: %v)", ctx.Err(), lastErr)
		case <-time.After(d):
		}
	}
	return Result{}, fmt.Errorf("fleet: update: gave up after %d attempts: %w", maxUpdateAttempts, lastErr)
}
