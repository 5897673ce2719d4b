package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// Storage is a certmagic.Storage (and TryLocker) on Redis, so that every
// node shares one set of certificates, ACME accounts and locks. Files live
// under Prefix+"certs/". It is safe for concurrent use.
//
// Keys have certmagic's path semantics: "a" is a directory when a file
// "a/..." exists. Each Store is atomic (value and modification time in one
// hash, written with its index entry in one script).
//
// Locks are Redis keys set with NX and an expiry (LockTTL) holding a random
// token; while held, a goroutine extends the expiry every LockTTL/3. A
// holder that dies stops refreshing, so its lock expires within LockTTL.
// Unlock deletes the key only if it still holds this holder's token.
type Storage struct {
	// LockTTL is how long a lock outlives its holder's last refresh.
	// Default 30s. Set before first use.
	LockTTL time.Duration
	// LockPoll is how often Lock retries a held lock. Default 250ms. Set
	// before first use.
	LockPoll time.Duration

	rdb   redis.UniversalClient
	files string // prefix of file hashes
	index string // zset of file keys
	locks string // prefix of lock keys

	mu   sync.Mutex
	held map[string]*heldLock
}

// heldLock is one lock this Storage holds.
type heldLock struct {
	token string
	since string // Redis's time when it was taken, µs since the epoch
	stop  context.CancelFunc
	done  chan struct{}
}

var (
	_ certmagic.Storage   = (*Storage)(nil)
	_ certmagic.TryLocker = (*Storage)(nil)
	_ fmt.Stringer        = (*Storage)(nil)
)

// NewStorage returns the certificate storage under cfg.Prefix on rdb.
func NewStorage(rdb redis.UniversalClient, cfg Config) *Storage {
	p := cfg.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	p += "certs/"
	return &Storage{
		rdb:   rdb,
		files: p + "f/",
		index: p + "index",
		locks: p + "lock/",
		held:  make(map[string]*heldLock),
	}
}

// String identifies the storage in certmagic's logs.
func (s *Storage) String() string { return "redis:" + s.files }

// checkKey rejects keys certmagic never produces and that would confuse the
// directory logic.
func checkKey(op, key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("fleet storage: %s %q: bad key (empty, or a leading or trailing slash)", op, key)
	}
	return nil
}

// storeScript writes a file's value and time and indexes it.
// KEYS: file hash, index. ARGV: value, key.
var storeScript = redis.NewScript(`
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'modified', t[1] .. string.format('%06d', tonumber(t[2])))
redis.call('HDEL', KEYS[1], 'writer')
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
`)

