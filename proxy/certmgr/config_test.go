package certmgr

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/certs"
)

// TestConfigDefaults: a zero Config takes every named default; a set
// field keeps its value.
func TestConfigDefaults(t *testing.T) {
	var c Config
	c.ApplyDefaults()
	want := Config{Mode: DefaultMode, Challenges: DefaultChallenges, ManageAheadLimit: DefaultManageAheadLimit,
		OnDemand:      certs.Limits{MaxNewPerHour: DefaultOnDemandMaxNewPerHour, MaxNames: DefaultOnDemandMaxNames, AskTimeout: DefaultOnDemandAskTimeout},
		CacheCapacity: DefaultCacheCapacity, KeyType: DefaultKeyType, InternalLifetime: DefaultInternalLifetime}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if len(c.Validate()) != 0 {
		t.Errorf("the defaults have problems: %v", c.Validate())
	}
	c.Challenges[0] = "changed"
	if DefaultChallenges[0] != "http-01" {
		t.Error("ApplyDefaults shares DefaultChallenges with the config")
	}
	set := Config{Mode: "acme", KeyType: "rsa2048", InternalLifetime: time.Minute, Challenges: []string{"tls-alpn-01"}}
	set.ApplyDefaults()
	if set.Mode != "acme" || set.KeyType != "rsa2048" || set.InternalLifetime != time.Minute || len(set.Challenges) != 1 {
		t.Errorf("set fields changed by the defaults: %+v", set)
	}
}

// TestConfigValidate: each bad field is one problem, with its path below
// the tls section.
func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string // the one problem, "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"mode", func(c *Config) { c.Mode = "magic" }, `mode: "magic": want off, internal or acme`},
		{"acme CA", func(c *Config) { c.Mode, c.CA = "acme", "http://ca.example/dir" }, `ca: "http://ca.example/dir" is not an https URL`},
		{"internal ignores CA", func(c *Config) { c.Mode, c.CA = "internal", "not a url" }, ""},
		{"challenges empty", func(c *Config) { c.Challenges = []string{} }, "challenges: empty: want http-01, tls-alpn-01 or both"},
		{"challenge", func(c *Config) { c.Challenges = []string{"http-01", "dns-01"} }, `challenges[1]: "dns-01": want http-01 or tls-alpn-01`},
		{"max_names", func(c *Config) { c.OnDemand.MaxNames = -1 }, "on_demand.max_names: must not be negative"},
		{"ask_timeout", func(c *Config) { c.OnDemand.AskTimeout = -time.Second }, "on_demand.ask_timeout: must not be negative"},
		{"ask", func(c *Config) { c.OnDemand.Ask = "https://ask.example/#x" }, `on_demand.ask: "https://ask.example/#x": want an http:// or https:// URL without a fragment`},
		{"internal_lifetime", func(c *Config) { c.InternalLifetime = time.Second }, "internal_lifetime: 1s: want at least 10s"},
		{"cache_capacity", func(c *Config) { c.CacheCapacity = -1 }, "cache_capacity: must not be negative"},
		{"key_type", func(c *Config) { c.KeyType = "rsa1024" }, `key_type: "rsa1024": want p256, p384, rsa2048 or rsa4096`},
		{"ca_root", func(c *Config) { c.CARoot = filepath.Join(t.TempDir(), "missing.pem") }, "ca_root: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.ApplyDefaults()
			tt.edit(&c)
			ps := c.Validate()
			switch {
			case tt.want == "" && len(ps) != 0:
				t.Errorf("problems %v, want none", ps)
			case tt.want != "" && (len(ps) != 1 || !strings.HasPrefix(ps[0].String(), tt.want)):
				t.Errorf("problems %v, want one: %s", ps, tt.want)
			}
		})
	}
}
