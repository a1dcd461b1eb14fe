package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/sampler"
	"github.com/tabnas/tabnas/schemas"
)

// latencyMargin is how far over a limit the smallest architecture must be measured before
// the run is refused: timings are noisy, and a refusal must be certain.
const latencyMargin = 2

// checkLatencyLimits times the smallest architecture of the run's space (the narrowest width
// of every layer) on this machine, before the search starts, and fails with
// search.ErrInfeasibleBudget when it is over a latency limit by more than latencyMargin:
// then no architecture of the space can meet it. Only for runs whose sampler is in this
// process, which times on the same machine.
func checkLatencyLimits(ctx context.Context, spec *schemas.RunSpec) error {
	c := spec.Constraints
	if c.MaxLatencyMs <= 0 && c.MaxTrainStepMs <= 0 {
		return nil
	}
	s, err := spec.SpaceOf()
	if err != nil {
		return err
	}
	smallest := make([]int, s.Layers())
	small := *s
	small.Widths = make([][]int, s.Layers())
	for i, ws := range s.Widths {
		smallest[i] = slices.Min(ws)
		small.Widths[i] = []int{smallest[i]}
	}
	m, err := sampler.NewMeter(sampler.MeterConfig{Space: &small, Task: spec.NNTask(), Batch: c.LatencyBatch, Runs: c.LatencyRuns,
		Prefix: "precheck", Seed: spec.Search.Seed})
	if err != nil {
		return err
	}
	for _, l := range []struct {
		kind        sampler.LatencyKind
		limit       float64
		flag, label string
	}{
		{sampler.LatencyInference, c.MaxLatencyMs, "--max-latency-ms", "inference"},
		{sampler.LatencyTrain, c.MaxTrainStepMs, "--max-train-step-ms", "training step"},
	} {
		if l.limit <= 0 {
			continue
		}
		ms, err := m.Measure(ctx, l.kind, smallest)
		if err != nil {
			return err
		}
		if ms > latencyMargin*l.limit {
			return fmt.Errorf("%w: %s %g: the smallest architecture of the space (%s) takes %.3g ms per %s on this machine",
				search.ErrInfeasibleBudget, l.flag, l.limit, space.FormatWidths(smallest), ms, l.label)
		}
	}
	return nil
}
