package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
	"github.com/redis/go-redis/v9"
)

// failoverRig is a fleet on a Redis that fails over: edges (Followers, each
// with its own client, as separate processes would have) and writers (each
// with its own client) that publish in rounds. Every round, all writers
// try to publish the next version from the same expected version: the
// compare-and-set must admit one. The rig records when each version was
// published and when each edge applied it.
type failoverRig struct {
	t       *testing.T
	cfg     Config
	edges   []*rigEdge
	writers []*Store
	reader  *Store

	mu        sync.Mutex
	published []rigVersion // index n-1: version n
	dumped    bool         // the edges' state was logged at the first failure
}

// rigVersion is one published version as the writers saw it.
type rigVersion struct {
	content string
	start   time.Time // the round began (the writers started publishing)
	landed  time.Time // the round saw it stored
}

// rigEdge is one edge: a Follower and what it applied, when.
type rigEdge struct {
	client *Client
	f      *Follower
	mu     sync.Mutex
	got    []Version
	when   []time.Time
}

func (e *rigEdge) deliver(v Version) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, v)
	e.when = append(e.when, time.Now())
}

// appliedAt returns when the edge applied version n (zero: not yet).
func (e *rigEdge) appliedAt(n int64) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, v := range e.got {
		if v.Number == n {
			return e.when[i]
		}
	}
	return time.Time{}
}

func newFailoverRig(t *testing.T, cfg Config, edges, writers int) *failoverRig {
	t.Helper()
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatal(p)
	}
	r := &failoverRig{t: t, cfg: cfg}
	client := func() *Client {
		c, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	r.reader = NewStore(client(), cfg)
	for i := 0; i < writers; i++ {
		r.writers = append(r.writers, NewStore(client(), cfg))
	}
	for i := 0; i < edges; i++ {
		e := &rigEdge{client: client()}
		e.f = Follow(context.Background(), NewStore(e.client, cfg), e.deliver, FollowOptions{})
		t.Cleanup(func() { e.f.Close() })
		r.edges = append(r.edges, e)
	}
	for _, e := range r.edges {
		edgetest.WaitFor(t, 20*time.Second, "edge connected", e.f.Connected)
	}
	return r
}

