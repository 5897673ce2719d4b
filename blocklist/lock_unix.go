//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package blocklist

import (
	"errors"
	"os"
	"syscall"
)

// fileState identifies one version of a file: a rename over it changes
// the inode, a write in place the change time (and usually size and
// modification time).
type fileState struct {
	exists   bool
	dev, ino uint64
	size     int64
	mtime    int64 // Unix nanoseconds
	ctime    int64
	mode     os.FileMode // permission bits
	uid, gid int
}

func stateOf(fi os.FileInfo) fileState {
	st := fileState{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode().Perm(), uid: -1, gid: -1}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.dev, st.ino = uint64(s.Dev), uint64(s.Ino)
		st.ctime = ctime(s)
		st.uid, st.gid = int(s.Uid), int(s.Gid)
	}
	return st
}

// fileOwner returns the owner and group of fi.
func fileOwner(fi os.FileInfo) (uid, gid int, ok bool) {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid), int(s.Gid), true
	}
	return 0, 0, false
}

// keepOwner gives f the owner and group of st, where they differ.
func keepOwner(f *os.File, st fileState) error {
	if st.uid < 0 {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	uid, gid, _ := fileOwner(fi)
	if uid == st.uid && gid == st.gid {
		return nil
	}
	return f.Chown(st.uid, st.gid)
}

// tryLock takes the exclusive flock of f without waiting; ok is false when
// another process holds it.
func tryLock(f *os.File) (ok bool, err error) {
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
