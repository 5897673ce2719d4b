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

// Version is one published blocklist.
type Version struct {
	// Number counts from 1; each publish adds one.
	Number int64
	// Content is the blocklist, opaque to this package.
	Content []byte
	// SHA256 is the lower-case hex SHA-256 of Content.
	SHA256 string
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
}

// keys are the Redis names derived from the prefix.
type keys struct {
	prefix    string
	version   string // string: newest version number
	vprefix   string // + n: hash of version n
	versions  string // zset of kept version numbers
	channel   string // pub/sub: new version numbers
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

// publishScript is the compare-and-set: if the current version is not
// ARGV[1], it returns {0, current}; else it writes version current+1 and its
// hash, adds it to the history, trims the history to ARGV[6] entries,
// publishes the number, and returns {1, new, time-µs}.
//
// KEYS: version, versions zset, version-hash prefix (a key name prefix, for
// cluster slot checks it shares the hash tag), channel.
// ARGV: expect, content, sha256, actor, comment, keep.
var publishScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
local v = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
-- a string: Lua would print a number this large with 14 digits
local us = t[1] .. string.format('%06d', tonumber(t[2]))
redis.call('HSET', KEYS[3] .. v, 'content', ARGV[2], 'sha256', ARGV[3], 'version', v,
  'actor', ARGV[4], 'comment', ARGV[5], 'time', us)
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
return {1, v, tonumber(us)}
`)

// Publish makes content the new version if expect is the current version
// number (0 when nothing is published yet). Otherwise it publishes nothing
// and returns a *ConflictError (errors.Is(err, ErrConflict)) carrying the
// current number. On success the new number is announced on the channel
// Followers listen to, and versions beyond Keep are dropped, oldest first.
func (s *Store) Publish(ctx context.Context, content []byte, meta Meta, expect int64) (Version, error) {
	sum := sha256.Sum256(content)
	hexsum := hex.EncodeToString(sum[:])
	res, err := publishScript.Run(ctx, s.rdb,
		[]string{s.k.version, s.k.versions, s.k.vprefix, s.k.channel},
		expect, content, hexsum, meta.Actor, meta.Comment, s.keep).Int64Slice()
	if err != nil {
		return Version{}, fmt.Errorf("fleet: publish: %w", err)
	}
	if len(res) < 2 {
		return Version{}, fmt.Errorf("fleet: publish: unexpected reply %v", res)
	}
	if res[0] == 0 {
		return Version{}, &ConflictError{Expected: expect, Current: res[1]}
	}
	if len(res) < 3 {
		return Version{}, fmt.Errorf("fleet: publish: unexpected reply %v", res)
	}
	return Version{
		Number:  res[1],
		Content: bytes.Clone(content),
		SHA256:  hexsum,
		Meta:    meta,
		Time:    time.UnixMicro(res[2]),
	}, nil
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
	v := Version{
		Number:  n,
		Content: []byte(m["content"]),
		SHA256:  m["sha256"],
		Meta:    Meta{Actor: m["actor"], Comment: m["comment"]},
	}
	if us, err := strconv.ParseInt(m["time"], 10, 64); err == nil {
		v.Time = time.UnixMicro(us)
	}
	sum := sha256.Sum256(v.Content)
	if got := hex.EncodeToString(sum[:]); got != v.SHA256 {
		return Version{}, fmt.Errorf("fleet: version %d: content hashes to %s, recorded %q: %w", n, got, v.SHA256, ErrCorrupt)
	}
	return v, nil
}

// History returns up to n versions, newest first (all kept ones if n <= 0).
// Each is checked like Get.
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
			return nil, err
		}
		out = append(out, ver)
	}
	return out, nil
}

// maxUpdateAttempts bounds Update's retries; contention beyond it is
// reported rather than retried forever.
const maxUpdateAttempts = 100

// Update applies fn to the current content (nil if nothing is published)
// and publishes the result, retrying from a fresh read when another writer
// publishes first. fn may be called several times and must not have side
// effects beyond its result; an error from fn stops Update and is returned
// as is. If fn returns content equal to the current, nothing is published
// and the current version is returned (Number 0 if none).
func (s *Store) Update(ctx context.Context, fn func(cur []byte) ([]byte, error), meta Meta) (Version, error) {
	var lastErr error
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		cur, err := s.Current(ctx)
		if err != nil && !errors.Is(err, ErrNoVersion) {
			return Version{}, err
		}
		next, err := fn(cur.Content)
		if err != nil {
			return Version{}, err
		}
		if cur.Number != 0 && bytes.Equal(next, cur.Content) {
			return cur, nil
		}
		v, err := s.Publish(ctx, next, meta, cur.Number)
		if !errors.Is(err, ErrConflict) {
			return v, err
		}
		lastErr = err
		// A short random pause spreads out writers that collided.
		d := time.Duration(1+rand.IntN(5*(attempt+1))) * time.Millisecond
		select {
		case <-ctx.Done():
			return Version{}, fmt.Errorf("fleet: update: %w (last: %v)", ctx.Err(), lastErr)
		case <-time.After(d):
		}
	}
	return Version{}, fmt.Errorf("fleet: update: gave up after %d attempts: %w", maxUpdateAttempts, lastErr)
}
