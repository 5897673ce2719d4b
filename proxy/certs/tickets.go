package certs

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"sync"
	"time"
)

// TicketKeys rotates the session ticket keys of TLS configs: a new key
// every Every, the newest Keep accepted, so a session ticket resumes for
// at most Every*Keep. (crypto/tls rotates daily on its own and accepts
// keys for 7 days; TLS 1.2 resumption has no forward secrecy against the
// ticket key, so a shorter life is better.) It is safe for concurrent use.
type TicketKeys struct {
	every time.Duration
	keep  int

	mu   sync.Mutex
	keys [][32]byte // newest first
}

// NewTicketKeys returns keys rotated every every, keep of them accepted.
func NewTicketKeys(every time.Duration, keep int) *TicketKeys {
	return &TicketKeys{every: every, keep: max(keep, 1)}
}

// Rotate sets the session ticket keys of every config in cs now and every
// Every until ctx ends, all of them the same keys (the HTTPS and the QUIC
// listener's configs).
func (k *TicketKeys) Rotate(ctx context.Context, cs ...*tls.Config) {
	set := func(keys [][32]byte) {
		for _, c := range cs {
			c.SetSessionTicketKeys(keys)
		}
	}
	set(k.next())
	go func() {
		tick := time.NewTicker(k.every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				set(k.next())
			}
		}
	}()
}

// next adds a key and returns the keys to accept, newest (the one
// tickets are made with) first.
func (k *TicketKeys) next() [][32]byte {
	var key [32]byte
	rand.Read(key[:])
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = append([][32]byte{key}, k.keys...)
	if len(k.keys) > k.keep {
		k.keys = k.keys[:k.keep]
	}
	return append([][32]byte(nil), k.keys...)
}
