package origin

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peekSocket looks at what waits on a connection's socket (under TLS,
// the raw socket: records, not plaintext) without blocking and without
// consuming it: one non-blocking MSG_PEEK into buf. It returns how many
// bytes it copied into buf, or closed when the origin closed or reset
// the connection; 0 and false: nothing is waiting.
func peekSocket(nc net.Conn, buf []byte) (n int, closed bool) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	rc.Read(func(fd uintptr) bool {
		m, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
		case err != nil || m <= 0:
			closed = true
		default:
			n = m
		}
		return true
	})
	return n, closed
}
