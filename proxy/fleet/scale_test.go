package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scaleRules is the large list size the scale tests and benchmarks use
// (the 1,000,000 rules).
const scaleRules = 1_000_000

// largeList returns a list of n rules, about 30 bytes a line.
func largeList(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 30)
	for i := range n {
		fmt.Fprintf(&b, "blocked-host-%08d.example.com\n", i)
	}
	return b.Bytes()
}

// skipScale skips a test that handles a 1M-rule list unless asked for:
// EDGEBLOCK_SCALE=1 (.ci/run runs them once, without -race), never with
// -short or under the race detector.
func skipScale(t testing.TB) {
	t.Helper()
	if testing.Short() || raceEnabled || os.Getenv("EDGEBLOCK_SCALE") == "" {
		t.Skip("1M-rule list: set EDGEBLOCK_SCALE=1, without -short and -race")
	}
}

// usedMemory returns Redis's used_memory (INFO memory), in bytes.
func usedMemory(t testing.TB, r *redisServer) int64 {
	t.Helper()
	info, err := r.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no used_memory in INFO memory:\n%s", info)
	return 0
}

// TestScaleRedisMemory: 100 one-rule edits of a 1M-rule list cost Redis a
// small multiple of one list (snapshots every SnapshotEvery versions and
// small patches), not 100 lists; and a writer reads the head of such a
// store (one snapshot and at most SnapshotEvery-1 patches) quickly.
//
//	EDGEBLOCK_SCALE=1 go test -count=1 -run TestScaleRedisMemory -v ./proxy/fleet
func TestScaleRedisMemory(t *testing.T) {
	skipScale(t)
	r := startRedis(t)
	c, cfg := newTestClient(t, r.Addr(), "")
	s := NewStore(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	list := largeList(scaleRules)
	empty := usedMemory(t, r)
	if _, err := s.Publish(ctx, list, Meta{Actor: "seed"}, 0); err != nil {
		t.Fatal(err)
	}
	one := usedMemory(t, r) - empty
	var writes, heads []time.Duration
	for i := range 100 {
		// A fresh Store each time, as each CLI command is a new process:
		// it reads the head from the store, not from memory.
		w := NewStore(c, cfg)
		start := time.Now()
		if _, err := w.Update(ctx, func(cur []byte) ([]byte, error) {
			return append(cur[:len(cur):len(cur)], fmt.Sprintf("edit-%d.example\n", i)...), nil
		}, Meta{Actor: "ops"}); err != nil {
			t.Fatal(err)
		}
		writes = append(writes, time.Since(start))
		if i%10 == 0 {
			start = time.Now()
			if _, _, err := NewStore(c, cfg).Head(ctx); err != nil {
				t.Fatal(err)
			}
			heads = append(heads, time.Since(start))
		}
	}
	all := usedMemory(t, r) - empty
	n, _ := c.ZCard(ctx, "edgeblock:list:versions").Result()
	var keys int64
	nums, _ := c.ZRange(ctx, "edgeblock:list:versions", 0, -1).Result()
	for _, num := range nums {
		b, err := r.Client().MemoryUsage(ctx, "edgeblock:list:v:"+num, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		keys += b
	}
	t.Logf("MEMORY USAGE of the %d version hashes: %d MB (%.1f lists of %d MB)", len(nums), keys>>20, float64(keys)/float64(len(list)), len(list)>>20)
	t.Logf("1M rules, list %d bytes: Redis used_memory for one version %d MB; after 100 one-rule edits (%d versions kept) %d MB = %.1f lists",
		len(list), one>>20, n, all>>20, float64(all)/float64(one))
	w50, w99, _ := percentiles(writes)
	h50, h99, _ := percentiles(heads)
	t.Logf("Update (read the head, add a line, write; a fresh Store each) p50 %v p99 %v; Head from a fresh Store p50 %v p99 %v", w50, w99, h50, h99)
	if limit := int64(101/SnapshotEvery+2) * one; all > limit {
		t.Errorf("Redis holds %d MB after 100 one-rule edits; want at most %d MB (%d lists)", all>>20, limit>>20, limit/one)
	}
}
