package proxy

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestGuardWriterReusable: a guardWriter goes back to the pool only when
// nothing can reach it after the request: its write watchdog never fired
// (nor was caught firing), no body watchdog, not hijacked.
func TestGuardWriterReusable(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(g *guardWriter)
		want bool
	}{
		{"writes within the bound", func(g *guardWriter) {
			for range 3 {
				g.wd.start()
				g.wd.stop()
			}
		}, true},
		{"no write at all", func(g *guardWriter) {}, true},
		{"a write outlived the bound", func(g *guardWriter) {
			g.wd.start()
			time.Sleep(50 * time.Millisecond) // the watchdog fires
			g.wd.stop()
		}, false},
		{"stopped after firing began", func(g *guardWriter) {
			g.wd.start()
			deadline := time.Now().Add(5 * time.Second)
			for !g.wd.fired.Load() && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			g.wd.stop()
		}, false},
		{"hijacked", func(g *guardWriter) { g.hijacked = true }, false},
		{"with a request body", func(g *guardWriter) { g.body = &guardBody{wd: newWatchdog(time.Second, func() {})} }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var fired atomic.Int32
			g := newGuardWriter(&discardWriter{h: http.Header{}}, 5*time.Millisecond, nil, false)
			g.wdog.fire = func() { fired.Add(1) }
			tt.run(g)
			g.wd.close()
			if got := g.reusable(); got != tt.want {
				t.Errorf("reusable = %v, want %v (the watchdog fired %d times)", got, tt.want, fired.Load())
			}
		})
	}
}

// TestGuardWriterPooledIsClean: a guardWriter taken from the pool after
// a request starts like a new one: no header written, no body, watchdog
// on with the new bound.
func TestGuardWriterPooledIsClean(t *testing.T) {
	g := newGuardWriter(&discardWriter{h: http.Header{}}, time.Second, nil, true)
	g.WriteHeader(http.StatusForbidden)
	g.Write([]byte("page"))
	g.finish()
	for range 100 { // the pool may drop what it is given (always under -race, sometimes)
		g2 := newGuardWriter(&discardWriter{h: http.Header{}}, 2*time.Second, nil, false)
		if g2 != g {
			continue
		}
		if g2.wroteHeader || g2.dirty || g2.h2 || g2.body != nil || g2.wd != &g2.wdog || g2.wdog.d != 2*time.Second || g2.wdog.off {
			t.Fatalf("pooled guardWriter not reset: %+v", g2)
		}
		return
	}
	t.Skip("the pool never gave the writer back")
}
