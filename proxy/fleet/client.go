package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"

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

	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) when the primary changes
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
	addrs := r.Servers()
	switch c.mode {
	case ModeSingle:
		c.UniversalClient = redis.NewClient(&redis.Options{
			Addr:     addrs[0],
			Username: r.Username, Password: password, DB: r.DB, TLSConfig: tc,
			DialTimeout: r.DialTimeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
			// Protocol 2 keeps pub/sub messages and replies on separate,
			// well-trodden paths; nothing here needs RESP3's types.
			Protocol: 2,
		})
	case ModeSentinel:
		sentinelPassword, err := readSecret("redis.sentinel_password_file", r.SentinelPasswordFile)
		if err != nil {
			return nil, err
		}
		c.UniversalClient = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       r.MasterName,
			SentinelAddrs:    addrs,
			SentinelUsername: r.SentinelUsername, SentinelPassword: sentinelPassword,
			Username: r.Username, Password: password, DB: r.DB, TLSConfig: tc,
			DialTimeout: r.DialTimeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
			Protocol: 2,
		})
	case ModeCluster:
		c.UniversalClient = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:    addrs,
			Username: r.Username, Password: password, TLSConfig: tc,
			DialTimeout: r.DialTimeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
			Protocol: 2,
		})
	default:
		return nil, fmt.Errorf("fleet.redis.mode: %q: want single, sentinel or cluster", r.Mode)
	}
	if c.mode != ModeCluster {
		c.UniversalClient.AddHook(dialHook{c})
	}
	return c, nil
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
