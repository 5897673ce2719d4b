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

	"github.com/redis/go-redis/v9"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
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
	edgetest.WaitFor(t, 5*time.Second, "connected as the ACL user", f.Connected)
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

// sentinelACLCommands are what the fleet's client runs on the sentinels
// (go-redis's failover client and the client's own failover watchers):
// the help topic's list for sentinel_username. PING is go-redis's health
// check of an idle subscription (every 3s).
var sentinelACLCommands = []string{"ping", "sentinel|get-master-addr-by-name", "sentinel|sentinels", "subscribe"}

// sentinelACLChannels are the channels it subscribes to: go-redis's and
// the failover watchers' (sentinelEvents).
func sentinelACLChannels() []string {
	return append([]string{"+switch-master", "+replica-reconf-done"}, sentinelEvents...)
}

// TestSentinelACL runs every fleet feature in sentinel mode as the data
// user of aclRule, with the sentinels' own user (sentinel_username)
// allowed only sentinelACLCommands on sentinelACLChannels, then fails the
// primary over: the client follows it (its watchers see the failover
// events as that user). No sentinel logged a refused command (ACL LOG),
// and the user really is limited (SENTINEL FAILOVER is refused).
func TestSentinelACL(t *testing.T) {
	if testing.Short() {
		t.Skip("real primary, replica and three sentinels; skipped under -short")
	}
	const master = "edgeblock"
	servers, sentinels := startSentinels(t, master, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, r := range servers {
		if err := r.Client().Do(ctx, aclRule()...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rule := []any{"ACL", "SETUSER", "watcher", "reset", "on", ">watch-secret", "resetchannels"}
	for _, ch := range sentinelACLChannels() {
		rule = append(rule, "&"+ch)
	}
	for _, c := range sentinelACLCommands {
		rule = append(rule, "+"+c)
	}
	for _, a := range sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: a})
		err := c.Process(ctx, redis.NewStatusCmd(ctx, rule...))
		c.Close()
		if err != nil {
			t.Fatalf("ACL SETUSER on sentinel %s: %v", a, err)
		}
	}
	spw := filepath.Join(t.TempDir(), "spw")
	os.WriteFile(spw, []byte("watch-secret\n"), 0o600)
	rc := RedisConfig{Mode: ModeSentinel, Addrs: sentinels, MasterName: master, SentinelUsername: "watcher", SentinelPasswordFile: spw}
	runAsACLUser(t, rc, "edgeblock:")

	// A failover followed as these users.
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("edge-secret\n"), 0o600)
	rc.Username, rc.PasswordFile = "edge", pw
	cfg := Config{Redis: rc, Node: "edge-1"}
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := NewStore(c, cfg)
	rec := newRecorder()
	f := startFollower(t, s, rec, FollowOptions{PollInterval: time.Hour})
	edgetest.WaitFor(t, 10*time.Second, "connected as the ACL users", f.Connected)
	base, err := s.CurrentNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, []byte("before\n"), Meta{}, base); err != nil {
		t.Fatal(err)
	}
	rec.waitVersion(t, base+1, 5*time.Second)
	old := sentinelPrimary(sentinels, master)
	admin := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0]})
	defer admin.Close()
	if err := admin.Failover(ctx, master).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	addr, _ := elected(t, 30*time.Second, old, func() string { return sentinelPrimary(sentinels, master) })
	edgetest.WaitFor(t, 20*time.Second, "the client on the new primary "+addr, func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := s.Publish(cctx, []byte("after\n"), Meta{}, base+1)
		return err == nil && c.Primary() == addr
	})
	rec.waitVersion(t, base+2, 5*time.Second)
	if c.Failovers() < 1 {
		t.Errorf("the client counted %d failovers, want at least 1", c.Failovers())
	}

	// Idle subscriptions: go-redis pings them after 3s.
	time.Sleep(4 * time.Second)
	for _, a := range sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a})
		log := redis.NewSliceCmd(ctx, "ACL", "LOG")
		sc.Process(ctx, log)
		sc.Close()
		if err := log.Err(); err != nil {
			t.Fatalf("ACL LOG on sentinel %s: %v", a, err)
		}
		if len(log.Val()) > 0 {
			t.Errorf("sentinel %s refused commands of the fleet's sentinel user: %v", a, log.Val())
		}
	}
	// And the sentinel user really is limited.
	w := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0], Username: "watcher", Password: "watch-secret"})
	defer w.Close()
	if err := w.Failover(ctx, master).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SENTINEL FAILOVER as the sentinel user: %v, want NOPERM", err)
	}
}
