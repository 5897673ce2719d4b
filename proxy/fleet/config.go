// Package fleet shares one versioned blocklist and one certificate store
// among many edge nodes through Redis (or Valkey, which speaks the same
// protocol).
//
// The package knows nothing of blocking, pages or serving: it moves opaque
// blocklist bytes (Store, Follower), records which node runs which version
// (Store.Beat, Store.Nodes) and keeps certmagic's certificates and locks
// (Storage). All keys live under one prefix, so several fleets can share a
// Redis server.
//
// Key layout, with the default prefix "edgeblock:":
//
//	edgeblock:list:version      string  the newest version number (0 or missing: none)
//	edgeblock:list:v:<n>        hash    version n: content, sha256, version, actor, comment, time
//	edgeblock:list:versions     zset    the kept version numbers (score = number)
//	edgeblock:list:notify       channel a new version's number, published on every change
//	edgeblock:nodes             hash    node name -> JSON heartbeat
//	edgeblock:nodes:time        hash    node name -> heartbeat time (Unix µs, Redis's clock)
//	edgeblock:certs/f/<key>     hash    a certmagic file: value, modified
//	edgeblock:certs/index       zset    every certmagic file key (score 0, ordered by name)
//	edgeblock:certs/lock/<name> string  a certmagic lock's holder token, with an expiry
package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the key prefix used when Config.Prefix is empty.
const DefaultPrefix = "edgeblock:"

// DefaultKeep is the number of versions kept when Config.Keep is zero; it is
// also the least Validate accepts.
const DefaultKeep = 100

// Config is the fleet section of the configuration file. Every field's zero
// value means the documented default; ApplyDefaults fills them in.
type Config struct {
	// Redis says how to reach the server.
	Redis RedisConfig `yaml:"redis"`
	// Prefix starts every key and channel name. Default "edgeblock:". With
	// Redis Cluster (more than one address) it must contain a hash tag, such
	// as "{edgeblock}:", so that all keys live in one slot and the Lua
	// scripts may touch them together.
	Prefix string `yaml:"prefix"`
	// Node is this node's name in heartbeats. Default: the host name.
	Node string `yaml:"node"`
	// Keep is how many blocklist versions are kept. Default 100, the least
	// accepted.
	Keep int `yaml:"keep"`
}

// RedisConfig is how to connect to Redis.
type RedisConfig struct {
	// Addr is one server's host:port. Exactly one of Addr and Addrs is
	// required.
	Addr string `yaml:"addr"`
	// Addrs are Redis Cluster seed addresses (host:port); with them the
	// client is a cluster client. Empty means a single server at Addr.
	Addrs []string `yaml:"addrs"`
	// TLS secures the connection. Zero value: plain TCP.
	TLS RedisTLSConfig `yaml:"tls"`
	// Username is the ACL user name. Empty means the default user.
	Username string `yaml:"username"`
	// PasswordFile holds the password (one trailing newline is ignored).
	// Empty means no password.
	PasswordFile string `yaml:"password_file"`
	// DB is the database number (not with Redis Cluster). Default 0.
	DB int `yaml:"db"`
	// DialTimeout bounds one connection attempt. Default 2s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Timeout bounds one command's read or write. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
}

// RedisTLSConfig secures the Redis connection.
type RedisTLSConfig struct {
	// Enabled turns TLS on. Setting any of the files or ServerName also turns
	// it on. Default off.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of roots that sign the server's certificate.
	// Empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this node's client certificate and key (PEM),
	// for servers that require one. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name checked in the server's certificate. Empty means
	// the host part of the address.
	ServerName string `yaml:"server_name"`
}

// On reports whether TLS is to be used: Enabled, or any field set.
func (t RedisTLSConfig) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

// ApplyDefaults fills in the documented defaults of the zero fields. It
// fails only if Node is empty and the host name cannot be read.
func (c *Config) ApplyDefaults() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	if c.Redis.DialTimeout == 0 {
		c.Redis.DialTimeout = 2 * time.Second
	}
	if c.Redis.Timeout == 0 {
		c.Redis.Timeout = 2 * time.Second
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("fleet.node: no node name and no host name: %w", err)
		}
		c.Node = h
	}
	return nil
}

