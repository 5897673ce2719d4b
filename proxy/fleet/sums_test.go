package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestSumOfMatches: the hash of an edit resumed from its parent's states
// is crypto/sha256's of the whole edit, for edits anywhere (the first
// byte, around each stride, the end), growing and shrinking the content,
// chained (each edit resumes from the states the last one left), and
// from no states at all.
func TestSumOfMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return b
	}
	at := func(n int) int { // a place in content of length n, often at a stride's edge
		switch rng.IntN(4) {
		case 0:
			k := sumStride * rng.IntN(n/sumStride+1)
			return min(n, max(0, k+rng.IntN(3)-1))
		case 1:
			return n
		case 2:
			return 0
		}
		return rng.IntN(n + 1)
	}
	edits := []struct {
		name string
		do   func(b []byte) []byte
	}{
		{"append a line", func(b []byte) []byte { return slices.Concat(b, []byte("new.example\n")) }},
		{"insert", func(b []byte) []byte { i := at(len(b)); return slices.Concat(b[:i], randBytes(1+rng.IntN(100)), b[i:]) }},
		{"delete", func(b []byte) []byte {
			i := at(len(b))
			j := min(len(b), i+rng.IntN(200))
			return slices.Concat(b[:i], b[j:])
		}},
		{"change a byte", func(b []byte) []byte {
			if len(b) == 0 {
				return []byte("x")
			}
			c := slices.Clone(b)
			c[min(at(len(b)), len(b)-1)] ^= 1
			return c
		}},
		{"truncate", func(b []byte) []byte { return slices.Clone(b[:at(len(b))]) }},
		{"replace whole", func(b []byte) []byte { return randBytes(rng.IntN(3 * sumStride)) }},
	}
	checked := 0
	for round := range 12 {
		content := randBytes([]int{0, 100, sumStride, sumStride + 1, 3*sumStride - 1, 4*sumStride + 777}[round%6])
		sum, ps := hashKeeping(content)
		if sum != sha256.Sum256(content) {
			t.Fatalf("hashKeeping of %d bytes differs from sha256", len(content))
		}
		if want := len(content) / sumStride; len(ps.states) != want {
			t.Fatalf("%d bytes: %d states kept, want %d", len(content), len(ps.states), want)
		}
		for range 6 {
			e := edits[rng.IntN(len(edits))]
			next := e.do(content)
			got, nps := ps.sumOf(next)
			if want := sha256.Sum256(next); got != want {
				t.Fatalf("round %d, %s (%d -> %d bytes, shared prefix %d): %x, want %x", round, e.name, len(content), len(next), commonPrefixLen(content, next), got, want)
			}
			if nps == nil || !bytes.Equal(nps.content, next) || len(nps.states) != len(next)/sumStride {
				t.Fatalf("round %d, %s: the states left for the next edit do not cover its %d bytes", round, e.name, len(next))
			}
			content, ps = next, nps
			checked++
		}
	}
	var none *prefixSums
	if got, _ := none.sumOf([]byte("a\n")); got != sha256.Sum256([]byte("a\n")) {
		t.Errorf("sumOf without states: %x", got)
	}
	t.Logf("%d edits checked", checked)
}

// TestCommitHashesFromParent: a version published through Update as an
// edit of the one read records the SHA-256 of its whole content (a
// Store that reads it afresh checks it, as every edge does), also when
// the edit resumes the hash the read's check left; and a corrupt current
// version is still refused.
func TestCommitHashesFromParent(t *testing.T) {
	s, r := newTestStore(t)
	ctx := ctxT(t)
	base := bytes.Repeat([]byte("site.example\n"), 3*sumStride/13+5) // over 3 strides
	if _, err := s.Publish(ctx, base, Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	edits := []func(cur []byte) []byte{
		func(cur []byte) []byte { return slices.Concat(cur, []byte("new.example\n")) },
		func(cur []byte) []byte {
			return slices.Concat(cur[:2*sumStride+13], []byte("mid.example\n"), cur[2*sumStride+13:])
		},
		func(cur []byte) []byte { return slices.Concat([]byte("first.example\n"), cur) },
		func(cur []byte) []byte { return slices.Clone(cur[:len(cur)-13]) },
	}
	for i, edit := range edits {
		var want []byte
		v, err := s.Update(ctx, func(cur []byte) ([]byte, error) {
			want = edit(cur)
			return want, nil
		}, Meta{Comment: fmt.Sprint("edit ", i)})
		if err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
		sum := sha256.Sum256(want)
		if v.SHA256 != hex.EncodeToString(sum[:]) || !bytes.Equal(v.Content, want) {
			t.Fatalf("edit %d: version %d records sha256 %.12s, its content hashes to %x", i, v.Number, v.SHA256, sum[:6])
		}
		c, cfg := newTestClient(t, r.Addr(), "")
		got, err := NewStore(c, cfg).Get(ctx, v.Number) // a fresh reader checks the hash
		if err != nil || !bytes.Equal(got.Content, want) {
			t.Fatalf("edit %d: a fresh Store reads version %d: %v", i, v.Number, err)
		}
	}
	// The check of the version read stays: a current version whose
	// content does not match its hash is not built on.
	n, err := s.CurrentNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := s.k.vprefix + fmt.Sprint(n)
	if err := r.Client().HSet(ctx, key, "sha256", hex.EncodeToString(make([]byte, 32))).Err(); err != nil {
		t.Fatal(err)
	}
	c, cfg := newTestClient(t, r.Addr(), "")
	fresh := NewStore(c, cfg)
	if v, err := fresh.Update(ctx, func(cur []byte) ([]byte, error) { return slices.Concat(cur, []byte("x.example\n")), nil }, Meta{}); err == nil && v.Parent != "" && v.ParentNumber == n {
		t.Fatalf("an edit was published on version %d, whose content does not match its recorded hash", n)
	}
}

// BenchmarkWriterEdit measures a writer's one-rule edit of a 1M-rule list
// as the block -fleet command makes it: a Store of its own reads the
// current version (its snapshot and patches, and the check of its hash),
// and publishes the edit (its hash, its patch); the edit appends a line
// (NEW) or changes one in the middle (MID).
//
//	go test -run '^$' -bench WriterEdit -benchtime 20x ./proxy/fleet
func BenchmarkWriterEdit(b *testing.B) {
	r := startRedis(b)
	c, cfg := newTestClient(b, r.Addr(), "")
	ctx := context.Background()
	if _, err := NewStore(c, cfg).Publish(ctx, largeList(scaleRules), Meta{}, 0); err != nil {
		b.Fatal(err)
	}
	for _, where := range []string{"NEW", "MID"} {
		b.Run(where, func(b *testing.B) {
			i := 0
			start := processCPU()
			for b.Loop() {
				i++
				_, err := NewStore(c, cfg).Update(ctx, func(cur []byte) ([]byte, error) {
					line := fmt.Appendf(nil, "edit-%s-%d.example\n", where, i)
					if where == "NEW" {
						return slices.Concat(cur, line), nil
					}
					mid := bytes.IndexByte(cur[len(cur)/2:], '\n') + len(cur)/2 + 1
					return slices.Concat(cur[:mid], line, cur[mid:]), nil
				}, Meta{})
				if err != nil {
					b.Fatal(err)
				}
			}
			// The process's CPU time (user and system) per edit: the
			// writer's work, whatever else the machine runs.
			b.ReportMetric(float64((processCPU()-start).Microseconds())/1000/float64(i), "cpu-ms/op")
		})
	}
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
