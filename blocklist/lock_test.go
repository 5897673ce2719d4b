package blocklist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writeList writes text to a new blocklist file and returns its path.
func writeList(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "blocklist.txt")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// blockEdit returns an edit for EditFile that blocks pattern.
func blockEdit(path, pattern string) func([]byte) ([]byte, error) {
	return func(data []byte) ([]byte, error) {
		out, _, err := testBlock(path, data, pattern, nil, blockOptions{})
		return out, err
	}
}

func readList(t *testing.T, path string) *List {
	t.Helper()
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestEditFileSerializes runs edits at once on one file, each with its own
// open lock file, as separate processes would: none is lost.
func TestEditFileSerializes(t *testing.T) {
	path := writeList(t, "first.example\n")
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := EditFile(path, blockEdit(path, fmt.Sprintf("r%d.example", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if l := readList(t, path); l.Len() != n+1 {
		t.Errorf("%d rules after %d concurrent edits, want %d", l.Len(), n, n+1)
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Errorf("the lock file is gone: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 2 {
		t.Errorf("files left behind: %v", entries)
	}
}

// TestEditFileRetries changes the file the way a program that takes no
// lock would, between the read and the rename: the edit is made again on
// the new content, which is kept.
func TestEditFileRetries(t *testing.T) {
	path := writeList(t, "first.example\n")
	calls := 0
	err := EditFile(path, func(data []byte) ([]byte, error) {
		calls++
		if calls == 1 {
			if err := os.WriteFile(path, append(data, "other.example\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return blockEdit(path, "mine.example")(data)
	})
	if err != nil || calls != 2 {
		t.Fatalf("EditFile: %v after %d calls", err, calls)
	}
	l := readList(t, path)
	for _, p := range []string{"first.example", "other.example", "mine.example"} {
		if _, ok := l.Lookup(p); !ok {
			t.Errorf("%s lost", p)
		}
	}
}

func TestEditFileGivesUp(t *testing.T) {
	path := writeList(t, "first.example\n")
	calls := 0
	var last string
	err := EditFile(path, func(data []byte) ([]byte, error) {
		calls++
		last = fmt.Sprintf("first.example\nother%d.example\n", calls)
		os.WriteFile(path, []byte(last), 0o644)
		return blockEdit(path, "mine.example")(data)
	})
	if !errors.Is(err, errChanged) || calls != editAttempts || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("EditFile = %v after %d calls; want errChanged after %d", err, calls, editAttempts)
	}
	if got, _ := os.ReadFile(path); string(got) != last {
		t.Errorf("file = %q, want the other program's %q", got, last)
	}
}

// TestEditFileWaitsForTheLock holds the lock as another edgeblock would:
// the edit waits until it is released.
func TestEditFileWaitsForTheLock(t *testing.T) {
	path := writeList(t, "first.example\n")
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- EditFile(path, blockEdit(path, "mine.example")) }()
	select {
	case err := <-done:
		t.Fatalf("EditFile returned %v while the lock was held", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, ok := readList(t, path).Lookup("mine.example"); ok {
		t.Fatal("written while the lock was held")
	}
	lock.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := readList(t, path).Lookup("mine.example"); !ok {
		t.Error("not written after the lock was released")
	}
}

func TestEditFileNothingToWrite(t *testing.T) {
	path := writeList(t, "first.example\n")
	before, _ := os.Stat(path)
	if err := EditFile(path, func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("the file was replaced although the edit wrote nothing")
	}
}

// TestEditFileKeepsOwnerAndMode edits a file owned by another user and
// group, through a symlink: the target is replaced, keeping owner, group
// and mode, and the symlink stays.
func TestEditFileKeepsOwnerAndMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file another owner")
	}
	path := writeList(t, "first.example\n")
	if err := os.Chown(path, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link.txt")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1234 || st.Gid != 5678 || fi.Mode().Perm() != 0o640 {
			t.Errorf("after %s: owner %d:%d mode %v; want 1234:5678 -rw-r-----", what, st.Uid, st.Gid, fi.Mode().Perm())
		}
	}
	if err := EditFile(link, blockEdit(link, "mine.example")); err != nil {
		t.Fatal(err)
	}
	check("EditFile")
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced")
	}
	if _, ok := readList(t, path).Lookup("mine.example"); !ok {
		t.Error("the target was not edited")
	}
	if err := WriteFileAtomic(path, []byte("other.example\n")); err != nil {
		t.Fatal(err)
	}
	check("WriteFileAtomic")
}

// configMapLayout builds a directory as the kubelet mounts a ConfigMap and
// returns it.
func configMapLayout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_11_26_10_00_00.123456789")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "blocklist.txt"), []byte("first.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/blocklist.txt", filepath.Join(dir, "blocklist.txt")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEditFileRefusesConfigMap(t *testing.T) {
	dir := configMapLayout(t)
	for _, p := range []string{"blocklist.txt", "..data/blocklist.txt", "..2026_11_26_10_00_00.123456789/blocklist.txt"} {
		path := filepath.Join(dir, p)
		called := false
		err := EditFile(path, func(data []byte) ([]byte, error) {
			called = true
			return blockEdit(path, "mine.example")(data)
		})
		if err == nil || called || !strings.Contains(err.Error(), "ConfigMap") || !strings.Contains(err.Error(), "kubectl edit configmap") {
			t.Errorf("EditFile(%s) = %v (edit called: %v); want a refusal naming the ConfigMap", p, err, called)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "blocklist.txt")); string(got) != "first.example\n" {
		t.Errorf("the ConfigMap file changed: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "blocklist.txt.lock")); err == nil {
		t.Error("a lock file was created in the ConfigMap volume")
	}
}
