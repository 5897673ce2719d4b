package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgeblock/edgeblock/proxy/problem"
)

func TestConfigYAMLAndDefaults(t *testing.T) {
	// The contract, as the proxy's config file would carry it.
	src := `
redis:
  addr: 127.0.0.1:6379
  username: edge
  password_file: /run/secrets/redis
  db: 2
  tls:
    ca_file: ca.pem
    cert_file: c.pem
    key_file: k.pem
    server_name: redis.internal
prefix: "edgeblock:"
node: edge-1
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Redis: RedisConfig{
			Addr: "127.0.0.1:6379", Username: "edge", PasswordFile: "/run/secrets/redis", DB: 2,
			TLS: RedisTLSConfig{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "redis.internal"},
		},
		Prefix: "edgeblock:", Node: "edge-1",
	}
	if !configEqual(c, want) {
		t.Fatalf("decoded %+v\nwant    %+v", c, want)
	}
	if !c.Redis.TLS.On() {
		t.Error("TLS files set but TLS.On() is false")
	}

	var z Config
	if err := z.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if z.Prefix != DefaultPrefix || z.Node != host || z.Keep != DefaultKeep ||
		z.Redis.DialTimeout != 2*time.Second || z.Redis.Timeout != 2*time.Second || z.Redis.TLS.On() {
		t.Fatalf("defaults: %+v", z)
	}
}

func configEqual(a, b Config) bool {
	return a.Prefix == b.Prefix && a.Node == b.Node && a.Keep == b.Keep &&
		a.Redis.Addr == b.Redis.Addr && slices.Equal(a.Redis.Addrs, b.Redis.Addrs) &&
		a.Redis.Username == b.Redis.Username && a.Redis.PasswordFile == b.Redis.PasswordFile &&
		a.Redis.DB == b.Redis.DB && a.Redis.TLS == b.Redis.TLS && a.Redis.Mode == b.Redis.Mode &&
		a.Redis.MasterName == b.Redis.MasterName && a.Redis.SentinelUsername == b.Redis.SentinelUsername &&
		a.Redis.SentinelPasswordFile == b.Redis.SentinelPasswordFile
}

// TestConfigYAMLSentinel decodes the sentinel form of the redis section.
func TestConfigYAMLSentinel(t *testing.T) {
	src := `
redis:
  mode: sentinel
  addrs: [10.0.0.1:26379, 10.0.0.2:26379, 10.0.0.3:26379]
  master_name: edgeblock
  username: edge
  password_file: /run/secrets/redis
  sentinel_username: watcher
  sentinel_password_file: /run/secrets/sentinel
node: edge-1
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{Redis: RedisConfig{
		Mode: ModeSentinel, Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"}, MasterName: "edgeblock",
		Username: "edge", PasswordFile: "/run/secrets/redis", SentinelUsername: "watcher", SentinelPasswordFile: "/run/secrets/sentinel",
	}, Node: "edge-1"}
	if !configEqual(c, want) {
		t.Fatalf("decoded %+v\nwant    %+v", c, want)
	}
	if err := c.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	if p := c.Validate(); len(p) > 0 {
		t.Fatalf("Validate: %q", p)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Config{Redis: RedisConfig{Addr: "127.0.0.1:6379"}, Node: "edge-1"}
		if err := c.ApplyDefaults(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // substrings, one per expected problem
	}{
		{"valid", func(*Config) {}, nil},
		{"no addr", func(c *Config) { c.Redis.Addr = "" }, []string{"fleet.redis.addr: required"}},
		{"bad addr", func(c *Config) { c.Redis.Addr = "localhost" }, []string{"fleet.redis.addr: want host:port"}},
		{"bad port", func(c *Config) { c.Redis.Addr = "localhost:63x9" }, []string{"fleet.redis.addr: bad port"}},
		{"addr and addrs", func(c *Config) { c.Redis.Addrs = []string{"a:1"}; c.Redis.Mode = ModeSingle }, []string{"fleet.redis.addrs: set either"}},
		{"bad mode", func(c *Config) { c.Redis.Mode = "replicas" }, []string{`fleet.redis.mode: "replicas": want single, sentinel or cluster`}},
		{"addrs without mode", func(c *Config) { c.Redis.Addr = ""; c.Redis.Addrs = []string{"a:1", "b:2"}; c.Prefix = "{e}:" }, []string{"fleet.redis.mode: required with addrs"}},
		{"single addrs one", func(c *Config) { c.Redis.Addr = ""; c.Redis.Addrs = []string{"a:1"}; c.Redis.Mode = ModeSingle }, nil},
		{"single addrs two", func(c *Config) { c.Redis.Addr = ""; c.Redis.Addrs = []string{"a:1", "b:2"}; c.Redis.Mode = ModeSingle }, []string{"fleet.redis.addrs: mode single takes one server"}},
		{"addr with cluster mode", func(c *Config) { c.Redis.Mode = ModeCluster; c.Prefix = "{e}:" }, []string{"fleet.redis.addr: is for mode single"}},
		{"cluster without hash tag", func(c *Config) { c.Redis.Addr = ""; c.Redis.Addrs = []string{"a:1", "b:2"}; c.Redis.Mode = ModeCluster }, []string{"fleet.prefix: with Redis Cluster"}},
		{"cluster ok", func(c *Config) {
			c.Redis.Addr = ""
			c.Redis.Addrs = []string{"a:1", "b:2"}
			c.Prefix = "{edgeblock}:"
			c.Redis.Mode = ModeCluster
		}, nil},
		{"cluster one seed ok", func(c *Config) {
			c.Redis.Addr = ""
			c.Redis.Addrs = []string{"a:1"}
			c.Prefix = "{edgeblock}:"
			c.Redis.Mode = ModeCluster
		}, nil},
		{"cluster bad seed and db", func(c *Config) {
			c.Redis.Addr = ""
			c.Redis.Addrs = []string{"a:1", "b"}
			c.Redis.Mode = ModeCluster
			c.Prefix = "{e}:"
			c.Redis.DB = 1
		}, []string{"fleet.redis.addrs[1]: want host:port", "fleet.redis.db: Redis Cluster has only database 0"}},
		{"sentinel ok", func(c *Config) {
			c.Redis = RedisConfig{Mode: ModeSentinel, Addrs: []string{"s1:26379", "s2:26379", "s3:26379"}, MasterName: "edgeblock",
				SentinelUsername: "sent", SentinelPasswordFile: "/run/s", Timeout: time.Second}
		}, nil},
		{"sentinel without master name", func(c *Config) { c.Redis = RedisConfig{Mode: ModeSentinel, Addrs: []string{"s1:26379"}} }, []string{"fleet.redis.master_name: required with mode sentinel"}},
		{"sentinel bad address", func(c *Config) { c.Redis = RedisConfig{Mode: ModeSentinel, Addrs: []string{"s1"}, MasterName: "m"} }, []string{"fleet.redis.addrs[0]: want host:port"}},
		{"master name without sentinel", func(c *Config) { c.Redis.MasterName = "m" }, []string{"fleet.redis.master_name: only with mode sentinel"}},
		{"sentinel password without sentinel", func(c *Config) { c.Redis.SentinelPasswordFile = "/x" }, []string{"fleet.redis.sentinel_password_file: sentinel_username and sentinel_password_file are only for mode sentinel"}},
		{"negative db", func(c *Config) { c.Redis.DB = -1 }, []string{"fleet.redis.db: must not be negative"}},
		{"cert without key", func(c *Config) { c.Redis.TLS.CertFile = "c.pem" }, []string{"fleet.redis.tls: cert_file and key_file go together"}},
		{"node with space", func(c *Config) { c.Node = "edge 1" }, []string{"fleet.node: must not contain spaces"}},
		{"keep too small", func(c *Config) { c.Keep = 10 }, []string{"fleet.keep: must be at least 100"}},
		{"negative timeout", func(c *Config) { c.Redis.Timeout = -time.Second }, []string{"fleet.redis.timeout: must not be negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			var got []string
			for _, p := range c.Validate() {
				got = append(got, problem.Problem{Path: p.Path.Under("fleet"), Msg: p.Msg}.String())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Validate() = %q, want %d problems like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestNewClientPassword(t *testing.T) {
	r := startRedis(t, "--requirepass", "s3cret")
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	os.WriteFile(bad, []byte("wrong\n"), 0o600)
	tests := []struct {
		name    string
		file    string
		wantErr string // from NewClient ("") or from PING
		pingErr string
	}{
		{"right password", good, "", ""},
		{"wrong password", bad, "", "WRONGPASS"},
		{"no password", "", "", "NOAUTH"},
		{"missing file", filepath.Join(dir, "nope"), "fleet.redis.password_file:", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Redis: RedisConfig{Addr: r.Addr(), PasswordFile: tc.file}, Node: "n"}
			cfg.ApplyDefaults()
			c, err := NewClient(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewClient: got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Ping(context.Background()).Err()
			if tc.pingErr == "" && err != nil || tc.pingErr != "" && (err == nil || !strings.Contains(err.Error(), tc.pingErr)) {
				t.Fatalf("PING: got %v, want %q", err, tc.pingErr)
			}
		})
	}
}

// TestNewClientTLS runs Redis with TLS only, requiring client certificates,
// and connects with NewClient's CA, client certificate and server name.
func TestNewClientTLS(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	clientTLS := &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.clientPair}, ServerName: "redis.test"}
	r := startRedisTLS(t, clientTLS,
		"--tls-cert-file", pki.serverCert, "--tls-key-file", pki.serverKey,
		"--tls-ca-cert-file", pki.caFile, "--tls-auth-clients", "yes")

	tests := []struct {
		name    string
		tls     RedisTLSConfig
		pingErr string
	}{
		{"ca, client cert, server name", RedisTLSConfig{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "redis.test"}, ""},
		{"wrong server name", RedisTLSConfig{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "other.test"}, "certificate is valid for redis.test"},
		// The server refuses the handshake; how that surfaces (alert or
		// reset) depends on timing, so any error will do.
		{"no client cert", RedisTLSConfig{CAFile: pki.caFile, ServerName: "redis.test"}, "*"},
		{"system roots only", RedisTLSConfig{Enabled: true, ServerName: "redis.test"}, "certificate signed by unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Redis: RedisConfig{Addr: r.Addr(), TLS: tc.tls}, Node: "n"}
			cfg.ApplyDefaults()
			c, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = c.Ping(ctx).Err()
			if tc.pingErr == "*" && err != nil {
				return
			}
			if tc.pingErr == "" && err != nil || tc.pingErr != "" && (err == nil || !strings.Contains(err.Error(), tc.pingErr)) {
				t.Fatalf("PING: got %v, want %q", err, tc.pingErr)
			}
		})
	}

	for _, tc := range []struct {
		name string
		tls  RedisTLSConfig
		want string
	}{
		{"missing CA file", RedisTLSConfig{CAFile: filepath.Join(dir, "nope.pem")}, "fleet.redis.tls.ca_file:"},
		{"CA file without PEM", RedisTLSConfig{CAFile: pki.serverKey + ".txt"}, "fleet.redis.tls.ca_file:"},
		{"key without cert", RedisTLSConfig{KeyFile: pki.clientKey}, "cert_file and key_file go together"},
		{"mismatched pair", RedisTLSConfig{CertFile: pki.clientCert, KeyFile: pki.serverKey}, "fleet.redis.tls.cert_file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(pki.serverKey+".txt", []byte("not pem"), 0o600)
			_, err := NewClient(Config{Redis: RedisConfig{Addr: "127.0.0.1:1", TLS: tc.tls}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewClient: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// testPKI is a CA with a server and a client certificate, as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
	clientPair                                           tls.Certificate
}

func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	write := func(name, typ string, der []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: dns, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("redis.test", 2, x509.ExtKeyUsageServerAuth, []string{"redis.test"}, nil)
	p.clientCert, p.clientKey = leaf("edge-1", 3, x509.ExtKeyUsageClientAuth, nil, nil)
	pair, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	p.clientPair = pair
	return p
}
