package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newTestClient returns a client built by NewClient for a server at addr
// with the given prefix, closed at the end of the test.
func newTestClient(t testing.TB, addr, prefix string) (redis.UniversalClient, Config) {
	t.Helper()
	cfg := Config{Redis: RedisConfig{Addr: addr}, Prefix: prefix, Node: "test"}
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatalf("config: %v", p)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, cfg
}

// newTestStore starts a Redis and returns a Store on it.
func newTestStore(t testing.TB) (*Store, *redisServer) {
	t.Helper()
	r := startRedis(t)
	c, cfg := newTestClient(t, r.Addr(), "")
	return NewStore(c, cfg), r
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPublishGetCurrent(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)

	if _, err := s.Current(ctx); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("Current on empty store: got %v, want ErrNoVersion", err)
	}
	if n, err := s.CurrentNumber(ctx); err != nil || n != 0 {
		t.Fatalf("CurrentNumber on empty store = %d, %v; want 0, nil", n, err)
	}

	steps := []struct {
		content string
		meta    Meta
	}{
		{"a.example\n", Meta{Actor: "alice", Comment: "first"}},
		{"a.example\nb.example\n", Meta{Actor: "bob", Comment: "add b"}},
		{"", Meta{Actor: "carol", Comment: "empty list"}},
	}
	var prev int64
	var prevTime time.Time
	for i, st := range steps {
		v, err := s.Publish(ctx, []byte(st.content), st.meta, prev)
		if err != nil {
			t.Fatalf("step %d: Publish: %v", i, err)
		}
		sum := sha256.Sum256([]byte(st.content))
		if v.Number != prev+1 || v.SHA256 != hex.EncodeToString(sum[:]) || v.Meta != st.meta {
			t.Fatalf("step %d: Publish returned %+v", i, v)
		}
		if v.Time.Before(prevTime) || time.Since(v.Time).Abs() > time.Minute {
			t.Fatalf("step %d: implausible time %v (previous %v)", i, v.Time, prevTime)
		}
		got, err := s.Get(ctx, v.Number)
		if err != nil {
			t.Fatalf("step %d: Get: %v", i, err)
		}
		if string(got.Content) != st.content || got.SHA256 != v.SHA256 || got.Meta != st.meta || !got.Time.Equal(v.Time) {
			t.Fatalf("step %d: Get = %+v, want %+v", i, got, v)
		}
		cur, err := s.Current(ctx)
		if err != nil || cur.Number != v.Number {
			t.Fatalf("step %d: Current = %d, %v; want %d", i, cur.Number, err, v.Number)
		}
		prev, prevTime = v.Number, v.Time
	}
	if _, err := s.Get(ctx, 99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(99): got %v, want ErrNotFound", err)
	}
}

func TestPublishConflict(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)
	if _, err := s.Publish(ctx, []byte("one\n"), Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	// A stale expectation is refused and carries the current number.
	_, err := s.Publish(ctx, []byte("stale\n"), Meta{}, 0)
	var ce *ConflictError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.Current != 1 || ce.Expected != 0 {
		t.Fatalf("stale publish: got %v, want a ConflictError{0, 1}", err)
	}
	if cur, _ := s.Current(ctx); string(cur.Content) != "one\n" {
		t.Fatalf("a refused publish changed the content to %q", cur.Content)
	}

	// Concurrent publishers with the same expectation: exactly one wins,
	// in each of several rounds.
	const writers = 8
	for round := 0; round < 10; round++ {
		expect, _ := s.CurrentNumber(ctx)
		var wg sync.WaitGroup
		results := make([]error, writers)
		start := make(chan struct{})
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, results[w] = s.Publish(ctx, fmt.Appendf(nil, "writer %d round %d\n", w, round), Meta{Actor: fmt.Sprint(w)}, expect)
			}()
		}
		close(start)
		wg.Wait()
		wins, winner := 0, -1
		for w, err := range results {
			switch {
			case err == nil:
				wins++
				winner = w
			case errors.Is(err, ErrConflict):
			default:
				t.Fatalf("round %d writer %d: unexpected error %v", round, w, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d publishers won, want exactly 1", round, wins)
		}
		cur, err := s.Current(ctx)
		if err != nil || cur.Number != expect+1 || string(cur.Content) != fmt.Sprintf("writer %d round %d\n", winner, round) {
			t.Fatalf("round %d: current = %d %q, %v; want %d from writer %d", round, cur.Number, cur.Content, err, expect+1, winner)
		}
	}
}

