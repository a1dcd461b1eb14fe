package dataset

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tabnas/tabnas/schemas"
)

// Preprocessor applies a manifest's preprocessing to raw rows. Ingest encodes every row
// through it, so a raw row given to it later (for prediction) gets exactly the features the
// model was trained on. The rules are those documented on schemas.Manifest; cells are
// trimmed of surrounding whitespace and an empty cell is a missing value.
// A Preprocessor is read-only after construction and safe for concurrent use.
type Preprocessor struct {
	m       *schemas.Manifest
	cols    []colEncoder
	width   int
	classes map[string]int
	numCls  bool // classes are matched by numeric value
	yMean   float64
	yScale  float64
}

type colEncoder struct {
	name   string
	offset int
	kind   string
	// numeric
	mean, scale float64
	indicator   bool
	// categorical
	vocab   map[string]int
	numVoc  bool
	nvocab  int
	missing bool // has a missing slot
}

// NewPreprocessor validates m and prepares its encoders.
func NewPreprocessor(m *schemas.Manifest) (*Preprocessor, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return newPreprocessor(m), nil
}

// newPreprocessor trusts m (ingest builds it before the shard list exists).
func newPreprocessor(m *schemas.Manifest) *Preprocessor {
	p := &Preprocessor{m: m, width: m.FeatureWidth}
	for _, in := range m.Inputs {
		c := colEncoder{name: in.Name, offset: in.Offset, kind: in.Kind}
		if n := in.Numeric; n != nil {
			c.mean, c.scale, c.indicator = n.Mean, scaleOf(n.Std), n.MissingIndicator
		}
		if cs := in.Categorical; cs != nil {
			c.vocab = make(map[string]int, len(cs.Vocab))
			for k, v := range cs.Vocab {
				c.vocab[v] = k
			}
			c.numVoc = cs.Order == schemas.OrderNumeric
			c.nvocab = len(cs.Vocab)
			c.missing = cs.MissingSlot
		}
		p.cols = append(p.cols, c)
	}
	t := m.Target
	if t.Task == schemas.TaskRegression {
		p.yMean, p.yScale = t.Mean, scaleOf(t.Std)
	} else {
		p.classes = make(map[string]int, len(t.Classes))
		for k, v := range t.Classes {
			p.classes[v] = k
		}
		p.numCls = numericClasses(t.ClassOrder, t.Classes)
	}
	return p
}

// numericClasses says whether labels are matched by value: numeric order, or given labels
// that are all canonical numbers.
func numericClasses(order string, classes []string) bool {
	switch order {
	case schemas.OrderNumeric:
		return true
	case schemas.OrderGiven:
		for _, c := range classes {
			v, err := strconv.ParseFloat(c, 64)
			if err != nil || schemas.CanonicalNumber(v) != c {
				return false
			}
		}
		return len(classes) > 0
	}
	return false
}

// scaleOf guards the division of a constant column.
func scaleOf(std float64) float64 {
	if std == 0 {
		return 1
	}
	return std
}

// Manifest returns the manifest the preprocessor was built from.
func (p *Preprocessor) Manifest() *schemas.Manifest { return p.m }

// Width is the length of a feature vector.
func (p *Preprocessor) Width() int { return p.width }

// Inputs lists the raw column names a row must provide, in feature order.
func (p *Preprocessor) Inputs() []string {
	out := make([]string, len(p.cols))
	for i, c := range p.cols {
		out[i] = c.name
	}
	return out
}

// RowEncoder encodes rows laid out by one header.
type RowEncoder struct {
	p      *Preprocessor
	pos    []int // position of each input column in the row
	target int   // position of the target column, -1 when absent
	ncols  int
}

// ForHeader binds the preprocessor to a header. Every input column must be present; extra
// columns (including the target) are ignored by Encode.
func (p *Preprocessor) ForHeader(header []string) (*RowEncoder, error) {
	at := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, dup := at[h]; !dup {
			at[h] = i
		}
	}
	e := &RowEncoder{p: p, pos: make([]int, len(p.cols)), target: -1, ncols: len(header)}
	for i, c := range p.cols {
		j, ok := at[c.name]
		if !ok {
			return nil, &cellError{Column: c.name, Err: errors.New("input column missing from the header")}
		}
		e.pos[i] = j
	}
	if j, ok := at[p.m.Target.Column]; ok {
		e.target = j
	}
	return e, nil
}

// HasTarget reports whether the bound header includes the target column.
func (e *RowEncoder) HasTarget() bool { return e.target >= 0 }

