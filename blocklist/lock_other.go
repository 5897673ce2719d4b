//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package blocklist

import (
	"errors"
	"os"
)

type fileState struct {
	exists      bool
	size, mtime int64
	mode        os.FileMode
	uid, gid    int
}

func stateOf(fi os.FileInfo) fileState {
	return fileState{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode().Perm(), uid: -1, gid: -1}
}

func fileOwner(os.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

func keepOwner(*os.File, fileState) error { return nil }

func tryLock(*os.File) (bool, error) {
	return false, errors.New("locking is not supported on this system")
}
