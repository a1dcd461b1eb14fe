package search

import (
	"context"
	"fmt"
	"sync"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/space"
)

// Shard is one block of preprocessed rows (row-major features, labels).
type Shard struct {
	X    []float32
	Y    []float32
	Rows int
}

// Plan splits a batch of n rows over shards in proportion to their sizes (largest
// remainder, ties to the lower index), so every process derives the same split.
func Plan(n int, rows []int) []int {
	total := 0
	for _, r := range rows {
		total += r
	}
	out := make([]int, len(rows))
	if total == 0 {
		return out
	}
	if n >= total {
		copy(out, rows)
		return out
	}
	rem := make([]int64, len(rows))
	given := 0
	for i, r := range rows {
		q := int64(n) * int64(r)
		out[i] = int(q / int64(total))
		rem[i] = q % int64(total)
		given += out[i]
	}
	for given < n {
		best := -1
		for i := range rows {
			if out[i] < rows[i] && (best < 0 || rem[i] > rem[best]) {
				best = i
			}
		}
		out[best]++
		rem[best] = -1
		given++
	}
	return out
}

// BatchIndices picks the rows of one shard for a step: all rows in order when the plan
// takes the whole shard, else n rows drawn with replacement from a per-(step, shard) stream.
func BatchIndices(seed uint64, split string, step int64, shard, rows, n int, dst []int) []int {
	dst = dst[:0]
	if n >= rows {
		for i := 0; i < rows; i++ {
			dst = append(dst, i)
		}
		return dst
	}
	rng := policy.Stream(seed, fmt.Sprintf("%s/%d", split, shard), step)
	for i := 0; i < n; i++ {
		dst = append(dst, rng.IntN(rows))
	}
	return dst
}

// Worker computes one shard's share of a step. It owns its buffers; one per goroutine.
type Worker struct {
	ws     *nn.Workspace
	bx, by []float32
	idx    []int
}

// NewWorker sizes buffers for a SuperNet shape and up to maxRows rows per shard batch.
func NewWorker(net *nn.SuperNet, maxRows int) *Worker {
	chunk := min(maxRows, 1024)
	return &Worker{ws: nn.NewWorkspace(net, max(chunk, 1))}
}

func (w *Worker) gather(sh Shard, cols int, idx []int) ([]float32, []float32) {
	n := len(idx)
	if cap(w.bx) < n*cols {
		w.bx = make([]float32, n*cols)
		w.by = make([]float32, n)
	}
	bx, by := w.bx[:n*cols], w.by[:n]
	for k, r := range idx {
		copy(bx[k*cols:(k+1)*cols], sh.X[r*cols:(r+1)*cols])
		by[k] = sh.Y[r]
	}
	return bx, by
}

// Gradient adds scale·Σ ∂loss over the shard's batch rows for child into g and returns
// the loss sum. The rows are BatchIndices(seed, "train", step, shard, …, n).
func (w *Worker) Gradient(net *nn.SuperNet, sh Shard, seed uint64, step int64, shard, n int, scale float32, child nn.Arch, g *nn.Grads) float64 {
	w.idx = BatchIndices(seed, "train", step, shard, sh.Rows, n, w.idx)
	bx, by := w.gather(sh, net.In, w.idx)
	return net.Gradient(child, bx, by, len(w.idx), scale, w.ws, g)
}

// Loss returns the loss sum of child over the shard's validation batch rows.
func (w *Worker) Loss(net *nn.SuperNet, sh Shard, seed uint64, step int64, shard, n int, child nn.Arch) float64 {
	w.idx = BatchIndices(seed, "val", step, shard, sh.Rows, n, w.idx)
	bx, by := w.gather(sh, net.In, w.idx)
	return net.Loss(child, bx, by, len(w.idx), w.ws)
}

// Rows lists the row counts of shards.
func Rows(shards []Shard) []int {
	r := make([]int, len(shards))
	for i, s := range shards {
		r[i] = s.Rows
	}
	return r
}

// Local is the in-process Backend: the data is in memory and the gradient is computed on
// the engine's own SuperNet. Shards are reduced in shard order exactly as the coordinator
// reduces evaluator results, so the arithmetic is the same.
type Local struct {
	Net        *nn.SuperNet
	Train, Val []Shard
	Seed       uint64
	Batch      int
	ValBatch   int
	Cfg        Config

	w     *Worker
	part  *nn.Grads
	slice []float32
	acc   []float32
}

