package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPollInterval is how often a Follower reads the version number when
// FollowOptions.PollInterval is zero.
const DefaultPollInterval = time.Second

// FollowOptions tune a Follower. The zero value is ready to use.
type FollowOptions struct {
	// After is the version the caller already has (e.g. from a local
	// snapshot); only newer versions are delivered. Default 0: the current
	// version is delivered first, if there is one.
	After int64
	// PollInterval is how often the version number is read, whatever the
	// notifications say; a lost notification costs at most this long.
	// Default 1s.
	PollInterval time.Duration
	// OnState, if set, is called (from the Follower's goroutines, one call at
	// a time) whenever Connected changes, with the error that caused a loss.
	OnState func(connected bool, err error)
}

// Follower delivers each new version of a Store to a callback. It learns of
// new versions from the Store's pub/sub notifications and, as a fallback,
// by polling the version number every PollInterval. It reconnects by itself
// when Redis goes away and comes back, keeping one subscription.
//
// Delivery guarantees: the callback runs on one goroutine, one call at a
// time, with strictly increasing version numbers, and at most once per
// version. Versions published in quick succession may be skipped: the
// newest is delivered (an edge wants the latest list, not every step). A
// version that cannot be read or fails its SHA-256 check is not delivered;
// the Follower retries at the next poll and reports the error in LastError.
type Follower struct {
	store *Store
	fn    func(Version)
	opts  FollowOptions

	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // buffered 1: "read the version number now"

	last           atomic.Int64 // newest delivered version
	seen           atomic.Int64 // newest version number read from Redis
	read           atomic.Bool  // seen holds a number read from Redis
	subscribed     atomic.Bool  // subscription confirmed and not since lost
	everSubscribed atomic.Bool  // a subscription was confirmed once
	polled         atomic.Bool  // the last poll reached Redis

	cbMu      sync.Mutex // serializes state changes and OnState calls
	stateMu   sync.Mutex // guards lastErr, connected
	lastErr   error
	connected bool
}

// Follow starts a Follower on s that calls fn for each new version, until
// ctx is canceled or Close is called.
func Follow(ctx context.Context, s *Store, fn func(Version), opts FollowOptions) *Follower {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &Follower{store: s, fn: fn, opts: opts, cancel: cancel, kick: make(chan struct{}, 1)}
	f.last.Store(opts.After)
	f.wg.Add(2)
	go f.subscribeLoop(ctx)
	go f.pollLoop(ctx)
	return f
}

// Close stops the Follower and waits for its goroutines, including a
// callback in progress. It is safe to call more than once.
func (f *Follower) Close() error {
	f.cancel()
	f.wg.Wait()
	return nil
}

// Connected reports whether the last poll reached Redis and the
// notification subscription is in place.
func (f *Follower) Connected() bool {
	f.stateMu.Lock()
	defer f.stateMu.Unlock()
	return f.connected
}

// LastError returns the most recent error (connection, read, or checksum);
// it is not cleared by success, so read it together with Connected.
func (f *Follower) LastError() error {
	f.stateMu.Lock()
	defer f.stateMu.Unlock()
	return f.lastErr
}

// Delivered returns the newest version number delivered (or FollowOptions.After).
func (f *Follower) Delivered() int64 { return f.last.Load() }

// Seen returns the newest version number read from Redis (0 before the
// first successful read). Seen above Delivered means a version is pending
// or could not be read.
func (f *Follower) Seen() int64 { return f.seen.Load() }

// Read returns the newest version number read from Redis, and whether
// one was read at all (an empty store reads as 0, true).
func (f *Follower) Read() (int64, bool) { return f.seen.Load(), f.read.Load() }

// setErr records err (if any) and recomputes the connection state.
func (f *Follower) setErr(err error) {
	f.cbMu.Lock()
	defer f.cbMu.Unlock()
	f.stateMu.Lock()
	if err != nil {
		f.lastErr = err
	}
	now := f.subscribed.Load() && f.polled.Load()
	changed := now != f.connected
	f.connected = now
	f.stateMu.Unlock()
	if changed && f.opts.OnState != nil {
		f.opts.OnState(now, err)
	}
}

