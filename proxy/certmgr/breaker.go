package certmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// StorageProbeInterval is how long the certificate storage fails fast
// after the fleet's Redis failed, before one call tries Redis again.
const StorageProbeInterval = 2 * time.Second

// storageCallTimeout bounds every call to Redis the certificate storage
// makes, whatever the caller's context (a TLS handshake has none): a Redis
// that does not answer within it (hung, e.g. SIGSTOPped, or slower than
// this) fails the call and opens the breaker, so that a handshake for a
// name whose certificate is not in memory gets its alert within about
// this long rather than after the client's timeouts and retries.
const storageCallTimeout = 500 * time.Millisecond

// errStorageTimeout marks a call that storageCallTimeout ended.
var errStorageTimeout = errors.New("no answer from the fleet's Redis in time")

// failFastStorage is the fleet's certificate storage with a deadline on
// every call, a breaker, and a local copy:
//
//   - Deadline: each call to Redis gets at most storageCallTimeout.
//   - Breaker: once a call fails because Redis is unreachable or late,
//     calls fail at once (instead of each waiting out the deadline) until
//     StorageProbeInterval has passed; then one call goes through, and its
//     success closes the breaker. A handshake for a name whose certificate
//     is not in memory or in the local copy thus fails quickly while Redis
//     is down and succeeds again soon after it is back. Unlock always goes
//     through: a lock must be released if it can be.
//   - Local copy (when local is set, a directory under tls.storage): every
//     file read from or written to Redis is also written there, and while
//     Redis cannot be reached Load, Stat, Exists and List answer from it.
//     An edge that starts without Redis thus serves the certificates it
//     served before, and the internal CA's root, from disk; new
//     certificates wait for Redis (their locks live there).
type failFastStorage struct {
	s     *fleet.Storage
	local *certmagic.FileStorage // nil: no local copy

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
	if f.probing || time.Since(f.failedAt) < StorageProbeInterval {
		return fmt.Errorf("fleet storage: %s %q: Redis unreachable (%v ago: %v); trying again within %v",
			op, key, time.Since(f.failedAt).Round(time.Millisecond), f.lastErr, StorageProbeInterval)
	}
	f.probing = true
	return nil
}

// end records the outcome of a call: a failure that is not about the key
// (it does not exist) or the caller (its context ended) opens the breaker.
func (f *failFastStorage) end(err error) error {
	down := err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, context.Canceled) &&
		(!errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errStorageTimeout))
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

// call runs fn against Redis through the breaker, with the deadline.
func (f *failFastStorage) call(ctx context.Context, op, key string, fn func(ctx context.Context) error) error {
	if err := f.begin(op, key); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, storageCallTimeout)
	defer cancel()
	err := fn(cctx)
	if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("fleet storage: %s %q: %w (%v): %v", op, key, errStorageTimeout, storageCallTimeout, err)
	}
	return f.end(err)
}

// useLocal reports whether a call that failed with err should be answered
// from the local copy: there is one, and Redis (not the key, not the
// caller) failed.
func (f *failFastStorage) useLocal(ctx context.Context, err error) bool {
	return f.local != nil && err != nil && !errors.Is(err, fs.ErrNotExist) && ctx.Err() == nil
}

// keep writes value to the local copy, if there is one and it differs.
func (f *failFastStorage) keep(ctx context.Context, key string, value []byte) {
	if f.local == nil {
		return
	}
	if old, err := f.local.Load(ctx, key); err == nil && bytes.Equal(old, value) {
		return
	}
	_ = f.local.Store(ctx, key, value) // a copy: Redis has the file
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
	var ok bool
	err := f.call(ctx, "lock", name, func(ctx context.Context) (err error) {
		ok, err = f.s.TryLock(ctx, name)
		return err
	})
	return ok, err
}

// Unlock implements certmagic.Locker; it is never held back by the
// breaker, but has the deadline.
func (f *failFastStorage) Unlock(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, storageCallTimeout)
	defer cancel()
	return f.s.Unlock(ctx, name)
}

