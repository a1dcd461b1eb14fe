//go:build unix

package objstore

import (
	"errors"
	"io/fs"
	"syscall"
)

// isNotDir reports ENOTDIR: a key like "a/b" where "a" is itself an object.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

// fileID is the file's inode number (0 when the platform does not say).
func fileID(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
