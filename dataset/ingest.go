// Package dataset turns a raw CSV or Parquet table into a dataset prefix in object storage
// (train/val/test Parquet shards of float32 features plus a manifest) and reads it back for
// evaluators, with a bounded shard cache and a Preprocessor that encodes raw rows for
// prediction exactly as ingest did.
//
// Ingest streams the source twice and never holds it in memory: pass 1 detects column kinds
// and collects training statistics, vocabularies and labels; pass 2 encodes rows into shards.
// Row i (0-based data row) goes to the split SplitOf(seed, fractions, i), and the rows of a
// split are dealt round-robin to its shards in source order (see Locate), so any source row
// can be found in the shards from the manifest alone.
package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/schemas"
)

// Options tune Ingest. The zero value works: target column "target", task and column kinds
// auto-detected, seed 0, 0.8/0.1/0.1 split, 65,536 rows per shard.
type Options struct {
	// Target names the label column (default "target").
	Target string
	// Task forces regression, binary or multiclass. Empty: a numeric target whose values are
	// all integers with at most AutoClassLimit distinct values is classification (binary when
	// 2), any other numeric target regression, a non-numeric target classification.
	Task string
	// Classes fixes the label mapping (class k = Classes[k]) instead of sorting the labels
	// found; a label outside it is an error.
	Classes []string
	// Categorical and Numeric force column kinds (e.g. integer-coded categories). Otherwise
	// a column is numeric when every non-empty cell parses as a number (a NaN or Inf cell in
	// it is then an error), however few distinct values it has; else categorical.
	Categorical []string
	Numeric     []string
	// Ignore drops columns (IDs, leaks).
	Ignore []string
	// Seed and Fractions define the split (default fractions 0.8/0.1/0.1).
	Seed      uint64
	Fractions schemas.Fractions
	// RowsPerShard caps the rows of one shard (default 65,536).
	RowsPerShard int
	// RowLimit, when positive, ingests only the first RowLimit data rows (for quick runs).
	RowLimit int64
	// MaxCategories caps the vocabulary of one categorical column (default 1,000).
	MaxCategories int
	// MaxClasses caps the number of classes (default 1,000); AutoClassLimit is the largest
	// number of distinct integer values a numeric target may have to be auto-detected as
	// classification (default 100).
	MaxClasses     int
	AutoClassLimit int
	// BufferBytes bounds the rows pass 2 buffers before writing a row group (default 64 MiB).
	BufferBytes int64
	// TempDir holds shard files until they are uploaded (default os.TempDir()).
	TempDir string
	// Overwrite allows replacing an existing dataset at the prefix. Its manifest is deleted
	// first, so an interrupted re-ingest leaves no complete-looking dataset behind.
	Overwrite bool
	// OpenStore opens the store of an s3:// source ("s3://bucket"). Default: objstore.Open
	// with StoreOptions (empty fields come from the environment).
	OpenStore    func(ctx context.Context, url string) (objstore.Store, error)
	StoreOptions objstore.Options
	// Now stamps the manifest (default time.Now).
	Now func() time.Time
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultTarget         = "target"
	DefaultRowsPerShard   = 65536
	DefaultMaxCategories  = 1000
	DefaultMaxClasses     = 1000
	DefaultAutoClassLimit = 100
	DefaultBufferBytes    = 64 << 20
	ManifestName          = "manifest.json"
)

func (o Options) withDefaults() (Options, error) {
	if o.Target == "" {
		o.Target = DefaultTarget
	}
	switch o.Task {
	case "", schemas.TaskRegression, schemas.TaskBinary, schemas.TaskMulticlass:
	default:
		return o, fmt.Errorf("dataset: Options.Task %q is not regression, binary or multiclass", o.Task)
	}
	if o.Fractions == (schemas.Fractions{}) {
		o.Fractions = schemas.DefaultFractions
	}
	if err := o.Fractions.Validate(); err != nil {
		return o, fmt.Errorf("dataset: Options.Fractions: %w", err)
	}
	if o.RowsPerShard <= 0 {
		o.RowsPerShard = DefaultRowsPerShard
	}
	if o.MaxCategories <= 0 {
		o.MaxCategories = DefaultMaxCategories
	}
	if o.MaxClasses <= 0 {
		o.MaxClasses = DefaultMaxClasses
	}
	if o.AutoClassLimit <= 0 {
		o.AutoClassLimit = DefaultAutoClassLimit
	}
	if o.AutoClassLimit > o.MaxClasses {
		o.AutoClassLimit = o.MaxClasses
	}
	if o.BufferBytes <= 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Task == schemas.TaskRegression && len(o.Classes) > 0 {
		return o, errors.New("dataset: Options.Classes given for a regression task")
	}
	if o.Task == schemas.TaskBinary && len(o.Classes) > 0 && len(o.Classes) != 2 {
		return o, fmt.Errorf("dataset: Options.Classes has %d labels for a binary task", len(o.Classes))
	}
	return o, nil
}