// current reads the newest version number, retrying while Redis is away.
func (r *failoverRig) current(within time.Duration) int64 {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := r.reader.CurrentNumber(ctx)
		cancel()
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("version number unreadable for %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// round publishes the next version: every writer tries at once from the
// same expected version, until one version lands (a round whose writes all
// failed, e.g. during a failover, is tried again). It checks that at most
// one writer was told it won, that the winner's content is what was
// stored, and returns the new version's number. It does not wait for the
// edges.
func (r *failoverRig) round(within time.Duration) int64 {
	r.t.Helper()
	deadline := time.Now().Add(within)
	expect := r.current(within)
	if want := int64(len(r.published)); expect != want {
		r.t.Fatalf("before round: the store is at version %d, the writers published %d (a version was lost or made twice)", expect, want)
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		type result struct {
			content string
			err     error
		}
		res := make([]result, len(r.writers))
		var wg sync.WaitGroup
		for i, w := range r.writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				content := fmt.Sprintf("v%d writer %d attempt %d\n", expect+1, i, attempt)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				_, err := w.Publish(ctx, []byte(content), Meta{Actor: fmt.Sprint("writer-", i)}, expect)
				res[i] = result{content, err}
			}()
		}
		wg.Wait()
		now := r.current(time.Until(deadline))
		if now == expect {
			if time.Now().After(deadline) {
				r.t.Fatalf("round for version %d: nothing landed within %v: %v", expect+1, within, res)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if now != expect+1 {
			r.t.Fatalf("round for version %d: the store is at %d: one round made more than one version", expect+1, now)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		v, err := r.reader.Get(ctx, now)
		cancel()
		if err != nil {
			r.t.Fatalf("read version %d: %v", now, err)
		}
		won := 0
		stored := false
		for _, x := range res {
			if x.err == nil {
				won++
				if x.content != string(v.Content) {
					r.t.Fatalf("version %d: writer told it won with %q, the store holds %q", now, x.content, v.Content)
				}
			} else if !errors.Is(x.err, ErrConflict) && !isUnreachable(x.err) {
				r.t.Fatalf("version %d: unexpected publish error: %v", now, x.err)
			}
			stored = stored || x.content == string(v.Content)
		}
		if won > 1 || !stored {
			r.t.Fatalf("version %d: %d writers told they won, stored content from a writer: %v (%q)", now, won, stored, v.Content)
		}
		r.mu.Lock()
		r.published = append(r.published, rigVersion{content: string(v.Content), start: start, landed: time.Now()})
		r.mu.Unlock()
		return now
	}
}

// isUnreachable reports a publish error that is about the connection (a
// failover in progress), not about the version.
func isUnreachable(err error) bool {
	s := err.Error()
	for _, x := range []string{"connection refused", "i/o timeout", "EOF", "deadline exceeded", "READONLY", "reset by peer",
		"LOADING", "CLUSTERDOWN", "MOVED", "TRYAGAIN", "broken pipe", "no reachable", "closed", "UNBLOCKED", "MASTERDOWN", "being failed over"} {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// waitApplied waits until every edge has applied version n.
func (r *failoverRig) waitApplied(n int64, within time.Duration) {
	r.t.Helper()
	defer func() {
		if r.t.Failed() && !r.dumped {
			r.dumped = true
			for i, e := range r.edges {
				r.t.Logf("edge %d: primary %s, seen %d, delivered %d, connected %v, last error %v", i, e.client.Primary(), e.f.Seen(), e.f.Delivered(), e.f.Connected(), e.f.LastError())
			}
		}
	}()
	edgetest.WaitFor(r.t, within, fmt.Sprintf("every edge to apply version %d", n), func() bool {
		for _, e := range r.edges {
			if e.appliedAt(n).IsZero() {
				return false
			}
		}
		return true
	})
}

// step publishes one version and waits until every edge applied it.
func (r *failoverRig) step(within time.Duration) int64 {
	r.t.Helper()
	n := r.round(within)
	r.waitApplied(n, within)
	return n
}

// check verifies every edge's record: strictly increasing numbers (nothing
// applied twice), each version the one the store kept (nothing applied
// that a failover lost), and every published version applied. It returns
// the publish→applied latencies.
func (r *failoverRig) check() []time.Duration {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var lat []time.Duration
	for i, e := range r.edges {
		e.mu.Lock()
		var nums []int64
		for j, v := range e.got {
			nums = append(nums, v.Number)
			if v.Number < 1 || v.Number > int64(len(r.published)) {
				r.t.Errorf("edge %d applied version %d, which no writer published", i, v.Number)
				continue
			}
			p := r.published[v.Number-1]
			if string(v.Content) != p.content {
				r.t.Errorf("edge %d applied version %d = %q; the fleet kept %q (a version lost in the failover was applied)", i, v.Number, v.Content, p.content)
			}
			lat = append(lat, e.when[j].Sub(p.start))
		}
		e.mu.Unlock()
		if !slices.IsSorted(nums) || len(slices.Compact(slices.Clone(nums))) != len(nums) {
			r.t.Errorf("edge %d applied %v: not strictly increasing (a version applied twice or out of order)", i, nums)
		}
		if len(nums) != len(r.published) {
			r.t.Errorf("edge %d applied %d versions %v, %d were published (one skipped)", i, len(nums), nums, len(r.published))
		}
	}
	return lat
}

// waitClients waits until the reader's and the writers' clients talk to
// the primary at addr.
func (r *failoverRig) waitClients(addr string, within time.Duration) {
	r.t.Helper()
	edgetest.WaitFor(r.t, within, "writers on the new primary "+addr, func() bool {
		for _, s := range append([]*Store{r.reader}, r.writers...) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s.CurrentNumber(ctx)
			s.rdb.(*Client).RefreshPrimary(ctx)
			cancel()
			if s.rdb.(*Client).Primary() != addr {
				return false
			}
		}
		return true
	})
}

// restoreLost republishes, with their original content, the versions
// after kept that the store no longer has, as an operator restores a
// store that went back from the list the edges applied, and returns how
// many there were. It fails the test if a version up to kept is gone.
func (r *failoverRig) restoreLost(kept int64) int {
	r.t.Helper()
	cur := r.current(10 * time.Second)
	if cur < kept {
		r.t.Fatalf("the store went back to version %d: versions up to %d, acknowledged before the failover, are lost", cur, kept)
	}
	r.mu.Lock()
	want := append([]rigVersion(nil), r.published[cur:]...)
	r.mu.Unlock()
	for i, v := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.reader.Publish(ctx, []byte(v.content), Meta{Actor: "restore"}, cur+int64(i))
		cancel()
		if err != nil {
			r.t.Fatalf("restore version %d: %v", cur+int64(i)+1, err)
		}
	}
	return len(want)
}

// waitSynced waits until every replica of the primary at addr has
// acknowledged all of its writes, so that killing it loses none.
func waitSynced(t *testing.T, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	edgetest.WaitFor(t, 10*time.Second, "the replicas caught up with "+addr, func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		if err != nil {
			return false
		}
		var master string
		var offsets []string
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
				master = v
			}
			if strings.HasPrefix(line, "slave") && strings.Contains(line, "offset=") {
				_, v, _ := strings.Cut(line, "offset=")
				v, _, _ = strings.Cut(v, ",")
				offsets = append(offsets, v)
			}
		}
		for _, o := range offsets {
			if o != master {
				return false
			}
		}
		return master != "" && len(offsets) > 0
	})
}

