package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func sum(s string) string {
	b := sha256.Sum256([]byte(s))
	return hex.EncodeToString(b[:])
}

// TestDescends: which versions an edge running base may apply.
func TestDescends(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)
	// 1 <- 2 <- 3 (a chain), 4 built on 2 (3 skipped as bad), 5 a
	// rollback over 4, 6 a genesis (no parent: the store restarted).
	v1, _ := s.Publish(ctx, []byte("a\n"), Meta{}, 0)
	v2, _ := s.Publish(ctx, []byte("a\nb\n"), Meta{}, 1)
	v3, _ := s.Publish(ctx, []byte("a\nb\nc\n"), Meta{}, 2)
	v4, err := s.Commit(ctx, []byte("a\nb\nd\n"), Meta{}, Write{Expect: 3, Base: &v2})
	if err != nil {
		t.Fatal(err)
	}
	v5, err := s.Commit(ctx, []byte("a\n"), Meta{}, Write{Expect: 4, Kind: KindRollback})
	if err != nil {
		t.Fatal(err)
	}
	v6, err := s.Commit(ctx, []byte("z\n"), Meta{}, Write{Expect: 5, Base: &Version{}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		v    Version
		base int64
		sha  string
		want bool
		why  string
	}{
		{"child", v2, 1, v1.SHA256, true, ""},
		{"grandchild", v3, 1, v1.SHA256, true, ""},
		{"same number, same list", v2, 2, v2.SHA256, true, ""},
		{"same number reused", v2, 2, sum("other\n"), false, "number was reused"},
		{"parent number reused", v3, 2, sum("other\n"), false, "number was reused"},
		{"skips a bad version", v4, 2, v2.SHA256, true, ""},
		{"built below the base", v4, 3, v3.SHA256, false, "older than version 3"},
		{"rollback is explicit", v5, 3, v3.SHA256, true, "rollback"},
		{"new history", v6, 5, v5.SHA256, false, "new history"},
		{"older than the base", v1, 2, v2.SHA256, false, "older than version 2"},
		{"no base", v3, 0, "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why, err := s.Descends(ctx, tt.v, tt.base, tt.sha)
			if err != nil || ok != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("Descends(v%d, %d) = %v, %q, %v; want %v, %q", tt.v.Number, tt.base, ok, why, err, tt.want, tt.why)
			}
		})
	}
	if v2.Parent != v1.SHA256 || v2.ParentNumber != 1 || v2.Kind != KindEdit || v4.ParentNumber != 2 || v5.Kind != KindRollback || v6.ParentNumber != 0 {
		t.Errorf("recorded: v2 %q/%d/%s, v4 parent %d, v5 %s, v6 parent %d", v2.Parent, v2.ParentNumber, v2.Kind, v4.ParentNumber, v5.Kind, v6.ParentNumber)
	}
	got, err := s.Get(ctx, 4)
	if err != nil || got.Parent != v2.SHA256 || got.ParentNumber != 2 || got.Legacy {
		t.Errorf("Get(4) = parent %q/%d legacy %v, %v", got.Parent, got.ParentNumber, got.Legacy, err)
	}
}

