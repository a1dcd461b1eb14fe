//go:build !unix

package objstore

import "io/fs"

func isNotDir(err error) bool { return false }

func fileID(fs.FileInfo) uint64 { return 0 }