// elected waits until addr() names a primary other than old and returns
// when it first did.
func elected(t *testing.T, within time.Duration, old string, addr func() string) (string, time.Time) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if a := addr(); a != "" && a != old {
			return a, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new primary (other than %s) within %v", old, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failoverScenario runs the rounds of a failover test: versions before,
// during and after a planned failover (failover, which returns at once),
// then a SIGKILL of the primary (kill), and after. primary names the
// current primary as the topology reports it. It logs and returns the
// measurements.
func failoverScenario(t *testing.T, r *failoverRig, primary func() string, failover func(), kill func(addr string)) {
	const bound = 2 * time.Second // every edge applies within this of the election
	for i := 0; i < 5; i++ {
		r.step(10 * time.Second)
	}

	// A planned failover, with writers publishing through it.
	old := primary()
	failover()
	type elect struct {
		addr string
		at   time.Time
	}
	ech := make(chan elect, 1)
	go func() {
		a, at := elected(t, 30*time.Second, old, primary)
		ech <- elect{a, at}
	}()
	var during []int64
	var e elect
	began := time.Now()
	for done := false; !done || time.Since(began) < 3*time.Second; {
		during = append(during, r.step(30*time.Second))
		select {
		case e = <-ech:
			done = true
		default:
		}
	}
	t.Logf("planned failover: %s -> %s; %d versions published while it ran", old, e.addr, len(during))
	// Redis replication is asynchronous: versions the old primary
	// acknowledged after the replica's promotion, before the sentinels
	// confirmed it, would not be on the new primary. The client fences the
	// old primary from the start of the failover, so none may be lost; if
	// some are, they are counted and restored the way an operator would
	// (republished from what the edges applied) so the rest can go on.
	r.waitClients(e.addr, 20*time.Second)
	lost := r.restoreLost(during[0] - 1)
	t.Logf("planned failover: Redis lost %d of the %d versions acknowledged while it ran", lost, len(during))
	if lost > 0 {
		t.Errorf("Redis lost %d acknowledged versions in the failover (restored from the edges to go on): the old primary was not fenced in time", lost)
	}
	var worst time.Duration
	for _, n := range during {
		r.waitApplied(n, 10*time.Second)
		from := e.at
		if p := r.published[n-1].start; p.After(from) {
			from = p
		}
		for i, edge := range r.edges {
			d := edge.appliedAt(n).Sub(from)
			worst = max(worst, d)
			if d > bound {
				t.Errorf("edge %d applied version %d %v after the later of the election and its publish (bound %v)", i, n, d, bound)
			}
		}
	}
	t.Logf("planned failover: versions published during it applied on every edge at most %v after the later of the election and their publish", worst)
	// Keep publishing until every edge's client talks to the new primary.
	settled := time.Now().Add(20 * time.Second)
	for {
		r.step(10 * time.Second)
		all := true
		for _, edge := range r.edges {
			all = all && edge.client.Primary() == e.addr
		}
		if all {
			break
		}
		if time.Now().After(settled) {
			t.Fatalf("edges still not on the new primary %s 20s after its election", e.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("planned failover: every edge on the new primary %v after the election (%d versions so far)", time.Since(e.at).Round(time.Millisecond), len(r.published))
	for i := 0; i < 5; i++ {
		r.step(10 * time.Second)
	}

	// The primary killed: the next version is published as soon as a
	// primary takes it; time from the death to every edge applying it.
	old = primary()
	waitSynced(t, old)
	killed := time.Now()
	kill(old)
	go func() {
		a, at := elected(t, 30*time.Second, old, primary)
		ech <- elect{a, at}
	}()
	n := r.round(30 * time.Second)
	r.waitApplied(n, 30*time.Second)
	e = <-ech
	landed := r.published[n-1].landed
	t.Logf("primary killed: the writers got version %d stored %v after the election", n, landed.Sub(e.at).Round(time.Millisecond))
	var last time.Time
	for i, edge := range r.edges {
		at := edge.appliedAt(n)
		if at.After(last) {
			last = at
		}
		from := e.at
		if landed.After(from) {
			from = landed
		}
		if d := at.Sub(from); d > bound {
			t.Errorf("edge %d applied version %d %v after the later of the election and its publish (bound %v)", i, n, d, bound)
		}
	}
	t.Logf("primary %s killed: %s elected %v later; first version after the kill applied on every edge %v after the kill (%v after the election)",
		old, e.addr, e.at.Sub(killed).Round(time.Millisecond), last.Sub(killed).Round(time.Millisecond), last.Sub(e.at).Round(time.Millisecond))
	// The writers retried all along: the bound holds from the election,
	// their time to find the new primary included.
	if d := last.Sub(e.at); d > bound {
		t.Errorf("the first version after the kill was applied on every edge %v after the election (bound %v)", d, bound)
	}
	for i := 0; i < 5; i++ {
		r.step(10 * time.Second)
	}

	lat := r.check()
	p50, p99, most := percentiles(lat)
	t.Logf("publish→applied over %d versions × %d edges, across both failovers: p50 %v, p99 %v, max %v",
		len(r.published), len(r.edges), p50, p99, most)
	for i, edge := range r.edges {
		t.Logf("edge %d: primary %s, failovers seen %d, reconnects %d", i, edge.client.Primary(), edge.client.Failovers(), edge.client.Reconnects())
		if edge.client.Failovers() < 2 {
			t.Errorf("edge %d counted %d failovers, want at least 2", i, edge.client.Failovers())
		}
	}
}

// startSentinels starts a primary, a replica and three Sentinels watching
// them under the name master, and waits until the Sentinels know the
// replica and each other.
func startSentinels(t *testing.T, master string, replicas int, extra ...string) (servers map[string]*redisServer, sentinels []string) {
	t.Helper()
	p := startRedis(t, extra...)
	_, port, _ := strings.Cut(p.Addr(), ":")
	servers = map[string]*redisServer{p.Addr(): p}
	ctx := context.Background()
	for i := 0; i < replicas; i++ {
		rep := startRedis(t, append([]string{"--replicaof", "127.0.0.1", port}, extra...)...)
		servers[rep.Addr()] = rep
		edgetest.WaitFor(t, 20*time.Second, "the replica in sync", func() bool {
			info, err := rep.Client().Info(ctx, "replication").Result()
			return err == nil && strings.Contains(info, "master_link_status:up")
		})
	}
	var clients []*redis.SentinelClient
	for i := 0; i < 3; i++ {
		s := fleettest.StartSentinel(t, master, p.Addr(), 2)
		sentinels = append(sentinels, s.Addr())
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
	}
	edgetest.WaitFor(t, 30*time.Second, "the sentinels to know the replica and each other", func() bool {
		for _, c := range clients {
			reps, err := c.Replicas(ctx, master).Result()
			if err != nil || len(reps) != replicas {
				return false
			}
			for _, r := range reps {
				if strings.Contains(r["flags"], "down") {
					return false
				}
			}
			sents, err := c.Sentinels(ctx, master).Result()
			if err != nil || len(sents) != 2 {
				return false
			}
		}
		return true
	})
	return servers, sentinels
}

// sentinelPrimary asks the sentinels for the primary's address (the first
// that answers).
func sentinelPrimary(sentinels []string, master string) string {
	for _, a := range sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, MaxRetries: -1})
		r, err := c.GetMasterAddrByName(context.Background(), master).Result()
		c.Close()
		if err == nil && len(r) == 2 {
			return r[0] + ":" + r[1]
		}
	}
	return ""
}

// TestSentinelFailover: three edges and two writers on a primary, two
// replicas and three Sentinels; versions published before, during and
// after SENTINEL FAILOVER and after the primary is SIGKILLed. Every edge
// applies every version, once, in order, within 2s of the new primary's
// election; each round admits one writer; nothing acknowledged before the
// failover is lost (what Redis loses in the failover window is counted and
// logged). Two replicas, so that the kill leaves the new primary one.
//
//	go test -run TestSentinelFailover -v ./proxy/fleet
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("real primary, replica and three sentinels; skipped under -short")
	}
	const master = "edgeblock"
	servers, sentinels := startSentinels(t, master, 2)
	r := newFailoverRig(t, Config{Redis: RedisConfig{Mode: ModeSentinel, Addrs: sentinels, MasterName: master}, Node: "rig"}, 3, 2)
	primary := func() string { return sentinelPrimary(sentinels, master) }
	failoverScenario(t, r, primary,
		func() {
			c := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0]})
			defer c.Close()
			if err := c.Failover(ctxT(t), master).Err(); err != nil {
				t.Fatalf("SENTINEL FAILOVER: %v", err)
			}
		},
		func(addr string) { servers[addr].Stop() })
}

