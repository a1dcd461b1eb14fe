// Package objstore is the small object-store interface tabnas keeps datasets, checkpoints,
// models and reports in, with a local-directory and an S3 implementation.
// Every Put is atomic: a reader sees the whole new object or the old one, never a part.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("object not found")

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// ETag identifies this version of the object: it changes whenever the object is
	// replaced with other content. On S3 it is the server's ETag; on a local store it is
	// derived from the file's identity, size and modification time.
	ETag string
}

// Object is a random-access reader over one stored object (Parquet needs ReadAt).
type Object interface {
	io.ReaderAt
	io.Reader
	io.Seeker
	io.Closer
	Size() int64
}

// Store is implemented by the local directory store and the S3 store.
// Keys are slash-separated relative paths such as "datasets/connect4/manifest.json"
// (see ValidateKey). Errors for a missing key wrap ErrNotFound.
type Store interface {
	// Put stores the whole of r under key atomically. size may be -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens key for sequential reading.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Open opens key for random access.
	Open(ctx context.Context, key string) (Object, error)
	// Stat describes key (size, modification time, ETag) without reading it.
	Stat(ctx context.Context, key string) (Info, error)
	// List returns the objects whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Delete removes key; deleting a missing key is not an error (S3 cannot tell cheaply).
	Delete(ctx context.Context, key string) error
	// URL names the store, e.g. "file:///data/tabnas" or "s3://bucket/prefix".
	URL() string
}
