// Package schemas holds the versioned documents tabnas components exchange and store,
// each with a Validate method that names the offending field.
package schemas

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FormatVersion is the dataset manifest version this build writes and reads.
// Bump it on any change that an older reader would misinterpret.
const FormatVersion = 1

// Task names.
const (
	TaskRegression = "regression"
	TaskBinary     = "binary"
	TaskMulticlass = "multiclass"
)

// Column kinds.
const (
	KindNumeric     = "numeric"
	KindCategorical = "categorical"
)

// Orders of class labels and category vocabularies.
//
//   - OrderNumeric: every value parses as a finite number; values are the canonical spelling
//     strconv.FormatFloat(v, 'f', -1, 64) ("1.0" and "1" are the same value "1"), sorted
//     by numeric value, and a raw cell is matched by its parsed value.
//   - OrderLexicographic: values are the raw cells (surrounding whitespace trimmed), sorted
//     byte-wise, matched exactly.
//   - OrderGiven: class labels supplied by the user, kept in the given order, matched exactly
//     (numerically when every label is a number).
const (
	OrderNumeric       = "numeric"
	OrderLexicographic = "lexicographic"
	OrderGiven         = "given"
)

// Other fixed vocabulary of the manifest.
const (
	ImputeMean       = "mean"  // a missing numeric cell takes the training mean (0 after standardizing)
	UnseenZeros      = "zeros" // an unseen category encodes as all zeros
	SplitMethodV1    = "splitmix64-v1"
	AssignRoundRobin = "round-robin"
	DTypeFloat32     = "float32"
	LabelClassIndex  = "class-index"  // label column holds the class index 0..K-1
	LabelStandard    = "standardized" // label column holds (y-mean)/std of the regression target
	DefaultFeature   = "f"
	DefaultLabel     = "label"
)

// Split names, in the order shards and row counts are listed.
const (
	SplitTrain = "train"
	SplitVal   = "val"
	SplitTest  = "test"
)

// SplitNames lists the splits in their canonical order.
var SplitNames = [3]string{SplitTrain, SplitVal, SplitTest}

// Manifest describes one ingested dataset: where it came from, how every raw column becomes
// float32 features, how rows were split, and which Parquet shards hold the result.
//
// Preprocessing, for each input column in order (features are laid out contiguously,
// column i owning [Offset, Offset+Width)):
//   - numeric: x' = (x - Mean) / Std, with Std taken as 1 when it is 0. An empty cell is
//     imputed with Mean (so x' = 0). When training rows had missing cells, MissingIndicator
//     is set and feature Offset+1 is 1 for a missing cell and 0 otherwise.
//   - categorical: one-hot over Vocab at Offset+index. When training rows had empty cells,
//     MissingSlot is set and an empty cell sets feature Offset+len(Vocab); otherwise an empty
//     cell, like any value not in Vocab, encodes as all zeros.
//
// Mean, Std, Vocab and missing flags come from training rows only; kinds and classes from all rows.
type Manifest struct {
	FormatVersion int         `json:"format_version"`
	Created       time.Time   `json:"created"`
	Source        Source      `json:"source"`
	Target        Target      `json:"target"`
	Inputs        []Input     `json:"inputs"`
	FeatureWidth  int         `json:"feature_width"`
	Split         Split       `json:"split"`
	ShardSchema   ShardSchema `json:"shard_schema"`
	Shards        Shards      `json:"shards"`
}

// Source identifies the raw file that was ingested.
type Source struct {
	Path        string `json:"path"`                  // as given: local path or s3://bucket/key
	Format      string `json:"format"`                // "csv" or "parquet"
	Compression string `json:"compression,omitempty"` // "gzip" or empty
	Bytes       int64  `json:"bytes"`                 // size of the file as stored
	SHA256      string `json:"sha256"`                // of the file as stored (compressed bytes)
	Rows        int64  `json:"rows"`                  // data rows ingested (header excluded)
	RowLimit    int64  `json:"row_limit,omitempty"`   // set when only the first RowLimit rows were read
}

