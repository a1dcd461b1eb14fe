package dataset

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/schemas"
)

// writer is pass 2: it encodes rows into temp shard files, then uploads them.
type writer struct {
	ctx     context.Context
	dst     objstore.Store
	prefix  string
	opts    *Options
	files   []*shardFile
	written []string
}

// shardFile buffers up to cap(cols[i]) rows column-major, then writes them as a row group.
type shardFile struct {
	tmp    *os.File
	bw     *bufio.Writer
	fw     *pqarrow.FileWriter
	schema *arrow.Schema
	cols   [][]float32
	n      int
	rows   int64
}

// ShardArrowSchema is the Arrow schema of a shard with f features: f0..f{f-1}, label;
// float32, non-nullable.
func ShardArrowSchema(f int) *arrow.Schema {
	fields := make([]arrow.Field, f+1)
	for i := 0; i < f; i++ {
		fields[i] = arrow.Field{Name: fmt.Sprintf("%s%d", schemas.DefaultFeature, i), Type: arrow.PrimitiveTypes.Float32}
	}
	fields[f] = arrow.Field{Name: schemas.DefaultLabel, Type: arrow.PrimitiveTypes.Float32}
	return arrow.NewSchema(fields, nil)
}

// shardWriterProps: dictionary encoding off (float columns gain nothing from it and it
// costs several times the write time), Snappy pages, one row group per buffered batch.
func shardWriterProps(rowGroup int) (*parquet.WriterProperties, pqarrow.ArrowWriterProperties) {
	return parquet.NewWriterProperties(
			parquet.WithDictionaryDefault(false),
			parquet.WithCompression(compress.Codecs.Snappy),
			parquet.WithMaxRowGroupLength(int64(rowGroup)),
			parquet.WithStats(false),
		),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
}

func (w *writer) newShardFile(schema *arrow.Schema, rowGroup int) (*shardFile, error) {
	tmp, err := os.CreateTemp(w.opts.TempDir, "tabnas-shard-*.parquet")
	if err != nil {
		return nil, fmt.Errorf("dataset: shard temp file: %w", err)
	}
	sf := &shardFile{tmp: tmp, bw: bufio.NewWriterSize(tmp, 1<<20), schema: schema}
	w.files = append(w.files, sf)
	props, aprops := shardWriterProps(rowGroup)
	sf.fw, err = pqarrow.NewFileWriter(schema, sf.bw, props, aprops)
	if err != nil {
		return nil, fmt.Errorf("dataset: shard writer: %w", err)
	}
	sf.cols = make([][]float32, len(schema.Fields()))
	for i := range sf.cols {
		sf.cols[i] = make([]float32, rowGroup)
	}
	return sf, nil
}

func (sf *shardFile) add(x []float32, y float32) error {
	n := sf.n
	for j, v := range x {
		sf.cols[j][n] = v
	}
	sf.cols[len(x)][n] = y
	sf.n++
	sf.rows++
	if sf.n == len(sf.cols[0]) {
		return sf.flush()
	}
	return nil
}

func (sf *shardFile) flush() error {
	if sf.n == 0 {
		return nil
	}
	arrs := make([]arrow.Array, len(sf.cols))
	for i, col := range sf.cols {
		buf := memory.NewBufferBytes(arrow.Float32Traits.CastToBytes(col[:sf.n]))
		data := array.NewData(arrow.PrimitiveTypes.Float32, sf.n, []*memory.Buffer{nil, buf}, nil, 0, 0)
		arrs[i] = array.NewFloat32Data(data)
		data.Release()
	}
	rec := array.NewRecordBatch(sf.schema, arrs, int64(sf.n))
	for _, a := range arrs {
		a.Release()
	}
	err := sf.fw.Write(rec) // encodes synchronously, so the buffers can be reused after
	rec.Release()
	sf.n = 0
	if err != nil {
		return fmt.Errorf("dataset: writing shard: %w", err)
	}
	return nil
}

func (sf *shardFile) close() error {
	if err := sf.flush(); err != nil {
		return err
	}
	if err := sf.fw.Close(); err != nil {
		return fmt.Errorf("dataset: closing shard: %w", err)
	}
	if err := sf.bw.Flush(); err != nil {
		return fmt.Errorf("dataset: writing shard: %w", err)
	}
	sf.cols = nil
	return nil
}

