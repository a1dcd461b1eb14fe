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
	"github.com/tabnas/tabnas/internal/halving"
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
	// Started is when the wall-clock budget began (default: when the data is loaded); a
	// caller whose budget includes loading the data passes its own start.
	Started time.Time
	// Halving runs successive-halving random search instead (see RandomHalving): Trials is
	// then the number of candidates drawn (default 243, or all feasible ones).
	Halving   bool
	Eta       int // halving: promotion ratio (default 3)
	MinEpochs int // halving: epochs of the lowest rung (default 1)
	Log       *slog.Logger
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
	// Rung is the halving rung (position in the ladder) of the training; MaxEpochs its
	// epoch budget (halving only).
	Rung      *int `json:"rung,omitempty"`
	MaxEpochs int  `json:"max_epochs,omitempty"`
}

// RandomResult is what a random search reports (the JSON of `tabnas random --json`).
type RandomResult struct {
	Method        string              `json:"method"` // "random" or "random-halving"
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
	Seconds       float64             `json:"seconds"` // since Started: without data loading unless the caller's start includes it
	Model         string              `json:"model,omitempty"`
	// Ladder is the successive-halving ladder: rungs, candidates, losses, promotions.
	Ladder *halving.Result `json:"ladder,omitempty"`
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
// the outcome is deterministic. With o.Halving it runs RandomHalving instead.
func RandomSearch(ctx context.Context, ds *dataset.Dataset, o RandomOptions) (*RandomOutcome, error) {
	e, err := newRandomEnv(ctx, ds, o)
	if err != nil {
		return nil, err
	}
	if o.Halving {
		return e.halving(ctx)
	}
	return e.plain(ctx)
}

// randomEnv is what both random searches share: options, data, space, the trial recipe,
// the seed's draws of feasible architectures, and the clock.
type randomEnv struct {
	o                RandomOptions
	m                *schemas.Manifest
	task             nn.Task
	s                *space.Space
	cons             space.Constraints
	train, val, test nn.Data
	trial            schemas.Trial
	draws            randomDraws
	start            time.Time
}

func newRandomEnv(ctx context.Context, ds *dataset.Dataset, o RandomOptions) (*randomEnv, error) {
	if o.Seconds < 0 || math.IsNaN(o.Seconds) || math.IsInf(o.Seconds, 0) {
		return nil, fmt.Errorf("random search: budget of %g seconds", o.Seconds)
	}
	if o.Trials < 0 {
		return nil, fmt.Errorf("random search: %d trials", o.Trials)
	}
	if o.Seconds == 0 && o.Trials == 0 {
		return nil, errors.New("random search: give a wall-clock budget (seconds), a number of trials, or both")
	}
	if o.Eta < 0 || o.Eta == 1 || o.MinEpochs < 0 {
		return nil, fmt.Errorf("random search: η %d and minimum epochs %d (want η ≥ 2 and epochs ≥ 1, or 0 for the defaults)", o.Eta, o.MinEpochs)
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
	e := &randomEnv{o: o, m: ds.Manifest, trial: MergeTrial(DefaultTrial(o.Seed), o.Trial)}
	if err := e.trial.Validate(); err != nil {
		return nil, fmt.Errorf("random search: %w", err)
	}
	var err error
	if e.task, err = model.TaskOf(e.m); err != nil {
		return nil, err
	}
	if e.s, err = space.New(e.m.FeatureWidth, e.task.Outputs(), o.Layers, o.Widths); err != nil {
		return nil, err
	}
	if o.Constraints.MaxParams > 0 {
		e.cons = space.Constraints{space.MaxParams{Max: o.Constraints.MaxParams}}
	}
	if e.train, err = randomLoadSplit(ctx, ds, schemas.SplitTrain); err != nil {
		return nil, err
	}
	if e.val, err = randomLoadSplit(ctx, ds, schemas.SplitVal); err != nil {
		return nil, err
	}
	if e.test, err = randomLoadSplit(ctx, ds, schemas.SplitTest); err != nil {
		return nil, err
	}
	e.draws = randomDraws{s: e.s, cons: e.cons, seed: o.Seed}
	e.start = o.Started
	if e.start.IsZero() {
		e.start = time.Now()
	}
	return e, nil
}

// MergeTrial is def with every non-zero field of over.
func MergeTrial(def, over schemas.Trial) schemas.Trial {
	t := def
	if over.Epochs > 0 {
		t.Epochs = over.Epochs
	}
	if over.Batch > 0 {
		t.Batch = over.Batch
	}
	if over.LR > 0 {
		t.LR = over.LR
	}
	if over.Patience > 0 {
		t.Patience = over.Patience
	}
	if over.Seed > 0 {
		t.Seed = over.Seed
	}
	if over.Schedule != "" {
		t.Schedule = over.Schedule
	}
	if over.MinLRFactor != 0 {
		t.MinLRFactor = over.MinLRFactor
	}
	if over.PlateauPatience != 0 {
		t.PlateauPatience = over.PlateauPatience
	}
	if over.PlateauFactor != 0 {
		t.PlateauFactor = over.PlateauFactor
	}
	if over.WeightDecay != 0 {
		t.WeightDecay = over.WeightDecay
	}
	t.Refit = t.Refit || over.Refit
	return t
}

func (e *randomEnv) elapsed() float64 { return time.Since(e.start).Seconds() }

// result is the result's frame, before any trial.
func (e *randomEnv) result(method string) RandomResult {
	return RandomResult{Method: method, Seed: e.o.Seed, Constraints: e.o.Constraints, Widths: e.s.Widths, Trial: e.trial,
		BudgetSeconds: e.o.Seconds, MaxTrials: e.o.Trials, Trials: []RandomTrial{}}
}

// measure trains architecture a stand-alone with cfg and measures it on validation and
// test: the one trial of both random searches.
func (e *randomEnv) measure(index int, a space.Arch, cfg nn.TrainConfig) (*nn.Standalone, RandomTrial, error) {
	widths := e.s.ArchWidths(a)
	t0 := time.Now()
	net, h, err := nn.TrainStandalone(nn.Arch(widths), e.task, e.train, e.val, cfg)
	if err != nil {
		return nil, RandomTrial{}, fmt.Errorf("training %s: %w", space.FormatWidths(widths), err)
	}
	ws := net.NewWorkspace(1024)
	met := model.NewMetrics(e.m, net.Evaluate(e.val, ws), net.Evaluate(e.test, ws))
	t := RandomTrial{Index: index, Arch: space.FormatWidths(widths), Params: e.s.Params(a), Epochs: len(h.Epochs), BestEpoch: h.BestEpoch,
		ValLoss: met.ValLoss, TestLoss: met.TestLoss, TestMetric: met.TestMetric, Metric: met.MetricName,
		Seconds: time.Since(t0).Seconds(), Ended: e.elapsed()}
	if cfg.Refit {
		t.ValLoss = h.BestValLoss // the refit network has seen the validation rows
	}
	return net, t, nil
}

// outcome fills in the answer, trial best of res.Trials, and builds its artifact.
func (e *randomEnv) outcome(res RandomResult, best *nn.Standalone, bestIdx int) (*RandomOutcome, error) {
	res.Seconds = e.elapsed()
	if bestIdx < 0 || best == nil {
		return nil, errors.New("random search: no trial was trained")
	}
	b := res.Trials[bestIdx]
	res.Arch, res.Params, res.ValLoss, res.TestLoss, res.TestMetric, res.Metric = b.Arch, b.Params, b.ValLoss, b.TestLoss, b.TestMetric, b.Metric
	var err error
	if res.Feasible, err = e.cons.Feasible(e.s, mustArch(e.s, b.Arch)); err != nil {
		return nil, err
	}
	art, err := model.New(best, e.m)
	if err != nil {
		return nil, err
	}
	ws := best.NewWorkspace(1024)
	art.Metrics = model.NewMetrics(e.m, best.Evaluate(e.val, ws), best.Evaluate(e.test, ws))
	art.Seed = e.trial.Seed
	e.o.Log.Info("random search done", "method", res.Method, "arch", res.Arch, "params", res.Params, "val_loss", res.ValLoss,
		"test_loss", res.TestLoss, "trainings", len(res.Trials), "seconds", res.Seconds)
	return &RandomOutcome{Result: res, Artifact: art}, nil
}

// plain is the random search: one full trial per drawn architecture.
func (e *randomEnv) plain(ctx context.Context) (*RandomOutcome, error) {
	o := e.o
	res := e.result("random")
	var (
		best    *nn.Standalone
		bestIdx = -1
		bestVal = math.Inf(1)
		busy    float64 // seconds of the trials so far
	)
	for i := 0; o.Trials == 0 || i < o.Trials; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if o.Seconds > 0 && i > 0 {
			left := o.Seconds - e.elapsed()
			if left <= 0 || busy/float64(i) > left {
				break
			}
		}
		a, ok, err := e.draws.get(i)
		if err != nil {
			return nil, err
		}
		if !ok {
			res.Exhausted = true
			break
		}
		net, t, err := e.measure(i, a, e.trial.TrainConfig())
		if err != nil {
			return nil, err
		}
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
		if t.ValLoss < bestVal || bestIdx < 0 { // false for NaN unless nothing is counted yet
			best, bestIdx, bestVal = net, len(res.Trials)-1, t.ValLoss
		}
	}
	return e.outcome(res, best, bestIdx)
}

// halvingBetter orders trials of one rung as internal/halving does: lower validation loss,
// NaN last, ties to the earlier candidate.
func halvingBetter(a, b RandomTrial) bool {
	if an, bn := math.IsNaN(a.ValLoss), math.IsNaN(b.ValLoss); an || bn {
		return !an || (bn && a.Index < b.Index)
	}
	return a.ValLoss < b.ValLoss || (a.ValLoss == b.ValLoss && a.Index < b.Index)
}

// halvingCandidates is the default number of candidates a halving random search draws.
const halvingCandidates = 243

// halving is successive-halving random search (Hyperband's inner loop): candidates drawn
// uniformly from the feasible set, rung r trains its candidates from scratch for
// η^r times the epochs of the lowest rung (the recipe's schedule fitted to that budget), the
// best 1/η go on, and the last rung trains with the full recipe. Under a wall-clock budget
// the ladder starts with as many candidates as it can finish (internal/halving). Every
// training goes through the same trial as the plain random search. The answer is the best
// of the highest rung that finished in time; with a number of candidates and no budget the
// outcome is deterministic.
func (e *randomEnv) halving(ctx context.Context) (*RandomOutcome, error) {
	o := e.o
	n := o.Trials
	if n == 0 {
		n = halvingCandidates
	}
	var archs []space.Arch
	for i := 0; i < n; i++ {
		a, ok, err := e.draws.get(i)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		archs = append(archs, a)
	}
	res := e.result("random-halving")
	res.Exhausted = len(archs) < n
	cands := make([][]int, len(archs))
	for i, a := range archs {
		cands[i] = e.s.ArchWidths(a)
	}
	cfg := halving.Config{Candidates: cands, Eta: o.Eta, MinEpochs: o.MinEpochs, MaxEpochs: e.trial.Epochs}
	if o.MinEpochs > e.trial.Epochs {
		cfg.MinEpochs = e.trial.Epochs
	}
	if o.Seconds > 0 {
		cfg.Deadline = e.start.Add(time.Duration(o.Seconds * float64(time.Second)))
	}
	// The best network of each rung (the answer is the best of one rung) and where its
	// trial is in res.Trials.
	type kept struct {
		net   *nn.Standalone
		trial int
	}
	best := map[int]kept{}
	train := func(ctx context.Context, rung int, idx []int, epochs int) ([]float64, error) {
		losses := make([]float64, len(idx))
		for k, i := range idx {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			tc := e.trial.TrainConfig()
			tc.Epochs = epochs
			net, t, err := e.measure(i, archs[i], tc)
			if err != nil {
				return nil, err
			}
			r := rung
			t.Rung, t.MaxEpochs = &r, epochs
			res.Trials = append(res.Trials, t)
			o.Log.Info("halving trial", "rung", rung, "index", i, "arch", t.Arch, "params", t.Params, "max_epochs", epochs,
				"val_loss", t.ValLoss, "test_loss", t.TestLoss, "epochs", t.Epochs, "seconds", t.Seconds)
			if o.OnTrial != nil {
				o.OnTrial(t)
			}
			losses[k] = t.ValLoss
			if b, ok := best[rung]; !ok || halvingBetter(t, res.Trials[b.trial]) {
				best[rung] = kept{net, len(res.Trials) - 1}
			}
		}
		return losses, nil
	}
	ladder, err := halving.Run(ctx, cfg, train)
	if err != nil {
		return nil, err
	}
	res.Ladder = ladder
	b, ok := best[ladder.BestRung]
	if !ok || res.Trials[b.trial].Index != ladder.Best {
		return nil, fmt.Errorf("random search: halving answered candidate %d of rung %d, which was not kept", ladder.Best, ladder.BestRung)
	}
	return e.outcome(res, b.net, b.trial)
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
