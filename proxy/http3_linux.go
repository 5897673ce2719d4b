package proxy

import (
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// probeUDP reads what the kernel granted the QUIC socket, after quic-go
// asked for its buffers: the buffer sizes as getsockopt reports them
// (Linux reports twice the size set, its bookkeeping included), whether
// GSO is on the way quic-go decides it (Linux 5 or later, UDP_SEGMENT
// supported, QUIC_GO_DISABLE_GSO not true; TestQUICProbeAgreesWithQUICGo
// compares it with what a real connection reports), and whether ECN is
// (QUIC_GO_DISABLE_ECN not true).
func probeUDP(c *net.UDPConn) udpState {
	var st udpState
	st.ecn = !envTrue("QUIC_GO_DISABLE_ECN")
	rc, err := c.SyscallConn()
	if err != nil {
		return st
	}
	rc.Control(func(fd uintptr) {
		st.recvBuf, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		st.sendBuf, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		_, gerr := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		st.gso = gerr == nil && kernelMajor() >= 5 && !envTrue("QUIC_GO_DISABLE_GSO")
	})
	return st
}

func envTrue(name string) bool {
	b, err := strconv.ParseBool(os.Getenv(name))
	return err == nil && b
}

// kernelMajor returns the running kernel's major version, 0 if unknown.
func kernelMajor() int {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return 0
	}
	rel := unix.ByteSliceToString(u.Release[:])
	major, _, _ := strings.Cut(rel, ".")
	n, _ := strconv.Atoi(major)
	return n
}
