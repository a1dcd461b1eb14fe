package coordinator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

// collector receives the run's results and hands them to whoever waits for them. Invalid,
// foreign or stale messages are logged and dropped; they never stop the run.
type collector struct {
	b       *bus.Bus
	run     string
	attempt int64

	mu      sync.Mutex
	got     map[string]*schemas.Result
	changed chan struct{}
	stop    func()
	stats   Stats
}

// Stats counts what crossed the bus, for benchmarks and logs: result messages and the
// gradient payloads they refer to in, SuperNet versions out.
type Stats struct {
	Results    int   `json:"results"`
	Duplicates int   `json:"duplicates"`
	Rejected   int   `json:"rejected"`
	BytesIn    int64 `json:"bytes_in"`
	BytesOut   int64 `json:"bytes_out"`
}

func newCollector(ctx context.Context, b *bus.Bus, run string, attempt int64) (*collector, error) {
	c := &collector{b: b, run: run, attempt: attempt, got: map[string]*schemas.Result{}, changed: make(chan struct{})}
	// Subscribed before the first work item is published, so no wanted result can be missed.
	var err error
	if c.stop, err = b.Results.Subscribe(ctx, run, c.handle); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *collector) count(in, out int64) {
	c.mu.Lock()
	c.stats.BytesIn += in
	c.stats.BytesOut += out
	c.mu.Unlock()
}

func (c *collector) handle(r *schemas.Result, size int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.BytesIn += int64(size)
	if err != nil {
		c.stats.Rejected++
		c.b.Log.Warn("rejected result message", "run", c.run, "reason", err)
		return
	}
	if r.Run != c.run || r.Attempt != c.attempt {
		return // another run or an earlier incarnation of this one
	}
	k := r.Key()
	if _, dup := c.got[k]; dup {
		c.stats.Duplicates++
		return
	}
	c.stats.Results++
	c.got[k] = r
	close(c.changed)
	c.changed = make(chan struct{})
}

// await blocks until every key has a result, then removes and returns them in key order.
func (c *collector) await(ctx context.Context, keys []string, what string) ([]*schemas.Result, error) {
	start := time.Now()
	warn := time.NewTicker(15 * time.Second)
	defer warn.Stop()
	for {
		c.mu.Lock()
		missing := 0
		for _, k := range keys {
			if c.got[k] == nil {
				missing++
			}
		}
		ch := c.changed
		if missing == 0 {
			out := make([]*schemas.Result, len(keys))
			for i, k := range keys {
				out[i] = c.got[k]
				delete(c.got, k)
			}
			c.mu.Unlock()
			for _, r := range out {
				if r.Error != "" {
					return nil, fmt.Errorf("%s: evaluator %s failed on shard %d: %s", what, r.Evaluator, r.Shard, r.Error)
				}
			}
			return out, nil
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		case <-warn.C:
			if what == trialsWhat && missing < len(keys) {
				// Stand-alone trainings take long by nature; some have come back.
				c.b.Log.Info("stand-alone trainings under way", "run", c.run, "missing", missing, "of", len(keys),
					"waited", time.Since(start).Round(time.Second))
				continue
			}
			c.b.Log.Warn("waiting for results; is an evaluator running?", "run", c.run, "what", what,
				"missing", missing, "of", len(keys), "waited", time.Since(start).Round(time.Second))
		}
	}
}

func (c *collector) close() {
	if c.stop != nil {
		c.stop()
	}
}

// remote is the Backend that spreads each step over the evaluators, one work item per shard.
type remote struct {
	b       *bus.Bus
	spec    *schemas.RunSpec
	attempt int64
	net     *nn.SuperNet
	col     *collector
	acc     []float32
	part    []float32
	slice   []float32
	// version is the SuperNet version the coordinator's weights are at: the last one
	// committed or snapshotted. Work is computed at it.
	version int64
	// seq numbers this incarnation's requests: an item's identity, whatever its step key.
	seq int64
	// pending reports whether the last delta published was stored.
	pending chan error
}

func (r *remote) nextSeq() int64 {
	r.seq++
	return r.seq
}

func (r *remote) publishWork(ctx context.Context, kind string, step int64, child nn.Arch, plan []int, scale float32) ([]string, error) {
	var keys []string
	var items []*schemas.WorkItem
	seq := r.nextSeq()
	for s, n := range plan {
		if n == 0 {
			continue
		}
		items = append(items, &schemas.WorkItem{Envelope: schemas.NewEnvelope(schemas.TypeWork, r.spec.Run), Attempt: r.attempt, Seq: seq, Step: step,
			Shard: s, Kind: kind, Version: r.version, Arch: []int(child), Rows: n, Scale: scale})
		res := schemas.Result{Seq: seq, Step: step, Kind: kind, Shard: s, Arch: []int(child)}
		keys = append(keys, res.Key())
	}
	return keys, r.b.Work.Publish(ctx, items...)
}