// Validate returns the configuration's problems, each as "field: message"
// with the field's full path (e.g. "fleet.redis.addr: required"). It reads
// no files; NewClient does. Call it after ApplyDefaults.
func (c Config) Validate() []string {
	var p []string
	add := func(field, format string, args ...any) {
		p = append(p, "fleet."+field+": "+fmt.Sprintf(format, args...))
	}
	r := c.Redis
	switch {
	case r.Addr == "" && len(r.Addrs) == 0:
		add("redis.addr", "required")
	case r.Addr != "" && len(r.Addrs) > 0:
		add("redis.addrs", "set either addr or addrs, not both")
	}
	for i, a := range append([]string{r.Addr}, r.Addrs...) {
		if i == 0 && a == "" {
			continue
		}
		if err := checkHostPort(a); err != nil {
			field := "redis.addr"
			if i > 0 {
				field = fmt.Sprintf("redis.addrs[%d]", i-1)
			}
			add(field, "%v", err)
		}
	}
	if r.DB < 0 {
		add("redis.db", "must not be negative (got %d)", r.DB)
	}
	if len(r.Addrs) > 0 {
		if r.DB != 0 {
			add("redis.db", "Redis Cluster has only database 0")
		}
		if !hasHashTag(c.Prefix) {
			add("prefix", "with Redis Cluster (addrs) the prefix needs a hash tag such as \"{edgeblock}:\" so all keys share a slot (got %q)", c.Prefix)
		}
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		add("redis.tls", "cert_file and key_file go together")
	}
	if r.DialTimeout < 0 {
		add("redis.dial_timeout", "must not be negative")
	}
	if r.Timeout < 0 {
		add("redis.timeout", "must not be negative")
	}
	if c.Prefix == "" {
		add("prefix", "required")
	}
	if c.Node == "" {
		add("node", "required")
	} else if strings.ContainsFunc(c.Node, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		add("node", "must not contain spaces or control characters (got %q)", c.Node)
	}
	if c.Keep < DefaultKeep {
		add("keep", "must be at least %d (got %d)", DefaultKeep, c.Keep)
	}
	return p
}

// checkHostPort accepts "host:port" with a non-empty port.
func checkHostPort(a string) error {
	i := strings.LastIndexByte(a, ':')
	if i < 0 || i == len(a)-1 {
		return fmt.Errorf("want host:port (got %q)", a)
	}
	for _, c := range a[i+1:] {
		if c < '0' || c > '9' {
			return fmt.Errorf("bad port in %q", a)
		}
	}
	return nil
}

// hasHashTag reports whether s contains a non-empty Redis Cluster hash tag.
func hasHashTag(s string) bool {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(s[i+1:], '}')
	return j > 0
}

// NewClient returns a client for cfg.Redis: a cluster client when Addrs is
// set, else a single-server client. It reads the password and TLS files
// (errors name the field and the file) but does not connect: the first
// command does, so an edge can start while Redis is down. cfg should have
// had ApplyDefaults applied.
func NewClient(cfg Config) (redis.UniversalClient, error) {
	r := cfg.Redis
	var password string
	if r.PasswordFile != "" {
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("fleet.redis.password_file: %w", err)
		}
		password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	var tc *tls.Config
	if r.TLS.On() {
		var err error
		if tc, err = tlsConfig(r.TLS); err != nil {
			return nil, err
		}
	}
	addrs := r.Addrs
	if len(addrs) == 0 {
		addrs = []string{r.Addr}
	}
	opt := &redis.UniversalOptions{
		Addrs:        addrs,
		Username:     r.Username,
		Password:     password,
		DB:           r.DB,
		TLSConfig:    tc,
		DialTimeout:  r.DialTimeout,
		ReadTimeout:  r.Timeout,
		WriteTimeout: r.Timeout,
		// Protocol 2 keeps pub/sub messages and replies on separate,
		// well-trodden paths; nothing here needs RESP3's types.
		Protocol: 2,
	}
	if len(r.Addrs) > 0 {
		opt.IsClusterMode = true
	}
	return redis.NewUniversalClient(opt), nil
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

// SetClientLogger routes the Redis client's own messages (failed dials,
// reconnects), which by default go to standard error, to logf. go-redis has
// one logger per process, so this affects every client; call it once at
// start.
func SetClientLogger(logf func(msg string)) {
	redis.SetLogger(clientLogger(logf))
}

// clientLogger adapts a func to go-redis's logger interface.
type clientLogger func(msg string)

func (l clientLogger) Printf(_ context.Context, format string, v ...any) {
	l(fmt.Sprintf(format, v...))
}