// run encodes every row (pass 2), uploads the shards and fills m.Shards.
func (w *writer) run(s *source, sc *scanResult, m *schemas.Manifest) error {
	o := w.opts
	f := m.FeatureWidth
	schema := ShardArrowSchema(f)
	var nShards [3]int
	total := 0
	for k := range nShards {
		nShards[k] = int((sc.split[k] + int64(o.RowsPerShard) - 1) / int64(o.RowsPerShard))
		total += nShards[k]
	}
	// One buffered row group per open shard must fit in BufferBytes.
	group := int(o.BufferBytes / int64(total*(f+1)*4))
	group = max(group, 64)
	group = min(group, o.RowsPerShard)
	var shards [3][]*shardFile
	for k := range shards {
		if nShards[k] == 0 {
			continue
		}
		per := int((sc.split[k] + int64(nShards[k]) - 1) / int64(nShards[k]))
		for i := 0; i < nShards[k]; i++ {
			sf, err := w.newShardFile(schema, min(group, per))
			if err != nil {
				return err
			}
			shards[k] = append(shards[k], sf)
		}
	}

	rr, _, err := openRows(w.ctx, s)
	if err != nil {
		return err
	}
	defer rr.close()
	changed := func(what string) error {
		return &InputError{File: s.name, Err: fmt.Errorf("source changed between the two passes (%s)", what)}
	}
	hdr := rr.header()
	if strings.Join(hdr, "\x00") != strings.Join(sc.header, "\x00") {
		return changed("header")
	}
	enc, err := newPreprocessor(m).ForHeader(hdr)
	if err != nil {
		return err
	}
	x := make([]float32, f)
	var rank [3]int64
	var rows int64
	for {
		rec, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if o.RowLimit > 0 && rows == o.RowLimit {
			break
		}
		rows++
		line := rr.line()
		if rows%4096 == 0 {
			if err := w.ctx.Err(); err != nil {
				return fmt.Errorf("dataset: %s: %w", s.name, err)
			}
		}
		if len(rec) != len(hdr) {
			return raggedError(s.name, line, rows, hdr, len(rec))
		}
		if x, err = enc.Encode(rec, x); err != nil {
			return locate(s.name, line, rows, err)
		}
		y, err := enc.Label(rec)
		if err != nil {
			return locate(s.name, line, rows, err)
		}
		k := SplitOf(o.Seed, o.Fractions, rows-1)
		if rank[k] >= sc.split[k] {
			return changed("split sizes")
		}
		i, _ := Locate(rank[k], nShards[k])
		rank[k]++
		if err := shards[k][i].add(x, y); err != nil {
			return err
		}
	}
	if rows != sc.rows {
		return changed(fmt.Sprintf("%d rows, then %d", sc.rows, rows))
	}
	if _, sha, err := rr.finish(); err != nil {
		return err
	} else if sha != sc.sha {
		return changed("SHA-256")
	}
	for k, list := range shards {
		name := schemas.SplitNames[k]
		out := []schemas.Shard{}
		for i, sf := range list {
			if err := sf.close(); err != nil {
				return err
			}
			key := joinKey(w.prefix, fmt.Sprintf("%s/part-%05d.parquet", name, i))
			sh, err := w.upload(sf, key)
			if err != nil {
				return err
			}
			out = append(out, sh)
			sf.remove()
		}
		switch k {
		case Train:
			m.Shards.Train = out
		case Val:
			m.Shards.Val = out
		case Test:
			m.Shards.Test = out
		}
	}
	return nil
}

func locate(file string, line, row int64, err error) error {
	var ce *cellError
	if errors.As(err, &ce) {
		return &InputError{File: file, Line: line, Row: row, Column: ce.Column, Err: ce.Err}
	}
	return &InputError{File: file, Line: line, Row: row, Err: err}
}

func (w *writer) upload(sf *shardFile, key string) (schemas.Shard, error) {
	h := sha256.New()
	if _, err := sf.tmp.Seek(0, io.SeekStart); err != nil {
		return schemas.Shard{}, fmt.Errorf("dataset: shard %s: %w", key, err)
	}
	size, err := io.Copy(h, sf.tmp)
	if err != nil {
		return schemas.Shard{}, fmt.Errorf("dataset: shard %s: %w", key, err)
	}
	if _, err := sf.tmp.Seek(0, io.SeekStart); err != nil {
		return schemas.Shard{}, fmt.Errorf("dataset: shard %s: %w", key, err)
	}
	w.written = append(w.written, key) // before Put: a failed Put may still leave an object
	if err := w.dst.Put(w.ctx, key, sf.tmp, size); err != nil {
		return schemas.Shard{}, fmt.Errorf("dataset: uploading shard %s: %w", key, err)
	}
	return schemas.Shard{Key: key, Rows: sf.rows, Bytes: size, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func (sf *shardFile) remove() {
	if sf.tmp != nil {
		sf.tmp.Close()
		os.Remove(sf.tmp.Name())
		sf.tmp = nil
	}
}

func (w *writer) removeTemp() {
	for _, sf := range w.files {
		sf.remove()
	}
}

// rollback deletes every object this ingest wrote, even when ctx is already cancelled.
func (w *writer) rollback() {
	ctx := context.WithoutCancel(w.ctx)
	for _, key := range w.written {
		if err := w.dst.Delete(ctx, key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
			w.opts.Logger.Warn("dataset: rollback could not delete a shard", "key", key, "err", err)
		}
	}
	w.written = nil
}

var partKey = regexp.MustCompile(`^(train|val|test)/part-[0-9]+\.parquet$`)

// removeStale deletes shards a previous ingest left under the prefix that the new manifest
// does not list (best effort: they are invisible to readers anyway).
func (w *writer) removeStale(m *schemas.Manifest) {
	keep := map[string]bool{}
	for _, name := range schemas.SplitNames {
		for _, sh := range m.Shards.Get(name) {
			keep[sh.Key] = true
		}
	}
	list, err := w.dst.List(w.ctx, joinKey(w.prefix, ""))
	if err != nil {
		return
	}
	for _, info := range list {
		rel := strings.TrimPrefix(info.Key, joinKey(w.prefix, ""))
		if !keep[info.Key] && partKey.MatchString(rel) {
			_ = w.dst.Delete(w.ctx, info.Key)
		}
	}
}