// Gradient implements search.Backend: shard results are summed in shard order.
func (r *remote) Gradient(ctx context.Context, step int64, child nn.Arch, g *nn.Grads) (float64, error) {
	plan := search.Plan(r.spec.Search.Batch, r.spec.Dataset.TrainRows)
	total := 0
	for _, n := range plan {
		total += n
	}
	keys, err := r.publishWork(ctx, schemas.KindTrain, step, child, plan, 1/float32(total))
	if err != nil {
		return 0, err
	}
	res, err := r.col.await(ctx, keys, fmt.Sprintf("step %d gradients of %s", step, space.FormatWidths(child)))
	if err != nil {
		return 0, err
	}
	size := r.net.SliceLen(child)
	r.acc = search.Grow(r.acc, size)
	clear(r.acc)
	var loss float64
	for _, x := range res {
		if x.GradLen != size {
			return 0, fmt.Errorf("step %d shard %d: gradient of %d floats, child %s needs %d", step, x.Shard, x.GradLen, space.FormatWidths(child), size)
		}
		if r.part, err = r.b.Results.Grad(ctx, x, r.part); err != nil {
			return 0, err
		}
		if x.GradBlob != "" && r.b.Kind != "memory" {
			r.col.count(int64(4*x.GradLen), 0) // the message counted only its header
		}
		search.AddInto(r.acc, r.part)
		loss += x.LossSum
	}
	g.UnpackSlice(child, r.acc)
	return loss / float64(total), nil
}

// Committed implements search.Backend: publish the new weights of the child's slice.
// The work that needs the version goes out without waiting for the store's answer
// (replicas wait for the version); a failure surfaces at the next publication.
func (r *remote) Committed(ctx context.Context, version int64, child nn.Arch) error {
	if err := r.versionStored(ctx); err != nil {
		return err
	}
	size := r.net.SliceLen(child)
	r.slice = search.Grow(r.slice, size)
	r.net.PackSlice(child, r.slice)
	msg := &schemas.SuperNetVersion{Envelope: schemas.NewEnvelope(schemas.TypeSuperNet, r.spec.Run), Version: version, Arch: []int(child), Len: size}
	r.col.count(0, int64(4*size))
	ch := make(chan error, 1)
	if err := r.b.Versions.Publish(ctx, msg, r.slice, func(err error) { ch <- err }); err != nil {
		return err
	}
	r.pending = ch
	r.version = version
	return nil
}