// Encode writes the feature vector of row into dst (grown or allocated as needed) and
// returns it. The error names the column of a cell that cannot be encoded.
func (e *RowEncoder) Encode(row []string, dst []float32) ([]float32, error) {
	if len(row) != e.ncols {
		return nil, fmt.Errorf("row has %d cells, header has %d", len(row), e.ncols)
	}
	dst = grow(dst, e.p.width)
	for i := range e.p.cols {
		if err := e.p.cols[i].encode(strings.TrimSpace(row[e.pos[i]]), dst); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// Label encodes the row's target cell (see Preprocessor.EncodeLabel).
func (e *RowEncoder) Label(row []string) (float32, error) {
	if e.target < 0 {
		return 0, &cellError{Column: e.p.m.Target.Column, Err: errors.New("target column missing from the header")}
	}
	return e.p.EncodeLabel(row[e.target])
}

// EncodeRecord encodes one row given with its header.
func (p *Preprocessor) EncodeRecord(header, row []string, dst []float32) ([]float32, error) {
	e, err := p.ForHeader(header)
	if err != nil {
		return nil, err
	}
	return e.Encode(row, dst)
}

// EncodeMap encodes one row given as column name → raw cell. A missing key is an error
// (so a misspelt column is not silently imputed); an empty string is a missing value.
func (p *Preprocessor) EncodeMap(row map[string]string, dst []float32) ([]float32, error) {
	dst = grow(dst, p.width)
	for i := range p.cols {
		c := &p.cols[i]
		v, ok := row[c.name]
		if !ok {
			return nil, &cellError{Column: c.name, Err: errors.New("input column missing from the row")}
		}
		if err := c.encode(strings.TrimSpace(v), dst); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

func grow(dst []float32, n int) []float32 {
	if cap(dst) < n {
		return make([]float32, n)
	}
	return dst[:n]
}

var (
	errNotNumber = errors.New("not a number in a numeric column")
	errNonFinite = errors.New("NaN or Inf is not allowed in a numeric column")
)

// parseNumber parses a numeric cell; ok is false for text, err set for NaN/Inf/overflow.
func parseNumber(s string) (v float64, ok bool, err error) {
	if v, ok := parseInt(s); ok {
		return v, true, nil
	}
	v, perr := strconv.ParseFloat(s, 64)
	if perr != nil {
		if ne, is := perr.(*strconv.NumError); is && ne.Err == strconv.ErrRange && math.IsInf(v, 0) {
			return v, true, errNonFinite
		}
		if ne, is := perr.(*strconv.NumError); is && ne.Err == strconv.ErrRange {
			return v, true, nil // underflow to a (sub)normal or zero is fine
		}
		return 0, false, nil
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v, true, errNonFinite
	}
	return v, true, nil
}

// parseInt is the fast path for plain integers of up to 15 digits (exact in a float64),
// the bulk of coded and count columns.
func parseInt(s string) (float64, bool) {
	i := 0
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		i = 1
	}
	if len(s) == i || len(s)-i > 15 {
		return 0, false
	}
	var n int64
	for ; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + int64(d)
	}
	if s[0] == '-' {
		return -float64(n), true
	}
	return float64(n), true
}

func (c *colEncoder) encode(cell string, dst []float32) error {
	if c.kind == schemas.KindNumeric {
		if cell == "" {
			dst[c.offset] = 0 // mean imputation: (mean-mean)/std
			if c.indicator {
				dst[c.offset+1] = 1
			}
			return nil
		}
		v, ok, err := parseNumber(cell)
		if !ok {
			return &cellError{Column: c.name, Err: fmt.Errorf("%w: %q", errNotNumber, cell)}
		}
		if err != nil {
			return &cellError{Column: c.name, Err: fmt.Errorf("%w: %q", err, cell)}
		}
		dst[c.offset] = float32((v - c.mean) / c.scale)
		if c.indicator {
			dst[c.offset+1] = 0
		}
		return nil
	}
	w := c.nvocab
	if c.missing {
		w++
	}
	clear(dst[c.offset : c.offset+w])
	if cell == "" {
		if c.missing {
			dst[c.offset+c.nvocab] = 1
		}
		return nil
	}
	key := cell
	if c.numVoc {
		v, ok, err := parseNumber(cell)
		if !ok || err != nil {
			return nil // not a number: cannot be in a numeric vocabulary, so unseen
		}
		key = schemas.CanonicalNumber(v)
	}
	if k, ok := c.vocab[key]; ok {
		dst[c.offset+k] = 1
	}
	return nil
}

// EncodeLabel maps a raw target cell to the label column value: the class index for
// classification, the standardized value for regression.
func (p *Preprocessor) EncodeLabel(cell string) (float32, error) {
	col := p.m.Target.Column
	cell = strings.TrimSpace(cell)
	if cell == "" {
		return 0, &cellError{Column: col, Err: errors.New("empty target cell")}
	}
	if p.classes == nil {
		v, ok, err := parseNumber(cell)
		if !ok {
			return 0, &cellError{Column: col, Err: fmt.Errorf("regression target %q is not a number", cell)}
		}
		if err != nil {
			return 0, &cellError{Column: col, Err: fmt.Errorf("%w: %q", err, cell)}
		}
		return float32((v - p.yMean) / p.yScale), nil
	}
	k, ok := p.classIndex(cell)
	if !ok {
		return 0, &cellError{Column: col, Err: fmt.Errorf("label %q is not in the label mapping (%d classes)", cell, len(p.classes))}
	}
	return float32(k), nil
}

func (p *Preprocessor) classIndex(cell string) (int, bool) {
	key := cell
	if p.numCls {
		v, ok, err := parseNumber(cell)
		if !ok || err != nil {
			return 0, false
		}
		key = schemas.CanonicalNumber(v)
	}
	k, ok := p.classes[key]
	return k, ok
}

// Classes returns the original label of each class index (nil for regression).
func (p *Preprocessor) Classes() []string { return p.m.Target.Classes }

// DecodeClass maps a class index back to the original label value.
func (p *Preprocessor) DecodeClass(k int) (string, error) {
	cls := p.m.Target.Classes
	if k < 0 || k >= len(cls) {
		return "", fmt.Errorf("dataset: class index %d out of range 0..%d", k, len(cls)-1)
	}
	return cls[k], nil
}

// DecodeRegression maps a standardized regression output back to target units.
func (p *Preprocessor) DecodeRegression(y float64) float64 { return y*p.yScale + p.yMean }
