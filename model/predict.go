package model

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/internal/nn"
)

// DefaultBatchSize is the number of rows PredictCSV runs through the network at once.
const DefaultBatchSize = 1024

// MaxFeatureZ bounds every standardized value PredictCSV feeds the network (and a regression
// target it scores): a numeric cell further than MaxFeatureZ training standard deviations from
// the training mean is clipped to that bound, and the row is counted in Summary.Clipped. No
// training value can be that far out (a column of n values has none beyond √n standard
// deviations), and without the bound a cell such as 1e308 overflows float32 and turns the
// row's prediction into NaN.
const MaxFeatureZ = 1e6

// Output column names: PredictionColumn, then for classification ProbPrefix+label per class.
const (
	PredictionColumn = "prediction"
	ProbPrefix       = "prob_"
)

// PredictOptions tune PredictCSV. The zero value works.
type PredictOptions struct {
	// Name identifies the input in errors (default "input").
	Name string
	// BatchSize is the number of rows per forward pass (default DefaultBatchSize).
	BatchSize int
	// Keep lists input columns copied to the output ahead of the predictions (e.g. an ID).
	Keep []string
	// IgnoreTarget predicts without scoring even when the target column is present.
	IgnoreTarget bool
}

// Summary reports a PredictCSV run. Loss and Metric are set only when Labeled. No value of
// it, and no cell PredictCSV writes, is NaN or infinite.
type Summary struct {
	Rows int64
	// Clipped counts rows with at least one value clipped to ±MaxFeatureZ standard deviations;
	// they are predicted (and scored) with the clipped values.
	Clipped int64
	// Rejected counts rows for which the network gave no finite output (or, when scoring,
	// no finite loss): their prediction and probability cells are left empty and they are
	// not scored. Only a model with extreme weights can produce them.
	Rejected   int64
	Labeled    bool    // the target column was present and the rows not rejected were scored
	Loss       float64 // mean loss per scored row, as in Metrics
	MetricName string  // MetricAccuracy or MetricRMSE
	Metric     float64 // accuracy, or RMSE in original target units
}

// InputError locates a problem in a CSV given for prediction (the dataset package's type,
// so a caller handles bad rows of ingest and of prediction alike).
type InputError = dataset.InputError

// Predictor runs an artifact on raw rows. It only reads the artifact, so one Predictor may
// serve concurrent calls (each call has its own buffers).
type Predictor struct {
	a      *Artifact
	net    *nn.Standalone
	pre    *dataset.Preprocessor
	inputs []string
}

// Predictor prepares the network and the preprocessing of a.
func (a *Artifact) Predictor() (*Predictor, error) {
	net, err := a.Network()
	if err != nil {
		return nil, err
	}
	pre, err := dataset.NewPreprocessor(a.Manifest)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return &Predictor{a: a, net: net, pre: pre, inputs: pre.Inputs()}, nil
}

// Artifact returns the model the predictor runs.
func (p *Predictor) Artifact() *Artifact { return p.a }

// Columns lists the output columns PredictCSV writes after the kept ones.
func (p *Predictor) Columns() []string {
	cols := []string{PredictionColumn}
	for _, c := range p.pre.Classes() {
		cols = append(cols, ProbPrefix+c)
	}
	return cols
}

// PredictFeatures runs the network on rows of preprocessed features (rows × In, row-major)
// and returns rows × Outputs values: class probabilities (softmax), P(class 1) for binary,
// or the standardized value for regression (see dataset.Preprocessor.DecodeRegression).
func (p *Predictor) PredictFeatures(x []float32, rows int) ([]float32, error) {
	if rows < 0 || len(x) != rows*p.a.In {
		return nil, fmt.Errorf("model: %d features for %d rows of %d", len(x), rows, p.a.In)
	}
	out := make([]float32, rows*p.a.Outputs())
	if rows > 0 {
		p.net.Predict(x, rows, p.net.NewWorkspace(min(rows, DefaultBatchSize)), out)
	}
	return out, nil
}

