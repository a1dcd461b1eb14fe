package dataset

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
)

// memStore is an in-memory objstore.Store for tests, with counters and fault injection.
type memStore struct {
	mu      sync.Mutex
	objs    map[string][]byte
	gets    int
	failPut func(key string) error
}

func newMemStore() *memStore { return &memStore{objs: map[string][]byte{}} }

func (m *memStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := objstore.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if size >= 0 && int64(len(data)) != size {
		return fmt.Errorf("memstore: put %s: %d bytes, caller said %d", key, len(data), size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		if err := m.failPut(key); err != nil {
			return err
		}
	}
	m.objs[key] = data
	return nil
}

func (m *memStore) bytes(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	b, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("memstore: %s: %w", key, objstore.ErrNotFound)
	}
	return b, nil
}

func (m *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	b, err := m.bytes(key)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

type memObject struct {
	*bytes.Reader
}

func (memObject) Close() error { return nil }

func (m *memStore) Open(ctx context.Context, key string) (objstore.Object, error) {
	b, err := m.bytes(key)
	if err != nil {
		return nil, err
	}
	return memObject{bytes.NewReader(b)}, nil
}

func (m *memStore) Stat(ctx context.Context, key string) (objstore.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return objstore.Info{}, fmt.Errorf("memstore: %s: %w", key, objstore.ErrNotFound)
	}
	return objstore.Info{Key: key, Size: int64(len(b)), ModTime: time.Unix(0, 0)}, nil
}

func (m *memStore) List(ctx context.Context, prefix string) ([]objstore.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []objstore.Info
	for k, b := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, objstore.Info{Key: k, Size: int64(len(b))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (m *memStore) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func (m *memStore) URL() string { return "mem://test" }

func (m *memStore) keys() []string {
	list, _ := m.List(context.Background(), "")
	out := make([]string, len(list))
	for i, in := range list {
		out[i] = in.Key
	}
	return out
}

func (m *memStore) getCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gets
}
