package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/sampler"
	"github.com/tabnas/tabnas/schemas"
)

// Searches under an inference-latency limit, measured by the sampler on whole children
// (with MC correction) or estimated per layer (additive, so the exact DP correction runs).
// The answer must meet the limit by the sampler's own (cached) timings.
func TestLatencyConstrainedSearch(t *testing.T) {
	f := newFixture(t, 0, BusEmbedded)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	spec := f.spec("lat-probe")
	s, _ := spec.SpaceOf()
	m, err := sampler.NewMeter(sampler.MeterConfig{Space: s, Task: spec.NNTask(), Prefix: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	mid, err := m.Inference(ctx, []int{96, 96, 96})
	if err != nil {
		t.Fatal(err)
	}
	// Twice a mid-sized network's time: timings on a loaded machine (or under the race
	// detector) vary by 2×, and a limit near the noise leaves P(V) too small to sample.
	mid *= 2
	svc, err := StartServices(ctx, f.env, 1, true, func(i int) EvaluatorOptions { return EvaluatorOptions{Name: EvaluatorName(i)} })
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	for _, c := range []struct {
		run, mode string
		corr      policy.Correction
	}{{"lat-measure", schemas.LatencyMeasure, policy.MC}, {"lat-estimate", schemas.LatencyEstimate, policy.ExactCorr}} {
		spec := f.spec(c.run)
		spec.Constraints = schemas.Constraints{MaxLatencyMs: mid, LatencyMode: c.mode}
		spec.Search.Policy.Correction = c.corr
		// Every distinct architecture a Monte Carlo sample draws is timed once; a small N and
		// the top-k finish keep this test about latency limits, not about N or the finish.
		spec.Search.Policy.Samples = 16
		spec.Finish.Mode = schemas.FinishTopK
		out, err := coordinator.Run(ctx, coordinator.Config{Bus: f.env.Bus, Store: f.env.Store, Log: f.env.Log, Spec: spec})
		if err != nil {
			t.Fatalf("%s: %v", c.run, err)
		}
		est := &schemas.FeasibleRequest{Envelope: schemas.NewEnvelope(schemas.TypeFeasibleReq, c.run), Arch: out.Selection.Candidates[0].Widths}
		rep, err := f.env.Bus.Sampler.Feasible(ctx, est)
		if err != nil {
			t.Fatal(err)
		}
		lat := rep.Costs["latency_ms"]
		t.Logf("%s: answer %s, latency %.3f ms ≤ %.3f ms, P(V) %.2f", c.run, out.Best.Arch, lat, mid, Summarize(out).FinalPV)
		if !rep.Feasible || lat > mid || !out.Selection.Candidates[0].Feasible {
			t.Fatalf("%s: answer %s has latency %.3f ms over the limit %.3f", c.run, out.Best.Arch, lat, mid)
		}
		var exact bool
		for _, r := range out.History {
			if !r.Warmup {
				exact = r.Accepted == 0 && r.PV > 0 // exact estimates carry no sample counts
				break
			}
		}
		if (c.corr == policy.ExactCorr) != exact {
			t.Fatalf("%s: correction %s but history says exact=%v", c.run, c.corr, exact)
		}
	}
}
