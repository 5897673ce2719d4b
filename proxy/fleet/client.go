package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client is the fleet's connection to Redis in one of the three topologies
// (single, sentinel, cluster). It is a redis.UniversalClient, plus what the
// fleet needs to know about the connection: which node is the primary the
// edge writes to and follows (Primary), how often that changed (Failovers,
// each a PrimaryChanged signal) and how often the notification
// subscription had to be made again (Reconnects).
//
// The primary is learnt from the connections the client makes: in single
// and sentinel mode every new connection is to the primary (go-redis asks
// the sentinels for its address on each dial), so a connection to a new
// address is a failover; in cluster mode it is the node that owns the
// prefix's slot by the client's cached cluster state (RefreshPrimary).
type Client struct {
	redis.UniversalClient
	mode    string
	slotKey string // a key in the prefix's slot

	primary    atomic.Pointer[string]
	failovers  atomic.Int64
	reconnects atomic.Int64
	probing    atomic.Bool // cluster mode: a probe (probeCluster) is running

	mu      sync.Mutex
	changed chan struct{}             // closed (and replaced) when the primary changes
	conns   map[*trackedConn]struct{} // sentinel mode: open connections
	fenced  map[string]time.Time      // sentinel mode: address -> no connections until
	ctx     context.Context           // ends with Close
	stop    context.CancelFunc        // ends the sentinel watchers and the cluster probe
	closed  bool                      // Close began: no new goroutines
	watch   sync.WaitGroup
}

// NewClient returns a client for cfg.Redis in its mode. It reads the
// password and TLS files (errors name the field and the file) but does not
// connect: the first command does, so an edge can start while Redis is
// down. cfg should have passed Validate.
func NewClient(cfg Config) (*Client, error) {
	r := cfg.Redis
	password, err := readSecret("redis.password_file", r.PasswordFile)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if r.TLS.On() {
		if tc, err = tlsConfig(r.TLS); err != nil {
			return nil, err
		}
	}
	c := &Client{mode: r.EffectiveMode(), slotKey: newKeys(cfg.Prefix).version, changed: make(chan struct{})}
	c.ctx, c.stop = context.WithCancel(context.Background())
	// Each client gets its own copy of the addresses: go-redis's cluster
	// client keeps the slice it is given and appends the nodes it learns
	// to it, so two clients made from one Config (an edge has several)
	// would write to one array (a data race -race reported in
	// TestClusterFailover; see clusterAddrs).
	addrs := clusterAddrs(r.Servers())
	switch c.mode {
	case ModeSingle:
		c.UniversalClient = redis.NewClient(&redis.Options{
			Addr:     addrs[0],
			Username: r.Username, Password: password, DB: r.DB, TLSConfig: tc,
			DialTimeout: r.DialTimeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
			// Protocol 2 keeps pub/sub messages and replies on separate,
			// well-trodden paths; nothing here needs RESP3's types.
			Protocol: 2,
			// A caller's deadline bounds the whole command (the
			// certificate path gives handshakes short ones).
			ContextTimeoutEnabled: true,
		})
	case ModeSentinel:
		sentinelPassword, err := readSecret("redis.sentinel_password_file", r.SentinelPasswordFile)
		if err != nil {
			return nil, err
		}
		c.conns, c.fenced = make(map[*trackedConn]struct{}), make(map[string]time.Time)
		c.UniversalClient = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       r.MasterName,
			SentinelAddrs:    addrs,
			SentinelUsername: r.SentinelUsername, SentinelPassword: sentinelPassword,
			Username: r.Username, Password: password, DB: r.DB, TLSConfig: tc,
			DialTimeout: r.DialTimeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
			Protocol: 2, ContextTimeoutEnabled: true,
			Dialer: c.dialer(r.DialTimeout, tc),
		})
		for _, a := range addrs {
			sc := redis.NewSentinelClient(&redis.Options{
				Addr: a, Username: r.SentinelUsername, Password: sentinelPassword, TLSConfig: tc,
				DialTimeout: r.DialTimeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout, Protocol: 2,
			})
			c.watch.Add(1)
			go c.watchSentinel(c.ctx, sc, r.MasterName)
		}
	case ModeCluster:
		c.UniversalClient = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:    addrs,
			Username: r.Username, Password: password, TLSConfig: tc,
			DialTimeout: r.DialTimeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
			Protocol: 2, ContextTimeoutEnabled: true,
			// One dial per attempt: go-redis's default is five, 100ms
			// apart, so every command for the slot of a dead primary
			// spent 0.4s per attempt (1.8s a command, with the
			// redirect attempts) on a refused port before it could
			// fail and the slot map be reloaded; the callers (writers,
			// Followers, the probe) have their own retries.
			DialerRetries: 1,
		})
	default:
		return nil, fmt.Errorf("fleet.redis.mode: %q: want single, sentinel or cluster", r.Mode)
	}
	if c.mode == ModeCluster {
		c.UniversalClient.AddHook(clusterHook{c})
	} else {
		c.UniversalClient.AddHook(dialHook{c})
	}
	return c, nil
}

