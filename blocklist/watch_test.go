package blocklist

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// startWatcher watches paths (relative to dir) and returns a channel that
// receives one value per OnChange call.
func startWatcher(t *testing.T, dir string, paths ...string) <-chan struct{} {
	t.Helper()
	changes := make(chan struct{}, 16)
	var abs []string
	for _, p := range paths {
		abs = append(abs, filepath.Join(dir, p))
	}
	w, err := NewWatcher(abs, WatcherOptions{Debounce: 20 * time.Millisecond,
		OnChange: func() { changes <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return changes
}

// changed reports whether an OnChange call arrives within wait.
func changed(ch <-chan struct{}, wait time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(wait):
		return false
	}
}

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherSeesChanges(t *testing.T) {
	tests := []struct {
		name   string
		watch  []string
		setup  func(t *testing.T, dir string)
		change func(t *testing.T, dir string)
		want   bool
	}{
		{"file written in place", []string{"list.txt"},
			func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "list.txt"), "a.example\n") },
			func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "list.txt"), "b.example\n") }, true},
		{"file renamed over", []string{"list.txt"},
			func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "list.txt"), "a.example\n") },
			func(t *testing.T, d string) {
				writeFile(t, filepath.Join(d, "new.tmp"), "b.example\n")
				if err := os.Rename(filepath.Join(d, "new.tmp"), filepath.Join(d, "list.txt")); err != nil {
					t.Fatal(err)
				}
			}, true},
		{"other file in the directory", []string{"list.txt"},
			func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "list.txt"), "a.example\n") },
			func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "notes.md"), "x\n") }, false},
		{"pattern: matching file changed", []string{"lang/*.json"},
			func(t *testing.T, d string) {
				os.Mkdir(filepath.Join(d, "lang"), 0o755)
				writeFile(t, filepath.Join(d, "lang", "de.json"), "{}")
			},
			func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "lang", "de.json"), `{"x":1}`) }, true},
		{"pattern: new matching file", []string{"lang/*.json"},
			func(t *testing.T, d string) { os.Mkdir(filepath.Join(d, "lang"), 0o755) },
			func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "lang", "fr.json"), "{}") }, true},
		{"pattern: matching file removed", []string{"lang/*.json"},
			func(t *testing.T, d string) {
				os.Mkdir(filepath.Join(d, "lang"), 0o755)
				writeFile(t, filepath.Join(d, "lang", "de.json"), "{}")
			},
			func(t *testing.T, d string) {
				if err := os.Remove(filepath.Join(d, "lang", "de.json")); err != nil {
					t.Fatal(err)
				}
			}, true},
		{"pattern: file it does not match", []string{"lang/*.json"},
			func(t *testing.T, d string) { os.Mkdir(filepath.Join(d, "lang"), 0o755) },
			func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "lang", "README"), "x") }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			ch := startWatcher(t, dir, tc.watch...)
			tc.change(t, dir)
			wait := 2 * time.Second
			if !tc.want {
				wait = 300 * time.Millisecond
			}
			if got := changed(ch, wait); got != tc.want {
				t.Fatalf("OnChange called: %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWatcherLiteralNameWithPatternCharacters(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "list[1].txt")
	writeFile(t, name, "a.example\n")
	ch := startWatcher(t, dir, "list[1].txt")
	writeFile(t, name, "b.example\n")
	if !changed(ch, 2*time.Second) {
		t.Fatal("a change to a file named list[1].txt was not seen")
	}
}
