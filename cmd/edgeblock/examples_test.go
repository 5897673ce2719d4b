package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
)

// TestScenarioExamples checks every scenario config of deploy/examples as
// an operator would use it: copied beside the example blocklist, with
// stand-ins for the secrets it names (which do not belong in Git), and for
// the fleet scenarios a real redis-server in place of redis.internal, the
// example list published to it. The edges' configs must pass check; the
// tools' config must read the fleet's history.
func TestScenarioExamples(t *testing.T) {
	examples := filepath.Join(deployDir, "examples")
	cases := []struct {
		file     string
		standIns map[string]string // files the example names, relative to it
		fleet    bool
		args     []string // the command, before -config
		want     string
	}{
		{file: "two-sites.yaml", args: []string{"check", "-admin", "off", "-state-dir", "off"}, want: "ok: "},
		{file: "container.yaml", args: []string{"check", "-admin", "off", "-state-dir", "off"}, want: "ok: "},
		{file: "wildcard-dns01.yaml", standIns: map[string]string{"tsig.secret": "c3RhbmQtaW4tc2VjcmV0\n"},
			args: []string{"check", "-admin", "off", "-state-dir", "off"}, want: "ok: "},
		{file: "admin-api.yaml", standIns: map[string]string{"admin-tokens": "deploy-bot:write:" + strings.Repeat("ab", 32) + "\n"},
			args: []string{"check", "-admin", "off", "-state-dir", "off"}, want: "ok: "},
		{file: "fleet-edge.yaml", standIns: map[string]string{"redis-password": "stand-in-password\n"}, fleet: true,
			args: []string{"check", "-admin", "off", "-state-dir", "off"}, want: "ok: "},
		{file: "fleet-tools.yaml", standIns: map[string]string{"redis-password": "stand-in-password\n"}, fleet: true,
			args: []string{"history"}, want: `"example list"`},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join(examples, c.file))
			if err != nil {
				t.Fatal(err)
			}
			list, err := os.ReadFile(filepath.Join(examples, "blocklist.txt"))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			files := map[string]string{"blocklist.txt": string(list)}
			for name, content := range c.standIns {
				if !strings.Contains(string(text), " "+name) {
					t.Fatalf("%s does not name %s; the stand-in is stale", c.file, name)
				}
				files[name] = content
			}
			config := string(text)
			if c.fleet {
				if testing.Short() {
					t.Skip("starts redis-server")
				}
				const addr = "addr: redis.internal:6379"
				if !strings.Contains(config, addr) {
					t.Fatalf("%s does not say %q", c.file, addr)
				}
				password := strings.TrimSpace(c.standIns["redis-password"])
				r := fleettest.Start(t, "--user", "edgeblock", "on", ">"+password, "~*", "&*", "+@all")
				config = strings.Replace(config, addr, "addr: "+r.Addr(), 1)
				fc := fleet.Config{Redis: fleet.RedisConfig{Addr: r.Addr(), Username: "edgeblock", PasswordFile: filepath.Join(dir, "redis-password")}, Prefix: "edgeblock:"}
				if err := os.WriteFile(fc.Redis.PasswordFile, []byte(password), 0o600); err != nil {
					t.Fatal(err)
				}
				fc.ApplyDefaults()
				rdb, err := fleet.NewClient(fc)
				if err != nil {
					t.Fatal(err)
				}
				defer rdb.Close()
				if _, err := fleet.NewStore(rdb, fc).Publish(t.Context(), list, fleet.Meta{Actor: "test", Comment: "example list"}, 0); err != nil {
					t.Fatal(err)
				}
			}
			files[c.file] = config
			for name, content := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{c.args[0], "-config", filepath.Join(dir, c.file)}, c.args[1:]...)
			code, out, errOut := runCmd(args...)
			if code != 0 || !strings.Contains(out, c.want) {
				t.Errorf("edgeblock %s: exit %d, want 0 and %q in the output\n%s%s", strings.Join(args, " "), code, c.want, out, errOut)
			}
		})
	}
}
