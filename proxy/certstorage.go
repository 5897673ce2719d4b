package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// storageProbeInterval is how long the certificate storage fails fast
// after the fleet's Redis failed, before one call tries Redis again.
const storageProbeInterval = 2 * time.Second

// failFastStorage is the fleet's certificate storage with a breaker: once
// a call fails because Redis is unreachable, calls fail at once (instead of
// each waiting out the client's dial timeouts and retries) until
// storageProbeInterval has passed; then one call goes through, and its
// success closes the breaker. A handshake for a name whose certificate is
// not in memory thus fails quickly while Redis is down and succeeds again
// soon after it is back. Certificates in memory never touch the storage on
// a handshake, so they are served throughout. Unlock always goes through:
// a lock must be released if it can be.
type failFastStorage struct {
	s *fleet.Storage

	mu       sync.Mutex
	failedAt time.Time // zero while Redis answers
	probing  bool      // a call is trying Redis after the interval
	lastErr  error
}

var (
	_ certmagic.Storage   = (*failFastStorage)(nil)
	_ certmagic.TryLocker = (*failFastStorage)(nil)
)

// String identifies the storage in certmagic's logs.
func (f *failFastStorage) String() string { return f.s.String() }

// begin returns an error without calling Redis while the breaker is open;
// else the call goes ahead and must be followed by end.
func (f *failFastStorage) begin(op, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failedAt.IsZero() {
		return nil
	}
	if f.probing || time.Since(f.failedAt) < storageProbeInterval {
		return fmt.Errorf("fleet storage: %s %q: Redis unreachable (%v ago: %v); trying again within %v",
			op, key, time.Since(f.failedAt).Round(time.Millisecond), f.lastErr, storageProbeInterval)
	}
	f.probing = true
	return nil
}

// end records the outcome of a call: a failure that is not about the key
// (it does not exist) or the caller (its context ended) opens the breaker.
func (f *failFastStorage) end(err error) error {
	down := err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probing = false
	if down {
		f.failedAt, f.lastErr = time.Now(), err
	} else if err == nil || errors.Is(err, fs.ErrNotExist) {
		f.failedAt, f.lastErr = time.Time{}, nil
	}
	return err
}

// Lock implements certmagic.Locker. It goes through the breaker on each
// attempt, so that a lock wait does not outlast a Redis failure.
func (f *failFastStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := f.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleet storage: lock %q: %w", name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// TryLock implements certmagic.TryLocker.
func (f *failFastStorage) TryLock(ctx context.Context, name string) (bool, error) {
	if err := f.begin("lock", name); err != nil {
		return false, err
	}
	ok, err := f.s.TryLock(ctx, name)
	return ok, f.end(err)
}

// Unlock implements certmagic.Locker; it is never held back.
func (f *failFastStorage) Unlock(ctx context.Context, name string) error {
	return f.s.Unlock(ctx, name)
}

// Store implements certmagic.Storage.
func (f *failFastStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := f.begin("store", key); err != nil {
		return err
	}
	return f.end(f.s.Store(ctx, key, value))
}

// Load implements certmagic.Storage.
func (f *failFastStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if err := f.begin("load", key); err != nil {
		return nil, err
	}
	b, err := f.s.Load(ctx, key)
	return b, f.end(err)
}

// Delete implements certmagic.Storage.
func (f *failFastStorage) Delete(ctx context.Context, key string) error {
	if err := f.begin("delete", key); err != nil {
		return err
	}
	return f.end(f.s.Delete(ctx, key))
}

// Exists implements certmagic.Storage; while Redis is unreachable nothing
// exists.
func (f *failFastStorage) Exists(ctx context.Context, key string) bool {
	if f.begin("exists", key) != nil {
		return false
	}
	// Exists hides errors; Stat tells them apart for the breaker.
	_, err := f.s.Stat(ctx, key)
	return f.end(err) == nil
}

// List implements certmagic.Storage.
func (f *failFastStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	if err := f.begin("list", path); err != nil {
		return nil, err
	}
	l, err := f.s.List(ctx, path, recursive)
	return l, f.end(err)
}

// Stat implements certmagic.Storage.
func (f *failFastStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if err := f.begin("stat", key); err != nil {
		return certmagic.KeyInfo{}, err
	}
	ki, err := f.s.Stat(ctx, key)
	return ki, f.end(err)
}
