package schemas

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
)

// Latency modes of the sampler.
const (
	LatencyMeasure  = "measure"  // time the whole child network
	LatencyEstimate = "estimate" // sum per-layer times measured per (input, output) width pair
)

// Constraints are the resource limits of a run; zero means no limit of that kind.
type Constraints struct {
	MaxParams      int64   `json:"max_params,omitempty" yaml:"max_params"`
	MaxLatencyMs   float64 `json:"max_latency_ms,omitempty" yaml:"max_latency_ms"`       // inference, one batch
	MaxTrainStepMs float64 `json:"max_train_step_ms,omitempty" yaml:"max_train_step_ms"` // one training step
	LatencyBatch   int     `json:"latency_batch,omitempty" yaml:"latency_batch"`         // rows per timed batch
	LatencyRuns    int     `json:"latency_runs,omitempty" yaml:"latency_runs"`           // median of this many runs
	LatencyMode    string  `json:"latency_mode,omitempty" yaml:"latency_mode"`
}

// Validate names the bad field.
func (c Constraints) Validate() error {
	switch {
	case c.MaxParams < 0:
		return fmt.Errorf("max_params %d is negative", c.MaxParams)
	case c.MaxLatencyMs < 0 || math.IsNaN(c.MaxLatencyMs) || math.IsInf(c.MaxLatencyMs, 0):
		return fmt.Errorf("max_latency_ms %g must be a non-negative number", c.MaxLatencyMs)
	case c.MaxTrainStepMs < 0 || math.IsNaN(c.MaxTrainStepMs) || math.IsInf(c.MaxTrainStepMs, 0):
		return fmt.Errorf("max_train_step_ms %g must be a non-negative number", c.MaxTrainStepMs)
	case c.LatencyBatch < 0:
		return fmt.Errorf("latency_batch %d is negative", c.LatencyBatch)
	case c.LatencyRuns < 0:
		return fmt.Errorf("latency_runs %d is negative", c.LatencyRuns)
	}
	switch c.LatencyMode {
	case "", LatencyMeasure, LatencyEstimate:
	default:
		return fmt.Errorf("latency_mode %q: want measure or estimate", c.LatencyMode)
	}
	return nil
}

// Any reports whether at least one limit is set.
func (c Constraints) Any() bool { return c.MaxParams > 0 || c.MaxLatencyMs > 0 || c.MaxTrainStepMs > 0 }

// DatasetRef locates an ingested dataset: a manifest under Prefix in the run's store.
type DatasetRef struct {
	Prefix    string `json:"prefix"`
	TrainRows []int  `json:"train_rows"` // rows per training shard, in shard order
	ValRows   []int  `json:"val_rows"`
	TestRows  []int  `json:"test_rows,omitempty"`
}

// RunSpec is everything the services need to take part in a run; the coordinator writes
// it to the runs KV bucket before the first work item.
type RunSpec struct {
	Envelope
	Dataset         DatasetRef    `json:"dataset"`
	Task            string        `json:"task"`
	Classes         int           `json:"classes,omitempty"`
	In              int           `json:"in"`
	Out             int           `json:"out"`
	Widths          [][]int       `json:"widths"`
	Constraints     Constraints   `json:"constraints"`
	Search          search.Config `json:"search"`
	CheckpointEvery int           `json:"checkpoint_every"`
	Trial           Trial         `json:"trial"` // the final stand-alone retraining
	Created         time.Time     `json:"created"`
}

// Validate implements Message.
func (r *RunSpec) Validate() error {
	if err := r.check(TypeRun); err != nil {
		return err
	}
	if r.Dataset.Prefix == "" {
		return errors.New("dataset.prefix is empty")
	}
	if len(r.Dataset.TrainRows) == 0 || len(r.Dataset.ValRows) == 0 {
		return errors.New("dataset needs training and validation shards")
	}
	for _, n := range append(append([]int{}, r.Dataset.TrainRows...), r.Dataset.ValRows...) {
		if n <= 0 {
			return fmt.Errorf("dataset shard with %d rows", n)
		}
	}
	switch r.Task {
	case TaskRegression, TaskBinary:
		if r.Out != 1 {
			return fmt.Errorf("task %s needs out 1, got %d", r.Task, r.Out)
		}
	case TaskMulticlass:
		if r.Classes < 2 || r.Out != r.Classes {
			return fmt.Errorf("multiclass task needs classes ≥ 2 and out = classes (got %d, %d)", r.Classes, r.Out)
		}
	default:
		return fmt.Errorf("task %q", r.Task)
	}
	if r.In < 1 {
		return fmt.Errorf("in %d", r.In)
	}
	if len(r.Widths) == 0 {
		return errors.New("widths: no layers")
	}
	for i, ws := range r.Widths {
		if len(ws) == 0 {
			return fmt.Errorf("widths: layer %d has an empty list", i+1)
		}
		for j, w := range ws {
			if w < 1 || (j > 0 && w <= ws[j-1]) {
				return fmt.Errorf("widths: layer %d must be positive, ascending and distinct", i+1)
			}
		}
	}
	if err := r.Constraints.Validate(); err != nil {
		return fmt.Errorf("constraints: %w", err)
	}
	if err := r.Search.Validate(); err != nil {
		return fmt.Errorf("search: %w", err)
	}
	if r.CheckpointEvery < 1 {
		return fmt.Errorf("checkpoint_every %d must be ≥ 1", r.CheckpointEvery)
	}
	if err := r.Trial.Validate(); err != nil {
		return err
	}
	return nil
}

// SpaceOf builds the search space of a run.
func (r *RunSpec) SpaceOf() (*space.Space, error) {
	s := &space.Space{In: r.In, Out: r.Out, Widths: r.Widths}
	return s, s.Validate()
}

// NNTask maps the run's task to the network's loss.
func (r *RunSpec) NNTask() nn.Task {
	switch r.Task {
	case TaskRegression:
		return nn.RegressionTask()
	case TaskBinary:
		return nn.BinaryTask()
	}
	return nn.MulticlassTask(r.Classes)
}

// ParamsConstraint is the analytic parameter budget, if any.
func (r *RunSpec) ParamsConstraint() space.Constraints {
	if r.Constraints.MaxParams > 0 {
		return space.Constraints{space.MaxParams{Max: r.Constraints.MaxParams}}
	}
	return nil
}
