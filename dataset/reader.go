package dataset

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/schemas"
)

// Dataset is an ingested dataset opened for reading.
type Dataset struct {
	Store    objstore.Store
	Prefix   string
	Manifest *schemas.Manifest
}

// OpenDataset reads and validates the manifest at prefix. A prefix without a manifest
// (never ingested, or an ingest that did not finish) is reported as not found.
func OpenDataset(ctx context.Context, store objstore.Store, prefix string) (*Dataset, error) {
	p, err := cleanPrefix(prefix)
	if err != nil {
		return nil, err
	}
	key := ManifestKey(p)
	rc, err := store.Get(ctx, key)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, fmt.Errorf("dataset: no dataset at %s/%s (manifest missing): %w", store.URL(), p, err)
		}
		return nil, fmt.Errorf("dataset: reading %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("dataset: reading %s: %w", key, err)
	}
	m, err := schemas.DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", key, err)
	}
	return &Dataset{Store: store, Prefix: p, Manifest: m}, nil
}

// Shards returns the shards of a split ("train", "val" or "test").
func (d *Dataset) Shards(split string) []schemas.Shard { return d.Manifest.Shards.Get(split) }

// Preprocessor returns the dataset's preprocessing for raw rows.
func (d *Dataset) Preprocessor() (*Preprocessor, error) { return NewPreprocessor(d.Manifest) }

// ReadShard reads one shard of this dataset and checks its width against the manifest.
func (d *Dataset) ReadShard(ctx context.Context, sh schemas.Shard) (*ShardData, error) {
	return readShard(ctx, d.Store, sh, d.Manifest.FeatureWidth)
}

// ShardData is a decoded shard: X is row-major Rows×Features, Y has Rows labels.
// Data handed out by a ShardCache is shared and must not be modified.
type ShardData struct {
	Key      string
	Rows     int
	Features int
	X        []float32
	Y        []float32
}

// Row returns the features of row i (a view into X).
func (s *ShardData) Row(i int) []float32 { return s.X[i*s.Features : (i+1)*s.Features] }

func (s *ShardData) bytes() int64 { return 4 * int64(len(s.X)+len(s.Y)) }

// ReadShard fetches a shard, verifies its size and SHA-256 against the manifest entry and
// its schema (float32 f0..f{n-1} then label, no nulls, the listed row count), and decodes it.
// Every error names the shard key.
func ReadShard(ctx context.Context, store objstore.Store, sh schemas.Shard) (x, y []float32, rows int, err error) {
	d, err := readShard(ctx, store, sh, -1)
	if err != nil {
		return nil, nil, 0, err
	}
	return d.X, d.Y, d.Rows, nil
}

func readShard(ctx context.Context, store objstore.Store, sh schemas.Shard, width int) (*ShardData, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("dataset: shard %s: %s", sh.Key, fmt.Sprintf(format, args...))
	}
	rc, err := store.Get(ctx, sh.Key)
	if err != nil {
		return nil, fmt.Errorf("dataset: shard %s: %w", sh.Key, err)
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, max(sh.Bytes, 0)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(rc, sh.Bytes+1)); err != nil {
		return nil, fmt.Errorf("dataset: shard %s: %w", sh.Key, err)
	}
	data := buf.Bytes()
	if int64(len(data)) != sh.Bytes {
		return nil, bad("corrupt: %d bytes, manifest says %d", len(data), sh.Bytes)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != sh.SHA256 {
		return nil, bad("corrupt: SHA-256 %x does not match the manifest's %s", sum, sh.SHA256)
	}
	d, err := decodeShard(data, width)
	if err != nil {
		return nil, bad("%v", err)
	}
	if int64(d.Rows) != sh.Rows {
		return nil, bad("%d rows, manifest says %d", d.Rows, sh.Rows)
	}
	d.Key = sh.Key
	return d, nil
}

