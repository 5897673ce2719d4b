package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
	"github.com/redis/go-redis/v9"
)

// TestFleetCertificateLockAcrossFailover measures what certmagic's lock
// in Redis does across a Sentinel failover, against pebble: two edges in
// sentinel mode ask for the same new name while the primary fails over
// (a SENTINEL FAILOVER, then a SIGKILL of the primary; each started while
// the order is under way). Per name it counts the ACME
// orders pebble received and checks the certificate the store keeps: it
// loads, its key matches it, it chains to pebble's root for the name; and
// both edges serve a valid chain for it, well before certmagic's retry a
// minute later (the order's store waits the failover out). Two orders for
// one name are acceptable (the lock can be held twice in the failover
// window), a corrupt stored certificate is not.
//
//	go test -run TestFleetCertificateLockAcrossFailover -v ./proxy
func TestFleetCertificateLockAcrossFailover(t *testing.T) {
	skipHeavyInShort(t, "a primary, two replicas, three sentinels and pebble")
	const master = "edgeblock"
	primary := fleettest.Start(t)
	servers := map[string]*fleettest.Server{primary.Addr(): primary}
	_, port, _ := strings.Cut(primary.Addr(), ":")
	for range 2 {
		r := fleettest.Start(t, "--replicaof", "127.0.0.1", port)
		servers[r.Addr()] = r
	}
	var sentinels []string
	for range 3 {
		sentinels = append(sentinels, fleettest.StartSentinel(t, master, primary.Addr(), 2).Addr())
	}
	sentinelPrimary := func() string {
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
	ready := func() bool {
		for _, a := range sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: a})
			reps, err := c.Replicas(context.Background(), master).Result()
			sents, err2 := c.Sentinels(context.Background(), master).Result()
			c.Close()
			if err != nil || err2 != nil || len(reps) != 2 || len(sents) != 2 {
				return false
			}
			for _, r := range reps {
				if strings.Contains(r["flags"], "down") || strings.Contains(r["flags"], "disconnected") {
					return false
				}
			}
		}
		return true
	}
	edgetest.WaitFor(t, 60*time.Second, "the sentinels to know both replicas and each other", ready)

	p := startPebble(t, "PEBBLE_AUTHZREUSE=0")
	o := echoOrigin(t)
	var configs []string
	for i := range 2 {
		http := "127.0.0.1:0"
		if i == 0 {
			http = fmt.Sprintf("127.0.0.1:%d", p.httpPort) // pebble validates HTTP-01 here
		}
		configs = append(configs, fmt.Sprintf(`listen:
  http: %s
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  mode: acme
  ca: https://127.0.0.1:%d/dir
  ca_root: %s
  email: ops@edgeblock.test
  challenges: [http-01]
fleet:
  redis:
    mode: sentinel
    addrs: [%s]
    master_name: %s
    dial_timeout: 300ms
    timeout: 500ms
  node: edge-%d
`, http, p.acmePort, p.cert, strings.Join(sentinels, ", "), master, i)+routeConfig("app.edgeblock.test", `"`+o.URL+`"`, "*.new.edgeblock.test", `"`+o.URL+`"`))
	}
	envs, bundles := newEdges(t, configs, "blocked.edgeblock.test\n")
	startTogether(t, envs, bundles)
	t.Cleanup(func() {
		if t.Failed() {
			for i, e := range envs {
				for _, l := range strings.Split(e.logs.String(), "\n") {
					if strings.Contains(l, "new.edgeblock.test") || strings.Contains(l, "rror") {
						t.Logf("edge %d: %.400s", i, l)
					}
				}
			}
		}
	})

	fcfg := fleet.Config{Redis: fleet.RedisConfig{Mode: fleet.ModeSentinel, Addrs: sentinels, MasterName: master}}
	if err := fcfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	client, err := fleet.NewClient(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	storage := fleet.NewStorage(client, fcfg)
	defer storage.Close()

	// valid checks a presented or stored chain for name against pebble.
	valid := func(chain []*x509.Certificate, name string) error {
		if len(chain) == 0 {
			return fmt.Errorf("no certificate")
		}
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: p.roots, DNSName: name, Intermediates: pool(chain[1:])})
		return err
	}
	// The names managed ahead first, so that their orders are done.
	for i, e := range envs {
		for _, name := range []string{"app.edgeblock.test", "blocked.edgeblock.test"} {
			edgetest.WaitFor(t, 90*time.Second, fmt.Sprintf("edge %d serving %s", i, name), func() bool {
				chain, err := leafOf(e.srv.Addr("https"), name)
				return err == nil && valid(chain, name) == nil
			})
		}
	}
	// validations counts pebble's validations of name: one per order
	// (PEBBLE_AUTHZREUSE=0: every order needs its own); attempts counts
	// the edges' obtain attempts for it.
	validations := func(name string) int {
		return strings.Count(p.out.String(), `Value:"`+name+`"`)
	}
	attempts := func(name string) int {
		n := 0
		for _, e := range envs {
			for _, l := range e.logs.Lines(t, "obtaining certificate") {
				if l["name"] == name {
					n++
				}
			}
		}
		return n
	}
	const rounds = 2 // a SENTINEL FAILOVER, then a SIGKILL
	total := 0
	for round := range rounds {
		name := fmt.Sprintf("r%d.new.edgeblock.test", round)
		old := sentinelPrimary()
		edgetest.WaitFor(t, 60*time.Second, "the replicas in sync and known", ready)

		// Both edges ask for the name at once, and keep asking until
		// they serve it; the failover starts while the order runs.
		var wg sync.WaitGroup
		served := make([][]*x509.Certificate, len(envs))
		asked := time.Now()
		took := make([]time.Duration, len(envs))
		for i, e := range envs {
			wg.Go(func() {
				for deadline := time.Now().Add(150 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					chain, err := leafOf(e.srv.Addr("https"), name)
					if err == nil && valid(chain, name) == nil {
						served[i], took[i] = chain, time.Since(asked)
						return
					}
				}
			})
		}
		time.Sleep(150 * time.Millisecond)
		how := "SENTINEL FAILOVER"
		if round%2 == 0 {
			c := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0]})
			if err := c.Failover(context.Background(), master).Err(); err != nil {
				t.Fatalf("SENTINEL FAILOVER: %v", err)
			}
			c.Close()
		} else {
			how = "SIGKILL of the primary"
			servers[old].Stop()
		}
		wg.Wait()
		for i := range envs {
			if served[i] == nil {
				t.Fatalf("%s, %s: edge %d served no valid certificate for %s within 150s", name, how, i, name)
			}
		}
		var now string
		edgetest.WaitFor(t, 60*time.Second, "a new primary", func() bool { now = sentinelPrimary(); return now != "" && now != old })
		if !servers[old].Running() {
			servers[old].Start() // the sentinels make it a replica
		}

		// The stored certificate: whole, its key matching, valid.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var crtKey string
		edgetest.WaitFor(t, 20*time.Second, "the stored certificate of "+name, func() bool {
			keys, err := storage.List(ctx, "certificates", true)
			if err != nil {
				return false
			}
			for _, k := range keys {
				if strings.HasSuffix(k, "/"+name+"/"+name+".crt") {
					crtKey = k
					return true
				}
			}
			return false
		})
		crt, err1 := storage.Load(ctx, crtKey)
		key, err2 := storage.Load(ctx, strings.TrimSuffix(crtKey, ".crt")+".key")
		cancel()
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: load the stored certificate: %v, key: %v", name, err1, err2)
		}
		pair, err := tls.X509KeyPair(crt, key)
		if err != nil {
			t.Errorf("%s: the stored certificate and key do not load as a pair (corrupt): %v", name, err)
		} else {
			var chain []*x509.Certificate
			for _, der := range pair.Certificate {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatalf("%s: stored chain: %v", name, err)
				}
				chain = append(chain, c)
			}
			if err := valid(chain, name); err != nil {
				t.Errorf("%s: the stored certificate is not a valid chain for the name: %v", name, err)
			}
		}
		orders := validations(name)
		total += orders
		same := served[0][0].Equal(served[1][0])
		t.Logf("round %d, %s (%s -> %s): %s: %d ACME orders validated, %d obtain attempts; both edges serve a valid chain after %v and %v (the same certificate: %v); the stored certificate and key are a valid pair",
			round, how, old, now, name, orders, attempts(name), took[0].Round(time.Millisecond), took[1].Round(time.Millisecond), same)
		if orders < 1 || orders > 2 {
			t.Errorf("%s: pebble validated %d orders, want 1 (or 2 when the failover let a second edge take the lock)", name, orders)
		}
		// A store waits out the failover (storeWaitFor) instead of
		// failing the order, which certmagic would place again a minute
		// later.
		if slow := max(took[0], took[1]); slow > 30*time.Second {
			t.Errorf("%s: served after %v: the order was not stored across the failover", name, slow)
		}
	}
	t.Logf("%d names, each asked for by two edges across a failover: %d ACME orders", rounds, total)
}
