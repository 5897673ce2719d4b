package proxy

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
)

// What quic-go v0.66 bounds by itself: the packets waiting for its
// server's goroutine (1024, the rest dropped), the connections that
// completed their handshake and wait for Accept (32, the rest refused),
// and how long one handshake may take (HandshakeIdleTimeout, here
// timeouts.read_header). Not how many handshakes are under way: each new
// Initial packet with a fresh connection ID makes one, so their memory
// grows with new connections per second × read_header.
// handshakeCap bounds that number.

// errHandshakesFull refuses a connection attempt while the cap is reached.
var errHandshakesFull = errors.New("limits.quic_pending_handshakes reached")

// handshakeCap counts the QUIC handshakes under way and bounds them: a
// handshake is counted from the moment quic-go makes its state (the
// Transport's ConnContext) until it completes (the listener accepts the
// connection: handshakeDone) or the connection ends (its context is
// cancelled). At the cap, a new attempt without an address token is sent
// a Retry (full, used by retryGate.verify), and one with a valid token
// is refused (CONNECTION_REFUSED: the client goes to TCP at once) and
// counted in refused.
type handshakeCap struct {
	max     int64
	pending atomic.Int64
	gauge   prometheus.Gauge   // pending, exported
	refused prometheus.Counter // refused at the cap
}

// pendingKey is the context key of a handshake's pendingSlot.
type pendingKey struct{}

// pendingSlot is one counted handshake; release uncounts it once.
type pendingSlot struct {
	c    *handshakeCap
	done atomic.Bool
}

func (s *pendingSlot) release() {
	if s.done.CompareAndSwap(false, true) {
		s.c.pending.Add(-1)
		s.c.gauge.Dec()
	}
}

// full reports whether the cap is reached.
func (c *handshakeCap) full() bool { return c.pending.Load() >= c.max }

// connContext is the Transport's ConnContext, called as quic-go makes a
// new connection's state: it counts the handshake, or refuses it at the
// cap. ctx is cancelled by quic-go when the connection ends, which
// releases the count of a handshake that never completed.
func (c *handshakeCap) connContext(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	if c.pending.Add(1) > c.max {
		c.pending.Add(-1)
		c.refused.Inc()
		return nil, errHandshakesFull
	}
	c.gauge.Inc()
	s := &pendingSlot{c: c}
	context.AfterFunc(ctx, s.release)
	return context.WithValue(ctx, pendingKey{}, s), nil
}

// handshakeDone uncounts the handshake of an accepted connection (its
// handshake is complete).
func handshakeDone(conn *quic.Conn) {
	if s, ok := conn.Context().Value(pendingKey{}).(*pendingSlot); ok {
		s.release()
	}
}
