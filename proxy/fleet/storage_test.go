package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTestStorages returns n Storages on one Redis, each with its own client,
// as on n nodes.
func newTestStorages(t *testing.T, n int) []*Storage {
	t.Helper()
	ss, _ := newTestStoragesOn(t, n)
	return ss
}

// newTestStoragesOn is newTestStorages that also returns the server.
func newTestStoragesOn(t *testing.T, n int) ([]*Storage, *redisServer) {
	t.Helper()
	r := startRedis(t)
	var out []*Storage
	for i := 0; i < n; i++ {
		c, cfg := newTestClient(t, r.Addr(), "")
		s := NewStorage(c, cfg)
		t.Cleanup(s.Close)
		out = append(out, s)
	}
	return out, r
}

func TestStorageFiles(t *testing.T) {
	s := newTestStorages(t, 1)[0]
	ctx := ctxT(t)

	files := map[string]string{
		"certificates/acme/a.example/a.example.crt": "cert a",
		"certificates/acme/a.example/a.example.key": "key a",
		"certificates/acme/b.example/b.example.crt": "cert b",
		"acme/ca/users/ops@example/ops.json":        "user",
		"last_clean.json":                           "{}",
	}
	before := time.Now().Add(-time.Minute)
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatalf("Store %s: %v", k, err)
		}
	}
	for k, v := range files {
		got, err := s.Load(ctx, k)
		if err != nil || string(got) != v {
			t.Fatalf("Load %s = %q, %v; want %q", k, got, err, v)
		}
	}
	// Overwrite.
	if err := s.Store(ctx, "last_clean.json", []byte(`{"t":1}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx, "last_clean.json"); string(got) != `{"t":1}` {
		t.Fatalf("after overwrite: %q", got)
	}

	notExist := []struct {
		op string
		fn func() error
	}{
		{"Load", func() error { _, err := s.Load(ctx, "certificates/nope.crt"); return err }},
		{"Stat", func() error { _, err := s.Stat(ctx, "certificates/nope.crt"); return err }},
		{"List", func() error { _, err := s.List(ctx, "nope", false); return err }},
		{"List recursive", func() error { _, err := s.List(ctx, "nope", true); return err }},
		// "certificates/acme/a" is a prefix of a name, not a directory.
		{"Stat partial component", func() error { _, err := s.Stat(ctx, "certificates/acme/a"); return err }},
	}
	for _, tc := range notExist {
		if err := tc.fn(); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s of a missing key: got %v, want errors.Is(err, fs.ErrNotExist)", tc.op, err)
		}
	}

	exists := []struct {
		key  string
		want bool
	}{
		{"certificates/acme/a.example/a.example.crt", true},
		{"certificates/acme/a.example", true},
		{"certificates", true},
		{"certificates/acme/a", false},
		{"certificates/acme/a.example/a.example.crt/x", false},
		{"nope", false},
	}
	for _, tc := range exists {
		if got := s.Exists(ctx, tc.key); got != tc.want {
			t.Errorf("Exists(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}

	lists := []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"certificates", false, []string{"certificates/acme"}},
		{"certificates/acme", false, []string{"certificates/acme/a.example", "certificates/acme/b.example"}},
		{"certificates/acme/a.example", false, []string{"certificates/acme/a.example/a.example.crt", "certificates/acme/a.example/a.example.key"}},
		{"certificates", true, []string{
			"certificates/acme", "certificates/acme/a.example",
			"certificates/acme/a.example/a.example.crt", "certificates/acme/a.example/a.example.key",
			"certificates/acme/b.example", "certificates/acme/b.example/b.example.crt",
		}},
		{"", false, []string{"acme", "certificates", "last_clean.json"}},
		{"last_clean.json", false, []string{}}, // a file lists as empty
	}
	for _, tc := range lists {
		got, err := s.List(ctx, tc.dir, tc.recursive)
		if err != nil {
			t.Errorf("List(%q, %v): %v", tc.dir, tc.recursive, err)
			continue
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %v) = %q, want %q", tc.dir, tc.recursive, got, tc.want)
		}
	}

	ki, err := s.Stat(ctx, "certificates/acme/a.example/a.example.key")
	if err != nil || !ki.IsTerminal || ki.Size != int64(len("key a")) || ki.Key != "certificates/acme/a.example/a.example.key" ||
		ki.Modified.Before(before) || ki.Modified.After(time.Now().Add(time.Minute)) {
		t.Fatalf("Stat(file) = %+v, %v", ki, err)
	}
	ki, err = s.Stat(ctx, "certificates/acme")
	if err != nil || ki.IsTerminal || ki.Key != "certificates/acme" {
		t.Fatalf("Stat(dir) = %+v, %v", ki, err)
	}

	// Delete: a file, then a directory recursively, then a missing key.
	if err := s.Delete(ctx, "certificates/acme/a.example/a.example.key"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "certificates/acme/a.example/a.example.key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load after Delete: %v", err)
	}
	if err := s.Delete(ctx, "certificates"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"certificates", "certificates/acme/a.example/a.example.crt", "certificates/acme/b.example"} {
		if s.Exists(ctx, k) {
			t.Errorf("%s exists after deleting its directory", k)
		}
	}
	if err := s.Delete(ctx, "certificates"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	// Others untouched.
	got, err := s.List(ctx, "", true)
	slices.Sort(got)
	if want := []string{"acme", "acme/ca", "acme/ca/users", "acme/ca/users/ops@example", "acme/ca/users/ops@example/ops.json", "last_clean.json"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("after deletes: List = %q, %v; want %q", got, err, want)
	}
	// Keys certmagic never makes are refused rather than half-handled.
	for _, bad := range []string{"", "/abs", "dir/"} {
		if err := s.Store(ctx, bad, []byte("x")); err == nil {
			t.Errorf("Store(%q) succeeded", bad)
		}
		if err := s.Delete(ctx, bad); err == nil {
			t.Errorf("Delete(%q) succeeded", bad)
		}
	}
}

func TestStorageConcurrentStores(t *testing.T) {
	ss := newTestStorages(t, 2)
	ctx := ctxT(t)
	// Concurrent writers to one key from two nodes: the result is one of
	// the written values whole, and its size matches.
	var wg sync.WaitGroup
	values := map[string]bool{}
	for i := 0; i < 20; i++ {
		v := fmt.Sprintf("value-%02d-%s", i, string(make([]byte, 1000*i)))
		values[v] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ss[i%2].Store(ctx, "k/file", []byte(v)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := ss[0].Load(ctx, "k/file")
	if err != nil || !values[string(got)] {
		t.Fatalf("Load after concurrent stores: %d bytes, %v: not one of the written values", len(got), err)
	}
	ki, err := ss[1].Stat(ctx, "k/file")
	if err != nil || ki.Size != int64(len(got)) {
		t.Fatalf("Stat = %+v, %v; want size %d", ki, err, len(got))
	}
}

func TestStorageLockMutualExclusion(t *testing.T) {
	ss := newTestStorages(t, 3) // three nodes
	ctx := ctxT(t)
	for _, s := range ss {
		s.LockPoll = 10 * time.Millisecond
	}
	var inside, maxInside, total atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := ss[i%len(ss)]
			if err := s.Lock(ctx, "issue_cert_a.example"); err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			total.Add(1)
			inside.Add(-1)
			if err := s.Unlock(ctx, "issue_cert_a.example"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 || total.Load() != 12 {
		t.Fatalf("%d holders at once (want 1), %d critical sections (want 12)", maxInside.Load(), total.Load())
	}

	// A different name is independent.
	if err := ss[0].Lock(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if ok, err := ss[1].TryLock(ctx, "two"); err != nil || !ok {
		t.Fatalf("TryLock of another name = %v, %v", ok, err)
	}
	if ok, err := ss[1].TryLock(ctx, "one"); err != nil || ok {
		t.Fatalf("TryLock of a held name = %v, %v; want false", ok, err)
	}
	// Lock honours its context while waiting.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := ss[2].Lock(short, "one"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held name with a short context: %v", err)
	}
}

func TestStorageLockRefreshAndExpiry(t *testing.T) {
	ss := newTestStorages(t, 2)
	a, b := ss[0], ss[1]
	ctx := ctxT(t)
	for _, s := range ss {
		s.LockTTL = 600 * time.Millisecond
		s.LockPoll = 20 * time.Millisecond
	}
	// While a holds and refreshes, the lock outlives several TTLs.
	if err := a.Lock(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * a.LockTTL)
	if ok, err := b.TryLock(ctx, "job"); err != nil || ok {
		t.Fatalf("b took a refreshed lock after 3 TTLs: %v, %v", ok, err)
	}
	// a dies (stops refreshing without unlocking): b gets the lock within
	// about one TTL.
	a.Close()
	died := time.Now()
	if err := b.Lock(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	waited := time.Since(died)
	t.Logf("lock taken over %v after its holder died (TTL %v)", waited, a.LockTTL)
	if waited > a.LockTTL+500*time.Millisecond {
		t.Fatalf("stale lock took %v to expire, TTL %v", waited, a.LockTTL)
	}
	// a's Unlock after it lost the lock must not release b's.
	if err := a.Unlock(ctx, "job"); err == nil {
		t.Fatal("a unlocked a lock it no longer holds")
	}
	if ok, _ := a.TryLock(ctx, "job"); ok {
		t.Fatal("b's lock was released by a")
	}
	if err := b.Unlock(ctx, "job"); err != nil {
		t.Fatalf("b's own Unlock: %v", err)
	}
	if ok, err := a.TryLock(ctx, "job"); err != nil || !ok {
		t.Fatalf("TryLock after b's Unlock = %v, %v; want true", ok, err)
	}
	if err := a.Unlock(ctx, "job"); err != nil {
		t.Fatal(err)
	}
}

func TestStorageUnlockOnlyOwnLock(t *testing.T) {
	ss, r := newTestStoragesOn(t, 2)
	a, b := ss[0], ss[1]
	ctx := ctxT(t)
	if err := a.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "x"); err == nil {
		t.Fatal("b released a lock it never held")
	}
	if ok, err := b.TryLock(ctx, "x"); err != nil || ok {
		t.Fatalf("after b's Unlock attempt, b.TryLock = %v, %v; want false (a still holds)", ok, err)
	}
	if err := a.Unlock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, "x"); err == nil {
		t.Fatal("second Unlock succeeded")
	}

	// a's hold vanishes behind its back (as when it expires while a is
	// cut off from Redis) and b takes the lock: a's Unlock, with a's
	// token, must leave b's lock alone.
	if err := a.Lock(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	if err := r.Client().Del(ctx, "edgeblock:certs/lock/y").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, "y"); err == nil {
		t.Fatal("a's Unlock of a lock b now holds succeeded")
	}
	if ok, err := a.TryLock(ctx, "y"); err != nil || ok {
		t.Fatalf("a.TryLock after a's stale Unlock = %v, %v; want false (b holds)", ok, err)
	}
	if err := b.Unlock(ctx, "y"); err != nil {
		t.Fatal(err)
	}
}

// TestStorageFencedCertificateWrites plays a failover that lost a
// certificate's lock: a second node takes it while the first still thinks
// it holds it. The first node's writes of that certificate's files are
// refused (ErrLockLost); the second's go through, so the stored
// certificate, key and metadata are all the second's. Files of other
// names, and writes without a lock, are not fenced.
func TestStorageFencedCertificateWrites(t *testing.T) {
	st, r := newTestStoragesOn(t, 2)
	a, b := st[0], st[1]
	ctx := ctxT(t)
	for _, tc := range []struct{ name, dir string }{
		{"a.example", "a.example"},
		{"*.w.example", "wildcard_.w.example"},
	} {
		lock := "issue_cert_" + tc.name
		if err := a.Lock(ctx, lock); err != nil {
			t.Fatal(err)
		}
		key := func(ext string) string { return "certificates/acme/" + tc.dir + "/" + tc.dir + ext }
		if err := a.Store(ctx, key(".key"), []byte("A")); err != nil {
			t.Fatalf("%s: the holder's write: %v", tc.name, err)
		}
		// The failover: the new primary never got the lock key.
		if err := r.Client().Del(ctx, a.locks+lock).Err(); err != nil {
			t.Fatal(err)
		}
		if err := b.Lock(ctx, lock); err != nil {
			t.Fatal(err)
		}
		for _, ext := range []string{".crt", ".key", ".json"} {
			if err := a.Store(ctx, key(ext), []byte("A")); !errors.Is(err, ErrLockLost) {
				t.Errorf("%s: the old holder's write of %s: %v, want ErrLockLost", tc.name, ext, err)
			}
			if err := b.Store(ctx, key(ext), []byte("B")); err != nil {
				t.Errorf("%s: the new holder's write of %s: %v", tc.name, ext, err)
			}
			if v, err := a.Load(ctx, key(ext)); err != nil || string(v) != "B" {
				t.Errorf("%s: stored %s = %q, %v; want the new holder's", tc.name, ext, v, err)
			}
		}
		// Not fenced: another name's files, and files outside certificates/.
		if err := a.Store(ctx, "certificates/acme/other.example/other.example.crt", []byte("A")); err != nil {
			t.Errorf("another name's file: %v", err)
		}
		if err := a.Store(ctx, "acme/account.json", []byte("A")); err != nil {
			t.Errorf("an account file: %v", err)
		}
		if err := b.Unlock(ctx, lock); err != nil {
			t.Error(err)
		}
		a.Unlock(ctx, lock) // expired: an error, and it changes nothing
	}
}

// TestStorageLockTakenBack: certmagic holds one lock across its retries of
// an order, so a holder whose lock key a failover lost (nobody else took
// it) must be able to store its certificate: the write takes the lock
// back. But if another holder took the lock meanwhile, wrote the name's
// files and let go, the first holder's writes stay refused (the stored
// files stay the other's whole set); files written before this hold began
// (an earlier certificate, being renewed) do not stand in the way.
func TestStorageLockTakenBack(t *testing.T) {
	st, r := newTestStoragesOn(t, 2)
	a, b := st[0], st[1]
	ctx := ctxT(t)
	raw := r.Client()
	key := func(name, ext string) string { return "certificates/acme/" + name + "/" + name + ext }
	load := func(name, ext string) string {
		t.Helper()
		v, err := a.Load(ctx, key(name, ext))
		if err != nil {
			t.Fatalf("load %s%s: %v", name, ext, err)
		}
		return string(v)
	}
	tests := []struct {
		name    string
		before  bool // files of an earlier certificate, by another holder, before the hold
		other   bool // another holder takes the lock, writes all files and unlocks
		want    error
		wantSet string // what every file holds at the end
	}{
		{name: "lost.example", wantSet: "A"},
		{name: "renewed.example", before: true, wantSet: "A"},
		{name: "taken.example", other: true, want: ErrLockLost, wantSet: "B"},
	}
	for _, tc := range tests {
		lock := "issue_cert_" + tc.name
		if tc.before {
			if err := b.Lock(ctx, lock); err != nil {
				t.Fatal(err)
			}
			for _, ext := range []string{".crt", ".key", ".json"} {
				if err := b.Store(ctx, key(tc.name, ext), []byte("old")); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Unlock(ctx, lock); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond) // Redis's clock moves on: the hold begins after
		}
		if err := a.Lock(ctx, lock); err != nil {
			t.Fatal(err)
		}
		if err := a.Store(ctx, key(tc.name, ".crt"), []byte("A")); err != nil {
			t.Fatalf("%s: the holder's first write: %v", tc.name, err)
		}
		// The failover: the new primary never got the lock key.
		if err := raw.Del(ctx, a.locks+lock).Err(); err != nil {
			t.Fatal(err)
		}
		if tc.other {
			if err := b.Lock(ctx, lock); err != nil {
				t.Fatal(err)
			}
			for _, ext := range []string{".crt", ".key", ".json"} {
				if err := b.Store(ctx, key(tc.name, ext), []byte("B")); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Unlock(ctx, lock); err != nil {
				t.Fatal(err)
			}
		}
		for _, ext := range []string{".key", ".json"} {
			err := a.Store(ctx, key(tc.name, ext), []byte("A"))
			if (tc.want == nil && err != nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s: the first holder's write of %s after the lock was lost: %v, want %v", tc.name, ext, err, tc.want)
			}
		}
		for _, ext := range []string{".crt", ".key", ".json"} {
			if got := load(tc.name, ext); got != tc.wantSet {
				t.Errorf("%s: stored %s = %q, want %q: the files are one holder's set", tc.name, ext, got, tc.wantSet)
			}
		}
		if tc.want == nil {
			// Taken back: the lock holds a's token again, so b waits.
			if ok, err := b.TryLock(ctx, lock); err != nil || ok {
				t.Errorf("%s: another holder took the lock the write took back: %v, %v", tc.name, ok, err)
			}
			if err := a.Unlock(ctx, lock); err != nil {
				t.Errorf("%s: unlock after taking it back: %v", tc.name, err)
			}
		} else {
			a.Unlock(ctx, lock) // gone: an error, and it changes nothing
		}
	}
}

// TestStorageOrdering: a challenge token is part of an order only while
// this Storage holds the order's lock of that name.
func TestStorageOrdering(t *testing.T) {
	st, _ := newTestStoragesOn(t, 2)
	a, b := st[0], st[1]
	ctx := ctxT(t)
	token := func(name string) string { return "acme/ca.example-dir/challenge_tokens/" + name + ".json" }
	if a.Ordering(token("a.example")) {
		t.Fatal("ordering before any lock")
	}
	if err := a.Lock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		token("a.example"):                                    true,
		token("b.example"):                                    false,
		"acme/ca.example-dir/challenge_tokens":                false,
		"certificates/ca.example-dir/a.example/a.example.crt": false, // the certificate's files: Fenced
		"acme/ca.example-dir/users/a.example.json":            false,
	} {
		if got := a.Ordering(key); got != want {
			t.Errorf("holder: Ordering(%q) = %v, want %v", key, got, want)
		}
	}
	if b.Ordering(token("a.example")) {
		t.Error("another Storage, which holds no lock, says ordering")
	}
	if err := a.Unlock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	if a.Ordering(token("a.example")) {
		t.Error("ordering after unlock")
	}
}
