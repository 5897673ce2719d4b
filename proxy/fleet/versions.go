package fleet

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
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
	// Snapshot is the version whose full content this one is rebuilt
	// from: Number itself for a version stored whole (a snapshot, or one
	// written before versions were stored as patches), an older one for a
	// version stored as a patch against its parent.
	Snapshot int64
	// Chain is the number of patches from Snapshot to this version (0 for
	// a snapshot), and ChainBytes their total size in bytes.
	Chain      int
	ChainBytes int64
	// Validated is true when the writer recorded that it checked the
	// content as Store.Validate would (see Write.Validated): readers do
	// not parse it again to judge it.
	Validated bool
	// sums are the states of Content's hash where this Store checked or
	// made it, for the hash of an edit of it (sums.go); nil otherwise.
	sums *prefixSums
}

// Delta reports whether the version is stored as a patch against its
// parent rather than whole.
func (v *Version) Delta() bool { return v.Chain > 0 }

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
	// EditsValidate says that the functions given to Update return
	// content that passes Validate whenever their input does (as
	// blocklist.ApplyEdit checks the lines it writes): what Update
	// publishes over a good head is recorded as validated.
	EditsValidate bool

	// last is the newest content this Store read or wrote, the base Get
	// rebuilds from before going back to a snapshot.
	lastMu sync.Mutex
	last   rebuilt
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
// The version is stored whole (field "content") or as a patch against its
// parent (field "patch", ARGV[11] = "patch"), with the snapshot it is
// rebuilt from (ARGV[12]; "" for itself) and its chain's length and size.
// Trimming drops the oldest versions beyond Keep, except those at or above
// the oldest snapshot a kept version is rebuilt from.
//
// KEYS: version, versions zset, version-hash prefix (a key name prefix, for
// cluster slot checks it shares the hash tag), channel.
// ARGV: expect, content or patch, sha256, actor, comment, keep, parent
// sha256, parent number, kind, lowest new number - 1, field, snapshot,
// chain, chain bytes, validated ("1" or "").
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
if ARGV[11] == 'patch' and (parent == '' or redis.call('HGET', KEYS[3] .. pnum, 'sha256') ~= parent) then
  -- the patch was made against content the store no longer holds there
  return {2, cur}
end
local floor = tonumber(ARGV[10])
if floor > cur then
  redis.call('SET', KEYS[1], floor)
end
local v = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
-- a string: Lua would print a number this large with 14 digits
local us = t[1] .. string.format('%06d', tonumber(t[2]))
local field, snap = ARGV[11], ARGV[12]
if field ~= 'patch' then
  field, snap = 'content', tostring(v)
end
redis.call('HSET', KEYS[3] .. v, field, ARGV[2], 'sha256', ARGV[3], 'version', v,
  'actor', ARGV[4], 'comment', ARGV[5], 'time', us, 'parent', parent, 'parent_version', pnum, 'kind', ARGV[9],
  'snap', snap, 'chain', ARGV[13], 'chain_bytes', ARGV[14], 'validated', ARGV[15])
redis.call('ZADD', KEYS[2], v, v)
local keep = tonumber(ARGV[6])
local n = redis.call('ZCARD', KEYS[2])
if n > keep then
  -- the oldest snapshot a kept version needs
  local need = v
  for _, k in ipairs(redis.call('ZRANGE', KEYS[2], n - keep, -1)) do
    local sn = tonumber(redis.call('HGET', KEYS[3] .. k, 'snap') or k) or tonumber(k)
    if sn < need then need = sn end
  end
  for _, o in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - keep - 1)) do
    if tonumber(o) < need then
      redis.call('DEL', KEYS[3] .. o)
      redis.call('ZREM', KEYS[2], o)
    end
  end
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
	// Validated records that the writer checked the content as
	// Store.Validate would, so that readers need not (a writer that
	// parsed the list it publishes).
	Validated bool
	// whole stores the version whole, not as a patch.
	whole bool
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