// fencedStoreScript is storeScript for a holder of a certificate's lock,
// recording the holder's token as the file's writer. It writes while the
// lock holds the holder's token, and refuses (0) while it holds another's.
// When the lock is gone (a failover lost it, or it expired while Redis was
// unreachable) it takes it back for the holder (1) unless one of the
// certificate's files was written by another holder since this hold began
// (0): then a second holder came and went, and writing would mix two
// orders' files.
// KEYS: file hash, index, lock, the certificate's file hashes.
// ARGV: value, key, token, lock TTL in ms, the hold's start (µs).
var fencedStoreScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[3])
if cur ~= ARGV[3] then
  if cur then
    return 0
  end
  for i = 4, #KEYS do
    local w = redis.call('HGET', KEYS[i], 'writer')
    if w and w ~= ARGV[3] and tonumber(redis.call('HGET', KEYS[i], 'modified') or '0') >= tonumber(ARGV[5]) then
      return 0
    end
  end
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'modified', t[1] .. string.format('%06d', tonumber(t[2])), 'writer', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
`)

// ErrLockLost is matched by the error of a Store refused because this
// Storage's lock on the certificate had been taken over (see Store).
var ErrLockLost = errors.New("this node's certificate lock was taken over")

// Store writes value at key, atomically. A write of a certificate's file
// (certificates/ISSUER/NAME/FILE) while this Storage holds certmagic's lock
// for NAME (issue_cert_NAME or renew_cert_NAME) is fenced: it is made only
// if the lock still holds this holder's token, else it fails with
// ErrLockLost. So when a failover or an expiry let a second node take the
// lock, only the current holder writes, and a name's certificate, key and
// metadata are never a mix of two orders. A lock that is merely gone (lost
// in a failover that nobody else used, or expired while Redis was away) is
// taken back by the write, unless another holder wrote the certificate's
// files since this hold began (fencedStoreScript): certmagic holds one
// lock across its retries of an order, so without this an order whose
// lock a failover lost could never be stored (TestStorageLockTakenBack).
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	if err := checkKey("store", key); err != nil {
		return err
	}
	if lock, h := s.fence(key); lock != "" {
		dir := key[:strings.LastIndexByte(key, '/')+1]
		name := dir[strings.LastIndexByte(dir[:len(dir)-1], '/')+1 : len(dir)-1]
		keys := []string{s.files + key, s.index, lock}
		for _, ext := range []string{".crt", ".key", ".json"} {
			keys = append(keys, s.files+dir+name+ext)
		}
		n, err := fencedStoreScript.Run(ctx, s.rdb, keys, value, key, h.token, s.lockTTL().Milliseconds(), h.since).Int()
		if err != nil {
			return fmt.Errorf("fleet storage: store %q: %w", key, err)
		}
		if n == 0 {
			return fmt.Errorf("fleet storage: store %q: not written: %w (after a failover or an expiry)", key, ErrLockLost)
		}
		return nil
	}
	if err := storeScript.Run(ctx, s.rdb, []string{s.files + key, s.index}, value, key).Err(); err != nil {
		return fmt.Errorf("fleet storage: store %q: %w", key, err)
	}
	return nil
}

// Fenced reports whether a Store of key now would be fenced: key is a
// file of a certificate whose certmagic lock this Storage holds (see
// Store). Such a write comes from an order under way, after its lock was
// taken.
func (s *Storage) Fenced(key string) bool {
	lock, _ := s.fence(key)
	return lock != ""
}

// Ordering reports whether key is a file an order this Storage holds the
// lock of writes along the way, other than the certificate's own files
// (see Fenced): an ACME challenge token of the order's name
// ("acme/ISSUER/challenge_tokens/NAME.json"). Such a write is part of the
// order, so a caller may wait out a failover for it as for the
// certificate's files.
func (s *Storage) Ordering(key string) bool {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "acme" || parts[2] != "challenge_tokens" {
		return false
	}
	safe, ok := strings.CutSuffix(parts[3], ".json")
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.held {
		for _, op := range []string{"issue_cert_", "renew_cert_"} {
			if d, ok := strings.CutPrefix(name, op); ok && (certmagic.KeyBuilder{}).Safe(d) == safe {
				return true
			}
		}
	}
	return false
}

// fence returns the key and this holder's hold of a certmagic lock this
// Storage holds on the certificate that key is a file of ("" if none).
func (s *Storage) fence(key string) (lock string, h heldLock) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "certificates" {
		return "", heldLock{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, h := range s.held {
		for _, op := range []string{"issue_cert_", "renew_cert_"} {
			if d, ok := strings.CutPrefix(name, op); ok && (certmagic.KeyBuilder{}).Safe(d) == parts[2] {
				return s.locks + name, heldLock{token: h.token, since: h.since}
			}
		}
	}
	return "", heldLock{}
}

// Load returns the value at key; the error matches fs.ErrNotExist if there
// is none.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	b, err := s.rdb.HGet(ctx, s.files+key, "value").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("fleet storage: load %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet storage: load %q: %w", key, err)
	}
	return b, nil
}

// deleteScript deletes a file and every file under it as a directory.
// KEYS: file-hash prefix (shares the hash tag), index. ARGV: key.
var deleteScript = redis.NewScript(`
local n = redis.call('DEL', KEYS[1] .. ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local under = redis.call('ZRANGEBYLEX', KEYS[2], '[' .. ARGV[1] .. '/', '[' .. ARGV[1] .. '/\255')
for _, k in ipairs(under) do
  n = n + redis.call('DEL', KEYS[1] .. k)
end
if #under > 0 then
  redis.call('ZREMRANGEBYLEX', KEYS[2], '[' .. ARGV[1] .. '/', '[' .. ARGV[1] .. '/\255')
end
return n
`)

// Delete removes key and, if key is a directory, everything under it. A
// missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	if err := deleteScript.Run(ctx, s.rdb, []string{s.files, s.index}, key).Err(); err != nil {
		return fmt.Errorf("fleet storage: delete %q: %w", key, err)
	}
	return nil
}

// under returns the file keys below dir ("" for all), in order, up to limit
// (0: no limit).
func (s *Storage) under(ctx context.Context, dir string, limit int64) ([]string, error) {
	by := &redis.ZRangeBy{Min: "-", Max: "+", Count: limit}
	if dir != "" {
		by.Min, by.Max = "["+dir+"/", "["+dir+"/\xff"
	}
	return s.rdb.ZRangeByLex(ctx, s.index, by).Result()
}

// Exists reports whether key is a file or a directory.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	n, err := s.rdb.Exists(ctx, s.files+key).Result()
	if err == nil && n > 0 {
		return true
	}
	if err != nil || key == "" {
		return false
	}
	sub, err := s.under(ctx, key, 1)
	return err == nil && len(sub) > 0
}

// List returns the keys directly under dir (files and directories), or with
// recursive every file and directory below it, like certmagic's
// FileStorage. The error matches fs.ErrNotExist if dir is neither a file
// nor a directory; a file lists as empty.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = strings.TrimSuffix(dir, "/")
	files, err := s.under(ctx, dir, 0)
	if err != nil {
		return nil, fmt.Errorf("fleet storage: list %q: %w", dir, err)
	}
	if len(files) == 0 {
		if dir != "" && s.Exists(ctx, dir) {
			return []string{}, nil
		}
		return nil, fmt.Errorf("fleet storage: list %q: %w", dir, fs.ErrNotExist)
	}
	base := ""
	if dir != "" {
		base = dir + "/"
	}
	seen := make(map[string]bool)
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, f := range files {
		rel := strings.TrimPrefix(f, base)
		if !recursive {
			first, _, _ := strings.Cut(rel, "/")
			add(base + first)
			continue
		}
		// every directory on the way down, then the file
		for i := 0; i < len(rel); i++ {
			if rel[i] == '/' {
				add(base + rel[:i])
			}
		}
		add(f)
	}
	return out, nil
}

// Stat describes key: a file (IsTerminal, Size, Modified) or a directory.
// The error matches fs.ErrNotExist if it is neither.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	pipe := s.rdb.Pipeline()
	size := pipe.HStrLen(ctx, s.files+key, "value")
	mod := pipe.HGet(ctx, s.files+key, "modified")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return certmagic.KeyInfo{}, fmt.Errorf("fleet storage: stat %q: %w", key, err)
	}
	if mod.Err() == nil {
		ki := certmagic.KeyInfo{Key: key, Size: size.Val(), IsTerminal: true}
		if us, err := strconv.ParseInt(mod.Val(), 10, 64); err == nil {
			ki.Modified = time.UnixMicro(us)
		}
		return ki, nil
	}
	sub, err := s.under(ctx, key, 1)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("fleet storage: stat %q: %w", key, err)
	}
	if len(sub) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("fleet storage: stat %q: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// lockTTL and lockPoll return the settings or their defaults.
func (s *Storage) lockTTL() time.Duration {
	if s.LockTTL > 0 {
		return s.LockTTL
	}
	return 30 * time.Second
}

func (s *Storage) lockPoll() time.Duration {
	if s.LockPoll > 0 {
		return s.LockPoll
	}
	return 250 * time.Millisecond
}

// Lock acquires the named lock, waiting (polling every LockPoll) while
// another holder has it, until ctx is done. A lock whose holder stopped
// refreshing it expires after LockTTL and can then be taken.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleet storage: lock %q: %w", name, ctx.Err())
		case <-time.After(s.lockPoll()):
		}
	}
}

// TryLock takes the named lock if it is free and reports whether it did.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, fmt.Errorf("fleet storage: lock %q: %w", name, err)
	}
	token := hex.EncodeToString(b[:])
	ttl := s.lockTTL()
	since, err := lockScript.Run(ctx, s.rdb, []string{s.locks + name}, token, ttl.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("fleet storage: lock %q: %w", name, err)
	}
	rctx, stop := context.WithCancel(context.Background())
	h := &heldLock{token: token, since: since, stop: stop, done: make(chan struct{})}
	s.mu.Lock()
	old := s.held[name]
	s.held[name] = h
	s.mu.Unlock()
	if old != nil {
		// Our earlier hold expired (we stopped refreshing or Redis lost
		// it) and we took the lock again: the old refresher must go.
		old.stop()
		<-old.done
	}
	go s.refresh(rctx, name, h, ttl)
	return true, nil
}

// lockScript takes a free lock and returns Redis's time (µs since the
// epoch) when it did; nil when the lock is held.
// KEYS: lock. ARGV: token, ttl in ms.
var lockScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end
return false
`)

