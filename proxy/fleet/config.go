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
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeblock/edgeblock/proxy/problem"
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
	// Redis Cluster (mode cluster) it must contain a hash tag, such as
	// "{edgeblock}:", so that all keys live in one slot and the Lua scripts
	// and transactions may touch them together.
	Prefix string `yaml:"prefix"`
	// Node is this node's name in heartbeats. Default: the host name.
	Node string `yaml:"node"`
	// Keep is how many blocklist versions are kept. Default 100, the least
	// accepted.
	Keep int `yaml:"keep"`
	// HeartbeatExpiry is how long a node's heartbeat is kept after it last
	// beat: a node silent for longer (stopped, retired) is dropped from the
	// fleet's node list, so that it no longer shows as behind and silent.
	// Default DefaultHeartbeatExpiry (24h); at least a minute.
	HeartbeatExpiry time.Duration `yaml:"heartbeat_expiry"`
}

// DefaultHeartbeatExpiry is Config.HeartbeatExpiry's default.
const DefaultHeartbeatExpiry = 24 * time.Hour

// Redis topologies (RedisConfig.Mode).
const (
	ModeSingle   = "single"   // one server (Addr, or one entry in Addrs)
	ModeSentinel = "sentinel" // Sentinel-managed primary: Addrs are the sentinels
	ModeCluster  = "cluster"  // Redis Cluster: Addrs are seed nodes
)

// RedisConfig is how to connect to Redis. The topology is stated (Mode),
// never guessed from the number of addresses.
type RedisConfig struct {
	// Mode is single, sentinel or cluster. Empty means single, and is
	// accepted only with Addr (a config that lists Addrs says which
	// topology they are).
	Mode string `yaml:"mode"`
	// Addr is one server's host:port, the same as Mode single with Addrs
	// holding it alone. Not with Addrs.
	Addr string `yaml:"addr"`
	// Addrs are, by Mode: the server (single, exactly one), the sentinels
	// (sentinel, at least one), or cluster seed nodes (cluster, at least
	// one).
	Addrs []string `yaml:"addrs"`
	// MasterName is the name the sentinels know the primary by (sentinel
	// mode only; required there).
	MasterName string `yaml:"master_name"`
	// TLS secures the connections (to the sentinels too). Zero value: plain
	// TCP.
	TLS RedisTLSConfig `yaml:"tls"`
	// Username is the ACL user name. Empty means the default user.
	Username string `yaml:"username"`
	// PasswordFile holds the password (one trailing newline is ignored).
	// Empty means no password.
	PasswordFile string `yaml:"password_file"`
	// SentinelUsername and SentinelPasswordFile authenticate to the
	// sentinels (sentinel mode only). Empty: no authentication.
	SentinelUsername     string `yaml:"sentinel_username"`
	SentinelPasswordFile string `yaml:"sentinel_password_file"`
	// DB is the database number (not with Redis Cluster). Default 0.
	DB int `yaml:"db"`
	// DialTimeout bounds one connection attempt. Default 2s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Timeout bounds one command's read or write. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
}

// EffectiveMode is Mode, or single when it is empty.
func (r RedisConfig) EffectiveMode() string {
	if r.Mode == "" {
		return ModeSingle
	}
	return r.Mode
}

// Servers are the configured addresses: Addr alone, or Addrs.
func (r RedisConfig) Servers() []string {
	if r.Addr != "" {
		return []string{r.Addr}
	}
	return r.Addrs
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
	if c.HeartbeatExpiry == 0 {
		c.HeartbeatExpiry = DefaultHeartbeatExpiry
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

// Validate returns the configuration's problems, each with the path of
// its field below the fleet: block (redis.addr, redis.addrs[1]) and a
// message; the config loader puts them under fleet and finds their lines.
// It reads no files; NewClient does. Call it after ApplyDefaults.
func (c Config) Validate() problem.List {
	var p problem.List
	if c.HeartbeatExpiry != 0 && c.HeartbeatExpiry < time.Minute {
		p.Addf(problem.Path{"heartbeat_expiry"}, "%s: want at least 1m (edges beat every 5s)", c.HeartbeatExpiry)
	}
	r := c.Redis
	mode := r.EffectiveMode()
	switch r.Mode {
	case "", ModeSingle, ModeSentinel, ModeCluster:
	default:
		p.Addf(problem.Path{"redis", "mode"}, "%q: want single, sentinel or cluster", r.Mode)
		mode = "?" // judge the rest without a mode
	}
	switch {
	case mode == "?":
	case r.Addr == "" && len(r.Addrs) == 0:
		p.Addf(problem.Path{"redis", "addr"}, "required (or addrs with a mode)")
	case r.Addr != "" && len(r.Addrs) > 0:
		p.Addf(problem.Path{"redis", "addrs"}, "set either addr or addrs, not both")
	case r.Addr != "" && mode != ModeSingle:
		p.Addf(problem.Path{"redis", "addr"}, "is for mode single; mode %s takes addrs", mode)
	case len(r.Addrs) > 0 && r.Mode == "":
		p.Addf(problem.Path{"redis", "mode"}, "required with addrs: single (one server), sentinel (the sentinels) or cluster (seed nodes)")
	case mode == ModeSingle && len(r.Addrs) > 1:
		p.Addf(problem.Path{"redis", "addrs"}, "mode single takes one server (got %d addresses)", len(r.Addrs))
	}
	if r.Addr != "" {
		if err := checkHostPort(r.Addr); err != nil {
			p.Addf(problem.Path{"redis", "addr"}, "%v", err)
		}
	}
	for i, a := range r.Addrs {
		if err := checkHostPort(a); err != nil {
			p.Addf(problem.Path{"redis", "addrs", i}, "%v", err)
		}
	}
	if r.DB < 0 {
		p.Addf(problem.Path{"redis", "db"}, "must not be negative (got %d)", r.DB)
	}
	if mode == ModeSentinel {
		if r.MasterName == "" {
			p.Addf(problem.Path{"redis", "master_name"}, "required with mode sentinel")
		}
	} else {
		if r.MasterName != "" {
			p.Addf(problem.Path{"redis", "master_name"}, "only with mode sentinel")
		}
		if r.SentinelUsername != "" || r.SentinelPasswordFile != "" {
			p.Addf(problem.Path{"redis", "sentinel_password_file"}, "sentinel_username and sentinel_password_file are only for mode sentinel")
		}
	}
	if mode == ModeCluster {
		if r.DB != 0 {
			p.Addf(problem.Path{"redis", "db"}, "Redis Cluster has only database 0")
		}
		if !hasHashTag(c.Prefix) {
			p.Addf(problem.Path{"prefix"}, "with Redis Cluster the prefix needs a hash tag such as \"{edgeblock}:\" so all keys share a slot (got %q)", c.Prefix)
		}
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		p.Addf(problem.Path{"redis", "tls"}, "cert_file and key_file go together")
	}
	if r.DialTimeout < 0 {
		p.Addf(problem.Path{"redis", "dial_timeout"}, "must not be negative")
	}
	if r.Timeout < 0 {
		p.Addf(problem.Path{"redis", "timeout"}, "must not be negative")
	}
	if c.Prefix == "" {
		p.Addf(problem.Path{"prefix"}, "required")
	}
	if c.Node == "" {
		p.Addf(problem.Path{"node"}, "required")
	} else if strings.ContainsFunc(c.Node, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		p.Addf(problem.Path{"node"}, "must not contain spaces or control characters (got %q)", c.Node)
	}
	if c.Keep < DefaultKeep {
		p.Addf(problem.Path{"keep"}, "must be at least %d (got %d)", DefaultKeep, c.Keep)
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
