package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/model"
	"github.com/tabnas/tabnas/schemas"
)

// RandomOptions configure a random-search baseline: architectures drawn uniformly from the
// feasible set of the space, each trained stand-alone, until a wall-clock budget or a
// number of trials is used up.
type RandomOptions struct {
	Layers      int                 // hidden layers (default 3)
	Widths      []int               // candidate widths of every layer (default the TabNAS list)
	Constraints schemas.Constraints // only the parameter budget is used
	Seconds     float64             // wall-clock budget; 0: none
	Trials      int                 // most trials; 0: none (at least one of Seconds and Trials is required)
	Seed        uint64              // draws of architectures and the trials' initialization and shuffling
	Trial       schemas.Trial       // zero fields take DefaultTrial(Seed)'s (the search's final stage)
	Log         *slog.Logger
	// OnTrial, when set, sees every finished trial.
	OnTrial func(RandomTrial)
}

// RandomTrial is one architecture trained stand-alone during a random search.
type RandomTrial struct {
	Index      int     `json:"index"`
	Arch       string  `json:"arch"`
	Params     int64   `json:"params"`
	Epochs     int     `json:"epochs"`
	BestEpoch  int     `json:"best_epoch"`
	ValLoss    float64 `json:"val_loss"`
	TestLoss   float64 `json:"test_loss"`
	TestMetric float64 `json:"test_metric"`
	Metric     string  `json:"metric"`
	Seconds    float64 `json:"seconds"`
	Ended      float64 `json:"ended"` // seconds since the start of the search
	// Late marks a trial that ended after the wall-clock budget: it does not count for
	// the answer (except a first trial, so that there always is one).
	Late bool `json:"late,omitempty"`
}

// RandomResult is what a random search reports (the JSON of `tabnas random --json`).
type RandomResult struct {
	Method        string              `json:"method"` // "random"
	Arch          string              `json:"arch"`
	Params        int64               `json:"params"`
	Feasible      bool                `json:"feasible"`
	ValLoss       float64             `json:"val_loss"`
	TestLoss      float64             `json:"test_loss"`
	TestMetric    float64             `json:"test_metric"`
	Metric        string              `json:"metric"`
	Seed          uint64              `json:"seed"`
	Constraints   schemas.Constraints `json:"constraints"`
	Widths        [][]int             `json:"widths"`
	Trial         schemas.Trial       `json:"trial"`
	BudgetSeconds float64             `json:"budget_seconds,omitempty"`
	MaxTrials     int                 `json:"max_trials,omitempty"`
	Exhausted     bool                `json:"exhausted,omitempty"` // every feasible architecture was trained
	Trials        []RandomTrial       `json:"trials"`
	Seconds       float64             `json:"seconds"` // whole run, data loading excluded
	Model         string              `json:"model,omitempty"`
}

// RandomOutcome is a finished random search: the result and the best network as a model
// artifact with its preprocessing and metrics.
type RandomOutcome struct {
	Result   RandomResult
	Artifact *model.Artifact
}