// Close closes the client and stops its sentinel watchers and cluster
// probe.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	c.watch.Wait()
	return c.UniversalClient.Close()
}

// clusterAddrs returns a copy of addrs whose capacity is its length, so
// that an append by its user never writes to an array another holds.
// go-redis v9 (newClusterNodes, osscluster.go) keeps ClusterOptions.Addrs
// as its list of known nodes and appends each node it learns under the
// client's own lock: clients sharing one slice with spare capacity race
// on it (the same class as redis/go-redis#3861, appends to a shared
// slot-map slice).
func clusterAddrs(addrs []string) []string {
	return slices.Clip(slices.Clone(addrs))
}

// sentinelEvents are the Sentinel events of a failover, in order. From
// the first to the promotion's confirmation the old primary is fenced:
// Sentinel sends the chosen replica REPLICAOF NO ONE right after
// announcing +failover-state-send-slaveof-noone, and confirms the
// promotion only at its next INFO from it (up to a second later); writes
// that reach the old primary in between are acknowledged and then lost,
// because the new primary never gets them (measured: TestSentinelFailover).
// go-redis alone moves its connections only at +switch-master, when the
// whole failover is over.
var sentinelEvents = []string{
	"+try-failover", "+failover-state-select-slave", "+selected-slave",
	"+failover-state-send-slaveof-noone", "+failover-state-wait-promotion", // fence the old primary
	"+promoted-slave", "+failover-state-reconf-slaves", "+failover-end", "+switch-master", // ask for the new one
	"-failover-abort-not-elected", "-failover-abort-no-good-slave", "-failover-abort-slave-timeout", // lift the fence
}

// fenceFor is how long an address stays fenced unless the sentinels name
// it primary again (or abort): long enough for a failover to finish and
// the old primary to be turned into a replica.
const fenceFor = 30 * time.Second