// NewLocal builds the in-process backend over in-memory shards.
func NewLocal(net *nn.SuperNet, train, val []Shard, cfg Config) (*Local, error) {
	cfg = cfg.Defaults()
	if len(train) == 0 || len(val) == 0 {
		return nil, fmt.Errorf("local backend needs training and validation shards (got %d and %d)", len(train), len(val))
	}
	return &Local{Net: net, Train: train, Val: val, Seed: cfg.Seed, Batch: cfg.Batch, ValBatch: cfg.ValBatch, Cfg: cfg,
		w: NewWorker(net, max(cfg.Batch, cfg.ValBatch)), part: net.NewGrads()}, nil
}

// Gradient implements Backend.
func (l *Local) Gradient(_ context.Context, step int64, child nn.Arch, g *nn.Grads) (float64, error) {
	plan := Plan(l.Batch, Rows(l.Train))
	total := 0
	for _, n := range plan {
		total += n
	}
	scale := 1 / float32(total)
	var loss float64
	if len(l.Train) == 1 {
		loss = l.w.Gradient(l.Net, l.Train[0], l.Seed, step, 0, plan[0], scale, child, g)
		return loss / float64(total), nil
	}
	size := l.Net.SliceLen(child)
	l.slice = Grow(l.slice, size)
	l.acc = Grow(l.acc, size)
	clear(l.acc)
	for s, sh := range l.Train {
		l.part.Zero(child)
		loss += l.w.Gradient(l.Net, sh, l.Seed, step, s, plan[s], scale, child, l.part)
		l.part.PackSlice(child, l.slice)
		AddInto(l.acc, l.slice)
	}
	g.UnpackSlice(child, l.acc)
	return loss / float64(total), nil
}

// AddInto is the coordinator's reduction: dst += part, element by element.
func AddInto(dst, part []float32) {
	for i, v := range part {
		dst[i] += v
	}
}

// Grow returns b resliced to n, reallocating only when its capacity is short: the scratch
// buffers of a step are reused from one step to the next.
func Grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Committed implements Backend; the local backend reads the engine's weights directly.
func (l *Local) Committed(context.Context, int64, nn.Arch) error { return nil }

// ValLoss implements Backend.
func (l *Local) ValLoss(_ context.Context, step int64, child nn.Arch) (float64, error) {
	plan := Plan(l.ValBatch, Rows(l.Val))
	var sum float64
	total := 0
	for s, sh := range l.Val {
		sum += l.w.Loss(l.Net, sh, l.Seed, l.Cfg.ValRowsStep(step), s, plan[s], child)
		total += plan[s]
	}
	return sum / float64(total), nil
}

// LocalEstimator computes P(V) and the marginals in process: Monte Carlo with a stream
// derived from (seed, step), or exactly. Feasibility answers are cached by architecture.
type LocalEstimator struct {
	Space *space.Space
	Cons  space.Constraints
	Cfg   policy.Config
	Seed  uint64

	mu    sync.Mutex
	cache map[string]bool
}

// Feasible implements Estimator.
func (e *LocalEstimator) Feasible(_ context.Context, a space.Arch) (bool, error) {
	key := fmt.Sprint([]int(a))
	e.mu.Lock()
	v, ok := e.cache[key]
	e.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := e.Cons.Feasible(e.Space, a)
	if err != nil {
		return false, err
	}
	e.mu.Lock()
	if e.cache == nil {
		e.cache = map[string]bool{}
	}
	e.cache[key] = v
	e.mu.Unlock()
	return v, nil
}

// Estimate implements Estimator.
func (e *LocalEstimator) Estimate(ctx context.Context, step int64, probs [][]float64) (policy.Estimate, error) {
	return EstimateFor(ctx, e.Space, e.Cons, e.Cfg, e.Seed, step, probs, func(a space.Arch) (bool, error) { return e.Feasible(ctx, a) })
}

// EstimateFor is the estimate every process computes the same way for a step's policy.
func EstimateFor(_ context.Context, s *space.Space, cons space.Constraints, cfg policy.Config, seed uint64, step int64, probs [][]float64, feasible policy.Feasible) (policy.Estimate, error) {
	cfg = cfg.Defaults()
	if len(cons) == 0 { // every architecture is feasible: p(·|V) = p
		return policy.Estimate{PV: 1, Marginals: probs, Exact: true}, nil
	}
	if _, additive := cons.SingleAdditive(); cfg.Correction == policy.ExactCorr || (cfg.Correction == policy.Auto && additive) {
		return policy.Exact(s, probs, cons)
	}
	return policy.MonteCarlo(probs, cfg.Samples, policy.Stream(seed, "mc", step), feasible)
}