// Target describes the label column and its encoding in the shards.
type Target struct {
	Column string `json:"column"`
	Task   string `json:"task"`
	// Classes maps class index k (position) to the original value, for binary/multiclass.
	Classes    []string `json:"classes,omitempty"`
	ClassOrder string   `json:"class_order,omitempty"`
	// Mean and Std standardize a regression target (training rows); y = label*Std' + Mean
	// with Std' = Std, or 1 when Std is 0.
	Mean float64 `json:"mean,omitempty"`
	Std  float64 `json:"std,omitempty"`
}

// Input is one raw feature column and its slice of the feature vector.
type Input struct {
	Name        string        `json:"name"`
	SourceIndex int           `json:"source_index"` // 0-based position in the source header
	Kind        string        `json:"kind"`
	Offset      int           `json:"offset"`
	Width       int           `json:"width"`
	Numeric     *NumericSpec  `json:"numeric,omitempty"`
	Categorical *CategorySpec `json:"categorical,omitempty"`
}

// NumericSpec standardizes a numeric column.
type NumericSpec struct {
	Mean             float64 `json:"mean"`
	Std              float64 `json:"std"`   // population std over non-missing training cells
	Count            int64   `json:"count"` // non-missing training cells
	Missing          int64   `json:"missing"`
	Impute           string  `json:"impute"`
	MissingIndicator bool    `json:"missing_indicator"`
}

// CategorySpec one-hot encodes a categorical column.
type CategorySpec struct {
	Order       string   `json:"order"`
	Vocab       []string `json:"vocab"`
	Missing     int64    `json:"missing"` // empty training cells
	MissingSlot bool     `json:"missing_slot"`
	Unseen      string   `json:"unseen"`
}

// Split records how rows were assigned: row i (0-based data row) goes to train when
// u < Train, to val when u < Train+Val, else test, where u is the top 53 bits of
// splitmix64(splitmix64(Seed) ^ i) scaled to [0,1) (see SplitOf).
type Split struct {
	Method    string    `json:"method"`
	Seed      uint64    `json:"seed"`
	Fractions Fractions `json:"fractions"`
	Rows      RowCounts `json:"rows"`
}

// Fractions of rows per split; they sum to 1.
type Fractions struct {
	Train float64 `json:"train"`
	Val   float64 `json:"val"`
	Test  float64 `json:"test"`
}

// DefaultFractions is the 0.8/0.1/0.1 split.
var DefaultFractions = Fractions{Train: 0.8, Val: 0.1, Test: 0.1}

// RowCounts counts rows per split.
type RowCounts struct {
	Train int64 `json:"train"`
	Val   int64 `json:"val"`
	Test  int64 `json:"test"`
}

// Get returns the count for a split name.
func (r RowCounts) Get(split string) int64 {
	switch split {
	case SplitTrain:
		return r.Train
	case SplitVal:
		return r.Val
	case SplitTest:
		return r.Test
	}
	return 0
}

// ShardSchema is the column layout of every shard: float32 columns Prefix0..Prefix{n-1}
// then the label column, all required (no nulls). Rows of a split are dealt to its shards
// in source order by the Assignment rule: with N shards, the r-th row (0-based) of a split
// is row r/N of shard r%N ("round-robin"), so every shard is a uniform sample of its split.
type ShardSchema struct {
	DType         string `json:"dtype"`
	FeaturePrefix string `json:"feature_prefix"`
	Features      int    `json:"features"`
	Label         string `json:"label"`
	LabelEncoding string `json:"label_encoding"`
	Assignment    string `json:"assignment"`
	RowsPerShard  int    `json:"rows_per_shard"` // upper bound on rows in one shard
}

// FeatureColumn names feature column i.
func (s ShardSchema) FeatureColumn(i int) string { return s.FeaturePrefix + strconv.Itoa(i) }

// Shards lists the shard files of each split, in shard order.
type Shards struct {
	Train []Shard `json:"train"`
	Val   []Shard `json:"val"`
	Test  []Shard `json:"test"`
}

// Get returns the shards of a split name.
func (s Shards) Get(split string) []Shard {
	switch split {
	case SplitTrain:
		return s.Train
	case SplitVal:
		return s.Val
	case SplitTest:
		return s.Test
	}
	return nil
}