// watchSentinel follows one sentinel's failover events for master (see
// sentinelEvents): while a failover is under way no connection goes to the
// old primary (open ones are closed, new dials refused), and once the
// sentinel names the new primary the client goes there. Closing the
// connections makes the next command dial, and the dial asks the sentinels.
func (c *Client) watchSentinel(ctx context.Context, sc *redis.SentinelClient, master string) {
	defer c.watch.Done()
	defer sc.Close()
	for ctx.Err() == nil {
		ps := sc.Subscribe(ctx, sentinelEvents...)
		stop := context.AfterFunc(ctx, func() { ps.Close() }) // interrupts a blocked receive
		for ctx.Err() == nil {
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil {
				break
			}
			f := strings.Fields(msg.Payload)
			// "<type> <name> <ip> <port> [@ <master> <ip> <port>]": the
			// last two fields are the (old) primary's.
			if len(f) < 4 || (f[1] != master && (len(f) < 8 || f[len(f)-3] != master)) {
				continue
			}
			old := net.JoinHostPort(f[len(f)-2], f[len(f)-1])
			switch msg.Channel {
			case "+try-failover", "+failover-state-select-slave", "+selected-slave",
				"+failover-state-send-slaveof-noone", "+failover-state-wait-promotion":
				c.fenceOff(old)
			case "-failover-abort-not-elected", "-failover-abort-no-good-slave", "-failover-abort-slave-timeout":
				c.unfence(old)
			default:
				qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				addr, err := sc.GetMasterAddrByName(qctx, master).Result()
				cancel()
				if err == nil && len(addr) == 2 {
					if p := net.JoinHostPort(addr[0], addr[1]); p != old {
						c.unfence(p)
						c.notePrimary(p)
					}
				}
			}
		}
		stop()
		ps.Close()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// fenceOff closes every connection to addr and refuses new ones for
// fenceFor, or until unfence.
func (c *Client) fenceOff(addr string) {
	c.mu.Lock()
	c.fenced[addr] = time.Now().Add(fenceFor)
	var doomed []*trackedConn
	for tc := range c.conns {
		if tc.addr == addr {
			doomed = append(doomed, tc)
		}
	}
	c.mu.Unlock()
	for _, tc := range doomed {
		tc.Close()
	}
}

// unfence lets connections to addr be made again.
func (c *Client) unfence(addr string) {
	c.mu.Lock()
	delete(c.fenced, addr)
	c.mu.Unlock()
}

// errFenced refuses a dial to a primary that is being failed over.
var errFenced = errors.New("fleet: the primary is being failed over; waiting for the sentinels to name the new one")

// dialer returns a dialer that keeps track of its connections (for fence).
func (c *Client) dialer(timeout time.Duration, tc *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c.mu.Lock()
		until, fenced := c.fenced[addr]
		c.mu.Unlock()
		if fenced && time.Now().Before(until) {
			return nil, fmt.Errorf("dial %s: %w", addr, errFenced)
		}
		d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
		var conn net.Conn
		var err error
		if tc != nil {
			conn, err = (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, network, addr)
		} else {
			conn, err = d.DialContext(ctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		t := &trackedConn{Conn: conn, addr: addr, c: c}
		c.mu.Lock()
		until, fenced = c.fenced[addr]
		if fenced && time.Now().Before(until) {
			c.mu.Unlock()
			conn.Close()
			return nil, fmt.Errorf("dial %s: %w", addr, errFenced)
		}
		c.conns[t] = struct{}{}
		c.mu.Unlock()
		return t, nil
	}
}

// trackedConn is a connection the client can close on a failover.
type trackedConn struct {
	net.Conn
	addr string
	c    *Client
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.c.mu.Lock()
		delete(t.c.conns, t)
		t.c.mu.Unlock()
	})
	return t.Conn.Close()
}

// readSecret reads a password file (one trailing newline is ignored); an
// empty name is no password.
func readSecret(field, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("fleet.%s: %w", field, err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

// Mode is the topology: ModeSingle, ModeSentinel or ModeCluster.
func (c *Client) Mode() string { return c.mode }

// Primary is the address of the primary the client last connected to (or,
// in cluster mode, that owns the prefix's slot at the last
// RefreshPrimary); "" before the first connection.
func (c *Client) Primary() string {
	if p := c.primary.Load(); p != nil {
		return *p
	}
	return ""
}

// Failovers counts the changes of the primary's address seen since the
// client was made (the first connection is not one).
func (c *Client) Failovers() int64 { return c.failovers.Load() }

// Reconnects counts the times a Follower on this client had to subscribe
// again after losing its subscription (or leaving a demoted primary).
func (c *Client) Reconnects() int64 { return c.reconnects.Load() }

// PrimaryChanged returns a channel that is closed at the next change of the
// primary's address.
func (c *Client) PrimaryChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// notePrimary records addr as the primary's address; a different address
// than before counts a failover and signals PrimaryChanged.
func (c *Client) notePrimary(addr string) {
	if addr == "" {
		return
	}
	old := c.primary.Swap(&addr)
	if old == nil || *old == addr {
		return
	}
	c.failovers.Add(1)
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// RefreshPrimary brings Primary up to date in cluster mode from the
// client's cached cluster state (no round trip unless the state is due for
// a reload); in the other modes connections keep it up to date and this
// does nothing.
func (c *Client) RefreshPrimary(ctx context.Context) {
	cc, ok := c.UniversalClient.(*redis.ClusterClient)
	if !ok {
		return
	}
	if n, err := cc.MasterForKey(ctx, c.slotKey); err == nil {
		c.notePrimary(n.Options().Addr)
	}
}

// dialHook records the address of every connection the client makes.
type dialHook struct{ c *Client }

func (h dialHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			h.c.notePrimary(conn.RemoteAddr().String())
		}
		return conn, err
	}
}

func (dialHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// clusterHook starts a probe (probeCluster) when a command fails for a
// reason other than Redis's answer (a refused or broken connection, a
// timeout), or with CLUSTERDOWN or TRYAGAIN: a primary died or hangs. On
// its own go-redis keeps sending the slot's commands to the dead node
// until its slot map is due for a reload, and reloads only after a
// command's attempts are used up.
type clusterHook struct{ c *Client }

func (h clusterHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h clusterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(err)
		return err
	}
}

func (h clusterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(err)
		return err
	}
}

// after starts the probe after a failure that says a node is gone.
func (h clusterHook) after(err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return
	}
	var re redis.Error
	if errors.As(err, &re) && !strings.HasPrefix(re.Error(), "CLUSTERDOWN") && !strings.HasPrefix(re.Error(), "TRYAGAIN") {
		return // Redis answered: the node is there
	}
	h.c.probeCluster()
}

