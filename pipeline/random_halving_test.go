package pipeline

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/tabnas/tabnas/internal/halving"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

func TestRandomHalvingHiggs(t *testing.T) {
	needData(t, randomTestHiggs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := Open(ctx, EnvOptions{StoreURL: t.TempDir(), Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ds, err := EnsureDataset(ctx, env, DatasetOptions{Data: randomTestHiggs})
	if err != nil {
		t.Fatal(err)
	}
	in := ds.Manifest.FeatureWidth
	widths := []int{8, 16, 24, 32, 48}
	budget := space.ParamsWidths(in, []int{32, 32}, 1)
	opts := RandomOptions{Layers: 2, Widths: widths, Constraints: schemas.Constraints{MaxParams: budget}, Seed: 3,
		Trials: 9, Halving: true, Trial: schemas.Trial{Epochs: 4}, Log: testLog(t)}

	a, err := RandomSearch(ctx, ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := a.Result
	l := r.Ladder
	if r.Method != "random-halving" || l == nil || !l.Complete {
		t.Fatalf("method %q, ladder %+v", r.Method, l)
	}
	// 9 candidates, η 3, 1…4 epochs: levels 1, 2, 4; rungs of 9, 3 and 1.
	if !reflect.DeepEqual(l.PlannedSizes, []int{9, 3, 1}) || !reflect.DeepEqual(l.PlannedEpochs, []int{1, 2, 4}) || len(l.Rungs) != 3 {
		t.Fatalf("plan %v × %v, rungs %+v", l.PlannedSizes, l.PlannedEpochs, l.Rungs)
	}
	if len(r.Trials) != 13 {
		t.Fatalf("%d trainings, want 13", len(r.Trials))
	}
	k := 0
	for ri, rung := range l.Rungs {
		if ri > 0 && !reflect.DeepEqual(rung.Candidates, l.Rungs[ri-1].Promoted) {
			t.Errorf("rung %d trained %v, rung %d promoted %v", ri, rung.Candidates, ri-1, l.Rungs[ri-1].Promoted)
		}
		for j, c := range rung.Candidates {
			tr := r.Trials[k]
			k++
			if tr.Rung == nil || *tr.Rung != ri || tr.Index != c || tr.ValLoss != rung.Losses[j] || tr.MaxEpochs != rung.Epochs || tr.Epochs > rung.Epochs {
				t.Errorf("training %d %+v does not match rung %d candidate %d (loss %g, %d epochs)", k-1, tr, ri, c, rung.Losses[j], rung.Epochs)
			}
			if tr.Params > budget || tr.Params != space.ParamsWidths(in, mustWidths(t, tr.Arch), 1) || space.FormatWidths(rung.Archs[j]) != tr.Arch {
				t.Errorf("training %+v: infeasible or mislabelled (budget %d)", tr, budget)
			}
		}
	}
	last := r.Trials[len(r.Trials)-1]
	if !r.Feasible || r.Params > budget || r.Arch != last.Arch || r.ValLoss != last.ValLoss || r.TestLoss != last.TestLoss || l.Best != last.Index {
		t.Fatalf("answer %s (%d params, feasible %v, val %g) is not the last rung's %+v", r.Arch, r.Params, r.Feasible, r.ValLoss, last)
	}
	if a.Artifact == nil || a.Artifact.Metrics.ValLoss != r.ValLoss || a.Artifact.Params() != int(r.Params) {
		t.Fatalf("artifact %+v", a.Artifact)
	}

	// Deterministic with a fixed number of candidates.
	b, err := RandomSearch(ctx, ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRandomTrials(r.Trials, b.Result.Trials) || !sameLadder(l, b.Result.Ladder) || b.Result.Arch != r.Arch {
		t.Fatalf("not deterministic:\n%+v\n%+v", r.Trials, b.Result.Trials)
	}

	// A budget spent before training: the two probes are all there is (the one with more
	// epochs answers), and the answer is feasible.
	o := opts
	o.Seconds = 1e-6
	c, err := RandomSearch(ctx, ds, o)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Result.Ladder
	if cl.Complete || len(cl.Rungs) != 2 || !cl.Rungs[0].Probe || !cl.Rungs[1].Probe || !c.Result.Feasible || c.Result.Arch != c.Result.Trials[1].Arch {
		t.Fatalf("tiny budget: %+v", c.Result)
	}
}

// sameLadder compares everything but timings.
func sameLadder(a, b *halving.Result) bool {
	strip := func(r *halving.Result) halving.Result {
		c := *r
		c.SecondsPerEpoch, c.SecondsPerTraining = 0, 0
		c.Rungs = append([]halving.Rung(nil), r.Rungs...)
		for i := range c.Rungs {
			c.Rungs[i].Seconds = 0
		}
		return c
	}
	return reflect.DeepEqual(strip(a), strip(b))
}
