package proxy

import (
	"net/http"
	"slices"
	"sync"
)

// heldHead is the ResponseWriter the reverse proxy writes an origin's
// response to: it holds the status (200 and up) and the first body bytes
// (up to heldBytes, about what net/http itself buffers before it sends a
// head) until more come, a flush, or the end, so that when the origin's
// body breaks off that early nothing of the response has been committed
// and the visitor can still get the 502 page instead of a connection cut
// without an answer. Streamed responses are flushed at once by the
// reverse proxy, which sends their head at once here too.
//
// It also keeps the headers the edge set before forwarding (X-Request-Id)
// on every response after a 1xx: ReverseProxy clears the header map
// after passing each 1xx on, so that the final response (or the error
// page) would otherwise go without them.
type heldHead struct {
	http.ResponseWriter
	code int  // the held status, 0 if none
	sent bool // the status went down
	buf  *[heldBytes]byte
	n    int // bytes held in buf
	// edge are the header fields set before forwarding; interim is set
	// when a 1xx went down since they were last put back.
	edge    []headerField
	edgeBuf [2]headerField
	interim bool
}

// headerField is one header name and its values.
type headerField struct {
	name   string
	values []string
}

// keepEdgeHeaders notes the header fields set so far as the edge's own.
func (h *heldHead) keepEdgeHeaders() {
	h.edge = h.edgeBuf[:0]
	for k, v := range h.ResponseWriter.Header() {
		h.edge = append(h.edge, headerField{k, slices.Clip(v)})
	}
}

// restoreEdgeHeaders puts the edge's header fields back into hdr, in
// place of any value of the same name.
func (h *heldHead) restoreEdgeHeaders(hdr http.Header) {
	for _, f := range h.edge {
		hdr[f.name] = f.values
	}
}

// Header returns the response's header map, with the edge's fields put
// back after a 1xx.
func (h *heldHead) Header() http.Header {
	hdr := h.ResponseWriter.Header()
	if h.interim {
		h.interim = false
		h.restoreEdgeHeaders(hdr)
	}
	return hdr
}

// unwrapForPage returns the ResponseWriter an error page goes to, with
// the edge's header fields in place.
func (h *heldHead) unwrapForPage() http.ResponseWriter {
	h.Header()
	return h.ResponseWriter
}

// heldBytes is how many body bytes heldHead holds back.
const heldBytes = 2 << 10

var heldBufs = sync.Pool{New: func() any { return new([heldBytes]byte) }}

// WriteHeader passes 1xx answers on and holds a final status.
func (h *heldHead) WriteHeader(code int) {
	if code < 200 || h.sent {
		h.ResponseWriter.WriteHeader(code)
		h.interim = code < 200 // ReverseProxy clears the header map now
		return
	}
	if h.code == 0 {
		h.code = code
	}
}

// release sends the held status and bytes, if any.
func (h *heldHead) release() error {
	if h.sent {
		return nil
	}
	h.sent = true
	if h.code != 0 {
		h.ResponseWriter.WriteHeader(h.code)
	}
	if h.buf == nil {
		return nil
	}
	_, err := h.ResponseWriter.Write(h.buf[:h.n])
	heldBufs.Put(h.buf)
	h.buf = nil
	return err
}

// drop forgets what is held.
func (h *heldHead) drop() {
	if h.buf != nil {
		heldBufs.Put(h.buf)
		h.buf = nil
	}
}

// Write holds the bytes while they fit, else sends what is held and them.
func (h *heldHead) Write(b []byte) (int, error) {
	if !h.sent && h.n+len(b) <= heldBytes {
		if h.buf == nil {
			h.buf = heldBufs.Get().(*[heldBytes]byte)
		}
		h.n += copy(h.buf[h.n:], b)
		return len(b), nil
	}
	if err := h.release(); err != nil {
		return 0, err
	}
	return h.ResponseWriter.Write(b)
}

// FlushError sends the held status and flushes; http.ResponseController
// finds it before Unwrap.
func (h *heldHead) FlushError() error {
	if err := h.release(); err != nil {
		return err
	}
	return http.NewResponseController(h.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (h *heldHead) Flush() { h.FlushError() }

// Unwrap returns the underlying ResponseWriter for http.ResponseController
// (deadlines, hijacking for upgrades).
func (h *heldHead) Unwrap() http.ResponseWriter { return h.ResponseWriter }
