package search

import (
	"context"
	"slices"
	"testing"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/space"
)

func smallSetup(t *testing.T) (*space.Space, space.Constraints, []Shard, []Shard) {
	t.Helper()
	train, val, _ := loadHiggs(t, 3000)
	s, err := space.New(train.Cols, 1, 2, []int{4, 8, 16, 32})
	if err != nil {
		t.Fatal(err)
	}
	// 16-16 (753 params) is feasible, 32-32 is not: the budget binds.
	return s, space.Constraints{space.MaxParams{Max: 800}}, shardsOf(train, 2), shardsOf(val, 1)
}

// Warmup: the first quarter of the steps trains (sometimes) the whole SuperNet and never
// scores a candidate; afterwards every step has an RL update.
func TestWarmupAndUpdateCounters(t *testing.T) {
	s, cons, train, val := smallSetup(t)
	for _, c := range []struct {
		corr    policy.Correction
		samples int
	}{{policy.Auto, 0}, {policy.MC, 1}} {
		e := newEngine(t, Config{Steps: 80, Seed: 5, Batch: 64, ValBatch: 128, Policy: policy.Config{Correction: c.corr, Samples: c.samples}}, s, cons, train, val)
		if err := e.Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		full, warm := 0, e.Cfg.WarmupSteps()
		for _, r := range e.Hist {
			if r.Step < warm {
				if !r.Warmup || r.Candidate != "" {
					t.Fatalf("step %d in warmup: %+v", r.Step, r)
				}
				if r.Child == space.FormatWidths(s.MaxWidths()) {
					full++
				}
			} else if r.Warmup || r.Candidate == "" {
				t.Fatalf("step %d after warmup has no RL step: %+v", r.Step, r)
			}
		}
		if full == 0 {
			t.Errorf("%s: no warmup step trained the whole SuperNet", c.corr)
		}
		rl := int64(e.Cfg.Steps) - warm
		if e.Applied+e.Skipped != rl {
			t.Errorf("%s: %d applied + %d skipped updates, want %d RL steps", c.corr, e.Applied, e.Skipped, rl)
		}
		applied := int64(0)
		for _, r := range e.Hist {
			if r.Updated {
				applied++
			}
		}
		if applied != e.Applied {
			t.Errorf("%s: counter says %d applied, records %d", c.corr, e.Applied, applied)
		}
		switch c.corr {
		case policy.Auto: // exact by the DP: never skips
			if e.Skipped != 0 {
				t.Errorf("exact correction skipped %d updates", e.Skipped)
			}
		case policy.MC: // one sample under a binding budget: some steps see no feasible sample
			if e.Skipped == 0 {
				t.Errorf("Monte Carlo with N = 1 skipped no update under a binding budget")
			}
		}
	}
}

// With feasible children every trained child is in V; drawn from p, some are not.
func TestFeasibleChildren(t *testing.T) {
	s, cons, train, val := smallSetup(t)
	count := func(children string) (infeasible, sampled int) {
		e := newEngine(t, Config{Steps: 60, Seed: 2, Batch: 32, ValBatch: 64, Warmup: 0.01, Children: children}, s, cons, train, val)
		if err := e.Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		for _, r := range e.Hist {
			if r.Warmup {
				continue
			}
			w, _ := space.ParseWidths(r.Child)
			a, _ := s.FromWidths(w)
			if ok, _ := cons.Feasible(s, a); !ok {
				infeasible++
			}
			sampled++
		}
		return
	}
	if bad, n := count(ChildrenFeasible); bad != 0 {
		t.Errorf("feasible children: %d of %d trained children are infeasible", bad, n)
	}
	if bad, _ := count(ChildrenPolicy); bad == 0 {
		t.Errorf("children from p: none infeasible under a binding budget; the test does not discriminate")
	}
}

// The sandwich rule sums the gradients of the sampled, smallest and largest feasible
// children on the same batch and updates the union of their slices once.
func TestSandwichStep(t *testing.T) {
	s, cons, train, val := smallSetup(t)
	cfg := Config{Steps: 10, Seed: 9, Batch: 64, ValBatch: 64, Warmup: 0.01, Sandwich: On}
	e := newEngine(t, cfg, s, cons, train, val)
	small, large, err := Extremes(context.Background(), s, cons, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Format(small); got != "4-4" {
		t.Fatalf("smallest child %s, want 4-4", got)
	}
	if p := s.Params(large); p > 800 || s.Format(large) != "16-16" {
		t.Fatalf("largest feasible child %s (%d params), want 16-16", s.Format(large), p)
	}
	// Reference: the gradients of the three children computed one by one on a copy.
	ref := e.Net.Clone()
	lb, err := NewLocal(ref, train, val, e.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.StepOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	w, _ := space.ParseWidths(e.Hist[0].Child)
	children := []nn.Arch{nn.Arch(w), nn.Arch(s.ArchWidths(small)), nn.Arch(s.ArchWidths(large))}
	union := slices.Clone(children[0])
	for _, c := range children {
		for i := range union {
			union[i] = max(union[i], c[i])
		}
	}
	sum := ref.NewGrads()
	seen := map[string]bool{}
	for _, c := range children {
		if seen[c.String()] {
			continue
		}
		seen[c.String()] = true
		g := ref.NewGrads()
		g.Zero(c)
		if _, err := lb.Gradient(context.Background(), 0, c, g); err != nil {
			t.Fatal(err)
		}
		for i := range g.Data {
			sum.Data[i] += g.Data[i]
		}
	}
	opt := ref.NewAdam(e.Cfg.WeightLR)
	opt.PerWeightCounts()
	ref.Apply(union, sum, opt)
	if !slices.Equal(ref.Weights, e.Net.Weights) {
		t.Fatal("sandwich step differs from the sum of the three children's gradients applied to their union")
	}
	// Exactly the union's weights took a step.
	var inUnion int
	for _, c := range e.Opt.Counts {
		if c > 1 {
			t.Fatal("a weight was stepped twice in one step")
		}
		inUnion += int(c)
	}
	if want := e.Net.SliceLen(union); inUnion != want {
		t.Fatalf("%d weights stepped, the union %v has %d", inUnion, union, want)
	}
}
