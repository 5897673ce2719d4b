package reload

import (
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

// TestReleaserCoalesces: applies in quick succession give one release
// after they pause; a long run of them gives one at least every
// releaseMaxWait; a stopped releaser releases nothing more.
func TestReleaserCoalesces(t *testing.T) {
	defer func(q, w time.Duration) { releaseQuiet, releaseMaxWait = q, w }(releaseQuiet, releaseMaxWait)
	releaseQuiet, releaseMaxWait = 200*time.Millisecond, time.Second
	tests := []struct {
		name        string
		applies     int
		every       time.Duration
		wait        time.Duration // after the last apply
		stop        bool
		least, most int32
	}{
		{name: "a burst gives one release after it", applies: 10, every: 10 * time.Millisecond, wait: 2 * time.Second, least: 1, most: 1},
		{name: "a long run gives one at least every max wait", applies: 40, every: 100 * time.Millisecond, wait: 2 * time.Second, least: 3, most: 12},
		{name: "none after stop", applies: 3, every: 10 * time.Millisecond, wait: time.Second, stop: true, least: 0, most: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			m := &releaser{release: func() { n.Add(1) }}
			for range tt.applies {
				m.applied(time.Now())
				time.Sleep(tt.every)
			}
			if tt.stop {
				m.stop()
			}
			time.Sleep(tt.wait)
			if got := n.Load(); got < tt.least || got > tt.most {
				t.Errorf("%d releases, want %d to %d", got, tt.least, tt.most)
			}
			m.stop()
		})
	}
}

// TestFreeOSMemoryReturnsHeap: the release returns freed heap to the OS
// (the runtime's count of released heap bytes grows by at least most of
// a 64 MiB buffer that was just dropped).
func TestFreeOSMemoryReturnsHeap(t *testing.T) {
	before := heapReleased()
	b := make([]byte, 64<<20)
	for i := range b {
		b[i] = 1 // resident
	}
	sink = b
	sink = nil
	freeOSMemory(nil)
	if got := heapReleased() - before; got < 48<<20 {
		t.Errorf("%d MiB of heap released, want most of the 64 MiB dropped", got>>20)
	}
}

var sink []byte

func heapReleased() int64 {
	s := []metrics.Sample{{Name: releasedSample}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
