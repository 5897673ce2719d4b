package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// testList returns a list of n lines.
func testList(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "host-%06d.example\n", i)
	}
	return b.Bytes()
}

// addLine is an Update function adding one line.
func addLine(line string) func([]byte) ([]byte, error) {
	return func(cur []byte) ([]byte, error) {
		return append(bytes.Clone(cur), line+"\n"...), nil
	}
}

// storedAs returns how version n is stored: "content" or "patch", and
// the stored field's size.
func storedAs(t *testing.T, raw *redis.Client, prefix string, n int64) (string, int64) {
	t.Helper()
	key := prefix + "list:v:" + strconv.FormatInt(n, 10)
	ctx := context.Background()
	if l, _ := raw.HStrLen(ctx, key, "content").Result(); l > 0 {
		return "content", l
	}
	l, err := raw.HStrLen(ctx, key, "patch").Result()
	if err != nil || l == 0 {
		t.Fatalf("version %d: neither content nor patch stored (%v)", n, err)
	}
	return "patch", l
}

// TestVersionsStoredAsPatches: one-line edits of a list are stored as
// patches of about a line, with a snapshot every SnapshotEvery versions;
// every version reads back whole, by Get (from the snapshot), by Next
// (from the version before) and in History.
func TestVersionsStoredAsPatches(t *testing.T) {
	s, r := newTestStore(t)
	raw := r.Client()
	ctx := ctxT(t)
	list := testList(1000)
	if _, err := s.Publish(ctx, list, Meta{Actor: "seed"}, 0); err != nil {
		t.Fatal(err)
	}
	want := map[int64][]byte{1: list}
	const edits = SnapshotEvery + 5
	for i := range edits {
		v, err := s.Update(ctx, addLine(fmt.Sprintf("blocked-%d.example", i)), Meta{Actor: "ops"})
		if err != nil {
			t.Fatal(err)
		}
		want[v.Number] = v.Content
	}
	for n := int64(1); n <= edits+1; n++ {
		kind, size := storedAs(t, raw, "edgeblock:", n)
		wantKind := "patch"
		if (n-1)%SnapshotEvery == 0 {
			wantKind = "content"
		}
		if kind != wantKind {
			t.Errorf("version %d stored as %s, want %s", n, kind, wantKind)
		}
		if kind == "patch" && size > 64 {
			t.Errorf("version %d: a one-line edit stored as a %d-byte patch", n, size)
		}
		fresh := NewStore(s.rdb, Config{})
		v, err := fresh.Get(ctx, n)
		if err != nil || !bytes.Equal(v.Content, want[n]) {
			t.Fatalf("Get(%d) from a fresh store: %v, content equal %v", n, err, bytes.Equal(v.Content, want[n]))
		}
		if wantSnap := (n-1)/SnapshotEvery*SnapshotEvery + 1; v.Snapshot != wantSnap || v.Chain != int(n-wantSnap) {
			t.Errorf("version %d: Snapshot %d, Chain %d; want %d, %d", n, v.Snapshot, v.Chain, wantSnap, n-wantSnap)
		}
	}
	// An edge following from version 1 reads each version as one patch.
	follower := NewStore(s.rdb, Config{})
	follower.Remember(1, list)
	for n := int64(2); n <= edits+1; n++ {
		v, err := follower.Next(ctx, n)
		if err != nil || !bytes.Equal(v.Content, want[n]) || v.Actor != "ops" {
			t.Fatalf("Next(%d): %v, content equal %v, actor %q", n, err, bytes.Equal(v.Content, want[n]), v.Actor)
		}
	}
	h, err := NewStore(s.rdb, Config{}).History(ctx, 0)
	if err != nil || len(h) != edits+1 {
		t.Fatalf("History: %d versions, %v; want %d", len(h), err, edits+1)
	}
	for _, v := range h {
		if v.Problem != nil || !bytes.Equal(v.Content, want[v.Number]) {
			t.Errorf("History: version %d: problem %v, content equal %v", v.Number, v.Problem, bytes.Equal(v.Content, want[v.Number]))
		}
	}
}

