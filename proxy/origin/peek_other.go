//go:build !linux

package origin

import "net"

// peekSocket cannot look without blocking here: bytes that arrive on an
// idle connection are found only when they are buffered at the end of a
// response, and an idle connection the origin closed when it is next
// used (and the request sent again when that is safe).
func peekSocket(net.Conn, []byte) (n int, closed bool) { return 0, false }
