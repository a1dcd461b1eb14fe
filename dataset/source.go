package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tabnas/tabnas/infra/objstore"
)

// source is the raw input file, opened afresh for each pass.
type source struct {
	name  string // as given by the caller: used in errors and the manifest
	path  string // local file, or
	store objstore.Store
	key   string
}

// resolveSource accepts a local path, a file:// URL or s3://bucket/key.
func resolveSource(ctx context.Context, src string, opts *Options) (*source, error) {
	if src == "" {
		return nil, fmt.Errorf("dataset: empty source path")
	}
	if strings.HasPrefix(src, "file://") {
		u, err := url.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("dataset: source %q: %w", src, err)
		}
		return &source{name: src, path: u.Path}, nil
	}
	if !strings.HasPrefix(src, "s3://") {
		return &source{name: src, path: src}, nil
	}
	bucket, key, err := objstore.ParseS3URL(src)
	if err != nil {
		return nil, fmt.Errorf("dataset: source: %w", err)
	}
	if key == "" {
		return nil, fmt.Errorf("dataset: source %q: want s3://bucket/key", src)
	}
	open := opts.OpenStore
	if open == nil {
		open = func(ctx context.Context, url string) (objstore.Store, error) {
			return objstore.Open(ctx, url, opts.StoreOptions)
		}
	}
	st, err := open(ctx, "s3://"+bucket)
	if err != nil {
		return nil, fmt.Errorf("dataset: source %q: %w", src, err)
	}
	return &source{name: src, store: st, key: key}, nil
}

// randomFile is what Parquet needs: random access plus the size.
type randomFile interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
	Size() int64
}

type osFile struct {
	*os.File
	size int64
}

func (f osFile) Size() int64 { return f.size }

func (s *source) open(ctx context.Context) (randomFile, error) {
	if s.store != nil {
		o, err := s.store.Open(ctx, s.key)
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", s.name, err)
		}
		return o, nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", s.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dataset: %s: %w", s.name, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("dataset: %s: is a directory", s.name)
	}
	return osFile{f, st.Size()}, nil
}

// rowReader yields the header and then one record per data row, cells trimmed of
// surrounding whitespace. The slice returned by next is reused by the following call.
type rowReader interface {
	header() []string
	next() ([]string, error) // io.EOF at the end
	line() int64             // 1-based text line of the last record (0 when not text)
	// finish drains the rest of the raw bytes and returns their count and SHA-256.
	finish() (int64, string, error)
	close() error
}

// sourceInfo is what format detection found.
type sourceInfo struct {
	format      string // "csv" or "parquet"
	compression string // "gzip" or ""
}

var parquetMagic = []byte("PAR1")

// openRows detects the format from the first bytes (gzip magic, Parquet magic, else CSV).
func openRows(ctx context.Context, s *source) (rowReader, sourceInfo, error) {
	f, err := s.open(ctx)
	if err != nil {
		return nil, sourceInfo{}, err
	}
	var magic [4]byte
	n, _ := f.ReadAt(magic[:], 0)
	if n == 4 && bytes.Equal(magic[:], parquetMagic) {
		r, err := openParquetRows(ctx, s, f)
		if err != nil {
			f.Close()
			return nil, sourceInfo{}, err
		}
		return prefetch(r), sourceInfo{format: "parquet"}, nil
	}
	r, info, err := openCSVRows(s, f)
	if err != nil {
		f.Close()
		return nil, sourceInfo{}, err
	}
	return prefetch(r), info, nil
}

// hashCounter hashes and counts the raw bytes as they stream by.
type hashCounter struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *hashCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// stickyReader remembers the first non-EOF error of the (decompressed) stream, so that a
// broken gzip member is reported as such rather than as a CSV syntax problem.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

type csvRows struct {
	name   string
	f      randomFile
	raw    *hashCounter
	sticky *stickyReader
	gz     *gzip.Reader
	cr     *csvReader
	hdr    []string
	ln     int64
	kind   string // "gzip" or "" for error messages
}