// PredictCSV reads a CSV with a header row (gzip-compressed or not, detected from the
// content), encodes each row with the manifest's preprocessing and writes one output row
// per input row, in order: the Keep columns, then PredictionColumn (the original class label,
// or the value in original target units) and, for classification, ProbPrefix+label for every
// class. Columns the model does not use are ignored. When the target column is present (and
// not IgnoreTarget) every row is also scored and the summary carries the loss and metric,
// computed as for the test split. Extreme values are clipped and rows without a finite
// output are rejected, as Summary counts them. A bad row stops the run with an *InputError
// naming the line, row and column; what was written up to then is incomplete.
func (p *Predictor) PredictCSV(ctx context.Context, r io.Reader, w io.Writer, opts PredictOptions) (Summary, error) {
	var sum Summary
	name := opts.Name
	if name == "" {
		name = "input"
	}
	bs := opts.BatchSize
	if bs <= 0 {
		bs = DefaultBatchSize
	}
	fail := func(line, row int64, col string, err error) (Summary, error) {
		return sum, &InputError{Op: "model: predict", File: name, Line: line, Row: row, Column: col, Err: err}
	}

	br := bufio.NewReaderSize(r, 1<<16)
	src := &stickyReader{r: br, what: "read error"}
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fail(0, 0, "", fmt.Errorf("unreadable gzip: %w", err))
		}
		defer gz.Close()
		src = &stickyReader{r: gz, what: "unreadable gzip data"}
	}
	cr := csv.NewReader(src)
	cr.FieldsPerRecord = -1 // ragged rows are reported below, with the cell counts
	cr.ReuseRecord = true
	var line int64
	readErr := func(row int64, err error) (Summary, error) {
		if src.err != nil { // the stream broke, not the CSV syntax
			return fail(line+1, row, "", fmt.Errorf("%s: %w", src.what, src.err))
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return fail(int64(pe.Line), row, "", fmt.Errorf("CSV syntax: %w", pe.Err))
		}
		return fail(line+1, row, "", err)
	}

	rec, err := cr.Read()
	if err == io.EOF && src.err == nil {
		return fail(0, 0, "", errors.New("empty input (no header row)"))
	}
	if err != nil {
		return readErr(0, err)
	}
	line = fieldLine(cr)
	header := make([]string, len(rec))
	pos := make(map[string]int, len(rec))
	for i, h := range rec {
		h = strings.TrimSpace(h)
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		header[i] = h
		if _, dup := pos[h]; !dup {
			pos[h] = i
		}
	}
	for _, c := range p.inputs {
		if _, ok := pos[c]; !ok {
			return fail(line, 0, c, errors.New("input column missing from the header"))
		}
	}
	keep := make([]int, len(opts.Keep))
	for i, c := range opts.Keep {
		j, ok := pos[c]
		if !ok {
			return fail(line, 0, c, errors.New("column to keep is missing from the header"))
		}
		keep[i] = j
	}
	enc, err := p.pre.ForHeader(header)
	if err != nil {
		return fail(line, 0, "", err)
	}
	labeled := enc.HasTarget() && !opts.IgnoreTarget
	target := p.a.Manifest.Target.Column

	cw := csv.NewWriter(w)
	if err := cw.Write(append(append([]string{}, opts.Keep...), p.Columns()...)); err != nil {
		return sum, fmt.Errorf("model: predict %s: writing output: %w", name, err)
	}

	in, k := p.a.In, p.a.Outputs()
	x := make([]float32, bs*in)
	y := make([]float32, bs)
	out := make([]float32, bs*k)
	kept := make([][]string, bs)
	ws := p.net.NewWorkspace(bs)
	classes := p.pre.Classes()
	var lossSum float64
	var correct, scored int64
	n := 0
	cells := make([]string, 0, len(keep)+1+len(classes))
	empty := make([]string, len(p.Columns()))
	reject := make([]bool, bs)
	flush := func() error {
		if n == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("model: predict %s: %w", name, err)
		}
		p.net.Predict(x[:n*in], n, ws, out)
		for i := 0; i < n; i++ {
			reject[i] = !finite(out[i*k : (i+1)*k])
		}
		if labeled {
			p.score(x, y, n, ws, reject, &lossSum, &correct, &scored)
		}
		for i := 0; i < n; i++ {
			cells = append(cells[:0], kept[i]...)
			if reject[i] {
				sum.Rejected++
				cells = append(cells, empty...)
				if len(cells) == 1 {
					// csv writes a lone empty field as a blank line, which readers skip:
					// quote it so the output keeps one line per input row.
					cw.Flush()
					if _, err := io.WriteString(w, "\"\"\n"); err != nil {
						return fmt.Errorf("model: predict %s: writing output: %w", name, err)
					}
					continue
				}
			} else {
				cells = p.appendPrediction(cells, out[i*k:(i+1)*k], classes)
			}
			if err := cw.Write(cells); err != nil {
				return fmt.Errorf("model: predict %s: writing output: %w", name, err)
			}
		}
		n = 0
		return nil
	}

	var row int64
	for {
		rec, err := cr.Read()
		if err == io.EOF && src.err == nil {
			break
		}
		if err != nil {
			return readErr(row+1, err)
		}
		row++
		line = fieldLine(cr)
		if len(rec) != len(header) {
			return fail(line, row, "", fmt.Errorf("row has %d cells, the header has %d", len(rec), len(header)))
		}
		xr := x[n*in : (n+1)*in : (n+1)*in]
		if _, err := enc.Encode(rec, xr); err != nil {
			col, cause := p.blame(rec, pos, err)
			return fail(line, row, col, cause)
		}
		clipped := clip(xr)
		if labeled {
			v, err := enc.Label(rec)
			if err != nil {
				return fail(line, row, target, unwrap(err))
			}
			y[n] = v
			if p.a.Task.Kind == nn.Regression && clip(y[n:n+1]) {
				clipped = true
			}
		}
		if clipped {
			sum.Clipped++
		}
		kept[n] = kept[n][:0]
		for _, j := range keep {
			kept[n] = append(kept[n], rec[j]) // csv strings are fresh per record, safe to hold
		}
		n++
		if n == bs {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	if err := flush(); err != nil {
		return sum, err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return sum, fmt.Errorf("model: predict %s: writing output: %w", name, err)
	}

	sum.Rows = row
	if labeled && scored > 0 {
		sum.Labeled = true
		sum.Loss = lossSum / float64(scored)
		sum.MetricName = metricName(p.a.Task)
		if p.a.Task.Kind == nn.Regression {
			sum.Metric = rmse(sum.Loss, p.a.Manifest)
		} else {
			sum.Metric = float64(correct) / float64(scored)
		}
		if !finite64(sum.Loss) || !finite64(sum.Metric) { // a sum of finite losses overflowed
			sum.Labeled, sum.Loss, sum.MetricName, sum.Metric = false, 0, "", 0
		}
	}
	return sum, nil
}

// score adds the loss and correct count of the first n rows of x and y that are not
// rejected, compacting them to the front. When the batch loss is not finite it scores row by
// row and rejects the rows whose loss is not finite.
func (p *Predictor) score(x, y []float32, n int, ws *nn.Workspace, reject []bool, lossSum *float64, correct, scored *int64) {
	in := p.a.In
	m := 0
	for i := 0; i < n; i++ {
		if reject[i] {
			continue
		}
		if m != i {
			copy(x[m*in:(m+1)*in], x[i*in:(i+1)*in])
			y[m] = y[i]
		}
		m++
	}
	if m == 0 {
		return
	}
	add := func(e nn.Metrics, rows int) {
		*lossSum += e.Loss * float64(rows)
		*correct += int64(math.Round(e.Accuracy * float64(rows)))
		*scored += int64(rows)
	}
	if e := p.net.Evaluate(nn.Data{X: x[:m*in], Y: y[:m], Cols: in}, ws); finite64(e.Loss) {
		add(e, m)
		return
	}
	j := 0 // index among the compacted rows
	for i := 0; i < n; i++ {
		if reject[i] {
			continue
		}
		e := p.net.Evaluate(nn.Data{X: x[j*in : (j+1)*in], Y: y[j : j+1], Cols: in}, ws)
		if finite64(e.Loss) {
			add(e, 1)
		} else {
			reject[i] = true
		}
		j++
	}
}

// clip bounds every value of v to ±MaxFeatureZ and reports whether any was out of bounds.
// One-hot and indicator slots are 0 or 1, so only standardized numeric values can be.
func clip(v []float32) bool {
	clipped := false
	for i, f := range v {
		switch {
		case f > MaxFeatureZ:
			v[i], clipped = MaxFeatureZ, true
		case f < -MaxFeatureZ:
			v[i], clipped = -MaxFeatureZ, true
		}
	}
	return clipped
}

func finite(v []float32) bool {
	for _, f := range v {
		if !finite64(float64(f)) {
			return false
		}
	}
	return true
}

func finite64(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendPrediction formats one row of network outputs. Probabilities are written with the
// shortest digits that read back as the same float32.
func (p *Predictor) appendPrediction(cells []string, o []float32, classes []string) []string {
	switch p.a.Task.Kind {
	case nn.Regression:
		return append(cells, strconv.FormatFloat(p.pre.DecodeRegression(float64(o[0])), 'g', -1, 64))
	case nn.Binary:
		// Class 1 when P(class 1) > 0.5, i.e. a positive logit, as the accuracy counts it.
		pred := classes[0]
		if o[0] > 0.5 {
			pred = classes[1]
		}
		return append(cells, pred, fmtProb(1-o[0]), fmtProb(o[0]))
	}
	best := 0
	for j, v := range o {
		if v > o[best] {
			best = j
		}
	}
	cells = append(cells, classes[best])
	for _, v := range o {
		cells = append(cells, fmtProb(v))
	}
	return cells
}

func fmtProb(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }

// blame finds the input column whose cell Encode rejected, by encoding each cell alone
// (every other column missing, which always encodes); only runs on the error path.
func (p *Predictor) blame(rec []string, pos map[string]int, err error) (string, error) {
	probe := make(map[string]string, len(p.inputs))
	for _, c := range p.inputs {
		probe[c] = ""
	}
	for _, c := range p.inputs {
		probe[c] = rec[pos[c]]
		if _, perr := p.pre.EncodeMap(probe, nil); perr != nil {
			return c, unwrap(perr)
		}
		probe[c] = ""
	}
	return "", err
}

// unwrap strips the dataset package's column wrapper, whose column InputError names itself.
func unwrap(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// stickyReader remembers the first error of the byte stream other than EOF, so that a
// broken gzip member is reported as such rather than as a CSV problem.
type stickyReader struct {
	r    io.Reader
	what string
	err  error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

func fieldLine(cr *csv.Reader) int64 {
	l, _ := cr.FieldPos(0)
	return int64(l)
}