// wake asks the poll loop to read the version number now.
func (f *Follower) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// subscribeLoop keeps one subscription to the notification channel and
// wakes the poll loop on each message and on each (re)subscription, which
// is when versions may have been missed. Each subscription is one PubSub on
// one connection, closed before the next is made, so reconnects never pile
// up subscriptions on the server. When the client sees the primary move (a
// failover; see Client), the subscription is made again on the new primary
// at once: a demoted primary keeps its subscribers but no longer hears
// every publish.
func (f *Follower) subscribeLoop(ctx context.Context) {
	defer f.wg.Done()
	for ctx.Err() == nil {
		err := f.subscribeOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		f.subscribed.Store(false)
		f.setErr(err)
		if !errors.Is(err, errPrimaryMoved) {
			sleep(ctx, 100*time.Millisecond) // do not hammer a Redis that is down
		}
	}
}

// errPrimaryMoved ends a subscription made before a failover.
var errPrimaryMoved = errors.New("fleet: subscription: the primary moved; subscribing again")

// subscribeTimeout is how long a subscription may stay quiet before it is
// pinged, and how long a ping may go unanswered before the connection is
// given up (a peer that vanished without closing TCP).
const subscribeTimeout = 2 * time.Second

// subscribeOnce subscribes and handles messages until the connection fails,
// the primary moves, or ctx is done.
func (f *Follower) subscribeOnce(ctx context.Context) error {
	var moved <-chan struct{}
	cl, _ := f.store.rdb.(*Client)
	if cl != nil {
		moved = cl.PrimaryChanged()
	}
	ps := f.store.rdb.Subscribe(ctx) // no channel yet: does not dial
	defer ps.Close()
	// Closing the PubSub is what interrupts a blocked receive.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	var movedFlag atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-moved:
			movedFlag.Store(true)
			ps.Close()
		case <-done:
		}
	}()
	if err := ps.Subscribe(ctx, f.store.k.channel); err != nil {
		if movedFlag.Load() {
			return errPrimaryMoved
		}
		return fmt.Errorf("fleet: subscribe %s: %w", f.store.k.channel, err)
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, subscribeTimeout)
		if movedFlag.Load() {
			return errPrimaryMoved
		}
		if err != nil {
			var ne interface{ Timeout() bool }
			if !errors.As(err, &ne) || !ne.Timeout() {
				return fmt.Errorf("fleet: subscription: %w", err)
			}
			if pinged {
				return fmt.Errorf("fleet: subscription: no answer to a ping within %v", subscribeTimeout)
			}
			if err := ps.Ping(ctx); err != nil {
				return fmt.Errorf("fleet: subscription ping: %w", err)
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				// Every confirmation after the first is a reconnect (go-redis
				// resubscribes by itself on a new connection, too): versions
				// may have been published meanwhile, so check at once.
				if f.everSubscribed.Swap(true) && cl != nil {
					cl.reconnects.Add(1)
				}
				f.subscribed.Store(true)
				f.setErr(nil)
				f.wake()
			}
		case *redis.Message:
			f.wake()
		}
	}
}

// pollLoop reads the version number every PollInterval and when woken, and
// delivers a newer version.
// While Redis cannot be reached it polls five times as often (at least
// every 50ms apart), so that its return is noticed quickly.
func (f *Follower) pollLoop(ctx context.Context) {
	defer f.wg.Done()
	retry := max(f.opts.PollInterval/5, 50*time.Millisecond)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		wait := f.opts.PollInterval
		if !f.check(ctx) {
			wait = retry
		} else if cl, ok := f.store.rdb.(*Client); ok {
			cl.RefreshPrimary(ctx) // cluster mode: notice a failover of the slot's primary
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
	}
}

// check delivers the newest version if it is newer than the last delivered.
// It reports whether Redis answered.
func (f *Follower) check(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, f.opts.PollInterval)
	defer cancel()
	n, err := f.store.CurrentNumber(rctx)
	if ctx.Err() != nil {
		return true
	}
	if err != nil {
		f.polled.Store(false)
		f.setErr(err)
		return false
	}
	f.polled.Store(true)
	f.setErr(nil)
	f.seen.Store(n)
	f.read.Store(true)
	if n <= f.last.Load() {
		return true
	}
	// Reading the version may take longer than a poll: a follower that
	// is new or far behind reads a snapshot, tens of MB for a large list.
	vctx, vcancel := context.WithTimeout(ctx, versionReadTimeout)
	defer vcancel()
	v, err := f.store.Next(vctx, n)
	if err != nil {
		if ctx.Err() == nil {
			f.setErr(err)
		}
		// A bad or vanished version waits for the next poll; a read error
		// is retried soon.
		return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound)
	}
	f.fn(v)
	f.last.Store(v.Number)
	return true
}

// versionReadTimeout bounds reading one version (its patches, or its
// snapshot and patches).
const versionReadTimeout = 30 * time.Second

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