func openCSVRows(s *source, f randomFile) (*csvRows, sourceInfo, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, sourceInfo{}, fmt.Errorf("dataset: %s: %w", s.name, err)
	}
	c := &csvRows{name: s.name, f: f, raw: &hashCounter{r: f, h: sha256.New()}}
	br := bufio.NewReaderSize(c.raw, 1<<20)
	head, _ := br.Peek(2)
	info := sourceInfo{format: "csv"}
	var text io.Reader = br
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, info, &InputError{File: s.name, Err: fmt.Errorf("unreadable gzip: %w", err)}
		}
		c.gz = gz
		c.kind = "gzip"
		info.compression = "gzip"
		text = gz
	}
	c.sticky = &stickyReader{r: text}
	c.cr = newCSVReader(c.sticky)
	hdr, err := c.cr.read()
	if err == io.EOF && c.sticky.err == nil {
		if c.raw.n == 0 {
			return nil, info, &InputError{File: s.name, Err: errors.New("empty file (no header row)")}
		}
		return nil, info, &InputError{File: s.name, Err: errors.New("no header row (only blank lines)")}
	}
	if err != nil {
		return nil, info, c.readErr(err)
	}
	c.setLine()
	c.hdr = make([]string, len(hdr))
	for i, h := range hdr {
		c.hdr[i] = strings.TrimSpace(h)
	}
	c.hdr[0] = strings.TrimPrefix(c.hdr[0], "\ufeff")
	return c, info, nil
}

func (c *csvRows) readErr(err error) error {
	if c.sticky.err != nil {
		what := "read error"
		if c.kind == "gzip" {
			what = "unreadable gzip data"
		}
		return &InputError{File: c.name, Line: c.cr.line + 1, Err: fmt.Errorf("%s: %w", what, c.sticky.err)}
	}
	var se *csvSyntaxError
	if errors.As(err, &se) {
		return &InputError{File: c.name, Line: se.line, Err: fmt.Errorf("CSV syntax: %s", se.msg)}
	}
	return &InputError{File: c.name, Line: c.ln + 1, Err: err}
}

func (c *csvRows) setLine() {
	c.ln = c.cr.start
}

func (c *csvRows) header() []string { return c.hdr }
func (c *csvRows) line() int64      { return c.ln }

func (c *csvRows) next() ([]string, error) {
	rec, err := c.cr.read()
	if err != nil {
		if err == io.EOF && c.sticky.err == nil {
			return nil, io.EOF
		}
		return nil, c.readErr(err)
	}
	c.setLine()
	for i, v := range rec {
		if len(v) > 0 && (isSpace(v[0]) || isSpace(v[len(v)-1])) {
			rec[i] = strings.TrimSpace(v)
		}
	}
	return rec, nil
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == '\v' || b == '\f'
}

func (c *csvRows) finish() (int64, string, error) {
	if _, err := io.Copy(io.Discard, c.raw); err != nil {
		return 0, "", fmt.Errorf("dataset: %s: %w", c.name, err)
	}
	return c.raw.n, hex.EncodeToString(c.raw.h.Sum(nil)), nil
}

func (c *csvRows) close() error {
	if c.gz != nil {
		c.gz.Close()
	}
	return c.f.Close()
}

// parquetRows turns the columns of a flat Parquet file into text cells, so that kind
// detection and encoding are the same code as for CSV. Nulls become empty (missing) cells;
// floats are spelled with the shortest round-trip digits of their own width.
type parquetRows struct {
	name string
	f    randomFile
	pf   *file.Reader
	rr   pqarrow.RecordReader
	hdr  []string
	rec  arrow.RecordBatch
	conv []func(i int) string
	i    int
	row  []string
}