// storeWaitFor is how long a store of an order's certificate waits out a
// Redis it cannot reach before failing: longer than a failover (a
// Sentinel or Cluster election takes 2–4 s). A failed store costs the
// whole order, which certmagic places again a minute later
// (TestFleetCertificateLockAcrossFailover).
const storeWaitFor = 10 * time.Second

// Store implements certmagic.Storage. A write of a certificate's file
// under its lock (fleet.Storage.Fenced: an order under way got the lock,
// so Redis was there a moment ago), or of the order's challenge token
// (fleet.Storage.Ordering), is not failed fast by the breaker: it
// tries Redis every 100 ms (each try with the deadline) until it succeeds,
// Redis refuses it for a reason that will not pass (the lock was taken
// over: fleet.ErrLockLost), the caller gives up, or storeWaitFor has
// passed. Other writes go through the breaker like every call.
func (f *failFastStorage) Store(ctx context.Context, key string, value []byte) error {
	if !f.s.Fenced(key) && !f.s.Ordering(key) {
		err := f.call(ctx, "store", key, func(c context.Context) error { return f.s.Store(c, key, value) })
		if err == nil {
			f.keep(ctx, key, value)
		}
		return err
	}
	deadline := time.Now().Add(storeWaitFor)
	for {
		cctx, cancel := context.WithTimeout(ctx, storageCallTimeout)
		err := f.s.Store(cctx, key, value)
		if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("fleet storage: store %q: %w (%v): %v", key, errStorageTimeout, storageCallTimeout, err)
		}
		cancel()
		f.end(err)
		if err == nil {
			f.keep(ctx, key, value)
			return nil
		}
		if errors.Is(err, fleet.ErrLockLost) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Load implements certmagic.Storage.
func (f *failFastStorage) Load(ctx context.Context, key string) ([]byte, error) {
	var b []byte
	err := f.call(ctx, "load", key, func(c context.Context) (err error) {
		b, err = f.s.Load(c, key)
		return err
	})
	if err == nil {
		f.keep(ctx, key, b)
		return b, nil
	}
	if f.useLocal(ctx, err) {
		if lb, lerr := f.local.Load(ctx, key); lerr == nil {
			return lb, nil
		}
	}
	return nil, err
}

// Delete implements certmagic.Storage.
func (f *failFastStorage) Delete(ctx context.Context, key string) error {
	err := f.call(ctx, "delete", key, func(c context.Context) error { return f.s.Delete(c, key) })
	if err == nil && f.local != nil {
		_ = f.local.Delete(ctx, key)
	}
	return err
}

// Exists implements certmagic.Storage; while Redis is unreachable it
// answers from the local copy (without one, nothing exists).
func (f *failFastStorage) Exists(ctx context.Context, key string) bool {
	// Exists hides errors; Stat tells them apart for the breaker.
	err := f.call(ctx, "exists", key, func(c context.Context) error {
		_, err := f.s.Stat(c, key)
		return err
	})
	if f.useLocal(ctx, err) {
		return f.local.Exists(ctx, key)
	}
	return err == nil
}

// List implements certmagic.Storage.
func (f *failFastStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	var l []string
	err := f.call(ctx, "list", path, func(c context.Context) (err error) {
		l, err = f.s.List(c, path, recursive)
		return err
	})
	if f.useLocal(ctx, err) {
		if ll, lerr := f.local.List(ctx, path, recursive); lerr == nil {
			return ll, nil
		}
	}
	return l, err
}

// Stat implements certmagic.Storage.
func (f *failFastStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	var ki certmagic.KeyInfo
	err := f.call(ctx, "stat", key, func(c context.Context) (err error) {
		ki, err = f.s.Stat(c, key)
		return err
	})
	if f.useLocal(ctx, err) {
		if lki, lerr := f.local.Stat(ctx, key); lerr == nil {
			return lki, nil
		}
	}
	return ki, err
}
