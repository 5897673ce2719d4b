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
	// list is the content of the newest version; each publishOne adds
	// one line to it (a one-rule edit, stored as a patch).
	list []byte
}

// newPropagation starts a Redis, publishes list as version 1 and starts
// followers, each on its own client, and waits until every one has
// version 1 (for a large list, each reads the snapshot once, as a new
// edge does).
func newPropagation(tb testing.TB, followers int, list []byte) *propagation {
	tb.Helper()
	r := startRedis(tb, "--maxclients", "10000")
	c, cfg := newTestClient(tb, r.Addr(), "")
	p := &propagation{store: NewStore(c, cfg), sent: map[int64]time.Time{}, arrived: make(chan int64, followers*4), list: list}
	if _, err := p.store.Publish(context.Background(), list, Meta{Actor: "bench"}, 0); err != nil {
		tb.Fatal(err)
	}
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
	// Every follower subscribed, polling and on version 1 before the
	// clock starts.
	deadline := time.Now().Add(60 * time.Second)
	for _, f := range p.followers {
		for !f.Connected() || f.Delivered() < 1 {
			if time.Now().After(deadline) {
				tb.Fatalf("followers not connected on version 1 after 60s: %v", f.LastError())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for len(p.arrived) > 0 {
		<-p.arrived
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

// publishOne publishes version n, the list with one more line, and waits
// until every follower has it (or the 10 s budget, far beyond the 2 s
// hard limit, runs out).
func (p *propagation) publishOne(tb testing.TB, n int64) {
	p.list = fmt.Appendf(p.list[:len(p.list):len(p.list)], "blocked-%d.example\n", n)
	p.mu.Lock()
	p.sent[n] = time.Now()
	p.mu.Unlock()
	if _, err := p.store.Publish(context.Background(), p.list, Meta{Actor: "bench"}, n-1); err != nil {
		tb.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for got := 0; got < len(p.followers); {
		select {
		case v := <-p.arrived:
			if v == n {
				got++
			}
		case <-timeout:
			tb.Fatalf("version %d reached %d of %d followers within 10s", n, got, len(p.followers))
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

// scaleFollowers is the number of followers with a 1M-rule list: each
// holds the list (30 MB) and patches and hashes it per version, so 200 on
// one machine would measure the machine's cores, not the propagation.
const scaleFollowers = 20

// BenchmarkPropagation measures publish -> callback latency of a one-rule
// edit, one version per iteration: 200 Followers of a 10-rule list, and
// 20 of a 1M-rule list, on one Redis:
//
//	go test -run '^$' -bench Propagation -benchtime 50x ./proxy/fleet
func BenchmarkPropagation(b *testing.B) {
	for _, c := range []struct {
		rules, followers int
	}{{10, benchFollowers}, {scaleRules, scaleFollowers}} {
		b.Run(fmt.Sprintf("rules=%d/followers=%d", c.rules, c.followers), func(b *testing.B) {
			p := newPropagation(b, c.followers, largeList(c.rules))
			n := int64(1)
			for b.Loop() {
				n++
				p.publishOne(b, n)
			}
			p50, p99, most := percentiles(p.lat)
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(most.Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(len(p.lat))/float64(n-1), "deliveries/op")
		})
	}
}

// TestPropagationWithinLimit asserts the hard limit: with 200
// Followers, every version reaches every one within 2 s at p99 (the target
// is 1 s; the benchmark reports the actual figures).
func TestPropagationWithinLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("200 followers: skipped with -short")
	}
	checkPropagation(t, benchFollowers, 10, 20, 2*time.Second)
}

// TestScalePropagation: a one-rule edit of a 1M-rule list reaches each of
// 5 followers (as many as TestFleetScale's edges; each patches its 34 MB
// list and checks its SHA-256, sharing this machine's cores) within the
// 2 s hard limit at p99; the log gives the figures.
//
//	EDGEBLOCK_SCALE=1 go test -count=1 -run TestScalePropagation -v ./proxy/fleet
func TestScalePropagation(t *testing.T) {
	skipScale(t)
	checkPropagation(t, 5, scaleRules, 20, 2*time.Second)
}

// checkPropagation publishes versions one-rule edits of a list of rules
// to followers and fails if the p99 latency exceeds limit.
func checkPropagation(t *testing.T, followers, rules, versions int, limit time.Duration) {
	t.Helper()
	p := newPropagation(t, followers, largeList(rules))
	for n := int64(2); n <= int64(versions)+1; n++ {
		p.publishOne(t, n)
	}
	if len(p.lat) != versions*followers {
		t.Fatalf("%d deliveries, want %d (every follower, every version)", len(p.lat), versions*followers)
	}
	p50, p99, most := percentiles(p.lat)
	t.Logf("%d rules, %d followers, %d one-rule edits: p50 %v, p99 %v, max %v", rules, followers, versions, p50, p99, most)
	if p99 > limit {
		t.Fatalf("p99 propagation %v exceeds %v", p99, limit)
	}
}