// TestStorageChoice: what is stored whole and what as a patch.
func TestStorageChoice(t *testing.T) {
	list := testList(100)
	base := &Version{Number: 7, SHA256: "x", Content: list, Snapshot: 7}
	other := testList(300)[2000:]
	cases := []struct {
		name    string
		content []byte
		base    *Version
		kind    Kind
		patch   bool
	}{
		{"no base", list, nil, KindEdit, false},
		{"one line added", append(bytes.Clone(list), "x.example\n"...), base, KindEdit, true},
		{"rollback of one line", list[:len(list)-19], base, KindRollback, true},
		{"forced one line", append(bytes.Clone(list), "x.example\n"...), base, KindForce, true},
		{"reseed", append(bytes.Clone(list), "x.example\n"...), base, KindReseed, false},
		{"mostly different", other, base, KindEdit, false},
		{"chain full", append(bytes.Clone(list), "x.example\n"...), &Version{Number: 7, Content: list, Snapshot: 1, Chain: SnapshotEvery - 1}, KindEdit, false},
		{"chain bytes at half the list", append(bytes.Clone(list), "x.example\n"...), &Version{Number: 7, Content: list, Snapshot: 1, Chain: 3, ChainBytes: int64(len(list)) / 2}, KindEdit, false},
		{"repaired base", append(bytes.Clone(list), "x.example\n"...), &Version{Number: 7, Content: list, Snapshot: 7, Repaired: true}, KindEdit, false},
		{"base without content", append(bytes.Clone(list), "x.example\n"...), &Version{Number: 7, Snapshot: 7}, KindEdit, false},
	}
	for _, c := range cases {
		st := planStorage(c.content, c.base, c.kind)
		if (st.patch != nil) != c.patch {
			t.Errorf("%s: stored as a patch: %v, want %v", c.name, st.patch != nil, c.patch)
		}
		if st.patch != nil {
			if got, err := applyPatch(c.base.Content, st.patch); err != nil || !bytes.Equal(got, c.content) {
				t.Errorf("%s: the patch does not make the content (%v)", c.name, err)
			}
			if st.chain != c.base.Chain+1 || st.snapshot != c.base.Snapshot {
				t.Errorf("%s: chain %d from %d; want %d from %d", c.name, st.chain, st.snapshot, c.base.Chain+1, c.base.Snapshot)
			}
		}
	}
}