// TestLegacyVersionsAreABase: data written before parents were recorded
// (no parent fields) keeps working: it is the head writers build on, a
// chain that reaches it descends, and the next write records its parent.
func TestLegacyVersionsAreABase(t *testing.T) {
	s, r := newTestStore(t)
	ctx := ctxT(t)
	raw := r.Client()
	for n, content := range []string{"a\n", "a\nb\n"} {
		num := int64(n + 1)
		key := "edgeblock:list:v:" + string(rune('0'+num))
		if err := raw.HSet(ctx, key, "content", content, "sha256", sum(content), "version", num, "actor", "old", "comment", "", "time", "1").Err(); err != nil {
			t.Fatal(err)
		}
		raw.ZAdd(ctx, "edgeblock:list:versions", redisZ(num))
		raw.Set(ctx, "edgeblock:list:version", num, 0)
	}
	head, bad, err := s.Head(ctx)
	if err != nil || head.Number != 2 || !head.Legacy || len(bad) != 0 {
		t.Fatalf("Head = v%d legacy %v, bad %v, %v; want legacy version 2", head.Number, head.Legacy, bad, err)
	}
	v, err := s.Update(ctx, func(cur []byte) ([]byte, error) { return append(cur, "c\n"...), nil }, Meta{})
	if err != nil || v.Number != 3 || v.Parent != sum("a\nb\n") || v.ParentNumber != 2 {
		t.Fatalf("Update on legacy data = v%d parent %q/%d, %v", v.Number, v.Parent, v.ParentNumber, err)
	}
	// An edge on legacy version 1 may apply 3: the chain reaches a
	// legacy version, trusted as a base.
	if ok, why, err := s.Descends(ctx, v, 1, sum("a\n")); !ok || err != nil || !strings.Contains(why, "no recorded parent") {
		t.Errorf("Descends(v3, 1) = %v, %q, %v; want true through legacy version 2", ok, why, err)
	}
}

// TestCheckDivergence: the store judged against heartbeats.
func TestCheckDivergence(t *testing.T) {
	s, r := newTestStore(t)
	ctx := ctxT(t)
	v1, _ := s.Publish(ctx, []byte("a\n"), Meta{}, 0)
	v2, _ := s.Publish(ctx, []byte("a\nb\n"), Meta{}, 1)
	tests := []struct {
		name string
		hb   Heartbeat
		why  string // "" for not divergent
	}{
		{"current", Heartbeat{Version: 2, SHA256: v2.SHA256}, ""},
		{"behind", Heartbeat{Version: 1, SHA256: v1.SHA256}, ""},
		{"ahead of the store", Heartbeat{Version: 7, SHA256: sum("x\n")}, "newer than the store's newest, 2"},
		{"number reused", Heartbeat{Version: 2, SHA256: sum("x\n")}, "the number was reused"},
		{"node says so", Heartbeat{Version: 2, SHA256: v2.SHA256, Divergence: "version 9 does not descend"}, "the node reports: version 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.hb.Node = "edge"
			if err := s.Beat(ctx, tt.hb); err != nil {
				t.Fatal(err)
			}
			h, err := s.Check(ctx, LiveAfter)
			if err != nil {
				t.Fatal(err)
			}
			werr := h.Writable()
			if tt.why == "" {
				if werr != nil {
					t.Errorf("Writable = %v, want nil", werr)
				}
				return
			}
			if !errors.Is(werr, ErrDivergent) || !strings.Contains(werr.Error(), tt.why) || !strings.Contains(werr.Error(), "fleet reseed") {
				t.Errorf("Writable = %v, want ErrDivergent saying %q", werr, tt.why)
			}
			if _, err := s.Update(ctx, func(cur []byte) ([]byte, error) { return append(cur, "c\n"...), nil }, Meta{}); !errors.Is(err, ErrDivergent) {
				t.Errorf("Update on a divergent store: %v, want ErrDivergent", err)
			}
		})
	}
	// An empty store with a live node ahead: divergent.
	if err := r.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s.Beat(ctx, Heartbeat{Node: "edge", Version: 2, SHA256: v2.SHA256})
	h, err := s.Check(ctx, LiveAfter)
	if err != nil || !strings.Contains(strings.Join(h.Divergence, ";"), "holds no version") {
		t.Errorf("empty store: %v, %v", h.Divergence, err)
	}
	// Silent nodes do not count.
	h, err = s.Check(ctx, 0)
	if err != nil || h.Writable() != nil {
		t.Errorf("with the node silent: %v, %v", h.Divergence, err)
	}
}

func redisZ(n int64) redis.Z { return redis.Z{Score: float64(n), Member: n} }