func openParquetRows(ctx context.Context, s *source, f randomFile) (*parquetRows, error) {
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return nil, &InputError{File: s.name, Err: fmt.Errorf("unreadable Parquet: %w", err)}
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 8192}, memory.DefaultAllocator)
	if err != nil {
		return nil, &InputError{File: s.name, Err: fmt.Errorf("unreadable Parquet: %w", err)}
	}
	sc, err := fr.Schema()
	if err != nil {
		return nil, &InputError{File: s.name, Err: fmt.Errorf("unreadable Parquet schema: %w", err)}
	}
	p := &parquetRows{name: s.name, f: f, pf: pf}
	for _, fld := range sc.Fields() {
		if _, ok := cellConverter(fld.Type); !ok {
			return nil, &InputError{File: s.name, Column: fld.Name, Err: fmt.Errorf("unsupported Parquet column type %s", fld.Type)}
		}
		p.hdr = append(p.hdr, fld.Name)
	}
	if len(p.hdr) == 0 {
		return nil, &InputError{File: s.name, Err: errors.New("Parquet file has no columns")}
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return nil, &InputError{File: s.name, Err: fmt.Errorf("unreadable Parquet: %w", err)}
	}
	p.rr = rr
	p.row = make([]string, len(p.hdr))
	return p, nil
}

// cellConverter returns a function that spells element i of an array as a CSV cell would.
func cellConverter(t arrow.DataType) (func(a arrow.Array) func(i int) string, bool) {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64:
		return func(a arrow.Array) func(int) string {
			return func(i int) string { return strconv.FormatInt(intAt(a, i), 10) }
		}, true
	case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return func(a arrow.Array) func(int) string {
			return func(i int) string { return strconv.FormatUint(uintAt(a, i), 10) }
		}, true
	case arrow.FLOAT32:
		return func(a arrow.Array) func(int) string {
			v := a.(*array.Float32)
			return func(i int) string { return strconv.FormatFloat(float64(v.Value(i)), 'g', -1, 32) }
		}, true
	case arrow.FLOAT64:
		return func(a arrow.Array) func(int) string {
			v := a.(*array.Float64)
			return func(i int) string { return strconv.FormatFloat(v.Value(i), 'g', -1, 64) }
		}, true
	case arrow.BOOL:
		return func(a arrow.Array) func(int) string {
			v := a.(*array.Boolean)
			return func(i int) string { return strconv.FormatBool(v.Value(i)) }
		}, true
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY, arrow.STRING_VIEW, arrow.BINARY_VIEW:
		return func(a arrow.Array) func(int) string {
			return func(i int) string { return strings.TrimSpace(a.ValueStr(i)) }
		}, true
	case arrow.DICTIONARY:
		dt := t.(*arrow.DictionaryType)
		inner, ok := cellConverter(dt.ValueType)
		if !ok {
			return nil, false
		}
		return func(a arrow.Array) func(int) string {
			d := a.(*array.Dictionary)
			values := inner(d.Dictionary())
			return func(i int) string { return values(d.GetValueIndex(i)) }
		}, true
	}
	return nil, false
}

func intAt(a arrow.Array, i int) int64 {
	switch v := a.(type) {
	case *array.Int8:
		return int64(v.Value(i))
	case *array.Int16:
		return int64(v.Value(i))
	case *array.Int32:
		return int64(v.Value(i))
	case *array.Int64:
		return v.Value(i)
	}
	panic("dataset: not a signed integer array")
}

func uintAt(a arrow.Array, i int) uint64 {
	switch v := a.(type) {
	case *array.Uint8:
		return uint64(v.Value(i))
	case *array.Uint16:
		return uint64(v.Value(i))
	case *array.Uint32:
		return uint64(v.Value(i))
	case *array.Uint64:
		return v.Value(i)
	}
	panic("dataset: not an unsigned integer array")
}

func (p *parquetRows) header() []string { return p.hdr }
func (p *parquetRows) line() int64      { return 0 }

