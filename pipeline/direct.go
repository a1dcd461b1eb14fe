package pipeline

import (
	"context"
	"sync"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

// DirectEngine builds the search engine of a spec with the in-process Local backend over
// the dataset's shards read into memory: the core loop without the bus (for comparisons
// and benchmarks). Only analytic constraints are supported.
func DirectEngine(ctx context.Context, store objstore.Store, spec *schemas.RunSpec) (*search.Engine, error) {
	ds, err := dataset.OpenDataset(ctx, store, spec.Dataset.Prefix)
	if err != nil {
		return nil, err
	}
	load := func(split string) ([]search.Shard, error) {
		var out []search.Shard
		for _, sh := range ds.Shards(split) {
			d, err := ds.ReadShard(ctx, sh)
			if err != nil {
				return nil, err
			}
			out = append(out, search.Shard{X: d.X, Y: d.Y, Rows: d.Rows})
		}
		return out, nil
	}
	train, err := load(schemas.SplitTrain)
	if err != nil {
		return nil, err
	}
	val, err := load(schemas.SplitVal)
	if err != nil {
		return nil, err
	}
	s, err := spec.SpaceOf()
	if err != nil {
		return nil, err
	}
	net, err := nn.NewSuperNet(s.In, s.MaxWidths(), spec.NNTask(), policy.Stream(spec.Search.Seed, "init", 0))
	if err != nil {
		return nil, err
	}
	b, err := search.NewLocal(net, train, val, spec.Search)
	if err != nil {
		return nil, err
	}
	cons := spec.ParamsConstraint()
	est := &prefetching{LocalEstimator: &search.LocalEstimator{Space: s, Cons: cons, Cfg: spec.Search.Policy, Seed: spec.Search.Seed}, pend: map[int64]chan estimate{}}
	return search.New(spec.Search, s, cons, net, b, est)
}

// prefetching computes a step's P(V) estimate in a goroutine while the weight step runs,
// as the pipeline's sampler does: the direct loop gets the same overlap, so comparing the
// two measures the bus and nothing else.
type prefetching struct {
	*search.LocalEstimator
	mu   sync.Mutex
	pend map[int64]chan estimate
}

type estimate struct {
	e   policy.Estimate
	err error
}

// Prefetch implements search.Prefetcher.
func (p *prefetching) Prefetch(ctx context.Context, step int64, probs [][]float64) {
	ch := make(chan estimate, 1)
	p.mu.Lock()
	p.pend[step] = ch
	p.mu.Unlock()
	go func() {
		e, err := p.LocalEstimator.Estimate(ctx, step, probs)
		ch <- estimate{e, err}
	}()
}

// Estimate implements search.Estimator.
func (p *prefetching) Estimate(ctx context.Context, step int64, probs [][]float64) (policy.Estimate, error) {
	p.mu.Lock()
	ch := p.pend[step]
	delete(p.pend, step)
	p.mu.Unlock()
	if ch == nil {
		return p.LocalEstimator.Estimate(ctx, step, probs)
	}
	select {
	case r := <-ch:
		return r.e, r.err
	case <-ctx.Done():
		return policy.Estimate{}, ctx.Err()
	}
}