// TestSentinelTLS: a primary, a replica and three sentinels speaking TLS
// only (a test CA); an edge and a writer in sentinel mode over TLS follow
// versions before and after SENTINEL FAILOVER.
func TestSentinelTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("real TLS primary, replica and three sentinels; skipped under -short")
	}
	const master = "edgeblock"
	pki := newTestPKI(t, t.TempDir())
	clientTLS := &tls.Config{RootCAs: pki.pool, ServerName: "redis.test"}
	tlsArgs := []string{"--tls-cert-file", pki.serverCert, "--tls-key-file", pki.serverKey,
		"--tls-ca-cert-file", pki.caFile, "--tls-auth-clients", "no", "--tls-replication", "yes"}
	p := startRedisTLS(t, clientTLS, tlsArgs...)
	_, port, _ := strings.Cut(p.Addr(), ":")
	rep := startRedisTLS(t, clientTLS, append([]string{"--replicaof", "127.0.0.1", port}, tlsArgs...)...)
	ctx := context.Background()
	edgetest.WaitFor(t, 20*time.Second, "the replica in sync over TLS", func() bool {
		info, err := rep.Client().Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	var sentinels []string
	var clients []*redis.SentinelClient
	for i := 0; i < 3; i++ {
		s := fleettest.StartSentinelTLS(t, clientTLS, master, p.Addr(), 2, tlsArgs...)
		sentinels = append(sentinels, s.Addr())
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), TLSConfig: clientTLS})
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
	}
	edgetest.WaitFor(t, 30*time.Second, "the sentinels to know the replica and each other", func() bool {
		for _, c := range clients {
			reps, err := c.Replicas(ctx, master).Result()
			if err != nil || len(reps) != 1 || strings.Contains(reps[0]["flags"], "down") {
				return false
			}
			if sents, err := c.Sentinels(ctx, master).Result(); err != nil || len(sents) != 2 {
				return false
			}
		}
		return true
	})
	cfg := Config{Redis: RedisConfig{Mode: ModeSentinel, Addrs: sentinels, MasterName: master,
		TLS: RedisTLSConfig{CAFile: pki.caFile, ServerName: "redis.test"}}, Node: "edge-1"}
	r := newFailoverRig(t, cfg, 1, 1)
	for i := 0; i < 3; i++ {
		r.step(10 * time.Second)
	}
	old := p.Addr()
	if err := clients[0].Failover(ctx, master).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	primary := func() string {
		a, err := clients[0].GetMasterAddrByName(ctx, master).Result()
		if err != nil || len(a) != 2 {
			return ""
		}
		return a[0] + ":" + a[1]
	}
	addr, _ := elected(t, 30*time.Second, old, primary)
	r.waitClients(addr, 20*time.Second)
	for i := 0; i < 3; i++ {
		r.step(10 * time.Second)
	}
	r.check()
	if got := r.edges[0].client.Primary(); got != addr {
		t.Errorf("the edge talks to %s, want the new primary %s", got, addr)
	}
}