// clusterProbeEvery is how often the probe asks for the slot map while
// the prefix's primary does not answer; go-redis spaces the reloads it is
// asked for at least 200ms apart, so the map is at most ~300ms behind a
// promotion. clusterProbeFor bounds one probe (the next failure starts
// another), and clusterPingTimeout bounds the probe's PING.
const (
	clusterProbeEvery  = 100 * time.Millisecond
	clusterProbeFor    = time.Minute
	clusterPingTimeout = 250 * time.Millisecond
)

// probeCluster, in cluster mode, reloads the slot map every
// clusterProbeEvery until the primary it names for the prefix's slot
// answers PING (then Primary is that node), for at most clusterProbeFor;
// one probe runs at a time. Without it a writer learns of a replica's
// promotion only from its own failed commands (measured in
// TestClusterFailover: 1.9–2.8s after the election).
func (c *Client) probeCluster() {
	cc, ok := c.UniversalClient.(*redis.ClusterClient)
	if !ok || !c.probing.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.probing.Store(false)
		return
	}
	c.watch.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.watch.Done()
		defer c.probing.Store(false)
		deadline := time.Now().Add(clusterProbeFor)
		tick := time.NewTicker(clusterProbeEvery)
		defer tick.Stop()
		for {
			cc.ReloadState(c.ctx)
			select {
			case <-c.ctx.Done():
				return
			case <-tick.C:
			}
			if c.slotPrimaryAnswers(cc) || time.Now().After(deadline) {
				return
			}
		}
	}()
}

// slotPrimaryAnswers reports whether the node the cached slot map names
// primary of the prefix's slot answers PING, and if so records it as the
// primary.
func (c *Client) slotPrimaryAnswers(cc *redis.ClusterClient) bool {
	ctx, cancel := context.WithTimeout(c.ctx, clusterPingTimeout)
	defer cancel()
	n, err := cc.MasterForKey(ctx, c.slotKey)
	if err != nil || n.Ping(ctx).Err() != nil {
		return false
	}
	c.notePrimary(n.Options().Addr)
	return true
}

// tlsConfig builds the client TLS configuration from t's files.
func tlsConfig(t RedisTLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("fleet.redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fleet.redis.tls.ca_file: %s: no PEM certificate found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("fleet.redis.tls: cert_file and key_file go together")
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("fleet.redis.tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
