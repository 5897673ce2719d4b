package reload

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Returning memory after a large list is applied. Building a list of a
// million rules leaves tens of MiB of garbage (the content it replaced,
// the buffer it was read into, a parse's temporaries); with GOGC 100 the
// heap grows to twice what is live before a collection frees it, and the
// runtime keeps the freed pages for reuse, returning them to the OS only
// slowly. An edge that applied a few edits of a large list thus held
// nearly twice its live heap in RSS. After applies of a list of at least
// releaseMin bytes, the Reloader returns the free heap to the OS
// (debug.FreeOSMemory: a collection, then every free page released) once
// the applies pause for releaseQuiet, and during a long run of them at
// least every releaseMaxWait. It runs on its own goroutine, never on an
// apply or a request: the apply in progress is not delayed, and requests
// meet only the collection's usual concurrent work.
var (
	releaseMin     = 4 << 20
	releaseQuiet   = time.Second
	releaseMaxWait = 10 * time.Second
)

// releaser returns the free heap to the OS after applies, as above.
// The zero value is ready to use.
type releaser struct {
	mu     sync.Mutex
	timer  *time.Timer
	first  time.Time // the first apply not yet followed by a release; zero: none
	closed bool
	// release is what a release does; nil: freeOSMemory.
	release func()
	log     *slog.Logger
}

// applied schedules a release after an apply at now.
func (m *releaser) applied(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if m.first.IsZero() {
		m.first = now
	}
	at := now.Add(releaseQuiet)
	if last := m.first.Add(releaseMaxWait); last.Before(at) {
		at = last
	}
	d := time.Until(at)
	if m.timer == nil {
		m.timer = time.AfterFunc(d, m.fire)
	} else {
		m.timer.Reset(d)
	}
}

// fire releases the memory if an apply is waiting for it.
func (m *releaser) fire() {
	m.mu.Lock()
	if m.closed || m.first.IsZero() {
		m.mu.Unlock()
		return
	}
	m.first = time.Time{}
	release, log := m.release, m.log
	m.mu.Unlock()
	if release != nil {
		release()
		return
	}
	freeOSMemory(log)
}

// stop cancels a release not yet started.
func (m *releaser) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.timer != nil {
		m.timer.Stop()
	}
}

// releasedSample is the runtime's count of heap bytes returned to the OS.
const releasedSample = "/memory/classes/heap/released:bytes"

// freeOSMemory is debug.FreeOSMemory, logged at debug level with what it
// returned and how long it took.
func freeOSMemory(log *slog.Logger) {
	s := []metrics.Sample{{Name: releasedSample}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	start := time.Now()
	debug.FreeOSMemory()
	metrics.Read(s)
	if log != nil {
		log.Debug("free heap returned to the OS after a large list was applied", "event", "memory_release",
			"released_bytes", int64(s[0].Value.Uint64())-int64(before), "seconds", time.Since(start).Seconds())
	}
}
