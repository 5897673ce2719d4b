package config

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFleetConfigProblems: the fleet section's problems (from
// fleet.Config.Validate) and blocklist.source's carry file:line like every
// other config problem; unknown keys inside fleet: are found too.
func TestFleetConfigProblems(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/fleet-invalid.yaml", []string{
			`testdata/fleet-invalid.yaml:7: fleet.redis.addr: want host:port (got "redis.internal")`,
			`testdata/fleet-invalid.yaml:8: fleet.redis.db: must not be negative (got -1)`,
			`testdata/fleet-invalid.yaml:10: fleet.redis.tls: cert_file and key_file go together`,
			`testdata/fleet-invalid.yaml:11: fleet.redis.timout: unknown key (did you mean timeout?)`,
			`testdata/fleet-invalid.yaml:13: fleet.node: must not contain spaces or control characters (got "edge 1")`,
			`testdata/fleet-invalid.yaml:14: fleet.keep: must be at least 100 (got 10)`,
		}},
		{"testdata/fleet-modes.yaml", []string{
			`testdata/fleet-modes.yaml:7: fleet.redis.mode: required with addrs: single (one server), sentinel (the sentinels) or cluster (seed nodes)`,
		}},
		{"testdata/fleet-sentinel.yaml", []string{
			`testdata/fleet-sentinel.yaml:7: fleet.redis.master_name: required with mode sentinel`,
			`testdata/fleet-sentinel.yaml:10: fleet.redis.addrs[1]: want host:port (got "10.0.0.2")`,
		}},
		{"testdata/fleet-source.yaml", []string{
			`testdata/fleet-source.yaml:4: blocklist.source: "redis": want file or fleet`,
		}},
		{"testdata/fleet-missing.yaml", []string{
			`testdata/fleet-missing.yaml:6: fleet.redis: addr or addrs is required`,
		}},
		{"testdata/fleet-nosection.yaml", []string{
			`testdata/fleet-nosection.yaml:4: blocklist.source: fleet needs the fleet section (fleet.redis.addr at least)`,
		}},
		{"testdata/fleet-types.yaml", []string{
			`testdata/fleet-types.yaml:7: fleet.redis.addrs: want a list, got "10.0.0.1:6379"`,
			`testdata/fleet-types.yaml:8: fleet.redis.dial_timeout: want a duration such as 30s or 1m30s, got "soon"`,
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			_, err := LoadConfig(tt.file)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("LoadConfig(%s) = %v, want *ConfigError", tt.file, err)
			}
			if !slices.Equal(ce.Problems, tt.want) {
				t.Errorf("LoadConfig(%s) problems:\n%s\nwant:\n%s", tt.file, strings.Join(ce.Problems, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestFleetConfigDefaults: a fleet section gets fleet's defaults, its
// files resolve against the config's directory, and without it the
// source is file and there is no fleet.
func TestFleetConfigDefaults(t *testing.T) {
	c, err := LoadConfig("testdata/fleet-ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := c.Fleet
	if !c.FromFleet() || f == nil {
		t.Fatalf("source %q, fleet %v: want fleet", c.Blocklist.Source, f)
	}
	if f.Prefix != "edgeblock:" || f.Keep != 100 || f.Redis.Timeout != 2*time.Second || f.Node != "edge-1" {
		t.Errorf("defaults not applied: %+v", *f)
	}
	if want := filepath.Join("testdata", "secrets", "redis-password"); f.Redis.PasswordFile != want {
		t.Errorf("password_file = %q, want %q", f.Redis.PasswordFile, want)
	}
	if c.Blocklist.File != "" {
		t.Errorf("blocklist.file = %q, want empty (optional with source fleet)", c.Blocklist.File)
	}
	c, err = LoadConfig("testdata/contract.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.FromFleet() || c.Fleet != nil || c.Blocklist.Source != SourceFile {
		t.Errorf("without fleet: source %q, fleet %v; want file, nil", c.Blocklist.Source, c.Fleet)
	}
}
