package certmgr

import (
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/problem"
)

// Config is what the config's tls section says about obtaining, storing
// and keeping certificates: the part of the section this package acts on.
// proxy/config embeds it in its TLSConfig (inline, so its keys sit
// directly under tls:), applies the defaults and checks it; the other tls
// keys (staging, redirect_http, redirect_port, dns) belong to the edge.
// Changing it needs a restart.
type Config struct {
	// Mode is off (default), internal (the internal CA signs) or acme.
	Mode string `yaml:"mode"`
	// CA is the ACME directory URL. Default Let's Encrypt production
	// (staging with tls.staging).
	CA string `yaml:"ca"`
	// CARoot is a PEM file of roots to trust for the ACME server's own
	// HTTPS (a private ACME server).
	CARoot string `yaml:"ca_root"`
	// Email is the ACME account's contact.
	Email string `yaml:"email"`
	// Storage is the certificate directory. Default
	// $XDG_DATA_HOME/edgeblock, else $HOME/.local/share/edgeblock. With a
	// fleet, the directory of the local copy of the fleet's certificates.
	Storage string `yaml:"storage"`
	// Challenges are the ACME challenge types offered: "http-01" (answered
	// on the HTTP listener) and "tls-alpn-01" (on the HTTPS listener).
	// Default both.
	Challenges []string `yaml:"challenges"`
	// ManageAheadLimit caps how many exact names from routes and block
	// rules get certificates at start and reload (ManageAhead); names
	// beyond it (and names under wildcards) are obtained on first use.
	// Default 1000.
	ManageAheadLimit int `yaml:"manage_ahead_limit"`
	// OnDemand bounds the certificates obtained on first use.
	OnDemand certs.Limits `yaml:"on_demand"`
	// CacheCapacity is how many certificates are kept in memory; beyond
	// it certmagic evicts one at random, which is loaded again from
	// storage at its next handshake. Default 10000.
	CacheCapacity int `yaml:"cache_capacity"`
	// KeyType is the key type of new certificates: p256 (default), p384,
	// rsa2048 or rsa4096.
	KeyType string `yaml:"key_type"`
	// InternalLifetime is how long the internal CA's leaf certificates
	// are valid; they are renewed with a third of it left. Zero means
	// DefaultInternalLifetime (7 days); at least 10s.
	InternalLifetime time.Duration `yaml:"internal_lifetime"`
}

// The defaults of Config: what ApplyDefaults puts in a zero field.
const (
	DefaultMode                  = "off"
	DefaultManageAheadLimit      = 1000
	DefaultOnDemandMaxNewPerHour = 10
	DefaultOnDemandMaxNames      = 1000
	DefaultOnDemandAskTimeout    = 5 * time.Second
	DefaultCacheCapacity         = 10000
	DefaultKeyType               = "p256"
)

// DefaultChallenges are the ACME challenge types offered when Challenges
// is nil.
var DefaultChallenges = []string{"http-01", "tls-alpn-01"}

// ApplyDefaults fills c's zero fields with the defaults above and
// DefaultInternalLifetime. CA and Storage are left to the config loader:
// their defaults depend on tls.staging and the environment.
func (c *Config) ApplyDefaults() {
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Challenges == nil {
		c.Challenges = slices.Clone(DefaultChallenges)
	}
	if c.ManageAheadLimit == 0 {
		c.ManageAheadLimit = DefaultManageAheadLimit
	}
	if c.OnDemand.MaxNewPerHour == 0 {
		c.OnDemand.MaxNewPerHour = DefaultOnDemandMaxNewPerHour
	}
	if c.OnDemand.MaxNames == 0 {
		c.OnDemand.MaxNames = DefaultOnDemandMaxNames
	}
	if c.OnDemand.AskTimeout == 0 {
		c.OnDemand.AskTimeout = DefaultOnDemandAskTimeout
	}
	if c.CacheCapacity == 0 {
		c.CacheCapacity = DefaultCacheCapacity
	}
	if c.KeyType == "" {
		c.KeyType = DefaultKeyType
	}
	if c.InternalLifetime == 0 {
		c.InternalLifetime = DefaultInternalLifetime
	}
}

// Validate checks c after ApplyDefaults on its own; the paths of its
// problems are below the tls section. What needs other sections (mode
// internal or acme needs listen.https, http-01 needs listen.http, the
// wildcard routes) is the config loader's to check.
func (c *Config) Validate() problem.List {
	var l problem.List
	switch c.Mode {
	case "off", "internal", "acme":
	default:
		l.Addf(problem.Path{"mode"}, "%q: want off, internal or acme", c.Mode)
	}
	if c.Mode == "acme" {
		if u, err := url.Parse(c.CA); err != nil || u.Scheme != "https" || u.Host == "" {
			l.Addf(problem.Path{"ca"}, "%q is not an https URL", c.CA)
		}
	}
	if len(c.Challenges) == 0 {
		l.Addf(problem.Path{"challenges"}, "empty: want http-01, tls-alpn-01 or both")
	}
	for i, ch := range c.Challenges {
		if ch != "http-01" && ch != "tls-alpn-01" {
			l.Addf(problem.Path{"challenges", i}, "%q: want http-01 or tls-alpn-01", ch)
		}
	}
	for _, f := range []struct {
		key string
		val int
	}{{"max_new_per_hour", c.OnDemand.MaxNewPerHour}, {"max_names", c.OnDemand.MaxNames}} {
		if f.val < 0 {
			l.Addf(problem.Path{"on_demand", f.key}, "must not be negative")
		}
	}
	if c.OnDemand.AskTimeout < 0 {
		l.Addf(problem.Path{"on_demand", "ask_timeout"}, "must not be negative")
	}
	if a := c.OnDemand.Ask; a != "" {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			l.Addf(problem.Path{"on_demand", "ask"}, "%q: want an http:// or https:// URL without a fragment", a)
		}
	}
	if c.InternalLifetime < 10*time.Second {
		l.Addf(problem.Path{"internal_lifetime"}, "%s: want at least 10s", c.InternalLifetime)
	}
	if c.CacheCapacity < 0 {
		l.Addf(problem.Path{"cache_capacity"}, "must not be negative")
	}
	if !slices.Contains([]string{"p256", "p384", "rsa2048", "rsa4096"}, c.KeyType) {
		l.Addf(problem.Path{"key_type"}, "%q: want p256, p384, rsa2048 or rsa4096", c.KeyType)
	}
	if c.CARoot != "" {
		if _, err := os.Stat(c.CARoot); err != nil {
			l.Addf(problem.Path{"ca_root"}, "%s", problem.FileError(err))
		}
	}
	return l
}