// ManifestKey is the key of the manifest of the dataset at prefix.
func ManifestKey(prefix string) string { return joinKey(prefix, ManifestName) }

func joinKey(prefix, rest string) string {
	if prefix == "" {
		return rest
	}
	return prefix + "/" + rest
}

// ErrExists is returned by Ingest when the prefix already holds a dataset and
// Options.Overwrite is not set.
var ErrExists = errors.New("set Overwrite to replace it")

func cleanPrefix(p string) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", nil
	}
	if err := objstore.ValidateKey(p); err != nil {
		return "", fmt.Errorf("dataset: prefix: %w", err)
	}
	return p, nil
}

// Ingest reads src (a local path, file:// or s3://bucket/key; CSV, gzip-compressed CSV or
// Parquet, detected from the content) and writes the dataset under dstPrefix in dst: shards
// first, the manifest last, so a dataset is complete exactly when its manifest exists. On
// error everything written is deleted again. Problems with the data come back as
// *InputError naming the file, line/row and column.
func Ingest(ctx context.Context, src string, dst objstore.Store, dstPrefix string, opts Options) (*schemas.Manifest, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dataset: ingest %s: %w", src, err)
	}
	prefix, err := cleanPrefix(dstPrefix)
	if err != nil {
		return nil, err
	}
	s, err := resolveSource(ctx, src, &o)
	if err != nil {
		return nil, err
	}
	mkey := ManifestKey(prefix)
	if _, err := dst.Stat(ctx, mkey); err == nil {
		if !o.Overwrite {
			return nil, fmt.Errorf("dataset: %s already holds a dataset (%s): %w", dst.URL(), mkey, ErrExists)
		}
		if err := dst.Delete(ctx, mkey); err != nil {
			return nil, fmt.Errorf("dataset: removing the old manifest: %w", err)
		}
	} else if !errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("dataset: checking %s: %w", mkey, err)
	}

	start := time.Now()
	sc, err := scan(ctx, s, &o)
	if err != nil {
		return nil, err
	}
	o.Logger.Info("dataset: pass 1 done", "source", s.name, "rows", sc.rows, "columns", len(sc.header), "elapsed", time.Since(start))
	m, err := sc.manifest(&o)
	if err != nil {
		return nil, err
	}

	w := &writer{ctx: ctx, dst: dst, prefix: prefix, opts: &o}
	defer w.removeTemp()
	if err := w.run(s, sc, m); err != nil {
		w.rollback()
		return nil, err
	}
	data, err := m.Encode()
	if err == nil {
		err = m.Validate()
	}
	if err == nil {
		err = dst.Put(ctx, mkey, strings.NewReader(string(data)), int64(len(data)))
	}
	if err != nil {
		w.rollback()
		// A failed Put may still have landed; the manifest must not outlive its shards.
		_ = dst.Delete(context.WithoutCancel(ctx), mkey)
		return nil, fmt.Errorf("dataset: writing the manifest: %w", err)
	}
	w.removeStale(m)
	o.Logger.Info("dataset: ingest done", "source", s.name, "prefix", prefix, "rows", sc.rows,
		"features", m.FeatureWidth, "task", m.Target.Task, "elapsed", time.Since(start))
	return m, nil
}

// loc remembers where a cell was seen, for an error raised after the pass.
type loc struct {
	row, line int64
	cell      string
}

type colScan struct {
	name       string
	idx        int
	force      string
	nonNumeric bool
	nonFinite  *loc
	n          int64 // non-missing training cells
	mean, m2   float64
	missing    int64               // empty training cells
	vocab      map[string]struct{} // distinct training values, but for:
	small      [16]uint64          // canonical integers 0..1023 seen
	distinct   int
	overflow   bool
	maxVocab   int
}

