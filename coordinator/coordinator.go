// Package coordinator is the only writer of a run's search state. It drives the search
// engine with evaluators (over a JetStream work queue) computing each step shard by shard
// and the sampler answering feasibility and P(V); it reduces results, applies the updates,
// publishes SuperNet versions, checkpoints to object storage, resumes from a checkpoint, and
// ends the run with the stand-alone retraining of the top-k feasible architectures.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/halving"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

// Config wires a coordinator.
type Config struct {
	Bus   *bus.Bus
	Store objstore.Store // checkpoints
	Log   *slog.Logger
	// Spec of a new run; ignored on resume (the checkpoint holds it).
	Spec *schemas.RunSpec
	// Resume continues run ResumeRun from its last checkpoint.
	Resume    bool
	ResumeRun string
	// OnStep sees every step record (progress display).
	OnStep func(search.Record, *search.Engine)
	// Started is when the run's clock started, for the time budget (default: when Run is
	// called; a command passes its own start so that data loading counts too).
	Started time.Time
	// Workers is how many stand-alone trainings run at once (the evaluators), for the
	// finish's time planning (default 1).
	Workers int
	// StopAfter, when > 0, makes Run return ErrStopped after that many steps in this
	// incarnation without a final checkpoint, as a crash would (tests).
	StopAfter int64
}

// ErrStopped is returned when StopAfter ends the run early.
var ErrStopped = errors.New("coordinator stopped before the end of the run")

// Outcome is the end of a run.
type Outcome struct {
	Run       string                 `json:"run"`
	Selection search.Selection       `json:"selection"`
	Trials    []schemas.TrialOutcome `json:"trials"`
	Best      *schemas.TrialOutcome  `json:"best"`
	History   []search.Record        `json:"-"`
	Stats     Stats                  `json:"stats"`
	Seconds   float64                `json:"seconds"`         // whole run, this incarnation
	Search    float64                `json:"search_seconds"`  // search steps, this incarnation
	Retrain   float64                `json:"retrain_seconds"` // final stand-alone retraining
	Spec      *schemas.RunSpec       `json:"-"`
	// StepsRun is the number of search steps (fewer than the spec's when the time
	// budget's search share ended the search).
	StepsRun int64 `json:"steps_run"`
	// Applied and Skipped count the RL updates (skipped: no feasible Monte Carlo sample).
	Applied int64              `json:"applied_updates"`
	Skipped int64              `json:"skipped_updates"`
	Pool    []search.PoolEntry `json:"pool,omitempty"`
	Ladder  *halving.Result    `json:"ladder,omitempty"`
	Proxy   *ProxyCheck        `json:"proxy,omitempty"`
}

// errSearchTime ends the search steps when their share of the time budget is spent.
var errSearchTime = errors.New("search share of the time budget spent")

// CheckpointKey is where the latest checkpoint of a run lives in the store.
func CheckpointKey(run string) string { return "runs/" + run + "/checkpoint.json" }

