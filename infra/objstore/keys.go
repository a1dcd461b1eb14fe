package objstore

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// tempPrefix starts the names of the local store's in-flight files. Keys may not use it,
// so a temp file can never be mistaken for (or listed as) an object.
const tempPrefix = ".tabnas-tmp-"

// ValidateKey reports whether key is a usable object key: a non-empty, relative,
// slash-separated path with no empty, "." or ".." segments. Both stores enforce the same
// rules so that a key that works locally also works on S3 and vice versa.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("invalid object key: empty")
	}
	if err := checkChars(key); err != nil {
		return fmt.Errorf("invalid object key %q: %v", key, err)
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("invalid object key %q: must be relative (no leading /)", key)
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("invalid object key %q: must not end with /", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("invalid object key %q: %v", key, err)
		}
	}
	return nil
}

// validatePrefix checks a List prefix: like a key, but it may be empty, end with "/", or end
// in a partial segment ("runs/r1/ckpt-").
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkChars(prefix); err != nil {
		return fmt.Errorf("invalid list prefix %q: %v", prefix, err)
	}
	if strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("invalid list prefix %q: must be relative (no leading /)", prefix)
	}
	segs := strings.Split(strings.TrimSuffix(prefix, "/"), "/")
	for i, seg := range segs {
		if i == len(segs)-1 && !strings.HasSuffix(prefix, "/") && seg != "." && seg != ".." {
			continue // a partial last segment may be anything a key segment may start with
		}
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("invalid list prefix %q: %v", prefix, err)
		}
	}
	return nil
}

func checkChars(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	if strings.ContainsAny(s, "\x00\\") {
		return fmt.Errorf("contains NUL or backslash")
	}
	if len(s) > 1024 {
		return fmt.Errorf("longer than 1024 bytes")
	}
	return nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("empty path segment (//)")
	case seg == "." || seg == "..":
		return fmt.Errorf("%q path segment not allowed", seg)
	case strings.HasPrefix(seg, tempPrefix):
		return fmt.Errorf("segment prefix %q is reserved", tempPrefix)
	}
	return nil
}
