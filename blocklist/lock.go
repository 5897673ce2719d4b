package blocklist

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Limits of EditFile.
const (
	// lockWait bounds how long EditFile waits for another edit to finish.
	lockWait = time.Minute
	// editAttempts bounds how many times EditFile reads the file again
	// when it changed under the edit.
	editAttempts = 5
)

// errChanged is wrapped by the error EditFile returns when the file kept
// changing under it.
var errChanged = errors.New("changed while it was being edited")

// EditFile changes the blocklist file at path with edit, so that edits
// made at the same time never lose each other:
//
//   - A file in a Kubernetes ConfigMap volume (a directory with a "..data"
//     symlink) is refused: the kubelet owns it and replaces it on every
//     update; the ConfigMap is what to edit.
//   - It takes an exclusive lock (flock) on the lock file beside the list,
//     path+".lock" (of the symlink's target, if path is a symlink), waiting
//     up to a minute for an edit in progress. The lock file is created if
//     needed and stays: removing it would let two editors lock two
//     different files.
//   - Under the lock it reads the file and calls edit with its content (nil
//     if there is no file). If edit returns nil data, nothing is written.
//     Each call gets a new buffer of its own, with room after the content
//     that edit may append into (see Edit.InPlace).
//   - It writes the result to a temporary file in the same directory, with
//     the owner, group and permission bits of the file it replaces, and
//     syncs it. Before renaming it over the file it checks that the file is
//     still the one it read (same inode, size, modification and change
//     time): a program that writes the file without taking the lock may
//     have changed it. If so, it reads the file again and calls edit again,
//     up to 5 times in all, then gives up with an error and writes nothing.
//   - It renames the temporary file over the list and syncs the directory.
//
// edit may thus be called more than once; the result of its last call is
// written.
func EditFile(path string, edit func(data []byte) ([]byte, error)) error {
	if dir, ok := configMapDir(path); ok {
		return fmt.Errorf("%s is in a Kubernetes ConfigMap volume (%s has a ..data symlink): the kubelet owns these files and replaces them on every update, so an edit here would fail or be lost; edit the ConfigMap instead (kubectl edit configmap NAME, or its source in Git) and the running proxy picks the change up", path, dir)
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	unlock, err := lockPath(path)
	if err != nil {
		return err
	}
	defer unlock()
	for range editAttempts {
		data, before, err := readState(path)
		if err != nil {
			return err
		}
		out, err := edit(data)
		if err != nil || out == nil {
			return err
		}
		tmp, err := writeTemp(path, out, before)
		if err != nil {
			return err
		}
		after, err := statState(path)
		if err != nil {
			os.Remove(tmp)
			return err
		}
		if after != before {
			os.Remove(tmp)
			continue
		}
		return commit(tmp, path)
	}
	return fmt.Errorf("%s %w by a program that does not take the lock %s, %d times in a row; nothing was written: try again, or stop that program", path, errChanged, path+".lock", editAttempts)
}

// configMapDir returns the directory that makes path part of a Kubernetes
// ConfigMap (or Secret, or projected) volume: one with a "..data" symlink,
// beside path or its target, or above the target's directory.
func configMapDir(path string) (string, bool) {
	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		dirs = append(dirs, filepath.Dir(real), filepath.Dir(filepath.Dir(real)))
	}
	for _, d := range dirs {
		if fi, err := os.Lstat(filepath.Join(d, "..data")); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return d, true
		}
	}
	return "", false
}

// lockPath takes the exclusive lock of the file at path and returns the
// function that releases it.
func lockPath(path string) (unlock func(), err error) {
	name := path + ".lock"
	perm, uid, gid, owned := os.FileMode(0o644), 0, 0, false
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm() & 0o666
		uid, gid, owned = fileOwner(fi)
	}
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, perm)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(name) // flock needs no write access
	}
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if owned && errors.Is(statErr, os.ErrNotExist) {
		f.Chown(uid, gid) // best effort: let the list's owner lock it too
	}
	deadline := time.Now().Add(lockWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		if ok {
			return func() { f.Close() }, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another edit of %s holds the lock %s and did not finish within %v; nothing was written", path, name, lockWait)
		}
		time.Sleep(wait)
	}
}

// editRoom is the room readState leaves after the content it reads.
const editRoom = 4 << 10

// readState reads the file at path and returns its content and state;
// a missing file has nil content and the zero state.
func readState(path string) ([]byte, fileState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fileState{}, nil
	}
	if err != nil {
		return nil, fileState{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileState{}, err
	}
	// Sized by the file, as os.ReadFile does: a 30 MB list read in one
	// buffer rather than grown to it, with room after it for a rule the
	// edit adds at the end (Edit.InPlace) without a copy of the list.
	b := bytes.NewBuffer(make([]byte, 0, fi.Size()+editRoom))
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fileState{}, err
	}
	return b.Bytes(), stateOf(fi), nil
}

// statState returns the state of the file at path; the zero state if
// there is none.
func statState(path string) (fileState, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, err
	}
	return stateOf(fi), nil
}

// WriteFileAtomic replaces the file at path with data so that a reader
// sees the old content or the new, never a part: it writes a temporary
// file in the same directory, syncs it, renames it over path and syncs the
// directory. A symlink at path is followed, and its target replaced. The
// new file keeps the permission bits, owner and group of the old one
// (0644 and the caller's for a new file); when the owner or group cannot
// be kept (changing them needs root, or for the group membership of it),
// nothing is written and the error says so. WriteFileAtomic takes no
// lock; EditFile does.
func WriteFileAtomic(path string, data []byte) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	st, err := statState(path)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(path, data, st)
	if err != nil {
		return err
	}
	return commit(tmp, path)
}

// writeTemp writes data to a new temporary file beside path with the
// permission bits and owner of st, syncs it, and returns its name.
func writeTemp(path string, data []byte, st fileState) (name string, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return "", err
	}
	mode := os.FileMode(0o644)
	if st.exists {
		mode = st.mode
		if err := keepOwner(tmp, st); err != nil {
			return "", fmt.Errorf("%s: cannot keep owner %d and group %d: %w (run as root, or as the owner in the file's group)", path, st.uid, st.gid, err)
		}
	}
	if err := tmp.Chmod(mode); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return tmp.Name(), nil
}

// commit renames tmp over path and syncs the directory.
func commit(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