// add accumulates one training value (Welford's update, stable in one pass).
func (c *colScan) add(v float64) {
	c.n++
	d := v - c.mean
	c.mean += d / float64(c.n)
	c.m2 += d * (v - c.mean)
}

type targetScan struct {
	name       string
	nonNumeric *loc
	nonFinite  *loc
	allInt     bool
	nums       map[string]struct{} // canonical numeric values
	raw        map[string]struct{}
	overflow   bool
	cap        int
	given      map[string]bool // Options.Classes, canonical when numeric
	givenNum   bool
	stat       colScan // training values of a numeric target
}

type scanResult struct {
	name   string
	info   sourceInfo
	header []string
	target int
	cols   []*colScan // inputs in header order
	tgt    *targetScan
	rows   int64
	split  [3]int64
	bytes  int64
	sha    string
}

// scan is pass 1.
func scan(ctx context.Context, s *source, o *Options) (*scanResult, error) {
	rr, info, err := openRows(ctx, s)
	if err != nil {
		return nil, err
	}
	defer rr.close()
	hdr := append([]string(nil), rr.header()...)
	sc := &scanResult{name: s.name, info: info, header: hdr, target: -1}
	seen := map[string]int{}
	for i, h := range hdr {
		if h == "" {
			return nil, &InputError{File: s.name, Line: rr.line(), Err: fmt.Errorf("header column %d has an empty name", i+1)}
		}
		if j, dup := seen[h]; dup {
			return nil, &InputError{File: s.name, Line: rr.line(), Column: h, Err: fmt.Errorf("header names columns %d and %d the same", j+1, i+1)}
		}
		seen[h] = i
	}
	t, ok := seen[o.Target]
	if !ok {
		return nil, &InputError{File: s.name, Line: rr.line(), Column: o.Target, Err: fmt.Errorf("target column not found in the header (%d columns: %s)", len(hdr), preview(hdr))}
	}
	sc.target = t
	force := map[string]string{}
	for _, list := range []struct {
		names []string
		kind  string
	}{{o.Categorical, schemas.KindCategorical}, {o.Numeric, schemas.KindNumeric}, {o.Ignore, "ignore"}} {
		for _, n := range list.names {
			if _, ok := seen[n]; !ok {
				return nil, &InputError{File: s.name, Column: n, Err: fmt.Errorf("column named in Options (%s) is not in the header", list.kind)}
			}
			if n == o.Target {
				return nil, &InputError{File: s.name, Column: n, Err: fmt.Errorf("the target column cannot be listed as %s", list.kind)}
			}
			if prev, dup := force[n]; dup && prev != list.kind {
				return nil, &InputError{File: s.name, Column: n, Err: fmt.Errorf("column listed as both %s and %s", prev, list.kind)}
			}
			force[n] = list.kind
		}
	}
	byIdx := make([]*colScan, len(hdr))
	for i, h := range hdr {
		if i == t || force[h] == "ignore" {
			continue
		}
		c := &colScan{name: h, idx: i, force: force[h], vocab: map[string]struct{}{}, maxVocab: o.MaxCategories}
		byIdx[i] = c
		sc.cols = append(sc.cols, c)
	}
	if len(sc.cols) == 0 {
		return nil, &InputError{File: s.name, Err: errors.New("no input columns besides the target")}
	}
	ts := &targetScan{name: o.Target, allInt: true, nums: map[string]struct{}{}, raw: map[string]struct{}{}, cap: o.MaxClasses}
	if len(o.Classes) > 0 {
		ts.given, ts.givenNum = map[string]bool{}, true
		for _, c := range o.Classes {
			if _, ok, err := parseNumber(strings.TrimSpace(c)); !ok || err != nil {
				ts.givenNum = false
			}
		}
		for _, c := range o.Classes {
			key := canonicalLabel(strings.TrimSpace(c), ts.givenNum)
			if key == "" || ts.given[key] {
				return nil, fmt.Errorf("dataset: Options.Classes: label %q is empty or repeated", c)
			}
			ts.given[key] = true
		}
	}
	sc.tgt = ts

	for {
		rec, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if o.RowLimit > 0 && sc.rows == o.RowLimit {
			break
		}
		sc.rows++
		row, line := sc.rows, rr.line()
		if sc.rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("dataset: %s: %w", s.name, err)
			}
		}
		if len(rec) != len(hdr) {
			return nil, raggedError(s.name, line, row, hdr, len(rec))
		}
		split := SplitOf(o.Seed, o.Fractions, row-1)
		sc.split[split]++
		train := split == Train
		for _, c := range sc.cols {
			if err := c.observe(rec[c.idx], train, row, line); err != nil {
				return nil, &InputError{File: s.name, Line: line, Row: row, Column: c.name, Err: err}
			}
		}
		if err := ts.observe(rec[t], train, row, line); err != nil {
			return nil, &InputError{File: s.name, Line: line, Row: row, Column: ts.name, Err: err}
		}
	}
	if sc.rows == 0 {
		return nil, &InputError{File: s.name, Err: errors.New("no data rows after the header")}
	}
	if sc.split[Train] == 0 {
		return nil, &InputError{File: s.name, Err: fmt.Errorf("none of the %d rows fell in the training split", sc.rows)}
	}
	sc.bytes, sc.sha, err = rr.finish()
	if err != nil {
		return nil, err
	}
	return sc, nil
}

