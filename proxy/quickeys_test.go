package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/certmgr"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// udpRelay forwards UDP datagrams between one client and a target that
// can be switched: the load balancer in front of a fleet, which sends a
// client's packets to another edge when the first one is gone.
type udpRelay struct {
	front, back *net.UDPConn
	to, client  atomic.Pointer[net.UDPAddr]
}

func newUDPRelay(t *testing.T, target string) *udpRelay {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	front, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{front: front, back: back}
	r.switchTo(t, target)
	t.Cleanup(func() { front.Close(); back.Close() })
	go func() {
		b := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(b)
			if err != nil {
				return
			}
			r.client.Store(from)
			back.WriteToUDP(b[:n], r.to.Load())
		}
	}()
	go func() {
		b := make([]byte, 65536)
		for {
			n, _, err := back.ReadFromUDP(b)
			if err != nil {
				return
			}
			if c := r.client.Load(); c != nil {
				front.WriteToUDP(b[:n], c)
			}
		}
	}()
	return r
}

func (r *udpRelay) switchTo(t *testing.T, target string) {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	r.to.Store(a)
}

// TestHTTP3FleetKeys: the edges of a fleet (one real redis-server, each
// edge with its own state directory and tls.storage) start together and
// get the same QUIC keys from the fleet's storage, made once; no edge
// logs them or writes them to its state directory. A client whose
// connection went to edge A and whose packets the load balancer then
// sends to edge B is reset by B at once (a stateless reset A's keys
// vouch for). A damaged value in the storage is a start error naming it;
// with Redis gone, an edge reads the keys from its local copy, and one
// without a copy falls back to its state directory, saying so.
func TestHTTP3FleetKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("real redis-server; skipped under -short")
	}
	rd := fleettest.Start(t)
	o := echoOrigin(t)
	var configs, storages []string
	for i := range 2 {
		storage := t.TempDir()
		storages = append(storages, storage)
		configs = append(configs, fmt.Sprintf(`listen:
  https: 127.0.0.1:0
  quic: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  mode: internal
  storage: %s
fleet:
  redis:
    addr: %s
  node: edge-%d
`, storage, rd.Addr(), i+1)+routeConfig("app.example", `"`+o.URL+`"`))
	}
	envs, bundles := newEdges(t, configs, "")
	var states []string
	for _, b := range bundles {
		b.StateDir = t.TempDir()
		states = append(states, b.StateDir)
	}
	startTogether(t, envs, bundles)
	a, b := envs[0].srv.quic, envs[1].srv.quic
	if *a.reset != *b.reset || *a.token != *b.token {
		t.Fatal("the two edges of the fleet have different QUIC keys")
	}
	if *a.reset == (quic.StatelessResetKey{}) || [32]byte(*a.reset) == [32]byte(*a.token) {
		t.Fatal("the keys are zero or equal")
	}
	stored, err := fleet.NewStorage(rd.Client(), fleet.Config{}).Load(context.Background(), quicKeysStorageKey)
	if err != nil || string(stored) != string(a.reset[:])+string(a.token[:]) {
		t.Fatalf("the keys in Redis (%s): %d bytes, %v; want the edges' keys", quicKeysStorageKey, len(stored), err)
	}
	for i, e := range envs {
		if _, err := os.Stat(filepath.Join(states[i], quicKeysFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("edge %d: a key file in its state directory (%v); the fleet's keys live in Redis", i+1, err)
		}
		if !strings.Contains(e.srv.quic.keys.source, "fleet storage") || e.srv.quic.keys.warning != "" {
			t.Errorf("edge %d: keys from %q (warning %q), want the fleet storage", i+1, e.srv.quic.keys.source, e.srv.quic.keys.warning)
		}
		logs := e.logs.String()
		for _, k := range [][]byte{a.reset[:], a.token[:]} {
			for _, enc := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k)} {
				if strings.Contains(logs, enc) {
					t.Errorf("edge %d logged a QUIC key", i+1)
				}
			}
		}
	}

	// A connection to A; then its packets go to B, which resets it.
	relay := newUDPRelay(t, envs[0].srv.Addr("quic"))
	ctx, cancel := context.WithTimeout(context.Background(), h3Patience)
	defer cancel()
	qc, err := quic.DialAddr(ctx, relay.front.LocalAddr().String(),
		&tls.Config{InsecureSkipVerify: true, ServerName: "app.example", NextProtos: []string{"h3"}},
		&quic.Config{MaxIdleTimeout: 20 * time.Second, HandshakeIdleTimeout: h3Patience})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(qc)
	req, _ := http.NewRequest("GET", "https://app.example/", nil)
	if resp, err := cc.RoundTrip(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("request to edge A: %v %v", resp, err)
	}
	relay.switchTo(t, envs[1].srv.Addr("quic"))
	sent := time.Now()
	go func() {
		req, _ := http.NewRequest("GET", "https://app.example/", nil)
		if resp, err := cc.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-qc.Context().Done():
		var reset *quic.StatelessResetError
		if err := context.Cause(qc.Context()); !errors.As(err, &reset) {
			t.Errorf("the connection to A ended after %v with %v; want a stateless reset from B", time.Since(sent), err)
		}
		t.Logf("edge B reset the connection to edge A %v after the next request", time.Since(sent).Round(time.Millisecond))
	case <-time.After(3 * time.Second):
		t.Error("edge B sent no stateless reset for the connection to edge A within 3s")
	}

	// A damaged value is an error naming it; nothing is made over it.
	fs := fleet.NewStorage(rd.Client(), fleet.Config{})
	good := stored
	if err := fs.Store(context.Background(), quicKeysStorageKey, []byte("short")); err != nil {
		t.Fatal(err)
	}
	noCopy, closeNoCopy, err := certmgr.OpenStorage("", envs[0].srv.cfg.Fleet)
	if err != nil {
		t.Fatal(err)
	}
	defer closeNoCopy()
	if _, err := quicKeysFor(context.Background(), noCopy, t.TempDir()); err == nil || !strings.Contains(err.Error(), quicKeysStorageKey) {
		t.Errorf("damaged keys in Redis: %v; want an error naming %s", err, quicKeysStorageKey)
	}
	if err := fs.Store(context.Background(), quicKeysStorageKey, good); err != nil {
		t.Fatal(err)
	}

	// Redis gone: the local copy under tls.storage still has the keys; an
	// edge without one uses its state directory and says why.
	rd.Stop()
	local, closeLocal, err := certmgr.OpenStorage(storages[0], envs[0].srv.cfg.Fleet)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLocal()
	k, err := quicKeysFor(context.Background(), local, t.TempDir())
	if err != nil || *k.reset != *a.reset || *k.token != *a.token || k.warning != "" {
		t.Errorf("Redis gone, local copy: %v, warning %q; want the fleet's keys", err, k.warning)
	}
	dir := t.TempDir()
	k, err = quicKeysFor(context.Background(), noCopy, dir)
	if err != nil || k.source != filepath.Join(dir, quicKeysFile) || k.warning == "" || *k.reset == *a.reset {
		t.Errorf("Redis gone, no local copy: source %q, warning %q, %v; want the state directory's own keys and a warning", k.source, k.warning, err)
	}
	if fi, err := os.Stat(filepath.Join(storages[0], certmgr.FleetCopyDir, quicKeysStorageKey)); err != nil {
		t.Errorf("local copy of the keys: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("local copy of the keys: mode %v, want 0600", fi.Mode().Perm())
	}
}