// decodeShard reads the float32 columns straight from the Parquet column chunks (no Arrow
// arrays in between) and interleaves them row-major.
func decodeShard(data []byte, width int) (*ShardData, error) {
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a readable Parquet file: %w", err)
	}
	defer pf.Close()
	sc := pf.MetaData().Schema
	ncol := sc.NumColumns()
	if ncol < 2 {
		return nil, fmt.Errorf("schema has %d columns, want features and a label", ncol)
	}
	f := ncol - 1
	if width >= 0 && f != width {
		return nil, fmt.Errorf("schema has %d feature columns, manifest says %d", f, width)
	}
	for i := 0; i < ncol; i++ {
		c := sc.Column(i)
		want := fmt.Sprintf("%s%d", schemas.DefaultFeature, i)
		if i == f {
			want = schemas.DefaultLabel
		}
		if c.Name() != want || c.PhysicalType() != parquet.Types.Float || c.MaxDefinitionLevel() != 0 || c.MaxRepetitionLevel() != 0 {
			return nil, fmt.Errorf("schema column %d is %q (%s, def %d), want required float %q",
				i, c.Name(), c.PhysicalType(), c.MaxDefinitionLevel(), want)
		}
	}
	rows := pf.NumRows()
	if rows > int64(^uint32(0)) {
		return nil, fmt.Errorf("%d rows is too many for one shard", rows)
	}
	d := &ShardData{Rows: int(rows), Features: f, X: make([]float32, int(rows)*f), Y: make([]float32, rows)}
	var vals []float32
	base := 0
	for g := 0; g < pf.NumRowGroups(); g++ {
		rg := pf.RowGroup(g)
		n := int(rg.NumRows())
		if base+n > d.Rows {
			return nil, fmt.Errorf("row groups hold more rows than the footer says")
		}
		if cap(vals) < n {
			vals = make([]float32, n)
		}
		vals = vals[:n]
		for c := 0; c < ncol; c++ {
			cr, err := rg.Column(c)
			if err != nil {
				return nil, fmt.Errorf("row group %d column %d: %w", g, c, err)
			}
			fr, ok := cr.(*file.Float32ColumnChunkReader)
			if !ok {
				return nil, fmt.Errorf("row group %d column %d is not float32", g, c)
			}
			got := 0
			for got < n {
				_, k, err := fr.ReadBatch(int64(n-got), vals[got:], nil, nil)
				if err != nil {
					return nil, fmt.Errorf("row group %d column %d: %w", g, c, err)
				}
				if k == 0 {
					break
				}
				got += k
			}
			if got != n {
				return nil, fmt.Errorf("row group %d column %d: %d values, want %d", g, c, got, n)
			}
			if c == f {
				copy(d.Y[base:], vals)
				continue
			}
			x := d.X[base*f+c:]
			for r, v := range vals {
				x[r*f] = v
			}
		}
		base += n
	}
	if base != d.Rows {
		return nil, fmt.Errorf("row groups hold %d rows, the footer says %d", base, d.Rows)
	}
	return d, nil
}

// ShardCache keeps decoded shards in memory up to a byte budget, evicting the least
// recently used, so that an evaluator's steady-state steps read nothing from the store.
// Concurrent requests for the same shard share one read. Safe for concurrent use.
type ShardCache struct {
	store    objstore.Store
	maxBytes int64

	mu       sync.Mutex
	lru      *list.List // front = most recent; values *cacheEntry
	entries  map[string]*list.Element
	inflight map[string]*inflightRead
	size     int64
	stats    CacheStats
}

// CacheStats counts cache traffic; BytesRead is what was fetched from the store.
type CacheStats struct {
	Hits, Misses, Evictions int64
	BytesRead               int64
	Bytes                   int64 // currently cached (decoded size)
	Entries                 int
}

type cacheEntry struct {
	key  string
	data *ShardData
}

type inflightRead struct {
	done chan struct{}
	data *ShardData
	err  error
}

// NewShardCache caches shards of store within maxBytes of decoded float32 data. A shard
// larger than the budget is returned but not kept.
func NewShardCache(store objstore.Store, maxBytes int64) *ShardCache {
	return &ShardCache{store: store, maxBytes: maxBytes, lru: list.New(),
		entries: map[string]*list.Element{}, inflight: map[string]*inflightRead{}}
}

// Get returns the decoded shard, reading and verifying it on a miss. The cache key includes
// the checksum, so a re-ingested shard under the same key is never served stale.
func (c *ShardCache) Get(ctx context.Context, sh schemas.Shard) (*ShardData, error) {
	key := sh.Key + "@" + sh.SHA256
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		c.lru.MoveToFront(el)
		c.stats.Hits++
		d := el.Value.(*cacheEntry).data
		c.mu.Unlock()
		return d, nil
	}
	if in, ok := c.inflight[key]; ok {
		c.stats.Hits++
		c.mu.Unlock()
		select {
		case <-in.done:
			return in.data, in.err
		case <-ctx.Done():
			return nil, fmt.Errorf("dataset: shard %s: %w", sh.Key, ctx.Err())
		}
	}
	in := &inflightRead{done: make(chan struct{})}
	c.inflight[key] = in
	c.stats.Misses++
	c.mu.Unlock()

	// Detach from the caller's cancellation: other waiters share this read.
	in.data, in.err = readShard(context.WithoutCancel(ctx), c.store, sh, -1)

	c.mu.Lock()
	delete(c.inflight, key)
	if in.err == nil {
		c.stats.BytesRead += sh.Bytes
		if sz := in.data.bytes(); sz <= c.maxBytes {
			for c.size+sz > c.maxBytes {
				c.evictOldest()
			}
			c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, data: in.data})
			c.size += sz
		}
	}
	c.mu.Unlock()
	close(in.done)
	return in.data, in.err
}

func (c *ShardCache) evictOldest() {
	el := c.lru.Back()
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.entries, e.key)
	c.size -= e.data.bytes()
	c.stats.Evictions++
}

// Stats returns a snapshot of the counters.
func (c *ShardCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Bytes, s.Entries = c.size, c.lru.Len()
	return s
}

// ReadSplit reads every shard of a split, in shard order, into one row-major feature
// matrix and its labels, through cache when one is given.
func (d *Dataset) ReadSplit(ctx context.Context, split string, cache *ShardCache) (x, y []float32, err error) {
	for _, sh := range d.Shards(split) {
		var s *ShardData
		if cache != nil {
			s, err = cache.Get(ctx, sh)
		} else {
			s, err = d.ReadShard(ctx, sh)
		}
		if err != nil {
			return nil, nil, err
		}
		x, y = append(x, s.X...), append(y, s.Y...)
	}
	return x, y, nil
}
