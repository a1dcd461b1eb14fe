// Package evaluator is the stateless worker of the pipeline. It pulls work items from the
// bus's work queue, keeps a replica of each run's SuperNet at the version an item asks
// for (applying published deltas, or rebuilding from a snapshot when a resumed coordinator
// went back in time), computes gradients and losses on the item's shard from a bounded
// shard cache, trains architectures stand-alone for the final stage, and publishes results.
// Any number of evaluators may run; work is split by shard, never by evaluator.
package evaluator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

// Config wires an evaluator.
type Config struct {
	Bus        *bus.Bus
	Store      objstore.Store // datasets
	Log        *slog.Logger
	Name       string
	CacheBytes int64 // shard cache budget; default 2 GiB
}

// Evaluator processes work items until its context ends.
type Evaluator struct {
	cfg   Config
	log   *slog.Logger
	cache *dataset.ShardCache
	mu    sync.Mutex
	runs  map[string]*replica
	stats Stats
	// sending counts results on their way; Run waits for them before it returns.
	sending sync.WaitGroup
}

// Stats counts the evaluator's work.
type Stats struct {
	Items, Rejected, Failed int
	Resyncs                 int // replica rebuilt from a snapshot
}

// New builds an evaluator.
func New(cfg Config) *Evaluator {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 2 << 30
	}
	if cfg.Name == "" {
		cfg.Name = "evaluator"
	}
	return &Evaluator{cfg: cfg, log: cfg.Log.With("evaluator", cfg.Name), cache: dataset.NewShardCache(cfg.Store, cfg.CacheBytes), runs: map[string]*replica{}}
}

