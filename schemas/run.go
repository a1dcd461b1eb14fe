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
	Finish          Finish        `json:"finish"`
	Created         time.Time     `json:"created"`
}

// Finish modes.
const (
	// FinishHalving runs successive halving over a pool of feasible candidates: the
	// policy's (pre-ranked by the shared-weight proxy) and uniform draws from V.
	FinishHalving = "halving"
	// FinishTopK retrains the top-k feasible architectures by p with the full recipe.
	FinishTopK = "topk"
)

// Finish is how the final stage turns the search into one stand-alone trained answer.
type Finish struct {
	Mode       string  `json:"mode,omitempty" yaml:"mode"`             // FinishHalving (default) or FinishTopK
	Candidates int     `json:"candidates,omitempty" yaml:"candidates"` // pool size without a time budget (default 9)
	Uniform    float64 `json:"uniform,omitempty" yaml:"uniform"`       // share of the pool drawn uniformly from V (default 1/3)
	Eta        int     `json:"eta,omitempty" yaml:"eta"`               // halving ratio (default 3)
	MinEpochs  int     `json:"min_epochs,omitempty" yaml:"min_epochs"` // epochs of the lowest rung (default 1)
	// CheckProxy trains this many architectures stand-alone with the full recipe (half the
	// policy's most probable, half uniform from V) to measure the proxy's rank correlation;
	// they also compete for the answer.
	CheckProxy int `json:"check_proxy,omitempty" yaml:"check_proxy"`
	// MaxSeconds is the whole run's wall-clock budget (0: none); SearchShare of it (default
	// 0.3) may go to search steps, the rest to the finish.
	MaxSeconds  float64 `json:"max_seconds,omitempty" yaml:"max_seconds"`
	SearchShare float64 `json:"search_share,omitempty" yaml:"search_share"`
}

// Defaults fills unset fields.
func (f Finish) Defaults() Finish {
	if f.Mode == "" {
		f.Mode = FinishHalving
	}
	if f.Candidates == 0 {
		f.Candidates = 9
	}
	if f.Uniform == 0 {
		f.Uniform = 1.0 / 3
	}
	if f.Eta == 0 {
		f.Eta = 3
	}
	if f.MinEpochs == 0 {
		f.MinEpochs = 1
	}
	if f.SearchShare == 0 {
		f.SearchShare = 0.3
	}
	return f
}

// Validate names the bad field.
func (f Finish) Validate() error {
	switch {
	case f.Mode != "" && f.Mode != FinishHalving && f.Mode != FinishTopK:
		return fmt.Errorf("finish.mode %q: want halving or topk", f.Mode)
	case f.Candidates < 0:
		return fmt.Errorf("finish.candidates %d is negative", f.Candidates)
	case f.Uniform < 0 || f.Uniform > 1 || math.IsNaN(f.Uniform):
		return fmt.Errorf("finish.uniform %g must be in [0, 1]", f.Uniform)
	case f.Eta != 0 && f.Eta < 2:
		return fmt.Errorf("finish.eta %d must be at least 2", f.Eta)
	case f.MinEpochs < 0:
		return fmt.Errorf("finish.min_epochs %d is negative", f.MinEpochs)
	case f.CheckProxy < 0 || f.CheckProxy == 1:
		return fmt.Errorf("finish.check_proxy %d: want 0 or at least 2 architectures", f.CheckProxy)
	case f.MaxSeconds < 0 || math.IsNaN(f.MaxSeconds) || math.IsInf(f.MaxSeconds, 0):
		return fmt.Errorf("finish.max_seconds %g must be a non-negative number", f.MaxSeconds)
	case f.SearchShare < 0 || f.SearchShare >= 1 || math.IsNaN(f.SearchShare):
		return fmt.Errorf("finish.search_share %g must be in [0, 1)", f.SearchShare)
	}
	return nil
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
	if err := r.Finish.Validate(); err != nil {
		return err
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
