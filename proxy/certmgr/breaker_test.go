package certmgr

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// TestFailFastStorage: once Redis failed, the certificate storage answers
// at once with an error naming the cause, without calling Redis, until the
// probe interval has passed; then a call reaches Redis again, and its
// success closes the breaker. Unlock is never held back.
func TestFailFastStorage(t *testing.T) {
	rd := fleettest.Start(t)
	fc := &fleet.Config{Redis: fleet.RedisConfig{Addr: rd.Addr(), DialTimeout: 200 * time.Millisecond, Timeout: 200 * time.Millisecond}}
	st, closeStorage, err := OpenStorage("", fc)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStorage()
	ctx := t.Context()
	if err := st.Store(ctx, "a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := st.Lock(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	rd.Stop()
	if _, err := st.Load(ctx, "a/b"); err == nil || strings.Contains(err.Error(), "Redis unreachable") {
		t.Fatalf("first load with Redis down: %v, want Redis's own error", err)
	}
	for _, call := range []func() error{
		func() error { _, err := st.Load(ctx, "a/b"); return err },
		func() error { return st.Store(ctx, "a/c", nil) },
		func() error { return st.Lock(ctx, "other") },
		func() error { _, err := st.Stat(ctx, "a/b"); return err },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "Redis unreachable") {
			t.Errorf("with the breaker open: %v, want a fast Redis unreachable", err)
		}
	}
	if st.Exists(ctx, "a/b") {
		t.Error("Exists with Redis down")
	}
	// Unlock goes through to Redis (and fails there: Redis is down).
	if err := st.Unlock(ctx, "held"); err == nil || strings.Contains(err.Error(), "Redis unreachable") {
		t.Errorf("unlock with Redis down: %v, want Redis's own error", err)
	}
	rd.Start()
	edgetest.WaitFor(t, 2*StorageProbeInterval, "the storage to reach Redis again", func() bool {
		return st.Store(ctx, "a/b", []byte("y")) == nil
	})
	if b, err := st.Load(ctx, "a/b"); err != nil || string(b) != "y" {
		t.Errorf("after Redis came back: %q, %v", b, err)
	}
}