// Stats returns a copy of the counters.
func (e *Evaluator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// CacheStats reports the shard cache's traffic.
func (e *Evaluator) CacheStats() dataset.CacheStats { return e.cache.Stats() }

// Run pulls and processes items one at a time until ctx ends. One outstanding pull of
// one item: an evaluator never holds work another idle evaluator could be doing.
func (e *Evaluator) Run(ctx context.Context) error {
	defer e.sending.Wait()
	for ctx.Err() == nil {
		d, err := e.cfg.Bus.Work.Next(ctx, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.log.Warn("pulling work", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if d != nil {
			e.handle(ctx, d)
		}
	}
	return nil
}

func (e *Evaluator) count(f func(*Stats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// handle never lets a bad message stop the evaluator: invalid items are terminated with a
// logged reason; deterministic failures are reported as error results; transient ones are
// retried by redelivery.
func (e *Evaluator) handle(ctx context.Context, m bus.Delivery) {
	w, err := m.Item()
	if err != nil {
		e.count(func(s *Stats) { s.Rejected++ })
		e.log.Warn("rejected work message", "subject", m.Subject(), "reason", err)
		_ = m.Term()
		return
	}
	res, grad, err := e.process(ctx, m, w)
	if err != nil {
		var perm *permanentError
		if !errors.As(err, &perm) {
			if ctx.Err() == nil {
				e.log.Warn("work item failed, will be redelivered", "item", w.ID(), "err", err)
				_ = m.Nak(time.Second)
			}
			return
		}
		e.count(func(s *Stats) { s.Failed++ })
		e.log.Error("work item cannot be done", "item", w.ID(), "err", err)
		res, grad = e.result(w), nil
		res.Error = err.Error()
	}
	// The item is acknowledged once its result is stored; meanwhile the next one runs.
	failed := func(err error) {
		if ctx.Err() == nil {
			e.log.Warn("publishing result failed, will be redelivered", "item", w.ID(), "err", err)
			_ = m.Nak(time.Second)
		}
	}
	e.sending.Add(1)
	if err := e.cfg.Bus.Results.Publish(ctx, res, grad, func(err error) {
		defer e.sending.Done()
		if err != nil {
			failed(err)
			return
		}
		e.count(func(s *Stats) { s.Items++ })
		_ = m.Ack()
	}); err != nil {
		e.sending.Done()
		failed(err)
	}
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

func (e *Evaluator) result(w *schemas.WorkItem) *schemas.Result {
	return &schemas.Result{Envelope: schemas.NewEnvelope(schemas.TypeResult, w.Run), Attempt: w.Attempt, Seq: w.Seq, Step: w.Step,
		Shard: w.Shard, Kind: w.Kind, Version: w.Version, Arch: w.Arch, Rows: w.Rows, Evaluator: e.cfg.Name}
}

// process computes an item's result and, for a train item, its gradient (the evaluator's
// buffer: the bus copies it on publishing).
func (e *Evaluator) process(ctx context.Context, m bus.Delivery, w *schemas.WorkItem) (*schemas.Result, []float32, error) {
	rp, err := e.replicaFor(ctx, w.Run)
	if err != nil {
		return nil, nil, err
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	child := nn.Arch(w.Arch)
	if err := rp.net.CheckArch(child); err != nil {
		return nil, nil, permanent(fmt.Errorf("work item %s: %w", w.ID(), err))
	}
	res := e.result(w)
	switch w.Kind {
	case schemas.KindTrain, schemas.KindScore:
		split, rows := schemas.SplitTrain, rp.spec.Dataset.TrainRows
		if w.Kind == schemas.KindScore {
			split, rows = schemas.SplitVal, rp.spec.Dataset.ValRows
		}
		shards := rp.ds.Shards(split)
		if w.Shard >= len(shards) || w.Shard >= len(rows) {
			return nil, nil, permanent(fmt.Errorf("work item %s: shard %d of %d %s shards", w.ID(), w.Shard, len(shards), split))
		}
		sd, err := e.cache.Get(ctx, shards[w.Shard])
		if err != nil {
			return nil, nil, permanent(err)
		}
		if err := rp.sync(ctx, e.cfg.Bus, w.Version); err != nil {
			return nil, nil, err
		}
		sh := search.Shard{X: sd.X, Y: sd.Y, Rows: sd.Rows}
		seed := rp.spec.Search.Seed
		if w.Kind == schemas.KindScore {
			res.LossSum = rp.worker.Loss(rp.net, sh, seed, w.Step, w.Shard, w.Rows, child)
			return res, nil, nil
		}
		rp.grads.Zero(child)
		res.LossSum = rp.worker.Gradient(rp.net, sh, seed, w.Step, w.Shard, w.Rows, w.Scale, child, rp.grads)
		n := rp.net.SliceLen(child)
		rp.buf = search.Grow(rp.buf, n)
		rp.grads.PackSlice(child, rp.buf)
		res.GradLen = n
		return res, rp.buf, nil
	case schemas.KindTrial:
		out, err := e.trial(ctx, m, rp, w)
		if err != nil {
			return nil, nil, err
		}
		res.Trial = out
		return res, nil, nil
	}
	return nil, nil, permanent(fmt.Errorf("work item %s: unknown kind %q", w.ID(), w.Kind))
}

// trial trains one architecture stand-alone on the whole training split with early
// stopping on validation, then measures it on the test split.
func (e *Evaluator) trial(ctx context.Context, m bus.Delivery, rp *replica, w *schemas.WorkItem) (*schemas.TrialOutcome, error) {
	// Keep the item ours while it trains: a trial can outlast the ack wait.
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	load := func(split string) (nn.Data, error) {
		x, y, err := rp.ds.ReadSplit(ctx, split, e.cache)
		return nn.Data{X: x, Y: y, Cols: rp.ds.Manifest.FeatureWidth}, permanent(err)
	}
	train, err := load(schemas.SplitTrain)
	if err != nil {
		return nil, err
	}
	val, err := load(schemas.SplitVal)
	if err != nil {
		return nil, err
	}
	test, err := load(schemas.SplitTest)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	t := w.Trial
	task := rp.spec.NNTask()
	model, h, err := nn.TrainStandalone(nn.Arch(w.Arch), task, train, val,
		t.TrainConfig())
	if err != nil {
		return nil, permanent(fmt.Errorf("training %s: %w", space.FormatWidths(w.Arch), err))
	}
	ws := model.NewWorkspace(1024)
	vm := model.Evaluate(val, ws)
	out := &schemas.TrialOutcome{Arch: space.FormatWidths(w.Arch), Params: space.ParamsWidths(rp.spec.In, w.Arch, rp.spec.Out),
		Epochs: len(h.Epochs), BestEpoch: h.BestEpoch, ValLoss: vm.Loss, Seconds: time.Since(start).Seconds()}
	for _, ep := range h.Epochs {
		out.ValCurve = append(out.ValCurve, ep.ValLoss)
	}
	out.Metric, out.ValMetric = metricOf(rp, vm)
	if test.Rows() > 0 {
		tm := model.Evaluate(test, ws)
		out.TestLoss = tm.Loss
		_, out.TestMetric = metricOf(rp, tm)
	}
	// Named by round too: the same architecture may be trained in several rounds.
	out.WeightsBlob = fmt.Sprintf("%s/trial/%d/%s", w.Run, w.Step, out.Arch)
	if err := e.cfg.Bus.Blobs.PutBytes(ctx, out.WeightsBlob, schemas.Floats(model.Net.Weights)); err != nil {
		return nil, fmt.Errorf("storing trial weights: %w", err)
	}
	return out, nil
}

// metricOf is accuracy for classification and RMSE in the target's original units for
// regression (the label column is standardized).
func metricOf(rp *replica, m nn.Metrics) (string, float64) {
	if rp.spec.Task != schemas.TaskRegression {
		return "accuracy", m.Accuracy
	}
	return "rmse", math.Sqrt(m.Loss) * rp.yScale
}