// TestTrimKeepsTheSnapshotKeptVersionsNeed: trimming to Keep versions
// keeps the snapshot (and the patches after it) that the oldest kept
// version is rebuilt from, and drops everything older.
func TestTrimKeepsTheSnapshotKeptVersionsNeed(t *testing.T) {
	r := startRedis(t)
	c, cfg := newTestClient(t, r.Addr(), "")
	cfg.Keep = 5
	s := NewStore(c, cfg)
	ctx := ctxT(t)
	if _, err := s.Publish(ctx, testList(200), Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	const total = SnapshotEvery + 3 // versions 1..35; 33 is a snapshot
	for i := 1; i < total; i++ {
		if _, err := s.Update(ctx, addLine(fmt.Sprint("b", i)), Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	// Keep 5: the newest are 31..35, and 31 and 32 are rebuilt from
	// snapshot 1, so nothing is dropped yet.
	if n, _ := c.ZCard(ctx, "edgeblock:list:versions").Result(); n != total {
		t.Fatalf("%d versions kept, want all %d (the oldest kept needs snapshot 1)", n, total)
	}
	for i := 0; i < 5; i++ {
		if _, err := s.Update(ctx, addLine(fmt.Sprint("c", i)), Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	nums, err := c.ZRange(ctx, "edgeblock:list:versions", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Now versions 36..40 are the newest five, rebuilt from snapshot 33:
	// 33..40 are kept, 1..32 dropped.
	if got := strings.Join(nums, ","); got != "33,34,35,36,37,38,39,40" {
		t.Fatalf("kept versions %s, want 33..40", got)
	}
	if n, _ := c.Exists(ctx, "edgeblock:list:v:32").Result(); n != 0 {
		t.Fatal("version 32 still stored")
	}
	fresh := NewStore(c, cfg)
	for _, num := range nums {
		n, _ := strconv.ParseInt(num, 10, 64)
		if _, err := fresh.Get(ctx, n); err != nil {
			t.Fatalf("kept version %d: %v", n, err)
		}
	}
}

// TestPatchOverLegacyVersion: versions stored whole by an older
// edgeblock (no snapshot fields) are read as snapshots, and the next
// edit is a patch over them.
func TestPatchOverLegacyVersion(t *testing.T) {
	s, r := newTestStore(t)
	raw := r.Client()
	ctx := ctxT(t)
	list := testList(100)
	if err := raw.HSet(ctx, "edgeblock:list:v:1", "content", list, "sha256", sum(string(list)), "version", 1, "actor", "old", "comment", "", "time", "1").Err(); err != nil {
		t.Fatal(err)
	}
	raw.ZAdd(ctx, "edgeblock:list:versions", redis.Z{Score: 1, Member: "1"})
	raw.Set(ctx, "edgeblock:list:version", 1, 0)
	v, err := s.Update(ctx, addLine("new.example"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if kind, _ := storedAs(t, raw, "edgeblock:", v.Number); kind != "patch" {
		t.Fatalf("the edit over a legacy version stored as %s", kind)
	}
	got, err := NewStore(s.rdb, Config{}).Get(ctx, v.Number)
	if err != nil || !bytes.Equal(got.Content, append(bytes.Clone(list), "new.example\n"...)) || got.Snapshot != 1 {
		t.Fatalf("Get: %v (snapshot %d)", err, got.Snapshot)
	}
}

// TestDamagedChain: a patch that does not apply, or does not make its
// recorded hash, makes that version and the ones rebuilt through it
// corrupt (naming it); writers build on the last good version, as a
// snapshot; an edge that holds the version before still gets a good
// version by Next only when the damage is not on its way.
func TestDamagedChain(t *testing.T) {
	for _, c := range []struct {
		name  string
		patch []byte
	}{
		{"patch of another content", makePatch([]byte("a\n"), []byte("b\n"))},
		{"garbage", []byte("not a patch")},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, r := newTestStore(t)
			raw := r.Client()
			ctx := ctxT(t)
			list := testList(100)
			s.Publish(ctx, list, Meta{}, 0)
			for i := range 3 {
				if _, err := s.Update(ctx, addLine(fmt.Sprint("b", i)), Meta{}); err != nil {
					t.Fatal(err)
				}
			}
			// Versions 1 (whole) .. 4; damage 3.
			if err := raw.HSet(ctx, "edgeblock:list:v:3", "patch", c.patch).Err(); err != nil {
				t.Fatal(err)
			}
			fresh := NewStore(s.rdb, Config{})
			for _, n := range []int64{3, 4} {
				_, err := fresh.Get(ctx, n)
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "version 3") {
					t.Errorf("Get(%d): %v; want ErrCorrupt naming version 3", n, err)
				}
			}
			head, bad, err := fresh.Head(ctx)
			if err != nil || head.Number != 2 || len(bad) != 2 {
				t.Fatalf("Head: %d, %d bad, %v; want 2 with 3 and 4 bad", head.Number, len(bad), err)
			}
			v, err := fresh.Update(ctx, addLine("after.example"), Meta{})
			if err != nil || v.ParentNumber != 2 {
				t.Fatalf("Update: %v, parent %d; want a version over 2", err, v.ParentNumber)
			}
			got, err := NewStore(s.rdb, Config{}).Get(ctx, v.Number)
			if err != nil || !bytes.Contains(got.Content, []byte("after.example")) || bytes.Contains(got.Content, []byte("b2")) {
				t.Fatalf("the version after the damage: %v", err)
			}
		})
	}
}

// TestNextUsesTheRememberedList: an edge that remembers the list in
// effect reads the next version as its patch, without the snapshot (here
// made unreadable to prove it), and one that remembers a wrong list falls
// back to the snapshot.
func TestNextUsesTheRememberedList(t *testing.T) {
	s, r := newTestStore(t)
	raw := r.Client()
	ctx := ctxT(t)
	list := testList(100)
	s.Publish(ctx, list, Meta{}, 0)
	v2, err := s.Update(ctx, addLine("two.example"), Meta{Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	// An unblock: a line goes in the middle, a record comes at the end. Its
	// patch has two hunks, and it too is applied to the list the edge has.
	v3, err := s.Update(ctx, func(cur []byte) ([]byte, error) {
		line := []byte("host-000050.example\n")
		i := bytes.Index(cur, line)
		out := slices.Concat(cur[:i], cur[i+len(line):], []byte("#@ 2026-12-01T00:00:00Z by ops unblocked host-000050.example\n"))
		return out, nil
	}, Meta{Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	edge := NewStore(s.rdb, Config{})
	edge.Remember(1, list)
	wrong := NewStore(s.rdb, Config{})
	wrong.Remember(1, []byte("not the list\n"))
	if got, err := wrong.Next(ctx, 2); err != nil || !bytes.Equal(got.Content, v2.Content) {
		t.Fatalf("Next from a wrong remembered list: %v", err)
	}
	// Damage the snapshot: Get fails, Next from the remembered list does not.
	if err := raw.HSet(ctx, "edgeblock:list:v:1", "content", "damaged\n").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(s.rdb, Config{}).Get(ctx, 2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get over a damaged snapshot: %v, want ErrCorrupt", err)
	}
	got, err := edge.Next(ctx, 2)
	if err != nil || !bytes.Equal(got.Content, v2.Content) || got.Actor != "ops" || got.Number != 2 {
		t.Fatalf("Next from the remembered list: %+v, %v", got, err)
	}
	patch, err := raw.HGet(ctx, "edgeblock:list:v:3", "patch").Bytes()
	if err != nil {
		t.Fatalf("version 3 not stored as a patch: %v", err)
	}
	if _, hs, err := decodePatch(patch, len(v2.Content)); err != nil || len(hs) != 2 {
		t.Fatalf("the unblock's patch: %d hunks (%v), want 2", len(hs), err)
	}
	if got, err := edge.Next(ctx, 3); err != nil || !bytes.Equal(got.Content, v3.Content) {
		t.Fatalf("Next of a two-hunk patch from the remembered list: %v", err)
	}
}

// TestValidatedVersionsNotParsedAgain: a version whose writer recorded
// that it validated it is not validated again by readers (a 1M-rule list
// takes seconds to parse); one without the record, or written by Publish,
// is.
func TestValidatedVersionsNotParsedAgain(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := ctxT(t)
	var checked []string
	s.Validate = func(content []byte) error {
		checked = append(checked, string(content))
		if bytes.Contains(content, []byte("bad")) {
			return errors.New("bad line")
		}
		return nil
	}
	s.EditsValidate = true
	if _, err := s.Publish(ctx, []byte("a.example\n"), Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	checked = nil
	v, err := s.Update(ctx, addLine("b.example"), Meta{})
	if err != nil || !v.Validated {
		t.Fatalf("Update: %v, validated %v", err, v.Validated)
	}
	if len(checked) != 1 || checked[0] != "a.example\n" {
		t.Fatalf("Update validated %q; want only the unmarked head", checked)
	}
	checked = nil
	head, _, err := NewStore(s.rdb, Config{}).Head(ctx)
	if err != nil || !head.Validated {
		t.Fatalf("Head: %v, validated %v", err, head.Validated)
	}
	if _, _, err := s.Head(ctx); err != nil || len(checked) != 0 {
		t.Fatalf("Head of a validated version: %v, validated again %q", err, checked)
	}
	// An unmarked invalid version is validated and skipped.
	if _, err := s.Publish(ctx, []byte("a.example\nb.example\nbad\n"), Meta{}, 2); err != nil {
		t.Fatal(err)
	}
	head, bad, err := s.Head(ctx)
	if err != nil || head.Number != 2 || len(bad) != 1 || !errors.Is(bad[0].Problem, ErrInvalid) {
		t.Fatalf("Head over an unmarked invalid version: %d, %v, %v", head.Number, bad, err)
	}
}

// TestNextHashesFromTheRememberedList: an edge that follows the fleet
// checks each version's SHA-256 resuming from the hash states of the
// version it has (the prefix the two share is not hashed again: the
// states of that prefix are the ones it kept), and a version whose
// recorded SHA-256 does not match its content is still refused.
func TestNextHashesFromTheRememberedList(t *testing.T) {
	s, r := newTestStore(t)
	raw := r.Client()
	ctx := ctxT(t)
	list := testList(150000) // 3 MB: three hash states
	if _, err := s.Publish(ctx, list, Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	edge := NewStore(s.rdb, Config{})
	v1, err := edge.Get(ctx, 1)
	if err != nil || v1.sums == nil || len(v1.sums.states) != len(list)/sumStride {
		t.Fatalf("Get: %v (states %v)", err, v1.sums)
	}
	if _, err := s.Update(ctx, addLine("two.example"), Meta{Actor: "ops"}); err != nil {
		t.Fatal(err)
	}
	v2, err := edge.Next(ctx, 2)
	if err != nil || !bytes.Equal(v2.Content, append(bytes.Clone(list), "two.example\n"...)) {
		t.Fatalf("Next(2): %v", err)
	}
	if v2.sums == nil || len(v2.sums.states) != len(v1.sums.states) {
		t.Fatalf("Next(2) kept %v hash states, want %d", v2.sums, len(v1.sums.states))
	}
	for i := range v2.sums.states {
		if &v2.sums.states[i][0] != &v1.sums.states[i][0] {
			t.Fatalf("state %d of version 2 was computed again, not resumed from version 1's", i)
		}
	}
	// Version 3 is a real edit whose recorded SHA-256 is then damaged:
	// the resumed check must refuse it as a full one would.
	if _, err := s.Update(ctx, addLine("three.example"), Meta{Actor: "ops"}); err != nil {
		t.Fatal(err)
	}
	bad := sha256.Sum256([]byte("something else"))
	if err := raw.HSet(ctx, "edgeblock:list:v:3", "sha256", hex.EncodeToString(bad[:])).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := edge.Next(ctx, 3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next(3) with a wrong recorded SHA-256: %v, want ErrCorrupt", err)
	}
}
