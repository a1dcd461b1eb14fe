package model

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/schemas"
)

// FormatVersion is the model format this build writes and reads. Bump it on any change an
// older reader would misinterpret.
const FormatVersion = 1

// Object names under a model prefix.
const (
	ModelFile   = "model.json"
	WeightsFile = "weights.bin"
)

// Names of the test metric.
const (
	MetricAccuracy = "accuracy" // classification: fraction of rows classified correctly
	MetricRMSE     = "rmse"     // regression: root mean squared error in original target units
)

// Artifact is a trained stand-alone network with everything needed to use it on raw rows.
type Artifact struct {
	Arch     nn.Arch
	Task     nn.Task
	In       int       // input width after preprocessing (Manifest.FeatureWidth)
	Weights  []float32 // nn layout, see the package comment
	Manifest *schemas.Manifest
	Metrics  Metrics
	Run      json.RawMessage // the run spec, stored verbatim (may be empty)
	Seed     uint64          // seed of the stand-alone training
	Created  time.Time
}

// Metrics records how the network scored. Losses are the training losses, mean per row:
// cross-entropy for classification, squared error of the standardized target for regression.
type Metrics struct {
	ValLoss    float64 `json:"val_loss"`
	TestLoss   float64 `json:"test_loss"`
	TestMetric float64 `json:"test_metric"`
	MetricName string  `json:"test_metric_name"` // MetricAccuracy or MetricRMSE
	ValRows    int     `json:"val_rows,omitempty"`
	TestRows   int     `json:"test_rows,omitempty"`
}

// NewMetrics turns nn evaluations on the validation and test splits into Metrics, with the
// test metric in the terms of the dataset (RMSE in original target units for regression).
func NewMetrics(m *schemas.Manifest, val, test nn.Metrics) Metrics {
	out := Metrics{ValLoss: val.Loss, TestLoss: test.Loss, ValRows: val.Rows, TestRows: test.Rows}
	if m.Target.Task == schemas.TaskRegression {
		out.MetricName, out.TestMetric = MetricRMSE, rmse(test.Loss, m)
	} else {
		out.MetricName, out.TestMetric = MetricAccuracy, test.Accuracy
	}
	return out
}

// rmse converts a mean squared error of standardized labels to original units.
func rmse(mse float64, m *schemas.Manifest) float64 { return math.Sqrt(mse) * targetScale(m) }

// targetScale is the factor the preprocessor divides regression targets by (std, or 1).
func targetScale(m *schemas.Manifest) float64 {
	if m.Target.Std == 0 {
		return 1
	}
	return m.Target.Std
}

func metricName(t nn.Task) string {
	if t.Kind == nn.Regression {
		return MetricRMSE
	}
	return MetricAccuracy
}

// TaskOf is the network task a dataset's target calls for.
func TaskOf(m *schemas.Manifest) (nn.Task, error) {
	switch m.Target.Task {
	case schemas.TaskRegression:
		return nn.RegressionTask(), nil
	case schemas.TaskBinary:
		return nn.BinaryTask(), nil
	case schemas.TaskMulticlass:
		return nn.MulticlassTask(len(m.Target.Classes)), nil
	}
	return nn.Task{}, fmt.Errorf("model: manifest target task %q is not %s, %s or %s",
		m.Target.Task, schemas.TaskRegression, schemas.TaskBinary, schemas.TaskMulticlass)
}

func taskName(t nn.Task) string {
	switch t.Kind {
	case nn.Regression:
		return schemas.TaskRegression
	case nn.Binary:
		return schemas.TaskBinary
	}
	return schemas.TaskMulticlass
}

// New packages a trained network with the manifest of the dataset it was trained on. The
// caller fills in Metrics, Run and Seed.
func New(net *nn.Standalone, m *schemas.Manifest) (*Artifact, error) {
	if net == nil || net.Net == nil {
		return nil, fmt.Errorf("model: no network")
	}
	a := &Artifact{
		Arch:     append(nn.Arch(nil), net.Arch...),
		Task:     net.Net.Task,
		In:       net.Net.In,
		Weights:  append([]float32(nil), net.Net.Weights...),
		Manifest: m,
		Created:  time.Now().UTC(),
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// Outputs is the width of the output layer.
func (a *Artifact) Outputs() int { return a.Task.Outputs() }

// Params is the number of weights and biases.
func (a *Artifact) Params() int { return nn.ParamCount(a.In, a.Arch, a.Outputs()) }

// Network rebuilds the stand-alone network.
func (a *Artifact) Network() (*nn.Standalone, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return nn.LoadStandalone(a.In, a.Arch, a.Task, a.Weights)
}

// Validate checks the artifact for consistency: the network against the manifest (input
// width, task, classes), the weight count against the architecture, finite weights and metrics.
func (a *Artifact) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("model: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if a.Manifest == nil {
		return bad("manifest", "missing")
	}
	if err := a.Manifest.Validate(); err != nil {
		return fmt.Errorf("model: manifest: %w", err)
	}
	want, err := TaskOf(a.Manifest)
	if err != nil {
		return err
	}
	if err := a.Task.Validate(); err != nil {
		return bad("task", "%v", err)
	}
	if a.Task != want {
		return bad("task", "%s, but the manifest's target %q calls for %s", a.Task, a.Manifest.Target.Column, want)
	}
	if a.In != a.Manifest.FeatureWidth {
		return bad("input_width", "%d, but the manifest's preprocessing yields %d features", a.In, a.Manifest.FeatureWidth)
	}
	for i, w := range a.Arch {
		if w < 1 {
			return bad("widths", "layer %d has width %d", i, w)
		}
	}
	if n := a.Params(); len(a.Weights) != n {
		return bad("weights", "%d values, architecture %q with %d inputs and %d outputs has %d parameters",
			len(a.Weights), a.Arch, a.In, a.Outputs(), n)
	}
	for i, v := range a.Weights {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return bad("weights", "value %d is %v", i, v)
		}
	}
	m := a.Metrics
	for _, f := range []struct {
		name string
		v    float64
	}{{"val_loss", m.ValLoss}, {"test_loss", m.TestLoss}, {"test_metric", m.TestMetric}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return bad("metrics."+f.name, "%v is not finite", f.v)
		}
	}
	if m.MetricName != "" && m.MetricName != metricName(a.Task) {
		return bad("metrics.test_metric_name", "%q, want %q for task %s", m.MetricName, metricName(a.Task), a.Task)
	}
	if m.ValRows < 0 || m.TestRows < 0 {
		return bad("metrics", "negative row count")
	}
	if len(a.Run) > 0 && !json.Valid(a.Run) {
		return bad("run", "not valid JSON")
	}
	if a.Created.IsZero() {
		return bad("created", "missing")
	}
	return nil
}