// RandomSearch runs the random-search baseline on an ingested dataset. Trials start while
// the budget lasts and are not started when the mean duration of the trials so far says
// they would end after it; a trial that still ends after the budget is reported as late
// and does not count, so the answer is what the search knew when the budget ran out. The
// answer is the counted trial with the lowest validation loss. The sequence of
// architectures and every trial are determined by the seed, so with a number of trials
// the outcome is deterministic.
func RandomSearch(ctx context.Context, ds *dataset.Dataset, o RandomOptions) (*RandomOutcome, error) {
	if o.Seconds < 0 || math.IsNaN(o.Seconds) || math.IsInf(o.Seconds, 0) {
		return nil, fmt.Errorf("random search: budget of %g seconds", o.Seconds)
	}
	if o.Trials < 0 {
		return nil, fmt.Errorf("random search: %d trials", o.Trials)
	}
	if o.Seconds == 0 && o.Trials == 0 {
		return nil, errors.New("random search: give a wall-clock budget (seconds), a number of trials, or both")
	}
	if err := o.Constraints.Validate(); err != nil {
		return nil, err
	}
	if o.Constraints.MaxLatencyMs > 0 || o.Constraints.MaxTrainStepMs > 0 {
		return nil, errors.New("random search: only a parameter budget is supported")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Layers == 0 {
		o.Layers = 3
	}
	if len(o.Widths) == 0 {
		o.Widths = space.DefaultWidths
	}
	trial := DefaultTrial(o.Seed)
	if t := o.Trial; t.Epochs > 0 {
		trial.Epochs = t.Epochs
	}
	if t := o.Trial; t.Batch > 0 {
		trial.Batch = t.Batch
	}
	if t := o.Trial; t.LR > 0 {
		trial.LR = t.LR
	}
	if t := o.Trial; t.Patience > 0 {
		trial.Patience = t.Patience
	}
	if t := o.Trial; t.Seed > 0 {
		trial.Seed = t.Seed
	}
	m := ds.Manifest
	task, err := model.TaskOf(m)
	if err != nil {
		return nil, err
	}
	s, err := space.New(m.FeatureWidth, task.Outputs(), o.Layers, o.Widths)
	if err != nil {
		return nil, err
	}
	var cons space.Constraints
	if o.Constraints.MaxParams > 0 {
		cons = space.Constraints{space.MaxParams{Max: o.Constraints.MaxParams}}
	}

	train, err := randomLoadSplit(ctx, ds, schemas.SplitTrain)
	if err != nil {
		return nil, err
	}
	val, err := randomLoadSplit(ctx, ds, schemas.SplitVal)
	if err != nil {
		return nil, err
	}
	test, err := randomLoadSplit(ctx, ds, schemas.SplitTest)
	if err != nil {
		return nil, err
	}

	res := RandomResult{Method: "random", Seed: o.Seed, Constraints: o.Constraints, Widths: s.Widths, Trial: trial,
		BudgetSeconds: o.Seconds, MaxTrials: o.Trials, Trials: []RandomTrial{}}
	draws := randomDraws{s: s, cons: cons, seed: o.Seed}
	start := time.Now()
	elapsed := func() float64 { return time.Since(start).Seconds() }
	var (
		best    *nn.Standalone
		bestIdx = -1
		bestVal = math.Inf(1)
		busy    float64 // seconds of the trials so far
		counted int
	)
	for i := 0; o.Trials == 0 || i < o.Trials; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if o.Seconds > 0 && i > 0 {
			left := o.Seconds - elapsed()
			if left <= 0 || busy/float64(i) > left {
				break
			}
		}
		a, ok, err := draws.get(i)
		if err != nil {
			return nil, err
		}
		if !ok {
			res.Exhausted = true
			break
		}
		widths := s.ArchWidths(a)
		t0 := time.Now()
		net, h, err := nn.TrainStandalone(nn.Arch(widths), task, train, val,
			nn.TrainConfig{Epochs: trial.Epochs, BatchSize: trial.Batch, LR: trial.LR, Patience: trial.Patience, Seed: trial.Seed})
		if err != nil {
			return nil, fmt.Errorf("training %s: %w", space.FormatWidths(widths), err)
		}
		ws := net.NewWorkspace(1024)
		met := model.NewMetrics(m, net.Evaluate(val, ws), net.Evaluate(test, ws))
		t := RandomTrial{Index: i, Arch: space.FormatWidths(widths), Params: s.Params(a), Epochs: len(h.Epochs), BestEpoch: h.BestEpoch,
			ValLoss: met.ValLoss, TestLoss: met.TestLoss, TestMetric: met.TestMetric, Metric: met.MetricName,
			Seconds: time.Since(t0).Seconds(), Ended: elapsed()}
		busy += t.Seconds
		t.Late = o.Seconds > 0 && i > 0 && t.Ended > o.Seconds
		res.Trials = append(res.Trials, t)
		o.Log.Info("random trial", "index", i, "arch", t.Arch, "params", t.Params, "val_loss", t.ValLoss, "test_loss", t.TestLoss,
			t.Metric, t.TestMetric, "epochs", t.Epochs, "seconds", t.Seconds, "late", t.Late)
		if o.OnTrial != nil {
			o.OnTrial(t)
		}
		if t.Late {
			break
		}
		counted++
		if t.ValLoss < bestVal || bestIdx < 0 { // false for NaN unless nothing is counted yet
			best, bestIdx, bestVal = net, len(res.Trials)-1, t.ValLoss
		}
	}
	res.Seconds = elapsed()
	if bestIdx < 0 {
		return nil, errors.New("random search: no trial was trained")
	}
	b := res.Trials[bestIdx]
	res.Arch, res.Params, res.ValLoss, res.TestLoss, res.TestMetric, res.Metric = b.Arch, b.Params, b.ValLoss, b.TestLoss, b.TestMetric, b.Metric
	if res.Feasible, err = cons.Feasible(s, mustArch(s, b.Arch)); err != nil {
		return nil, err
	}
	art, err := model.New(best, m)
	if err != nil {
		return nil, err
	}
	ws := best.NewWorkspace(1024)
	art.Metrics = model.NewMetrics(m, best.Evaluate(val, ws), best.Evaluate(test, ws))
	art.Seed = trial.Seed
	o.Log.Info("random search done", "arch", res.Arch, "params", res.Params, "val_loss", res.ValLoss, "test_loss", res.TestLoss,
		"trials", len(res.Trials), "counted", counted, "seconds", res.Seconds)
	return &RandomOutcome{Result: res, Artifact: art}, nil
}

func mustArch(s *space.Space, str string) space.Arch {
	a, err := s.Parse(str)
	if err != nil {
		panic(err) // formatted from this space
	}
	return a
}

// randomDraws is the seed's sequence of distinct feasible architectures, uniform over the
// feasible set, drawn in growing batches. coordinator.RandomFeasible draws from one random
// stream, so a longer request extends a shorter one.
type randomDraws struct {
	s         *space.Space
	cons      space.Constraints
	seed      uint64
	archs     []space.Arch
	exhausted bool
}

func (d *randomDraws) get(i int) (space.Arch, bool, error) {
	for i >= len(d.archs) && !d.exhausted {
		n := max(16, 2*len(d.archs))
		if size := d.s.Size(); int64(n) > size {
			n = int(size)
		}
		if n <= len(d.archs) {
			d.exhausted = true
			break
		}
		archs, err := coordinator.RandomFeasible(d.s, d.cons, n, d.seed)
		if err != nil {
			if !errors.Is(err, search.ErrInfeasibleBudget) {
				return nil, false, err
			}
			if len(archs) == 0 {
				return nil, false, fmt.Errorf("%w: no architecture meets %s in a million uniform draws", search.ErrInfeasibleBudget, d.cons)
			}
			d.exhausted = true // fewer feasible architectures than asked for: all of them
		}
		d.archs = archs
	}
	if i >= len(d.archs) {
		return nil, false, nil
	}
	return d.archs[i], true, nil
}

func randomLoadSplit(ctx context.Context, ds *dataset.Dataset, split string) (nn.Data, error) {
	x, y, err := ds.ReadSplit(ctx, split, nil)
	return nn.Data{X: x, Y: y, Cols: ds.Manifest.FeatureWidth}, err
}