// refreshScript extends a lock's expiry if it still holds the token: 1;
// 0 when another holder has it, -1 when it is gone.
// KEYS: lock. ARGV: token, ttl in ms.
var refreshScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if cur then
  return 0
end
return -1
`)

// refresh extends h's lock every ttl/3 until stopped or another holder
// has it. While the lock is gone it keeps going: a certificate write may
// take it back (see Store).
func (s *Storage) refresh(ctx context.Context, name string, h *heldLock, ttl time.Duration) {
	defer close(h.done)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := refreshScript.Run(ctx, s.rdb, []string{s.locks + name}, h.token, ttl.Milliseconds()).Int()
		if err == nil && n == 0 {
			return // lost: someone else holds it now
		}
		// A failed refresh (Redis unreachable) is retried at the next tick;
		// the lock stays ours if Redis returns before it expires.
	}
}

// unlockScript deletes a lock only if it holds the token.
// KEYS: lock. ARGV: token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Unlock releases a lock this Storage holds. It never releases another
// holder's lock: if this Storage does not hold name, or its hold expired
// and someone else took the lock, it returns an error and changes nothing.
// Holds are per Storage and name, not per goroutine: within one process
// certmagic pairs each Lock with its Unlock.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("fleet storage: unlock %q: not held by this storage", name)
	}
	h.stop()
	<-h.done
	n, err := unlockScript.Run(ctx, s.rdb, []string{s.locks + name}, h.token).Int()
	if err != nil {
		return fmt.Errorf("fleet storage: unlock %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("fleet storage: unlock %q: the lock had expired (held longer than its TTL without a refresh reaching Redis)", name)
	}
	return nil
}

// Close stops refreshing every lock this Storage holds, without releasing
// them: they expire after LockTTL, as if the node had died. Tests use it to
// play a dead holder; a node shutting down should Unlock instead.
func (s *Storage) Close() {
	s.mu.Lock()
	held := s.held
	s.held = make(map[string]*heldLock)
	s.mu.Unlock()
	for _, h := range held {
		h.stop()
		<-h.done
	}
}
