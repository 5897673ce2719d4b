package certmgr

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// OpenStorage returns where certificates, ACME accounts, locks and the
// internal CA live: the fleet's Redis (fleet.Storage) when fc is set, so
// that every edge shares them (failing fast while Redis is unreachable,
// see failFastStorage, with its local copy under dir), else the directory
// dir (tls.storage). closeStorage releases the Redis client.
func OpenStorage(dir string, fc *fleet.Config) (storage certmagic.Storage, closeStorage func(), err error) {
	if fc != nil {
		fc := *fc
		if err := fc.ApplyDefaults(); err != nil {
			return nil, nil, err
		}
		if err := fc.Validate().Err("fleet"); err != nil {
			return nil, nil, err
		}
		rdb, err := fleet.NewClient(fc)
		if err != nil {
			return nil, nil, err
		}
		f := &failFastStorage{s: fleet.NewStorage(rdb, fc)}
		if dir != "" {
			dir := filepath.Join(dir, FleetCopyDir)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				rdb.Close()
				return nil, nil, fmt.Errorf("tls.storage: the local copy of the fleet's certificates: %w", err)
			}
			f.local = &certmagic.FileStorage{Path: dir}
		}
		return f, func() { rdb.Close() }, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("tls.storage: %w", err)
	}
	return &certmagic.FileStorage{Path: dir}, func() {}, nil
}

// FleetCopyDir is the directory under tls.storage that holds, in fleet
// mode, the local copy of the certificates, keys and internal CA read from
// or written to the fleet's Redis (see failFastStorage).
const FleetCopyDir = "fleet-copy"

// issuerKey is where certmagic stores the certificates of our issuer.
func (t *Manager) issuerKey() string {
	if len(t.ahead.Issuers) == 0 {
		return ""
	}
	return t.ahead.Issuers[0].IssuerKey()
}

// stored reports whether storage holds a whole certificate for name, or
// for the wildcard one level above it: such a name is not new, and a
// handshake for it loads that certificate rather than obtaining one.
func (t *Manager) stored(ctx context.Context, name string) bool {
	if t.storedWhole(ctx, name) {
		return true
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		return t.storedWhole(ctx, "*."+parent)
	}
	return false
}

// storedWhole reports whether the key, the certificate and the metadata
// of name's certificate are all in storage. certmagic stores them one
// after another, the metadata last, and caches the certificate after
// that: a certificate file alone is one being stored, which a handshake
// cannot load yet. Allowed then, the handshake would get a certificate
// of its own, so that a name under a wildcard got a second order.
func (t *Manager) storedWhole(ctx context.Context, name string) bool {
	key := t.issuerKey()
	for _, k := range []string{certmagic.StorageKeys.SiteMeta(key, name), certmagic.StorageKeys.SiteCert(key, name),
		certmagic.StorageKeys.SitePrivateKey(key, name)} {
		if !t.ahead.Storage.Exists(ctx, k) {
			return false
		}
	}
	return true
}

// storedNames lists the names storage holds certificates for, so that
// they count towards tls.on_demand.max_names after a restart.
func (t *Manager) storedNames(ctx context.Context) []string {
	prefix := certmagic.StorageKeys.CertsPrefix(t.issuerKey())
	keys, err := t.ahead.Storage.List(ctx, prefix, false)
	if err != nil {
		return nil // none yet
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, path.Base(k))
	}
	return names
}

// InternalRootPEM returns the internal CA's root certificate kept in the
// directory dir (tls.storage), or in the fleet's Redis when fc is set,
// creating the CA if it does not exist yet.
func InternalRootPEM(dir string, fc *fleet.Config) ([]byte, error) {
	storage, closeStorage, err := OpenStorage(dir, fc)
	if err != nil {
		return nil, err
	}
	defer closeStorage()
	ca := newInternalCA(storage)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ca.load(ctx); err != nil {
		return nil, err
	}
	return ca.RootPEM(), nil
}

// Storage returns where certificates live (see OpenStorage): in fleet
// mode the fleet's Redis behind the breaker and its local copy. Other
// state shared by the fleet's edges (the HTTP/3 keys) lives there too.
func (t *Manager) Storage() certmagic.Storage { return t.magic.Storage }