// Run executes (or resumes) a run to its end.
func Run(ctx context.Context, cfg Config) (*Outcome, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	var ck *schemas.Checkpoint
	spec := cfg.Spec
	if cfg.Resume {
		var err error
		if ck, err = LoadCheckpoint(ctx, cfg.Store, cfg.ResumeRun); err != nil {
			return nil, err
		}
		spec = &ck.Spec
		log.Info("resuming", "run", spec.Run, "step", ck.Step)
	} else if spec == nil {
		return nil, errors.New("coordinator: no run spec")
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("run spec: %w", err)
	}
	b := cfg.Bus
	if err := b.PutSpec(ctx, spec); err != nil {
		return nil, fmt.Errorf("publishing run spec: %w", err)
	}
	attempt, err := b.NextAttempt(ctx, spec.Run)
	if err != nil {
		return nil, fmt.Errorf("run %s: attempt counter: %w", spec.Run, err)
	}
	s, err := spec.SpaceOf()
	if err != nil {
		return nil, err
	}
	net, err := nn.NewSuperNet(s.In, s.MaxWidths(), spec.NNTask(), policy.Stream(spec.Search.Seed, "init", 0))
	if err != nil {
		return nil, err
	}
	est := newEstimator(b, spec.Run, s)
	cons := constraintsOf(ctx, spec, est)
	col, err := newCollector(ctx, b, spec.Run, attempt)
	if err != nil {
		return nil, err
	}
	defer col.close()
	rb := &remote{b: b, spec: spec, attempt: attempt, net: net, col: col}
	eng, err := search.New(spec.Search, s, cons, net, rb, est)
	if err != nil {
		return nil, err
	}
	// Version 0 is the seeded initial SuperNet; republishing it on resume is harmless.
	if err := rb.publishSnapshot(ctx, 0); err != nil {
		return nil, err
	}
	if ck != nil {
		if err := restore(ctx, cfg.Store, ck, eng); err != nil {
			return nil, err
		}
		// The snapshot at the checkpoint may be gone with the old NATS server (one-process
		// mode); evaluators rebuild from it, so publish it again.
		if err := rb.publishSnapshot(ctx, ck.Step); err != nil {
			return nil, err
		}
	}
	// status records the run's state; detail is the error of a failed run or the result.
	status := func(state string, detail string) {
		st := &schemas.RunStatus{Envelope: schemas.NewEnvelope(schemas.TypeStatus, spec.Run), State: state,
			Step: eng.Step, Steps: spec.Search.Steps, Baseline: eng.Ctrl.Baseline(), PV: LastPV(eng.Hist), Updated: time.Now().UTC()}
		if state == schemas.StateDone {
			st.Result = detail
		} else {
			st.Error = detail
		}
		if err := b.PutStatus(ctx, st); err != nil {
			log.Warn("status update", "err", err)
		}
	}
	status(schemas.StateRunning, "")
	lastStatus := time.Now()
	fin := spec.Finish.Defaults()
	var deadline, searchEnd time.Time
	if fin.MaxSeconds > 0 {
		// A resumed run gets the whole budget again: the clock is this incarnation's.
		if !cfg.Started.IsZero() {
			start = cfg.Started
		}
		deadline = start.Add(time.Duration(fin.MaxSeconds * float64(time.Second)))
		searchEnd = start.Add(time.Duration(fin.SearchShare * fin.MaxSeconds * float64(time.Second)))
	}
	begin := eng.Step
	err = eng.Run(ctx, func(r search.Record) error {
		if cfg.OnStep != nil {
			cfg.OnStep(r, eng)
		}
		if eng.Step%int64(spec.CheckpointEvery) == 0 && !eng.Done() {
			if err := saveCheckpoint(ctx, cfg.Store, spec, eng); err != nil {
				return err
			}
			if err := rb.publishSnapshot(ctx, eng.Step); err != nil {
				return err
			}
		}
		if time.Since(lastStatus) > time.Second {
			status(schemas.StateRunning, "")
			lastStatus = time.Now()
		}
		if cfg.StopAfter > 0 && eng.Step-begin >= cfg.StopAfter {
			return ErrStopped
		}
		if !searchEnd.IsZero() && time.Now().After(searchEnd) && !eng.Done() {
			log.Info("time budget: ending the search steps", "step", eng.Step, "of", spec.Search.Steps)
			return errSearchTime
		}
		return nil
	})
	if errors.Is(err, errSearchTime) {
		err = nil
	}
	if errors.Is(err, ErrStopped) {
		return nil, err
	}
	if err != nil {
		status(schemas.StateFailed, err.Error())
		return nil, err
	}
	if err := saveCheckpoint(ctx, cfg.Store, spec, eng); err != nil {
		return nil, err
	}
	sel, err := eng.Select(ctx)
	if err != nil {
		status(schemas.StateFailed, err.Error())
		return nil, err
	}
	searched := time.Since(start).Seconds()
	status(schemas.StateRetraining, "")
	fd, err := finish(ctx, log, rb, eng, sel, spec, deadline, cfg.Workers)
	if err != nil {
		status(schemas.StateFailed, err.Error())
		return nil, err
	}
	trials := fd.trials
	out := &Outcome{Run: spec.Run, Selection: sel, Trials: trials, History: eng.Hist, Spec: spec, StepsRun: eng.Step,
		Applied: eng.Applied, Skipped: eng.Skipped, Pool: fd.pool, Ladder: fd.ladder, Proxy: fd.proxy}
	for i := range trials {
		if out.Best == nil || trials[i].ValLoss < out.Best.ValLoss {
			out.Best = &trials[i]
		}
	}
	col.mu.Lock()
	out.Stats = col.stats
	col.mu.Unlock()
	out.Seconds = time.Since(start).Seconds()
	out.Search, out.Retrain = searched, out.Seconds-searched
	status(schemas.StateDone, out.Best.Arch)
	return out, nil
}

// LastPV is the latest P̂(V) of the run (warmup and uncorrected steps carry none).
func LastPV(h []search.Record) float64 {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].PV > 0 {
			return h[i].PV
		}
	}
	return 0
}

// constraintsOf: the parameter budget is analytic; latency limits are measured by the
// sampler and read through it.
func constraintsOf(ctx context.Context, spec *schemas.RunSpec, est *estimator) space.Constraints {
	cons := spec.ParamsConstraint()
	if c := spec.Constraints; c.MaxLatencyMs > 0 {
		cons = append(cons, remoteConstraint{name: "latency_ms", limit: c.MaxLatencyMs, est: est, ctx: ctx})
	}
	if c := spec.Constraints; c.MaxTrainStepMs > 0 {
		cons = append(cons, remoteConstraint{name: "train_step_ms", limit: c.MaxTrainStepMs, est: est, ctx: ctx})
	}
	return cons
}

// RandomFeasible draws n architectures uniformly from the feasible set (by rejection from
// the uniform policy), for baselines.
func RandomFeasible(s *space.Space, cons space.Constraints, n int, seed uint64) ([]space.Arch, error) {
	probs := policy.NewPolicy(s).Probs()
	rng := rand.New(rand.NewPCG(seed, 77))
	var out []space.Arch
	for tries := 0; len(out) < n; tries++ {
		if tries > 1_000_000 {
			return out, fmt.Errorf("%w: fewer than %d feasible in a million draws", search.ErrInfeasibleBudget, n)
		}
		a := policy.Sample(probs, rng, nil)
		ok, err := cons.Feasible(s, a)
		if err != nil {
			return nil, err
		}
		if ok && !slices.ContainsFunc(out, func(b space.Arch) bool { return space.Equal(a, b) }) {
			out = append(out, a)
		}
	}
	return out, nil
}