func preview(h []string) string {
	if len(h) <= 8 {
		return strings.Join(h, ", ")
	}
	return strings.Join(h[:8], ", ") + ", ..."
}

func raggedError(file string, line, row int64, hdr []string, n int) error {
	if n < len(hdr) {
		return &InputError{File: file, Line: line, Row: row, Column: hdr[n],
			Err: fmt.Errorf("ragged row: %d cells, header has %d (no cell for this column)", n, len(hdr))}
	}
	return &InputError{File: file, Line: line, Row: row, Column: hdr[len(hdr)-1],
		Err: fmt.Errorf("ragged row: %d cells, header has %d (extra cells after this last column)", n, len(hdr))}
}

func (c *colScan) observe(cell string, train bool, row, line int64) error {
	if cell == "" {
		if train {
			c.missing++
		}
		return nil
	}
	if c.force != schemas.KindCategorical && !c.nonNumeric {
		v, ok, err := parseNumber(cell)
		switch {
		case !ok:
			if c.force == schemas.KindNumeric {
				return fmt.Errorf("%w: %q", errNotNumber, cell)
			}
			c.nonNumeric = true
		case err != nil:
			if c.force == schemas.KindNumeric {
				return fmt.Errorf("%w: %q", err, cell)
			}
			if c.nonFinite == nil {
				c.nonFinite = &loc{row: row, line: line, cell: strings.Clone(cell)}
			}
		case train:
			c.add(v)
		}
	}
	if train && !c.overflow && c.force != schemas.KindNumeric {
		if k, ok := smallInt(cell); ok {
			if c.small[k>>6]&(1<<(k&63)) != 0 {
				return nil
			}
			c.small[k>>6] |= 1 << (k & 63)
		} else if _, ok := c.vocab[cell]; ok {
			return nil
		} else {
			c.vocab[strings.Clone(cell)] = struct{}{} // clone: cell pins the whole record
		}
		c.distinct++
		if c.distinct > c.maxVocab {
			c.overflow, c.vocab = true, nil
			if c.force == schemas.KindCategorical {
				return fmt.Errorf("more than %d distinct categories in the training rows (raise MaxCategories or ignore the column)", c.maxVocab)
			}
		}
	}
	return nil
}

// smallInt recognizes the canonical spelling of an integer in [0, 1024): the common case
// of codes and pixel values, kept in a bitset instead of a map.
func smallInt(s string) (uint, bool) {
	if len(s) == 0 || len(s) > 4 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var k uint
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		k = k*10 + uint(d)
	}
	return k, k < 1024
}

// vocabulary returns the distinct training values seen.
func (c *colScan) vocabulary() map[string]struct{} {
	out := make(map[string]struct{}, c.distinct)
	for v := range c.vocab {
		out[v] = struct{}{}
	}
	for k := uint(0); k < 1024; k++ {
		if c.small[k>>6]&(1<<(k&63)) != 0 {
			out[strconv.FormatUint(uint64(k), 10)] = struct{}{}
		}
	}
	return out
}

func canonicalLabel(cell string, numeric bool) string {
	if !numeric {
		return cell
	}
	v, ok, err := parseNumber(cell)
	if !ok || err != nil {
		return ""
	}
	return schemas.CanonicalNumber(v)
}

