//go:build !unix

package objstore

func isNotDir(err error) bool { return false }
