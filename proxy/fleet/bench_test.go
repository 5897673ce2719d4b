package fleet

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// propagation is a Redis with many Followers, each with its own client (as
// each edge has), recording every publish-to-callback latency.
type propagation struct {
	store     *Store
	followers []*Follower
	mu        sync.Mutex
	sent      map[int64]time.Time
	lat       []time.Duration
	arrived   chan int64
}

func newPropagation(tb testing.TB, followers int) *propagation {
	tb.Helper()
	r := startRedis(tb, "--maxclients", "10000")
	c, cfg := newTestClient(tb, r.Addr(), "")
	p := &propagation{store: NewStore(c, cfg), sent: map[int64]time.Time{}, arrived: make(chan int64, followers*4)}
	for i := 0; i < followers; i++ {
		fc, err := NewClient(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { fc.Close() })
		f := Follow(context.Background(), NewStore(fc, cfg), p.deliver, FollowOptions{})
		p.followers = append(p.followers, f)
	}
	tb.Cleanup(func() {
		for _, f := range p.followers {
			f.Close()
		}
	})
	// Every follower subscribed and polling before the clock starts.
	deadline := time.Now().Add(30 * time.Second)
	for _, f := range p.followers {
		for !f.Connected() {
			if time.Now().After(deadline) {
				tb.Fatalf("followers not connected after 30s: %v", f.LastError())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return p
}

func (p *propagation) deliver(v Version) {
	now := time.Now()
	p.mu.Lock()
	if t0, ok := p.sent[v.Number]; ok {
		p.lat = append(p.lat, now.Sub(t0))
	}
	p.mu.Unlock()
	p.arrived <- v.Number
}

// publishOne publishes the next version and waits until every follower has
// it (or the 5 s budget, far beyond the 2 s hard limit, runs out).
func (p *propagation) publishOne(tb testing.TB, n int64) {
	p.mu.Lock()
	p.sent[n] = time.Now()
	p.mu.Unlock()
	if _, err := p.store.Publish(context.Background(), fmt.Appendf(nil, "blocked-%d.example\n", n), Meta{Actor: "bench"}, n-1); err != nil {
		tb.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for got := 0; got < len(p.followers); {
		select {
		case v := <-p.arrived:
			if v == n {
				got++
			}
		case <-timeout:
			tb.Fatalf("version %d reached %d of %d followers within 5s", n, got, len(p.followers))
		}
	}
}

// percentiles returns the p50 and p99 of lat and its maximum.
func percentiles(lat []time.Duration) (p50, p99, most time.Duration) {
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99), s[len(s)-1]
}

const benchFollowers = 200

// BenchmarkPropagation measures publish -> callback latency across 200
// Followers on one Redis, one version per iteration:
//
//	go test -run '^$' -bench Propagation -benchtime 50x ./proxy/fleet
func BenchmarkPropagation(b *testing.B) {
	p := newPropagation(b, benchFollowers)
	// Version 0 does not exist; the followers deliver from 1.
	n := int64(0)
	for b.Loop() {
		n++
		p.publishOne(b, n)
	}
	p50, p99, most := percentiles(p.lat)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(most.Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(p.lat))/float64(n), "deliveries/op")
}

// TestPropagationWithinLimit asserts the hard limit: with 200
// Followers, every version reaches every one within 2 s at p99 (the target
// is 1 s; the benchmark reports the actual figures).
func TestPropagationWithinLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("200 followers: skipped with -short")
	}
	p := newPropagation(t, benchFollowers)
	const versions = 20
	for n := int64(1); n <= versions; n++ {
		p.publishOne(t, n)
	}
	if len(p.lat) != versions*benchFollowers {
		t.Fatalf("%d deliveries, want %d (every follower, every version)", len(p.lat), versions*benchFollowers)
	}
	p50, p99, most := percentiles(p.lat)
	t.Logf("%d followers, %d versions: p50 %v, p99 %v, max %v", benchFollowers, versions, p50, p99, most)
	if p99 > 2*time.Second {
		t.Fatalf("p99 propagation %v exceeds the 2s hard limit", p99)
	}
}