// Commit is Publish with the parent and kind given by w. The version is
// stored as a patch against its parent when that is small (see
// planStorage), else whole.
func (s *Store) Commit(ctx context.Context, content []byte, meta Meta, w Write) (Version, error) {
	// From the states of the parent's hash where it was checked: the
	// shared prefix is not hashed again (sums.go).
	var from *prefixSums
	if w.Base != nil {
		from = w.Base.sums
	}
	sum, sums := from.sumOf(content)
	hexsum := hex.EncodeToString(sum[:])
	kind := w.Kind
	if kind == "" {
		kind = KindEdit
	}
	implicit := w.Base == nil
	if w.Base == nil && w.Expect > 0 && kind != KindReseed && !w.whole {
		// Publish over version Expect: the parent, if this Store read or
		// wrote it last, is a base to patch against.
		if b, ok := s.lastVersion(w.Expect); ok {
			w.Base = &b
		}
	}
	parent, pnum := "", ""
	if w.Base != nil {
		parent, pnum = w.Base.SHA256, strconv.FormatInt(w.Base.Number, 10)
	}
	var st storage
	if !w.whole {
		st = planStorage(content, w.Base, kind)
	}
	field, body, snap := "content", content, ""
	if st.patch != nil {
		field, body, snap = "patch", st.patch, strconv.FormatInt(st.snapshot, 10)
	}
	res, err := publishScript.Run(ctx, s.rdb,
		[]string{s.k.version, s.k.versions, s.k.vprefix, s.k.channel},
		w.Expect, body, hexsum, meta.Actor, meta.Comment, s.keep, parent, pnum, string(kind), w.Floor,
		field, snap, st.chain, st.chainBytes, validated(w.Validated)).Int64Slice()
	if err != nil {
		return Version{}, fmt.Errorf("fleet: publish: %w", err)
	}
	if len(res) < 2 {
		return Version{}, fmt.Errorf("fleet: publish: unexpected reply %v", res)
	}
	if res[0] == 0 {
		return Version{}, &ConflictError{Expected: w.Expect, Current: res[1]}
	}
	if res[0] == 2 {
		// The parent is not what the patch was made against: store it whole.
		w.whole = true
		if implicit {
			w.Base = nil
		}
		return s.Commit(ctx, content, meta, w)
	}
	if len(res) < 4 {
		return Version{}, fmt.Errorf("fleet: publish: unexpected reply %v", res)
	}
	v := Version{
		Number:       res[1],
		Content:      bytes.Clone(content),
		sums:         sums,
		SHA256:       hexsum,
		ParentNumber: res[3],
		Parent:       parent,
		Kind:         kind,
		Meta:         meta,
		Time:         time.UnixMicro(res[2]),
		Snapshot:     res[1],
		Chain:        st.chain,
		ChainBytes:   st.chainBytes,
		Validated:    w.Validated,
	}
	if st.patch != nil {
		v.Snapshot = st.snapshot
	}
	sums.content = v.Content // the same bytes, kept
	s.remember(v)
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
	v.Snapshot = n
	if snap, err := strconv.ParseInt(m["snap"], 10, 64); err == nil && snap > 0 {
		v.Snapshot = snap
	}
	v.Chain, _ = strconv.Atoi(m["chain"])
	v.Validated = m["validated"] == "1"
	v.ChainBytes, _ = strconv.ParseInt(m["chain_bytes"], 10, 64)
	if us, err := strconv.ParseInt(m["time"], 10, 64); err == nil {
		v.Time = time.UnixMicro(us)
	}
	return v
}

// metaFields are the fields of a version hash other than its content.
var metaFields = []string{"sha256", "parent", "parent_version", "kind", "actor", "comment", "time", "snap", "chain", "chain_bytes", "validated"}

// getMeta returns version n without its content, unchecked: for walking
// the history by parents without reading every list. ok is false when the
// version is not kept.
func (s *Store) getMeta(ctx context.Context, n int64) (Version, bool, error) {
	m, err := s.hgets(ctx, s.k.vprefix+strconv.FormatInt(n, 10), metaFields)
	if err != nil {
		return Version{}, false, fmt.Errorf("fleet: read version %d: %w", n, err)
	}
	if _, ok := m["sha256"]; !ok {
		return Version{}, false, nil
	}
	return versionMeta(n, m), true, nil
}

// hgets reads fields of the hash at key in one round trip, the missing
// ones left out. (HGETs in a pipeline rather than HMGET: the commands the
// fleet needs stay those of its ACL list.)
func (s *Store) hgets(ctx context.Context, key string, fields []string) (map[string]string, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(fields))
	for i, f := range fields {
		cmds[i] = pipe.HGet(ctx, key, f)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	m := make(map[string]string, len(fields))
	for i, c := range cmds {
		if c.Err() == nil {
			m[fields[i]] = c.Val()
		}
	}
	return m, nil
}

// History returns up to n versions, newest first (all kept ones if n <= 0).
// Each is checked like Get; one that fails the check is returned with
// Problem set rather than failing the whole history. Versions are rebuilt
// oldest first, so that each stored as a patch costs one patch.
func (s *Store) History(ctx context.Context, n int) ([]Version, error) {
	stop := int64(-1)
	if n > 0 {
		stop = int64(n) - 1
	}
	nums, err := s.rdb.ZRevRange(ctx, s.k.versions, 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("fleet: read history: %w", err)
	}
	out := make([]Version, 0, len(nums))
	for i := len(nums) - 1; i >= 0; i-- {
		v, err := strconv.ParseInt(nums[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("fleet: history: bad version number %q", nums[i])
		}
		ver, err := s.Get(ctx, v)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // trimmed between the two reads
		case errors.Is(err, ErrCorrupt):
			m, kept, merr := s.getMeta(ctx, v)
			if merr != nil {
				return nil, merr
			}
			if !kept {
				continue
			}
			m.Content, _ = s.rdb.HGet(ctx, s.k.vprefix+nums[i], "content").Bytes()
			m.Problem = err
			ver = m
		case err != nil:
			return nil, fmt.Errorf("fleet: read history: %w", err)
		}
		out = append(out, ver)
	}
	slices.Reverse(out)
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
			w.Validated = s.EditsValidate && s.Validate != nil
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

// validated is the stored form of Write.Validated.
func validated(b bool) string {
	if b {
		return "1"
	}
	return ""
}