// Shard is one Parquet file; Key is the full object-store key.
type Shard struct {
	Key    string `json:"key"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Encode renders the manifest as indented JSON with a trailing newline (the stored form).
func (m *Manifest) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // category names like "<1H OCEAN" stay readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeManifest parses and validates a stored manifest. Unknown fields are rejected, and a
// manifest of another format version is refused before anything else is interpreted.
func DecodeManifest(data []byte) (*Manifest, error) {
	var head struct {
		FormatVersion *int `json:"format_version"`
	}
	// Unmarshal also rejects trailing data after the object.
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("manifest: not valid JSON: %w", err)
	}
	if head.FormatVersion == nil {
		return nil, fmt.Errorf("manifest: format_version: missing")
	}
	if *head.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("manifest: format_version: got %d, this build reads %d", *head.FormatVersion, FormatVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks every field and the consistency between them; the error names the field
// by its JSON path, e.g. "manifest: inputs[2].categorical.vocab: ...".
func (m *Manifest) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("manifest: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if m.FormatVersion != FormatVersion {
		return bad("format_version", "got %d, this build reads %d", m.FormatVersion, FormatVersion)
	}
	if m.Created.IsZero() {
		return bad("created", "missing")
	}

	s := m.Source
	if s.Path == "" {
		return bad("source.path", "empty")
	}
	if s.Format != "csv" && s.Format != "parquet" {
		return bad("source.format", "%q is not csv or parquet", s.Format)
	}
	if s.Compression != "" && s.Compression != "gzip" {
		return bad("source.compression", "%q is not gzip or empty", s.Compression)
	}
	if s.Bytes <= 0 {
		return bad("source.bytes", "must be positive, got %d", s.Bytes)
	}
	if !isSHA256(s.SHA256) {
		return bad("source.sha256", "%q is not 64 lowercase hex digits", s.SHA256)
	}
	if s.Rows <= 0 {
		return bad("source.rows", "must be positive, got %d", s.Rows)
	}
	if s.RowLimit < 0 || (s.RowLimit > 0 && s.Rows > s.RowLimit) {
		return bad("source.row_limit", "%d is negative or below rows %d", s.RowLimit, s.Rows)
	}

	if err := m.validateTarget(); err != nil {
		return err
	}

	if len(m.Inputs) == 0 {
		return bad("inputs", "no input columns")
	}
	names := map[string]int{}
	srcIdx := map[int]int{}
	offset := 0
	for i := range m.Inputs {
		in := &m.Inputs[i]
		f := fmt.Sprintf("inputs[%d]", i)
		if in.Name == "" {
			return bad(f+".name", "empty")
		}
		if j, dup := names[in.Name]; dup {
			return bad(f+".name", "%q repeats inputs[%d]", in.Name, j)
		}
		names[in.Name] = i
		if in.Name == m.Target.Column {
			return bad(f+".name", "%q is the target column", in.Name)
		}
		if in.SourceIndex < 0 {
			return bad(f+".source_index", "negative")
		}
		if j, dup := srcIdx[in.SourceIndex]; dup {
			return bad(f+".source_index", "%d repeats inputs[%d]", in.SourceIndex, j)
		}
		srcIdx[in.SourceIndex] = i
		if in.Offset != offset {
			return bad(f+".offset", "got %d, want %d (features are contiguous in input order)", in.Offset, offset)
		}
		want := 0
		switch in.Kind {
		case KindNumeric:
			if in.Categorical != nil {
				return bad(f+".categorical", "set on a numeric column")
			}
			n := in.Numeric
			if n == nil {
				return bad(f+".numeric", "missing")
			}
			if !finite(n.Mean) {
				return bad(f+".numeric.mean", "not finite")
			}
			if !finite(n.Std) || n.Std < 0 {
				return bad(f+".numeric.std", "%v is not a finite non-negative number", n.Std)
			}
			if n.Count < 0 {
				return bad(f+".numeric.count", "negative")
			}
			if n.Missing < 0 {
				return bad(f+".numeric.missing", "negative")
			}
			if n.Impute != ImputeMean {
				return bad(f+".numeric.impute", "%q is not %q", n.Impute, ImputeMean)
			}
			if n.MissingIndicator != (n.Missing > 0) {
				return bad(f+".numeric.missing_indicator", "%v but %d missing training cells", n.MissingIndicator, n.Missing)
			}
			want = 1
			if n.MissingIndicator {
				want = 2
			}
		case KindCategorical:
			if in.Numeric != nil {
				return bad(f+".numeric", "set on a categorical column")
			}
			c := in.Categorical
			if c == nil {
				return bad(f+".categorical", "missing")
			}
			if c.Order != OrderNumeric && c.Order != OrderLexicographic {
				return bad(f+".categorical.order", "%q is not %q or %q", c.Order, OrderNumeric, OrderLexicographic)
			}
			if err := checkOrdered(c.Vocab, c.Order); err != nil {
				return bad(f+".categorical.vocab", "%v", err)
			}
			if c.Missing < 0 {
				return bad(f+".categorical.missing", "negative")
			}
			if c.MissingSlot != (c.Missing > 0) {
				return bad(f+".categorical.missing_slot", "%v but %d missing training cells", c.MissingSlot, c.Missing)
			}
			if c.Unseen != UnseenZeros {
				return bad(f+".categorical.unseen", "%q is not %q", c.Unseen, UnseenZeros)
			}
			want = len(c.Vocab)
			if c.MissingSlot {
				want++
			}
		default:
			return bad(f+".kind", "%q is not %q or %q", in.Kind, KindNumeric, KindCategorical)
		}
		if in.Width != want || want < 1 {
			return bad(f+".width", "got %d, the column's encoding needs %d", in.Width, want)
		}
		offset += in.Width
	}
	if m.FeatureWidth != offset {
		return bad("feature_width", "got %d, inputs add up to %d", m.FeatureWidth, offset)
	}

	sp := m.Split
	if sp.Method != SplitMethodV1 {
		return bad("split.method", "%q is not %q", sp.Method, SplitMethodV1)
	}
	if err := sp.Fractions.Validate(); err != nil {
		return bad("split.fractions", "%v", err)
	}
	for _, name := range SplitNames {
		if sp.Rows.Get(name) < 0 {
			return bad("split.rows."+name, "negative")
		}
	}
	if sp.Rows.Train == 0 {
		return bad("split.rows.train", "no training rows")
	}
	if tot := sp.Rows.Train + sp.Rows.Val + sp.Rows.Test; tot != s.Rows {
		return bad("split.rows", "add up to %d, source.rows is %d", tot, s.Rows)
	}

	ss := m.ShardSchema
	if ss.DType != DTypeFloat32 {
		return bad("shard_schema.dtype", "%q is not %q", ss.DType, DTypeFloat32)
	}
	if ss.FeaturePrefix == "" {
		return bad("shard_schema.feature_prefix", "empty")
	}
	if ss.Label == "" || strings.HasPrefix(ss.Label, ss.FeaturePrefix) && isDigits(ss.Label[len(ss.FeaturePrefix):]) {
		return bad("shard_schema.label", "%q is empty or collides with a feature column", ss.Label)
	}
	if ss.Features != m.FeatureWidth {
		return bad("shard_schema.features", "got %d, feature_width is %d", ss.Features, m.FeatureWidth)
	}
	wantEnc := LabelClassIndex
	if m.Target.Task == TaskRegression {
		wantEnc = LabelStandard
	}
	if ss.LabelEncoding != wantEnc {
		return bad("shard_schema.label_encoding", "%q, want %q for task %s", ss.LabelEncoding, wantEnc, m.Target.Task)
	}
	if ss.Assignment != AssignRoundRobin {
		return bad("shard_schema.assignment", "%q is not %q", ss.Assignment, AssignRoundRobin)
	}
	if ss.RowsPerShard <= 0 {
		return bad("shard_schema.rows_per_shard", "must be positive, got %d", ss.RowsPerShard)
	}

	keys := map[string]string{}
	for _, name := range SplitNames {
		list := m.Shards.Get(name)
		want := sp.Rows.Get(name)
		var sum int64
		for i, sh := range list {
			f := fmt.Sprintf("shards.%s[%d]", name, i)
			if sh.Key == "" {
				return bad(f+".key", "empty")
			}
			if prev, dup := keys[sh.Key]; dup {
				return bad(f+".key", "%q repeats %s", sh.Key, prev)
			}
			keys[sh.Key] = f
			if sh.Rows <= 0 || sh.Rows > int64(ss.RowsPerShard) {
				return bad(f+".rows", "%d is not in 1..%d", sh.Rows, ss.RowsPerShard)
			}
			if sh.Bytes <= 0 {
				return bad(f+".bytes", "must be positive, got %d", sh.Bytes)
			}
			if !isSHA256(sh.SHA256) {
				return bad(f+".sha256", "%q is not 64 lowercase hex digits", sh.SHA256)
			}
			sum += sh.Rows
		}
		if sum != want {
			return bad("shards."+name, "hold %d rows, split.rows.%s is %d", sum, name, want)
		}
		// Round-robin dealing makes shard sizes differ by at most one, largest first.
		for i := 1; i < len(list); i++ {
			if d := list[0].Rows - list[i].Rows; d < 0 || d > 1 {
				return bad(fmt.Sprintf("shards.%s[%d].rows", name, i), "%d does not match round-robin dealing (shard 0 has %d)", list[i].Rows, list[0].Rows)
			}
		}
	}
	return nil
}

func (m *Manifest) validateTarget() error {
	t := m.Target
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("manifest: target.%s: %s", field, fmt.Sprintf(format, args...))
	}
	if t.Column == "" {
		return bad("column", "empty")
	}
	switch t.Task {
	case TaskRegression:
		if len(t.Classes) != 0 || t.ClassOrder != "" {
			return bad("classes", "set for a regression target")
		}
		if !finite(t.Mean) {
			return bad("mean", "not finite")
		}
		if !finite(t.Std) || t.Std < 0 {
			return bad("std", "%v is not a finite non-negative number", t.Std)
		}
		return nil
	case TaskBinary:
		if len(t.Classes) != 2 {
			return bad("classes", "binary task needs 2 classes, got %d", len(t.Classes))
		}
	case TaskMulticlass:
		if len(t.Classes) < 2 {
			return bad("classes", "multiclass task needs at least 2 classes, got %d", len(t.Classes))
		}
	default:
		return bad("task", "%q is not %s, %s or %s", t.Task, TaskRegression, TaskBinary, TaskMulticlass)
	}
	if t.Mean != 0 || t.Std != 0 {
		return bad("mean", "set for a classification target")
	}
	switch t.ClassOrder {
	case OrderNumeric, OrderLexicographic, OrderGiven:
	default:
		return bad("class_order", "%q is not %s, %s or %s", t.ClassOrder, OrderNumeric, OrderLexicographic, OrderGiven)
	}
	if err := checkOrdered(t.Classes, t.ClassOrder); err != nil {
		return bad("classes", "%v", err)
	}
	return nil
}

// Validate checks that the fractions are in [0,1], sum to 1 and leave rows for training.
func (f Fractions) Validate() error {
	for _, v := range []float64{f.Train, f.Val, f.Test} {
		if !finite(v) || v < 0 || v > 1 {
			return fmt.Errorf("%v/%v/%v: each must be in [0,1]", f.Train, f.Val, f.Test)
		}
	}
	if f.Train == 0 {
		return fmt.Errorf("train fraction is 0")
	}
	if s := f.Train + f.Val + f.Test; math.Abs(s-1) > 1e-9 {
		return fmt.Errorf("%v/%v/%v sum to %v, not 1", f.Train, f.Val, f.Test, s)
	}
	return nil
}

// CanonicalNumber is the spelling of a numeric class or category value (-0 is spelt 0).
func CanonicalNumber(v float64) string {
	if v == 0 {
		v = 0 // drop the sign of -0
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// checkOrdered verifies that values are unique, canonical for the order and sorted by it.
func checkOrdered(values []string, order string) error {
	seen := make(map[string]bool, len(values))
	nums := make([]float64, len(values))
	for i, v := range values {
		if seen[v] {
			return fmt.Errorf("value %q appears twice", v)
		}
		seen[v] = true
		if order == OrderNumeric {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || !finite(x) || CanonicalNumber(x) != v {
				return fmt.Errorf("value %q is not a canonical finite number", v)
			}
			nums[i] = x
		}
	}
	switch order {
	case OrderNumeric:
		if !sort.Float64sAreSorted(nums) {
			return fmt.Errorf("not in numeric order")
		}
	case OrderLexicographic:
		if !sort.StringsAreSorted(values) {
			return fmt.Errorf("not in lexicographic order")
		}
	}
	return nil
}

func isSHA256(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
