package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Local is a Store over a directory: key "a/b/c" is the file DIR/a/b/c.
// Put writes a hidden temp file next to the target, fsyncs it and renames it over the key,
// so a crash leaves either the old object or the new one (plus, at worst, a stray temp file
// that List never reports). One limitation S3 does not have: "a" and "a/b" cannot both exist.
type Local struct {
	root string
}

var _ Store = (*Local)(nil)

// NewLocal opens (creating if needed) a directory store rooted at dir.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, fmt.Errorf("objstore: local store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: local store %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("objstore: local store %q: %w", dir, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("objstore: local store %q: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("objstore: local store %q: not a directory", dir)
	}
	return &Local{root: abs}, nil
}

// Root is the absolute directory the store lives in.
func (l *Local) Root() string { return l.root }

// URL returns "file://" followed by the absolute root directory.
func (l *Local) URL() string { return "file://" + filepath.ToSlash(l.root) }

func (l *Local) keyURL(key string) string { return l.URL() + "/" + key }

func (l *Local) path(key string) string { return filepath.Join(l.root, filepath.FromSlash(key)) }

// Put implements Store.Put: temp file in the target directory, fsync, rename, fsync dir.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("objstore: put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore: put %s: %w", l.keyURL(key), err)
	}
	final := l.path(key)
	dir := filepath.Dir(final)
	var f *os.File
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("objstore: put %s: %w", l.keyURL(key), err)
		}
		var err error
		f, err = os.CreateTemp(dir, tempPrefix+"*")
		if err == nil {
			break
		}
		// A concurrent Delete may prune the (empty) directory between MkdirAll and CreateTemp.
		if !errors.Is(err, fs.ErrNotExist) || attempt >= 3 {
			return fmt.Errorf("objstore: put %s: %w", l.keyURL(key), err)
		}
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", l.keyURL(key), err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("objstore: put %s: got %d bytes, caller said %d", l.keyURL(key), n, size)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("objstore: put %s: %w", l.keyURL(key), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("objstore: put %s: fsync: %w", l.keyURL(key), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("objstore: put %s: %w", l.keyURL(key), err)
	}
	if st, err := os.Stat(final); err == nil && st.IsDir() {
		return fmt.Errorf("objstore: put %s: a directory of other objects already uses this key", l.keyURL(key))
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("objstore: put %s: %w", l.keyURL(key), err)
	}
	done = true
	// Make the rename itself durable.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("objstore: put %s: fsync dir: %w", l.keyURL(key), err)
	}
	return nil
}

// Get implements Store.Get.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, _, err := l.open(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Open implements Store.Open; the object is the open file.
func (l *Local) Open(ctx context.Context, key string) (Object, error) {
	f, size, err := l.open(ctx, "open", key)
	if err != nil {
		return nil, err
	}
	return &localObject{File: f, size: size}, nil
}

func (l *Local) open(ctx context.Context, op, key string) (*os.File, int64, error) {
	if err := ValidateKey(key); err != nil {
		return nil, 0, fmt.Errorf("objstore: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("objstore: %s %s: %w", op, l.keyURL(key), err)
	}
	f, err := os.Open(l.path(key))
	if err != nil {
		return nil, 0, l.pathErr(op, key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("objstore: %s %s: %w", op, l.keyURL(key), err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("objstore: %s %s: %w", op, l.keyURL(key), ErrNotFound)
	}
	return f, st.Size(), nil
}

// pathErr maps "no such file" (and "a path component is a file") to ErrNotFound.
func (l *Local) pathErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
		return fmt.Errorf("objstore: %s %s: %w", op, l.keyURL(key), ErrNotFound)
	}
	return fmt.Errorf("objstore: %s %s: %w", op, l.keyURL(key), err)
}

// Stat implements Store.Stat.
func (l *Local) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, fmt.Errorf("objstore: stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("objstore: stat %s: %w", l.keyURL(key), err)
	}
	st, err := os.Stat(l.path(key))
	if err != nil {
		return Info{}, l.pathErr("stat", key, err)
	}
	if !st.Mode().IsRegular() {
		return Info{}, fmt.Errorf("objstore: stat %s: %w", l.keyURL(key), ErrNotFound)
	}
	return Info{Key: key, Size: st.Size(), ModTime: st.ModTime(), ETag: localETag(st)}, nil
}

// List implements Store.List. It walks only the directory the prefix names, skips temp files
// and sorts by key (a directory walk's order differs from byte order: "a/b" vs "a-c").
func (l *Local) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("objstore: list: %w", err)
	}
	start := l.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = l.path(prefix[:i])
	}
	var out []Info
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// Missing start dir = empty listing; entries deleted mid-walk are skipped.
			if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, Info{Key: key, Size: info.Size(), ModTime: info.ModTime(), ETag: localETag(info)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %s/%s: %w", l.URL(), prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store.Delete. Deleting a missing key is not an error (as on S3).
// Directories left empty are pruned so they cannot block a later Put of the same name.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("objstore: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore: delete %s: %w", l.keyURL(key), err)
	}
	p := l.path(key)
	st, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("objstore: delete %s: %w", l.keyURL(key), err)
	}
	if st.IsDir() {
		return nil // a "directory" is not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstore: delete %s: %w", l.keyURL(key), err)
	}
	for dir := filepath.Dir(p); dir != l.root && strings.HasPrefix(dir, l.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or already gone): stop
			break
		}
	}
	return nil
}

type localObject struct {
	*os.File
	size int64
}

func (o *localObject) Size() int64 { return o.size }

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// localETag identifies one version of a file without reading it: every Put renames a new
// file over the key, so the file's identity (inode, where the platform has one) changes,
// and so, in practice, do its size or modification time.
func localETag(fi fs.FileInfo) string {
	return fmt.Sprintf("%x-%x-%x", fileID(fi), fi.Size(), fi.ModTime().UnixNano())
}