// versionStored waits for the last version published to be stored.
func (r *remote) versionStored(ctx context.Context) error {
	if r.pending == nil {
		return nil
	}
	select {
	case err := <-r.pending:
		r.pending = nil
		if err != nil {
			return fmt.Errorf("publishing SuperNet version %d of run %s: %w", r.version, r.spec.Run, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishSnapshot stores every weight as version v (version 0 and each checkpoint), from
// which an evaluator that is ahead of a resumed coordinator rebuilds its replica.
func (r *remote) publishSnapshot(ctx context.Context, v int64) error {
	if err := r.versionStored(ctx); err != nil {
		return err
	}
	msg := &schemas.SuperNetVersion{Envelope: schemas.NewEnvelope(schemas.TypeSuperNet, r.spec.Run), Version: v, Snapshot: true, Len: len(r.net.Weights)}
	if err := r.b.Versions.Publish(ctx, msg, r.net.Weights, nil); err != nil {
		return fmt.Errorf("publishing snapshot %d of run %s: %w", v, r.spec.Run, err)
	}
	r.version = v
	return nil
}

// ValLoss implements search.Backend. step is the key of the validation rows (a fixed
// subset may use the same key at every step); the item's identity is its seq.
func (r *remote) ValLoss(ctx context.Context, step int64, child nn.Arch) (float64, error) {
	plan := search.Plan(r.spec.Search.ValBatch, r.spec.Dataset.ValRows)
	keys, err := r.publishWork(ctx, schemas.KindScore, r.spec.Search.ValRowsStep(step), child, plan, 0)
	if err != nil {
		return 0, err
	}
	res, err := r.col.await(ctx, keys, fmt.Sprintf("step %d validation loss of %s", step, space.FormatWidths(child)))
	if err != nil {
		return 0, err
	}
	var sum float64
	total := 0
	for _, x := range res {
		sum += x.LossSum
		total += x.Rows
	}
	return sum / float64(total), nil
}

// estimator asks the sampler service for feasibility and P(V) estimates. Answers are
// deterministic, so feasibility is cached here too; the estimate of a step is requested
// as soon as the step starts and collected when the RL step needs it.
type estimator struct {
	b     *bus.Bus
	run   string
	space *space.Space
	mu    sync.Mutex
	feas  map[string]*schemas.FeasibleReply
	pend  map[int64]chan estResult
}

type estResult struct {
	e   policy.Estimate
	err error
}

func newEstimator(b *bus.Bus, run string, s *space.Space) *estimator {
	return &estimator{b: b, run: run, space: s, feas: map[string]*schemas.FeasibleReply{}, pend: map[int64]chan estResult{}}
}

// Costs returns the sampler's verdict and costs for an architecture given by widths.
func (e *estimator) costs(ctx context.Context, widths []int) (*schemas.FeasibleReply, error) {
	key := space.FormatWidths(widths)
	e.mu.Lock()
	r := e.feas[key]
	e.mu.Unlock()
	if r != nil {
		return r, nil
	}
	req := &schemas.FeasibleRequest{Envelope: schemas.NewEnvelope(schemas.TypeFeasibleReq, e.run), Arch: widths}
	r, err := e.b.Sampler.Feasible(ctx, req)
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		return nil, fmt.Errorf("sampler: %s", r.Error)
	}
	if space.FormatWidths(r.Arch) != key {
		return nil, fmt.Errorf("sampler answered for %s, asked %s", space.FormatWidths(r.Arch), key)
	}
	e.mu.Lock()
	e.feas[key] = r
	e.mu.Unlock()
	return r, nil
}

func (e *estimator) request(ctx context.Context, step int64, probs [][]float64) estResult {
	req := &schemas.EstimateRequest{Envelope: schemas.NewEnvelope(schemas.TypeEstimateReq, e.run), Step: step, Probs: probs}
	r, err := e.b.Sampler.Estimate(ctx, req)
	if err != nil {
		return estResult{err: err}
	}
	if r.Error != "" {
		return estResult{err: fmt.Errorf("sampler: %s", r.Error)}
	}
	if r.Step != step {
		return estResult{err: fmt.Errorf("sampler answered step %d, asked %d", r.Step, step)}
	}
	return estResult{e: r.Estimate}
}

// Prefetch implements search.Prefetcher.
func (e *estimator) Prefetch(ctx context.Context, step int64, probs [][]float64) {
	ch := make(chan estResult, 1)
	e.mu.Lock()
	e.pend[step] = ch
	e.mu.Unlock()
	go func() { ch <- e.request(ctx, step, probs) }()
}

// Estimate implements search.Estimator.
func (e *estimator) Estimate(ctx context.Context, step int64, probs [][]float64) (policy.Estimate, error) {
	e.mu.Lock()
	ch := e.pend[step]
	delete(e.pend, step)
	e.mu.Unlock()
	var r estResult
	if ch != nil {
		select {
		case r = <-ch:
		case <-ctx.Done():
			return policy.Estimate{}, ctx.Err()
		}
	} else {
		r = e.request(ctx, step, probs)
	}
	return r.e, r.err
}

// Feasible implements search.Estimator.
func (e *estimator) Feasible(ctx context.Context, a space.Arch) (bool, error) {
	r, err := e.costs(ctx, e.space.ArchWidths(a))
	if err != nil {
		return false, err
	}
	return r.Feasible, nil
}

// remoteConstraint is a measured limit whose cost the sampler knows (latency).
type remoteConstraint struct {
	name  string
	limit float64
	est   *estimator
	ctx   context.Context
}

func (c remoteConstraint) Name() string   { return c.name }
func (c remoteConstraint) Limit() float64 { return c.limit }
func (c remoteConstraint) Cost(s *space.Space, a space.Arch) (float64, error) {
	r, err := c.est.costs(c.ctx, s.ArchWidths(a))
	if err != nil {
		return 0, err
	}
	v, ok := r.Costs[c.name]
	if !ok {
		return 0, fmt.Errorf("sampler reported no %s cost (has %s)", c.name, strings.Join(keysOf(r.Costs), ", "))
	}
	return v, nil
}

func keysOf(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// trialsWhat names the wait for trial results in logs.
const trialsWhat = "stand-alone trainings"

// trialRequest is one stand-alone training to run on an evaluator.
type trialRequest struct {
	Arch  []int
	Trial schemas.Trial
}

// trials runs stand-alone trainings as trial work items spread over the evaluators and
// returns their outcomes in request order. round tells apart batches of trials of one
// run (each round's items and results have their own keys).
func (r *remote) trials(ctx context.Context, round int64, reqs []trialRequest) ([]schemas.TrialOutcome, error) {
	if err := r.versionStored(ctx); err != nil {
		return nil, err
	}
	var keys []string
	var items []*schemas.WorkItem
	seq := r.nextSeq()
	for i, q := range reqs {
		t := q.Trial
		items = append(items, &schemas.WorkItem{Envelope: schemas.NewEnvelope(schemas.TypeWork, r.spec.Run), Attempt: r.attempt, Seq: seq, Step: round,
			Shard: i, Kind: schemas.KindTrial, Version: 0, Arch: q.Arch, Trial: &t})
		keys = append(keys, (&schemas.Result{Seq: seq, Step: round, Kind: schemas.KindTrial, Shard: i, Arch: q.Arch}).Key())
	}
	if err := r.b.Work.Publish(ctx, items...); err != nil {
		return nil, err
	}
	res, err := r.col.await(ctx, keys, trialsWhat)
	if err != nil {
		return nil, err
	}
	out := make([]schemas.TrialOutcome, len(res))
	for i, x := range res {
		out[i] = *x.Trial
	}
	return out, nil
}
