package origin

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peerGone reports whether an idle connection's origin closed it (or
// sent something unasked), without blocking: one non-blocking MSG_PEEK.
func peerGone(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = err == nil || (err != syscall.EAGAIN && err != syscall.EINTR) || n > 0
		return true
	})
	return gone
}
