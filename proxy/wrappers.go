package proxy

import (
	"net/http"
)

// The request path wraps the visitor's ResponseWriter in layers: the
// deadline guard (guardWriter) next to net/http, then the recorder for the
// access line, then the held head (heldHead) that ReverseProxy writes to.
// http.ResponseController walks the layers through Unwrap, and stops at the
// first layer that has the method it wants: a layer whose FlushError or
// Hijack carries behaviour (the write watchdog, the held status) must keep
// it, or flushes and upgrades would go around that layer. These guards
// make a lost method a compile error.
var (
	_ http.Flusher  = (*guardWriter)(nil)
	_ http.Hijacker = (*guardWriter)(nil)
	_ flushErrorer  = (*guardWriter)(nil)
	_ unwrapper     = (*guardWriter)(nil)

	_ http.Flusher = (*heldHead)(nil)
	_ flushErrorer = (*heldHead)(nil)
	_ unwrapper    = (*heldHead)(nil)

	_ unwrapper = (*recorder)(nil)
)

// flushErrorer is what http.ResponseController.Flush looks for first.
type flushErrorer interface{ FlushError() error }

// unwrapper is how http.ResponseController reaches the layer below.
type unwrapper interface{ Unwrap() http.ResponseWriter }