func (p *parquetRows) next() ([]string, error) {
	for p.rec == nil || p.i >= int(p.rec.NumRows()) {
		if !p.rr.Next() {
			if err := p.rr.Err(); err != nil && err != io.EOF {
				return nil, &InputError{File: p.name, Err: fmt.Errorf("unreadable Parquet: %w", err)}
			}
			return nil, io.EOF
		}
		p.rec = p.rr.RecordBatch()
		p.i = 0
		p.conv = p.conv[:0]
		for c := 0; c < int(p.rec.NumCols()); c++ {
			mk, _ := cellConverter(p.rec.Column(c).DataType())
			col := p.rec.Column(c)
			conv := mk(col)
			p.conv = append(p.conv, func(i int) string {
				if col.IsNull(i) {
					return ""
				}
				return conv(i)
			})
		}
	}
	for c, conv := range p.conv {
		p.row[c] = conv(p.i)
	}
	p.i++
	return p.row, nil
}

func (p *parquetRows) finish() (int64, string, error) {
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return 0, "", fmt.Errorf("dataset: %s: %w", p.name, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(p.f, 0, p.f.Size()))
	if err != nil {
		return 0, "", fmt.Errorf("dataset: %s: %w", p.name, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func (p *parquetRows) close() error {
	p.rr.Release()
	return p.pf.Close() // closes p.f too
}

// prefetchRows reads and splits rows on its own goroutine, a batch ahead of the consumer,
// so decompression and CSV parsing overlap with number parsing and encoding.
type prefetchRows struct {
	inner rowReader
	ch    chan rowBatch
	free  chan rowBatch // consumed batches, recycled to spare the allocator
	stop  chan struct{}
	done  chan struct{}
	cur   rowBatch
	i     int
	ln    int64
	ended error
}

type rowBatch struct {
	cells []string
	recs  [][]string
	lines []int64
	err   error // set on the last batch: io.EOF or the read error
}

const prefetchBatch = 256

func prefetch(inner rowReader) *prefetchRows {
	p := &prefetchRows{inner: inner, ch: make(chan rowBatch, 4), free: make(chan rowBatch, 6),
		stop: make(chan struct{}), done: make(chan struct{}), ln: inner.line()}
	go p.run()
	return p
}

func (p *prefetchRows) run() {
	defer close(p.done)
	width := len(p.inner.header())
	for {
		var b rowBatch
		select {
		case b = <-p.free:
			clear(b.cells) // drop references to old records
			b.cells, b.recs, b.lines = b.cells[:0], b.recs[:0], b.lines[:0]
		default:
			b = rowBatch{recs: make([][]string, 0, prefetchBatch), lines: make([]int64, 0, prefetchBatch),
				cells: make([]string, 0, prefetchBatch*width)}
		}
		cells := b.cells
		for len(b.recs) < prefetchBatch {
			rec, err := p.inner.next()
			if err != nil {
				b.err = err
				break
			}
			// The inner reader reuses its slice; the strings themselves are fresh.
			start := len(cells)
			cells = append(cells, rec...)
			b.recs = append(b.recs, cells[start:len(cells):len(cells)])
			b.lines = append(b.lines, p.inner.line())
		}
		b.cells = cells
		select {
		case p.ch <- b:
		case <-p.stop:
			return
		}
		if b.err != nil {
			return
		}
	}
}

func (p *prefetchRows) header() []string { return p.inner.header() }
func (p *prefetchRows) line() int64      { return p.ln }

func (p *prefetchRows) next() ([]string, error) {
	for p.i >= len(p.cur.recs) {
		if p.ended != nil {
			return nil, p.ended
		}
		if p.cur.err != nil {
			p.ended = p.cur.err
			return nil, p.ended
		}
		if p.cur.recs != nil {
			select {
			case p.free <- p.cur:
			default:
			}
		}
		p.cur = <-p.ch
		p.i = 0
	}
	rec := p.cur.recs[p.i]
	p.ln = p.cur.lines[p.i]
	p.i++
	return rec, nil
}

// halt stops the reading goroutine before the inner reader is used directly again.
func (p *prefetchRows) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *prefetchRows) finish() (int64, string, error) {
	p.halt()
	return p.inner.finish()
}

func (p *prefetchRows) close() error {
	p.halt()
	return p.inner.close()
}
