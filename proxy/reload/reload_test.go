package reload

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/config"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeEdge records what a Reloader applies.
type fakeEdge struct {
	mu    sync.Mutex
	lists []*blocklist.List
}

var _ Edge = (*fakeEdge)(nil)

func (e *fakeEdge) Apply(_ *config.Config, list *blocklist.List, _ *pages.Renderer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lists = append(e.lists, list)
	return nil
}

func (e *fakeEdge) RefreshGeo(*config.Config, string) {}

func (e *fakeEdge) applied() []*blocklist.List {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*blocklist.List(nil), e.lists...)
}

// startReloader writes a config and list into a temp dir and starts a
// Reloader on them that applies to a fakeEdge.
func startReloader(t *testing.T, list string) (*Reloader, *fakeEdge) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "edgeblock.yaml")
	for name, text := range map[string]string{
		cfgPath:         "listen:\n  http: 127.0.0.1:0\n  admin: off\nblocklist:\n  file: blocklist.txt\n",
		"blocklist.txt": list,
	} {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(name)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := LoadBundle(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	edge := &fakeEdge{}
	r := NewReloader(edge, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New(prometheus.NewRegistry(), "t", "t"), cfgPath)
	if err := r.Start(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, edge
}

// TestFarExpiryTimer: the expiry timer of a rule past 2318, where
// time.Until saturates, does not spin (the saturated delay plus a margin
// once wrapped to a negative delay): nothing is checked or applied again.
func TestFarExpiryTimer(t *testing.T) {
	r, edge := startReloader(t, "far.example expires=9999-12-31\n")
	r.mu.Lock()
	start := r.checked
	r.mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	r.mu.Lock()
	checked := r.checked
	r.mu.Unlock()
	if !checked.Equal(start) {
		t.Errorf("the expiry timer of a rule expiring in 9999 fired (checked moved from %v to %v)", start, checked)
	}
	if got := edge.applied(); len(got) != 1 || got[0].Len() != 1 {
		t.Errorf("applied %d lists, want the one from Start", len(got))
	}
}