func TestUpdateUnderContention(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line := fmt.Sprintf("host%02d.example\n", w)
			_, err := s.Update(ctx, func(cur []byte) ([]byte, error) {
				return append(bytes.Clone(cur), line...), nil
			}, Meta{Actor: fmt.Sprintf("writer%02d", w), Comment: "add " + line})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	cur, err := s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for w := 0; w < writers; w++ {
		line := fmt.Sprintf("host%02d.example\n", w)
		if c := strings.Count(string(cur.Content), line); c != 1 {
			t.Errorf("%q appears %d times in the final list, want once", line, c)
		}
	}
	if cur.Number != writers {
		t.Errorf("final version %d, want %d (one per writer)", cur.Number, writers)
	}

	// No change: no new version. An error from fn is returned as is.
	same, err := s.Update(ctx, func(cur []byte) ([]byte, error) { return cur, nil }, Meta{})
	if err != nil || same.Number != cur.Number {
		t.Fatalf("no-op Update = %d, %v; want %d, nil", same.Number, err, cur.Number)
	}
	boom := errors.New("boom")
	if _, err := s.Update(ctx, func([]byte) ([]byte, error) { return nil, boom }, Meta{}); err != boom {
		t.Fatalf("Update with failing fn: got %v, want boom", err)
	}
}

func TestHistoryKeepsAndTrims(t *testing.T) {
	r := startRedis(t)
	c, cfg := newTestClient(t, r.Addr(), "hist:")
	s := NewStore(c, cfg) // Keep: default 100
	ctx := ctxT(t)
	const total = 130
	for i := 1; i <= total; i++ {
		if _, err := s.Publish(ctx, fmt.Appendf(nil, "v%d\n", i), Meta{Actor: "a", Comment: fmt.Sprint(i)}, int64(i-1)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != DefaultKeep {
		t.Fatalf("History kept %d versions, want %d", len(h), DefaultKeep)
	}
	for i, v := range h {
		want := int64(total - i)
		if v.Number != want || string(v.Content) != fmt.Sprintf("v%d\n", want) || v.Comment != fmt.Sprint(want) {
			t.Fatalf("History[%d] = %d %q %q, want version %d", i, v.Number, v.Content, v.Comment, want)
		}
	}
	if h5, err := s.History(ctx, 5); err != nil || len(h5) != 5 || h5[0].Number != total {
		t.Fatalf("History(5): %d versions from %v, %v", len(h5), h5, err)
	}
	// Trimmed versions are gone from Redis, not just from the index.
	if _, err := s.Get(ctx, total-DefaultKeep); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(trimmed) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, total-DefaultKeep+1); err != nil {
		t.Fatalf("Get(oldest kept): %v", err)
	}
	n, err := c.Keys(ctx, "hist:list:v:*").Result()
	if err != nil || len(n) != DefaultKeep {
		t.Fatalf("%d version hashes in Redis (%v), want %d", len(n), err, DefaultKeep)
	}
}

func TestGetVerifiesSHA256(t *testing.T) {
	s, r := newTestStore(t)
	ctx := ctxT(t)
	v, err := s.Publish(ctx, []byte("good.example\n"), Meta{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw := r.Client()
	// Tamper with the stored content behind the store's back.
	if err := raw.HSet(ctx, "edgeblock:list:v:1", "content", "evil.example\n").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, v.Number); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of tampered content: got %v, want ErrCorrupt", err)
	}
	if _, err := s.Current(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Current of tampered content: got %v, want ErrCorrupt", err)
	}
	// History shows the bad version, marked, rather than failing.
	if h, err := s.History(ctx, 1); err != nil || len(h) != 1 || !errors.Is(h[0].Problem, ErrCorrupt) {
		t.Fatalf("History of tampered content: %v, %v; want version 1 with Problem ErrCorrupt", h, err)
	}
}
