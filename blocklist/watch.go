package blocklist

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher tells when files may have changed, however they were replaced:
// written in place, renamed over, deleted and created again, swapped by a
// symlink (as Kubernetes ConfigMap volumes do). It watches the directory of
// each file and, where the path is a symlink, the directories along the
// link's resolution, resolved again after every change. Bursts of events
// are debounced into one call.
//
// The callback runs on the Watcher's own goroutine, one call at a time.
// Callers compare content (a hash) to tell a real change from a no-op.
type Watcher struct {
	fs       *fsnotify.Watcher
	debounce time.Duration
	maxWait  time.Duration
	onChange func()
	onError  func(error)

	mu    sync.Mutex
	paths []string
	names map[string]bool // base names whose events matter
	globs []string        // base-name patterns whose events matter
	dirs  map[string]bool // directories being watched

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// WatcherOptions configure a Watcher. The zero value debounces for 100ms
// and never waits longer than 1s after the first event of a burst.
type WatcherOptions struct {
	// Debounce is how long events must be quiet before OnChange runs.
	Debounce time.Duration
	// MaxWait caps the delay after the first event of a burst that never
	// goes quiet.
	MaxWait time.Duration
	// OnChange is called after a burst of events settles.
	OnChange func()
	// OnError receives errors of the underlying watcher (such as an
	// inotify queue overflow, after which OnChange is called anyway).
	OnError func(error)
}

// NewWatcher starts watching paths.
func NewWatcher(paths []string, o WatcherOptions) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.MaxWait <= 0 {
		o.MaxWait = time.Second
	}
	if o.OnError == nil {
		o.OnError = func(error) {}
	}
	w := &Watcher{fs: fw, debounce: o.Debounce, maxWait: o.MaxWait, onChange: o.OnChange, onError: o.OnError,
		dirs: map[string]bool{}, done: make(chan struct{})}
	if err := w.SetPaths(paths); err != nil {
		fw.Close()
		return nil, err
	}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// SetPaths replaces the set of watched files and resolves their symlinks
// again. A path whose last element is a filepath.Match pattern, such as
// "dir/*.json", also watches every file of dir the pattern matches, including
// files created later. A directory that cannot be watched is an error
// only when it is the file's own directory.
func (w *Watcher) SetPaths(paths []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.paths = append([]string(nil), paths...)
	return w.resolveLocked()
}

// resolveLocked computes the directories and names to watch for the
// current paths and updates the fsnotify watches to match.
func (w *Watcher) resolveLocked() error {
	dirs := map[string]bool{}
	names := map[string]bool{}
	var globs []string
	var firstErr error
	for _, p := range w.paths {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		dirs[filepath.Dir(abs)] = true
		names[filepath.Base(abs)] = true
		if base := filepath.Base(abs); strings.ContainsAny(base, "*?[") {
			// Also a pattern; a file literally so named still counts, and
			// a spurious call costs callers only a comparison.
			if _, err := filepath.Match(base, ""); err == nil {
				globs = append(globs, base)
			}
		}
		// Follow the symlink chain one hop at a time, so that a swap of
		// any link along it (such as ConfigMap's "..data") is seen.
		cur := abs
		for range 16 {
			target, err := os.Readlink(cur)
			if err != nil {
				break
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(cur), target)
			}
			// Also watch the parents of a link target inside a linked
			// directory: "..data/blocklist.txt" lives in "..data".
			if real, err := filepath.EvalSymlinks(filepath.Dir(target)); err == nil {
				dirs[real] = true
			}
			dirs[filepath.Dir(target)] = true
			for t := target; ; {
				names[filepath.Base(t)] = true
				parent := filepath.Dir(t)
				if parent == t || parent == filepath.Dir(abs) || len(parent) <= 1 {
					break
				}
				t = parent
			}
			cur = target
		}
	}
	for d := range w.dirs {
		if !dirs[d] {
			w.fs.Remove(d)
		}
	}
	w.dirs = map[string]bool{}
	for d := range dirs {
		if err := w.fs.Add(d); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		w.dirs[d] = true
	}
	w.names, w.globs = names, globs
	return firstErr
}

// relevant reports whether an event's file can affect a watched path.
func (w *Watcher) relevant(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	base := filepath.Base(name)
	if w.names[base] || strings.HasPrefix(base, "..") {
		return true
	}
	for _, g := range w.globs {
		if ok, _ := filepath.Match(g, base); ok {
			return true
		}
	}
	return false
}

func (w *Watcher) loop() {
	defer w.wg.Done()
	var timer *time.Timer
	var fire <-chan time.Time
	var first time.Time
	for {
		select {
		case <-w.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if !w.relevant(ev.Name) {
				continue
			}
			now := time.Now()
			if fire == nil {
				first = now
			}
			wait := w.debounce
			if left := w.maxWait - now.Sub(first); left < wait {
				wait = max(left, 0)
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			fire = timer.C
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.onError(err)
			if fire == nil {
				first = time.Now()
				timer = time.NewTimer(w.debounce)
				fire = timer.C
			}
		case <-fire:
			fire = nil
			w.mu.Lock()
			if err := w.resolveLocked(); err != nil {
				w.onError(err)
			}
			w.mu.Unlock()
			w.onChange()
		}
	}
}

// Close stops the watcher and waits for a running callback to return. It
// may be called more than once.
func (w *Watcher) Close() error {
	var err error
	w.closeOnce.Do(func() {
		close(w.done)
		err = w.fs.Close()
		w.wg.Wait()
	})
	return err
}