func (t *targetScan) observe(cell string, train bool, row, line int64) error {
	if cell == "" {
		return errors.New("empty target cell")
	}
	if t.given != nil {
		if key := canonicalLabel(cell, t.givenNum); !t.given[key] {
			return fmt.Errorf("label %q is not in the label mapping given in Options.Classes", cell)
		}
	}
	if t.nonNumeric == nil {
		v, ok, err := parseNumber(cell)
		switch {
		case !ok:
			t.nonNumeric = &loc{row: row, line: line, cell: strings.Clone(cell)}
			t.nums = nil
		case err != nil:
			if t.nonFinite == nil {
				t.nonFinite = &loc{row: row, line: line, cell: strings.Clone(cell)}
			}
		default:
			if v != math.Trunc(v) {
				t.allInt = false
			}
			if train {
				t.stat.add(v)
			}
			if t.nums != nil && len(t.nums) <= t.cap {
				k := schemas.CanonicalNumber(v)
				if _, ok := t.nums[k]; !ok {
					t.nums[k] = struct{}{}
				}
			}
		}
	}
	if !t.overflow {
		if _, ok := t.raw[cell]; !ok {
			if len(t.raw) > t.cap {
				t.overflow, t.raw = true, nil
			} else {
				t.raw[strings.Clone(cell)] = struct{}{}
			}
		}
	}
	return nil
}

// manifest turns the pass-1 statistics into a manifest without shards.
func (sc *scanResult) manifest(o *Options) (*schemas.Manifest, error) {
	m := &schemas.Manifest{
		FormatVersion: schemas.FormatVersion,
		Created:       o.Now().UTC(),
		Source: schemas.Source{
			Path: sc.name, Format: sc.info.format, Compression: sc.info.compression,
			Bytes: sc.bytes, SHA256: sc.sha, Rows: sc.rows,
		},
		Split: schemas.Split{
			Method: schemas.SplitMethodV1, Seed: o.Seed, Fractions: o.Fractions,
			Rows: schemas.RowCounts{Train: sc.split[Train], Val: sc.split[Val], Test: sc.split[Test]},
		},
	}
	if o.RowLimit > 0 {
		m.Source.RowLimit = o.RowLimit
	}
	fail := func(c string, l *loc, err error) error {
		e := &InputError{File: sc.name, Column: c, Err: err}
		if l != nil {
			e.Row, e.Line = l.row, l.line
		}
		return e
	}
	offset := 0
	for _, c := range sc.cols {
		in := schemas.Input{Name: c.name, SourceIndex: c.idx, Offset: offset}
		kind := c.force
		if kind == "" {
			kind = schemas.KindNumeric
			if c.nonNumeric {
				kind = schemas.KindCategorical
			}
		}
		in.Kind = kind
		if kind == schemas.KindNumeric {
			if c.nonFinite != nil {
				return nil, fail(c.name, c.nonFinite, fmt.Errorf("%w: %q", errNonFinite, c.nonFinite.cell))
			}
			std := 0.0
			if c.n > 0 {
				std = math.Sqrt(c.m2 / float64(c.n))
			}
			if math.IsNaN(c.mean) || math.IsInf(c.mean, 0) || math.IsNaN(std) || math.IsInf(std, 0) {
				return nil, fail(c.name, nil, errors.New("values too large to standardize in float64"))
			}
			in.Numeric = &schemas.NumericSpec{Mean: c.mean, Std: std, Count: c.n, Missing: c.missing,
				Impute: schemas.ImputeMean, MissingIndicator: c.missing > 0}
			in.Width = 1
			if c.missing > 0 {
				in.Width = 2
			}
		} else {
			if c.overflow {
				return nil, fail(c.name, nil, fmt.Errorf("categorical column with more than %d distinct training values (raise MaxCategories, force it numeric or ignore it)", o.MaxCategories))
			}
			order, vocab := sortValues(c.vocabulary())
			in.Categorical = &schemas.CategorySpec{Order: order, Vocab: vocab, Missing: c.missing,
				MissingSlot: c.missing > 0, Unseen: schemas.UnseenZeros}
			in.Width = len(vocab)
			if c.missing > 0 {
				in.Width++
			}
		}
		offset += in.Width
		m.Inputs = append(m.Inputs, in)
	}
	m.FeatureWidth = offset
	if err := sc.tgt.finish(m, o, fail); err != nil {
		return nil, err
	}
	m.ShardSchema = schemas.ShardSchema{
		DType: schemas.DTypeFloat32, FeaturePrefix: schemas.DefaultFeature, Features: m.FeatureWidth,
		Label: schemas.DefaultLabel, LabelEncoding: schemas.LabelClassIndex,
		Assignment: schemas.AssignRoundRobin, RowsPerShard: o.RowsPerShard,
	}
	if m.Target.Task == schemas.TaskRegression {
		m.ShardSchema.LabelEncoding = schemas.LabelStandard
	}
	return m, nil
}

