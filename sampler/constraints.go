package sampler

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

type policyEstimate = policy.Estimate

// kvCache keeps measured latencies in the run's KV bucket, so each architecture is timed
// once per run, by whichever sampler sees it first, and a resumed run reuses the times.
type kvCache struct {
	ctx context.Context
	kv  bus.KV
}

func (c kvCache) Get(key string) (float64, bool, error) {
	data, _, err := c.kv.Get(c.ctx, key)
	if errors.Is(err, bus.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	v, err := strconv.ParseFloat(string(data), 64)
	if err != nil {
		return 0, false, fmt.Errorf("latency cache %s holds %q: %w", key, data, err)
	}
	return v, true, nil
}

func (c kvCache) Put(key string, ms float64) error {
	return c.kv.Put(c.ctx, key, []byte(strconv.FormatFloat(ms, 'g', -1, 64)))
}

// latencyConstraints builds the measured limits of a run: whole-network timings, or in
// estimate mode the additive per-layer estimate (which keeps the exact correction usable).
func latencyConstraints(ctx context.Context, b *bus.Bus, spec *schemas.RunSpec, s *space.Space) (space.Constraints, error) {
	c := spec.Constraints
	if c.MaxLatencyMs <= 0 && c.MaxTrainStepMs <= 0 {
		return nil, nil
	}
	m, err := NewMeter(MeterConfig{Space: s, Task: spec.NNTask(), Batch: c.LatencyBatch, Runs: c.LatencyRuns,
		Cache: kvCache{ctx: ctx, kv: b.Latency}, Prefix: spec.Run, Seed: spec.Search.Seed})
	if err != nil {
		return nil, err
	}
	var out space.Constraints
	for _, l := range []struct {
		kind  LatencyKind
		limit float64
	}{{LatencyInference, c.MaxLatencyMs}, {LatencyTrain, c.MaxTrainStepMs}} {
		if l.limit <= 0 {
			continue
		}
		var con space.Constraint
		if c.LatencyMode == schemas.LatencyEstimate {
			con, err = NewEstimatedLatency(ctx, m, l.kind, l.limit)
		} else {
			con, err = NewLatencyConstraint(ctx, m, l.kind, l.limit)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, con)
	}
	return out, nil
}
