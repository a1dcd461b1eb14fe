//go:build unix

package objstore

import (
	"errors"
	"syscall"
)

// isNotDir reports ENOTDIR: a key like "a/b" where "a" is itself an object.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