// finish decides the task and the label mapping.
func (t *targetScan) finish(m *schemas.Manifest, o *Options, fail func(string, *loc, error) error) error {
	numeric := t.nonNumeric == nil
	if numeric && t.nonFinite != nil && (o.Task == schemas.TaskRegression || o.Task == "" && len(o.Classes) == 0) {
		return fail(t.name, t.nonFinite, fmt.Errorf("NaN or Inf is not allowed in a numeric target: %q", t.nonFinite.cell))
	}
	distinct, vals := 0, t.raw
	if numeric && t.nonFinite == nil {
		vals = t.nums
	}
	overflow := vals == nil || len(vals) > t.cap
	if !overflow {
		distinct = len(vals)
	}
	task := o.Task
	if task == "" {
		switch {
		case len(o.Classes) == 2:
			task = schemas.TaskBinary
		case len(o.Classes) > 0:
			task = schemas.TaskMulticlass
		case numeric && (!t.allInt || overflow || distinct > o.AutoClassLimit):
			task = schemas.TaskRegression
		case !overflow && distinct == 2:
			task = schemas.TaskBinary
		default:
			task = schemas.TaskMulticlass
		}
	}
	m.Target = schemas.Target{Column: t.name, Task: task}
	if task == schemas.TaskRegression {
		if !numeric {
			return fail(t.name, t.nonNumeric, fmt.Errorf("regression target %q is not a number", t.nonNumeric.cell))
		}
		std := 0.0
		if t.stat.n > 0 {
			std = math.Sqrt(t.stat.m2 / float64(t.stat.n))
		}
		if math.IsInf(t.stat.mean, 0) || math.IsInf(std, 0) || math.IsNaN(std) {
			return fail(t.name, nil, errors.New("target values too large to standardize in float64"))
		}
		m.Target.Mean, m.Target.Std = t.stat.mean, std
		return nil
	}
	if len(o.Classes) > 0 {
		for _, c := range o.Classes {
			m.Target.Classes = append(m.Target.Classes, canonicalLabel(strings.TrimSpace(c), t.givenNum))
		}
		m.Target.ClassOrder = schemas.OrderGiven
		return nil
	}
	if overflow {
		return fail(t.name, nil, fmt.Errorf("more than %d distinct labels for a classification target (raise MaxClasses or use regression)", t.cap))
	}
	switch {
	case distinct < 2:
		return fail(t.name, nil, fmt.Errorf("classification target has %d distinct value(s); need at least 2", distinct))
	case task == schemas.TaskBinary && distinct != 2:
		return fail(t.name, nil, fmt.Errorf("binary task but the target has %d distinct values", distinct))
	}
	if numeric && t.nonFinite == nil {
		m.Target.ClassOrder, m.Target.Classes = sortValues(vals)
	} else {
		m.Target.ClassOrder, m.Target.Classes = schemas.OrderLexicographic, sortedKeys(vals)
	}
	return nil
}

// sortValues orders a vocabulary: numerically (canonical spelling, duplicates by value
// merged) when every value is a finite number, else byte-wise.
func sortValues(set map[string]struct{}) (string, []string) {
	if len(set) == 0 {
		return schemas.OrderLexicographic, []string{}
	}
	nums := make(map[float64]struct{}, len(set))
	for v := range set {
		x, ok, err := parseNumber(v)
		if !ok || err != nil {
			return schemas.OrderLexicographic, sortedKeys(set)
		}
		nums[x] = struct{}{}
	}
	xs := make([]float64, 0, len(nums))
	for x := range nums {
		xs = append(xs, x)
	}
	sort.Float64s(xs)
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = schemas.CanonicalNumber(x)
	}
	return schemas.OrderNumeric, dedupe(out)
}

// dedupe drops neighbours that canonicalize alike (e.g. 0 and -0).
func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

func sortedKeys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
