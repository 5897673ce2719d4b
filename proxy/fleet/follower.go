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

	last       atomic.Int64 // newest delivered version
	subscribed atomic.Bool  // subscription confirmed and not since lost
	polled     atomic.Bool  // the last poll reached Redis

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
// is when versions may have been missed. go-redis's PubSub redials and
// resubscribes on its own connection when a read fails; this loop only
// waits a little between failures so a down Redis is not hammered.
func (f *Follower) subscribeLoop(ctx context.Context) {
	defer f.wg.Done()
	ps := f.store.rdb.Subscribe(ctx) // no channel yet: does not dial
	defer ps.Close()
	// The channel is remembered even if this first attempt fails; each
	// receive below then redials and resubscribes.
	if err := ps.Subscribe(ctx, f.store.k.channel); err != nil {
		f.lostSub(ctx, fmt.Errorf("fleet: subscribe %s: %w", f.store.k.channel, err))
	}
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, f.opts.PollInterval+time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: check the connection is alive. A failed
				// ping makes the next receive redial.
				if perr := ps.Ping(ctx); perr != nil {
					f.lostSub(ctx, fmt.Errorf("fleet: subscription ping: %w", perr))
				}
				continue
			}
			f.lostSub(ctx, fmt.Errorf("fleet: subscription: %w", err))
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				f.subscribed.Store(true)
				f.setErr(nil)
				f.wake()
			}
		case *redis.Message:
			f.wake()
		}
	}
}

// lostSub records a subscription failure and pauses briefly.
func (f *Follower) lostSub(ctx context.Context, err error) {
	f.subscribed.Store(false)
	f.setErr(err)
	sleep(ctx, 100*time.Millisecond)
}

// pollLoop reads the version number every PollInterval and when woken, and
// delivers a newer version.
func (f *Follower) pollLoop(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTicker(f.opts.PollInterval)
	defer t.Stop()
	for {
		f.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
	}
}

// check delivers the newest version if it is newer than the last delivered.
func (f *Follower) check(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, f.opts.PollInterval)
	defer cancel()
	n, err := f.store.CurrentNumber(rctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		f.polled.Store(false)
		f.setErr(err)
		return
	}
	f.polled.Store(true)
	f.setErr(nil)
	if n <= f.last.Load() {
		return
	}
	v, err := f.store.Get(rctx, n)
	if err != nil {
		if ctx.Err() == nil {
			f.setErr(err)
		}
		return
	}
	f.fn(v)
	f.last.Store(v.Number)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
