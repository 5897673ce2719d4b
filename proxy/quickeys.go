package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/quic-go/quic-go"
)

// In fleet mode the QUIC keys (the stateless-reset key and the address
// token key) live in the certificate storage, the fleet's Redis, beside
// the certificates and the internal CA: one value made once, under the
// storage's lock, and read by every edge. Every edge of the fleet then
// resets the connections of any other (a client whose edge died, sent to
// another by the load balancer, learns at once that its connection is
// gone) and honours the address tokens any other gave out.
const (
	// quicKeysStorageKey is the storage key of the QUIC keys: 64 bytes,
	// the stateless-reset key then the token key.
	quicKeysStorageKey = "quic/keys"
	// quicKeysLock is the storage lock held while the keys are made.
	quicKeysLock = "quic-keys"
	// quicKeysTimeout bounds reading (or making) the keys at start.
	quicKeysTimeout = 10 * time.Second
)

// quicKeySet is the stateless-reset key and the token key, and where they
// come from (for the start line; never the keys themselves).
type quicKeySet struct {
	reset  *quic.StatelessResetKey
	token  *quic.TokenGeneratorKey
	source string // "": memory only
	// warning, when set, says why the keys are not the fleet's.
	warning string
}

// quicKeysFor returns the QUIC keys of an edge: from the fleet's storage
// when fleetStore is set, else from the state directory (see
// loadQUICKeys). When the fleet's storage cannot give them (Redis
// unreachable at start, and the keys not in the local copy), the keys of
// the state directory are used and warning says so: the edge still
// starts, and resets only the connections made to itself until it is
// restarted with Redis reachable. A damaged value in the storage is an
// error, as a damaged file is.
func quicKeysFor(ctx context.Context, fleetStore certmagic.Storage, stateDir string) (quicKeySet, error) {
	var warning string
	if fleetStore != nil {
		ctx, cancel := context.WithTimeout(ctx, quicKeysTimeout)
		b, err := fleetQUICKeys(ctx, fleetStore)
		cancel()
		if err == nil {
			reset, token, err := splitQUICKeys(b, fmt.Sprintf("%s in %v", quicKeysStorageKey, fleetStore))
			if err != nil {
				return quicKeySet{}, err
			}
			return quicKeySet{reset: reset, token: token, source: fmt.Sprintf("fleet storage (%s in %v)", quicKeysStorageKey, fleetStore)}, nil
		}
		if errors.Is(err, errQUICKeysDamaged) {
			return quicKeySet{}, err
		}
		warning = fmt.Sprintf("the fleet's QUIC keys could not be read (%v): this edge uses its own until it is restarted with Redis reachable, and resets only connections made to itself", err)
	}
	reset, token, file, err := loadQUICKeys(stateDir)
	if err != nil {
		return quicKeySet{}, err
	}
	return quicKeySet{reset: reset, token: token, source: file, warning: warning}, nil
}

// quicKeyStore returns the fleet's certificate storage in fleet mode,
// where the QUIC keys are kept; nil otherwise (the state directory).
func (s *Server) quicKeyStore() certmagic.Storage {
	if s.cfg.Fleet == nil || s.tls == nil {
		return nil
	}
	return s.tls.Storage()
}

// errQUICKeysDamaged marks keys that are there but not 64 bytes.
var errQUICKeysDamaged = errors.New("damaged")

// fleetQUICKeys reads the QUIC keys from st, making them when they are
// not there yet: under st's lock, reading again once the lock is held,
// so that edges starting together make one set, not one each.
func fleetQUICKeys(ctx context.Context, st certmagic.Storage) ([]byte, error) {
	b, err := st.Load(ctx, quicKeysStorageKey)
	if !errors.Is(err, fs.ErrNotExist) {
		return checkQUICKeys(b, err, st)
	}
	if err := st.Lock(ctx, quicKeysLock); err != nil {
		return nil, fmt.Errorf("QUIC keys: lock %q in %v: %w", quicKeysLock, st, err)
	}
	defer st.Unlock(context.WithoutCancel(ctx), quicKeysLock)
	b, err = st.Load(ctx, quicKeysStorageKey)
	if !errors.Is(err, fs.ErrNotExist) {
		return checkQUICKeys(b, err, st)
	}
	b = make([]byte, quicKeysLen)
	rand.Read(b)
	if err := st.Store(ctx, quicKeysStorageKey, b); err != nil {
		return nil, fmt.Errorf("QUIC keys: store %s in %v: %w", quicKeysStorageKey, st, err)
	}
	return b, nil
}

// quicKeysLen is the length of the stored keys: the stateless-reset key
// then the token key.
const quicKeysLen = len(quic.StatelessResetKey{}) + len(quic.TokenGeneratorKey{})

func checkQUICKeys(b []byte, err error, st certmagic.Storage) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("QUIC keys: load %s from %v: %w", quicKeysStorageKey, st, err)
	}
	if len(b) != quicKeysLen {
		return nil, fmt.Errorf("QUIC keys: %s in %v: %d bytes, want %d (delete it to make new keys for the whole fleet): %w",
			quicKeysStorageKey, st, len(b), quicKeysLen, errQUICKeysDamaged)
	}
	return b, nil
}

// splitQUICKeys returns the two keys of b, which where names in the error.
func splitQUICKeys(b []byte, where string) (*quic.StatelessResetKey, *quic.TokenGeneratorKey, error) {
	var reset quic.StatelessResetKey
	var token quic.TokenGeneratorKey
	if len(b) != quicKeysLen {
		return nil, nil, fmt.Errorf("QUIC keys: %s: %d bytes, want %d", where, len(b), quicKeysLen)
	}
	copy(reset[:], b)
	copy(token[:], b[len(reset):])
	return &reset, &token, nil
}
