package fleet

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ACLCommands are the Redis commands the fleet uses (by an edge, the CLI
// and the certificate storage), the ones its scripts call included (Redis
// checks those against the user too). The fleet help topic lists them;
// TestACLLeastPrivilege runs every feature as a user allowed only these.
var aclCommands = []string{
	// connection
	"auth", "ping", "select",
	// scripts and transactions
	"evalsha", "eval", "multi", "exec",
	// versions, heartbeats, certificates and locks (also inside scripts)
	"get", "set", "incr", "del", "exists", "time",
	"hget", "hset", "hdel", "hgetall", "hstrlen",
	"zadd", "zcard", "zrange", "zrevrange", "zrangebylex", "zremrangebyrank", "zremrangebylex", "zrem", "pexpire",
	// notifications
	"publish", "subscribe", "unsubscribe",
}

// aclRule is the ACL SETUSER command for a user "edge" with password
// "edge-secret" allowed aclCommands (and extra) on the prefix "edgeblock:"
// or "{edgeblock}:".
func aclRule(extra ...string) []any {
	rule := []any{"ACL", "SETUSER", "edge", "reset", "on", ">edge-secret", "~edgeblock:*", "~{edgeblock}:*",
		"resetchannels", "&edgeblock:*", "&{edgeblock}:*"}
	for _, c := range append(slices.Clone(aclCommands), extra...) {
		rule = append(rule, "+"+c)
	}
	return rule
}

// TestACLLeastPrivilege runs publish, history, follow, heartbeats, fleet
// status and the certificate storage with its locks as an ACL user that
// may run only aclCommands on the prefix's keys and channels.
func TestACLLeastPrivilege(t *testing.T) {
	r := startRedis(t)
	if err := r.Client().Do(ctxT(t), aclRule()...).Err(); err != nil {
		t.Fatal(err)
	}
	runAsACLUser(t, RedisConfig{Addr: r.Addr()}, "edgeblock:")
}

// runAsACLUser runs every fleet feature as the user of aclRule.
func runAsACLUser(t *testing.T, rc RedisConfig, prefix string) {
	t.Helper()
	ctx := ctxT(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("edge-secret\n"), 0o600)
	rc.Username, rc.PasswordFile = "edge", pw
	cfg := Config{Redis: rc, Prefix: prefix, Node: "edge-1"}
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatal(p)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := NewStore(c, cfg)

	rec := newRecorder()
	f := startFollower(t, s, rec, FollowOptions{PollInterval: time.Hour})
	waitFor(t, 5*time.Second, "connected as the ACL user", f.Connected)
	for n := int64(1); n <= 2; n++ {
		if _, err := s.Publish(ctx, []byte("v\n"+strings.Repeat("x", int(n))), Meta{Actor: "ops"}, n-1); err != nil {
			t.Fatalf("publish as the ACL user: %v", err)
		}
		rec.waitVersion(t, n, 2*time.Second)
	}
	if _, err := s.History(ctx, 10); err != nil {
		t.Fatalf("history: %v", err)
	}
	if _, err := s.Current(ctx); err != nil {
		t.Fatalf("current: %v", err)
	}
	if err := s.Beat(ctx, Heartbeat{Node: "edge-1", Version: 2}); err != nil {
		t.Fatalf("beat: %v", err)
	}
	if _, err := s.Nodes(ctx, time.Minute); err != nil {
		t.Fatalf("nodes: %v", err)
	}
	if err := s.Forget(ctx, "edge-9"); err != nil {
		t.Fatalf("forget: %v", err)
	}
	st := NewStorage(c, cfg)
	defer st.Close()
	steps := []struct {
		name string
		do   func() error
	}{
		{"store", func() error { return st.Store(ctx, "certificates/a/a.crt", []byte("x")) }},
		{"load", func() error { _, err := st.Load(ctx, "certificates/a/a.crt"); return err }},
		{"stat", func() error { _, err := st.Stat(ctx, "certificates/a/a.crt"); return err }},
		{"list", func() error { _, err := st.List(ctx, "certificates", true); return err }},
		{"lock", func() error { return st.Lock(ctx, "a") }},
		{"unlock", func() error { return st.Unlock(ctx, "a") }},
		{"delete", func() error { return st.Delete(ctx, "certificates") }},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Errorf("storage %s as the ACL user: %v", step.name, err)
		}
	}
	if st.Exists(ctx, "certificates") {
		t.Error("Exists after Delete")
	}
	if _, err := st.Load(ctx, "certificates/a/a.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("load after delete: %v", err)
	}
	// And the user really is limited: a command not in the list is refused.
	if err := c.FlushAll(context.Background()).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("FLUSHALL as the ACL user: %v, want NOPERM", err)
	}
}
