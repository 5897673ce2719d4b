package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// recorder collects delivered versions and signals each one.
type recorder struct {
	mu   sync.Mutex
	got  []Version
	when []time.Time
	ch   chan Version
}

func newRecorder() *recorder { return &recorder{ch: make(chan Version, 1000)} }

func (r *recorder) deliver(v Version) {
	r.mu.Lock()
	r.got = append(r.got, v)
	r.when = append(r.when, time.Now())
	r.mu.Unlock()
	r.ch <- v
}

func (r *recorder) numbers() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []int64
	for _, v := range r.got {
		n = append(n, v.Number)
	}
	return n
}

// waitVersion waits up to d for version n to be delivered and returns when
// it was, failing the test on a later or missing version.
func (r *recorder) waitVersion(t *testing.T, n int64, d time.Duration) time.Time {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case v := <-r.ch:
			if v.Number == n {
				return time.Now()
			}
			if v.Number > n {
				t.Fatalf("got version %d while waiting for %d", v.Number, n)
			}
		case <-deadline:
			t.Fatalf("version %d not delivered within %v (delivered: %v)", n, d, r.numbers())
		}
	}
}

// startFollower starts a Follower closed at the end of the test.
func startFollower(t *testing.T, s *Store, r *recorder, opts FollowOptions) *Follower {
	t.Helper()
	f := Follow(context.Background(), s, r.deliver, opts)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFollowerDeliversByNotification(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)
	if _, err := s.Publish(ctx, []byte("first\n"), Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	// A poll interval far beyond the test's waits: only the notification
	// (and the initial read) can deliver.
	f := startFollower(t, s, rec, FollowOptions{PollInterval: time.Hour})
	if v := <-rec.ch; v.Number != 1 || string(v.Content) != "first\n" {
		t.Fatalf("initial delivery = %d %q, want version 1", v.Number, v.Content)
	}
	edgetest.WaitFor(t, 5*time.Second, "Connected", f.Connected)

	for i := int64(2); i <= 6; i++ {
		start := time.Now()
		if _, err := s.Publish(ctx, fmt.Appendf(nil, "v%d\n", i), Meta{}, i-1); err != nil {
			t.Fatal(err)
		}
		got := rec.waitVersion(t, i, 2*time.Second)
		t.Logf("version %d delivered %v after publish", i, got.Sub(start))
	}
	// Delivered moves once the callback has returned, just after the
	// recorder saw the version.
	edgetest.WaitFor(t, 2*time.Second, "Delivered() == 6", func() bool { return f.Delivered() == 6 })
}

func TestFollowerPollsWhenNotificationLost(t *testing.T) {
	s, r := newTestStore(t)
	rec := newRecorder()
	f := startFollower(t, s, rec, FollowOptions{PollInterval: 300 * time.Millisecond})
	edgetest.WaitFor(t, 5*time.Second, "Connected", f.Connected)

	// Write version 1 as Publish would, but without PUBLISH: the
	// notification is lost and only polling can find it.
	ctx := ctxT(t)
	raw := r.Client()
	content := "missed.example\n"
	sum := sha256.Sum256([]byte(content))
	start := time.Now()
	if err := raw.HSet(ctx, "edgeblock:list:v:1", "content", content, "sha256", hex.EncodeToString(sum[:]),
		"version", 1, "actor", "raw", "comment", "no notification", "time", time.Now().UnixMicro()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Set(ctx, "edgeblock:list:version", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	got := rec.waitVersion(t, 1, 3*300*time.Millisecond)
	t.Logf("found by polling %v after the write (poll interval 300ms)", got.Sub(start))
	if v := rec.got[0]; string(v.Content) != content || v.Actor != "raw" {
		t.Fatalf("delivered %+v", v)
	}
}

func TestFollowerAfterOrderAndSkipping(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)
	for i := int64(1); i <= 3; i++ {
		if _, err := s.Publish(ctx, fmt.Appendf(nil, "v%d\n", i), Meta{}, i-1); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	// The caller already has version 3 (a local snapshot): nothing until 4.
	f := startFollower(t, s, rec, FollowOptions{After: 3, PollInterval: 50 * time.Millisecond})
	edgetest.WaitFor(t, 5*time.Second, "Connected", f.Connected)
	time.Sleep(200 * time.Millisecond) // several polls
	if n := rec.numbers(); len(n) != 0 {
		t.Fatalf("delivered %v with After=3 and nothing newer", n)
	}
	// A burst: every delivery is newer than the last, none twice, and the
	// newest arrives.
	const last = 60
	for i := int64(4); i <= last; i++ {
		if _, err := s.Publish(ctx, fmt.Appendf(nil, "v%d\n", i), Meta{}, i-1); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitVersion(t, last, 3*time.Second)
	time.Sleep(200 * time.Millisecond)
	n := rec.numbers()
	for i := 1; i < len(n); i++ {
		if n[i] <= n[i-1] {
			t.Fatalf("deliveries out of order or repeated: %v", n)
		}
	}
	if n[0] < 4 || n[len(n)-1] != last {
		t.Fatalf("deliveries %v, want from >=4 up to %d", n, last)
	}
	t.Logf("%d deliveries for %d versions published in a burst", len(n), last-3)
}

func TestFollowerRefusesCorruptVersion(t *testing.T) {
	s, r := newTestStore(t)
	ctx := ctxT(t)
	rec := newRecorder()
	f := startFollower(t, s, rec, FollowOptions{PollInterval: 50 * time.Millisecond})
	edgetest.WaitFor(t, 5*time.Second, "Connected", f.Connected)

	// Version 1 with a wrong checksum, announced: must not be delivered.
	raw := r.Client()
	if err := raw.HSet(ctx, "edgeblock:list:v:1", "content", "x\n", "sha256", strings.Repeat("0", 64), "version", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Set(ctx, "edgeblock:list:version", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	raw.Publish(ctx, "edgeblock:list:notify", "1")
	edgetest.WaitFor(t, 2*time.Second, "LastError to report the checksum", func() bool { return errors.Is(f.LastError(), ErrCorrupt) })
	if n := rec.numbers(); len(n) != 0 {
		t.Fatalf("a corrupt version was delivered: %v", n)
	}
	if f.Seen() != 1 || f.Delivered() != 0 {
		t.Fatalf("Seen %d, Delivered %d; want 1, 0", f.Seen(), f.Delivered())
	}
	// The next good version goes through.
	if _, err := s.Publish(ctx, []byte("good\n"), Meta{}, 1); err != nil {
		t.Fatal(err)
	}
	rec.waitVersion(t, 2, 2*time.Second)
}

// TestFollowerSurvivesRedisRestart kills Redis under running Followers,
// starts it again on the same port and data, and checks each Follower
// reconnects, receives the next version within 2 s of Redis's return, and
// holds exactly one subscription. The long outage is long enough for the
// client's dial circuit breaker to open (a pool's worth of failed dials),
// which then probes only once a second.
func TestFollowerSurvivesRedisRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage time.Duration
		long   bool
	}{
		{"short outage", 1500 * time.Millisecond, false},
		{"long outage", 15 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && testing.Short() {
				t.Skip("long outage skipped with -short")
			}
			testRedisRestart(t, tc.outage)
		})
	}
}

func testRedisRestart(t *testing.T, outage time.Duration) {
	// appendfsync always: SIGKILL loses nothing already acknowledged.
	r := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	c, cfg := newTestClient(t, r.Addr(), "")
	s := NewStore(c, cfg)
	ctx := ctxT(t)
	if _, err := s.Publish(ctx, []byte("v1\n"), Meta{}, 0); err != nil {
		t.Fatal(err)
	}

	const followers = 3
	type tracked struct {
		f      *Follower
		rec    *recorder
		mu     sync.Mutex
		states []bool
	}
	var fs []*tracked
	for i := 0; i < followers; i++ {
		tr := &tracked{rec: newRecorder()}
		// Each Follower has its own client, as each edge would.
		fc, _ := newTestClient(t, r.Addr(), "")
		tr.f = Follow(context.Background(), NewStore(fc, cfg), tr.rec.deliver, FollowOptions{
			OnState: func(up bool, _ error) { tr.mu.Lock(); tr.states = append(tr.states, up); tr.mu.Unlock() },
		})
		t.Cleanup(func() { tr.f.Close() })
		tr.rec.waitVersion(t, 1, 5*time.Second)
		edgetest.WaitFor(t, 5*time.Second, "Connected", tr.f.Connected)
		fs = append(fs, tr)
	}

	r.Stop()
	for i, tr := range fs {
		edgetest.WaitFor(t, 5*time.Second, fmt.Sprintf("follower %d to notice Redis is gone", i), func() bool { return !tr.f.Connected() })
		if tr.f.LastError() == nil {
			t.Errorf("follower %d: disconnected without an error", i)
		}
	}
	time.Sleep(outage)
	r.Start()
	back := time.Now()
	v, err := s.Publish(ctx, []byte("v2\n"), Meta{Comment: "after restart"}, 1)
	if err != nil {
		t.Fatalf("publish after restart (data kept by the append-only file?): %v", err)
	}
	for i, tr := range fs {
		got := tr.rec.waitVersion(t, v.Number, 2*time.Second-time.Since(back))
		t.Logf("follower %d: version %d delivered %v after Redis returned", i, v.Number, got.Sub(back))
		edgetest.WaitFor(t, 2*time.Second, fmt.Sprintf("follower %d Connected", i), tr.f.Connected)
		tr.mu.Lock()
		st := tr.states
		tr.mu.Unlock()
		if len(st) < 3 || st[0] != true || st[len(st)-1] != true || !containsFalse(st) {
			t.Errorf("follower %d: state changes %v, want up, down, ..., up", i, st)
		}
	}

	// One subscription per Follower, not one per reconnect attempt.
	raw := r.Client()
	numsub, err := raw.PubSubNumSub(ctx, "edgeblock:list:notify").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := numsub["edgeblock:list:notify"]; n != followers {
		t.Errorf("PUBSUB NUMSUB = %d, want %d (one per follower)", n, followers)
	}
	list, err := raw.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	subs := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " sub=1 ") {
			subs++
		}
	}
	if subs != followers {
		t.Errorf("CLIENT LIST shows %d subscribed connections, want %d:\n%s", subs, followers, list)
	}

	// And the notification path works again (not just polling): with the
	// poll a second away, a publish arrives well within it.
	start := time.Now()
	if _, err := s.Publish(ctx, []byte("v3\n"), Meta{}, v.Number); err != nil {
		t.Fatal(err)
	}
	for i, tr := range fs {
		got := tr.rec.waitVersion(t, v.Number+1, 2*time.Second)
		t.Logf("follower %d: version %d delivered %v after publish", i, v.Number+1, got.Sub(start))
	}
}

func containsFalse(s []bool) bool {
	for _, b := range s {
		if !b {
			return true
		}
	}
	return false
}

func TestFollowerCloseStops(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)
	rec := newRecorder()
	f := Follow(ctx, s, rec.deliver, FollowOptions{PollInterval: 20 * time.Millisecond})
	edgetest.WaitFor(t, 5*time.Second, "Connected", f.Connected)
	f.Close()
	f.Close() // twice is fine
	if _, err := s.Publish(ctx, []byte("late\n"), Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := rec.numbers(); len(n) != 0 {
		t.Fatalf("delivered %v after Close", n)
	}
}

// TestFollowerStartsWithoutRedis starts a Follower while Redis is down (an
// edge booting during an outage): it reports the failure, then delivers
// once Redis is back.
func TestFollowerStartsWithoutRedis(t *testing.T) {
	r := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	c, cfg := newTestClient(t, r.Addr(), "")
	s := NewStore(c, cfg)
	ctx := ctxT(t)
	if _, err := s.Publish(ctx, []byte("v1\n"), Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	rec := newRecorder()
	f := startFollower(t, s, rec, FollowOptions{After: 1}) // has v1 from its snapshot
	edgetest.WaitFor(t, 5*time.Second, "a connection error", func() bool { return f.LastError() != nil })
	if f.Connected() {
		t.Fatal("Connected with Redis down")
	}
	r.Start()
	back := time.Now()
	if _, err := s.Publish(ctx, []byte("v2\n"), Meta{}, 1); err != nil {
		t.Fatal(err)
	}
	got := rec.waitVersion(t, 2, 2*time.Second)
	t.Logf("version 2 delivered %v after Redis came up", got.Sub(back))
	edgetest.WaitFor(t, 2*time.Second, "Connected", f.Connected)
	if n := rec.numbers(); !slices.Equal(n, []int64{2}) {
		t.Fatalf("delivered %v, want [2]", n)
	}
}
