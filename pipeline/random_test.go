package pipeline

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

const randomTestHiggs = "../../shared/datasets/higgs/higgs_26k.csv.gz"

func TestRandomSearchHiggs(t *testing.T) {
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
	widths := []int{8, 16, 24, 32}
	// Budget: the 16-16 network; a few of the 16 two-layer architectures fit.
	budget := space.ParamsWidths(in, []int{16, 16}, 1)
	feasible := 0
	for _, a := range widths {
		for _, b := range widths {
			if space.ParamsWidths(in, []int{a, b}, 1) <= budget {
				feasible++
			}
		}
	}
	if feasible < 4 || feasible == len(widths)*len(widths) {
		t.Fatalf("%d feasible architectures: the test needs a few, not all", feasible)
	}
	opts := func() RandomOptions {
		return RandomOptions{Layers: 2, Widths: widths, Constraints: schemas.Constraints{MaxParams: budget}, Seed: 7,
			Trial: schemas.Trial{Epochs: 2, Patience: 1}, Log: testLog(t)}
	}

	t.Run("trials deterministic", func(t *testing.T) {
		o := opts()
		o.Trials = 3
		a, err := RandomSearch(ctx, ds, o)
		if err != nil {
			t.Fatal(err)
		}
		r := a.Result
		if !r.Feasible || r.Params > budget || r.Params != space.ParamsWidths(in, mustWidths(t, r.Arch), 1) {
			t.Fatalf("answer %s with %d params (budget %d), feasible %v", r.Arch, r.Params, budget, r.Feasible)
		}
		if len(r.Trials) != 3 {
			t.Fatalf("%d trials, want 3", len(r.Trials))
		}
		seen := map[string]bool{}
		for _, tr := range r.Trials {
			if tr.Params > budget || seen[tr.Arch] || tr.Late || tr.Epochs < 1 {
				t.Fatalf("trial %+v (budget %d, seen %v)", tr, budget, seen)
			}
			seen[tr.Arch] = true
			if tr.ValLoss < r.ValLoss {
				t.Fatalf("trial %s has val loss %g below the answer's %g", tr.Arch, tr.ValLoss, r.ValLoss)
			}
		}
		if r.Metric != "accuracy" || r.TestMetric <= 0.5 || r.TestLoss <= 0 {
			t.Fatalf("test metrics %+v", r)
		}
		if a.Artifact == nil || a.Artifact.Params() != int(r.Params) || a.Artifact.Metrics.ValLoss != r.ValLoss {
			t.Fatalf("artifact %+v does not match the answer %+v", a.Artifact, r)
		}
		b, err := RandomSearch(ctx, ds, o)
		if err != nil {
			t.Fatal(err)
		}
		if !sameRandomTrials(a.Result.Trials, b.Result.Trials) || a.Result.Arch != b.Result.Arch || a.Result.TestLoss != b.Result.TestLoss {
			t.Fatalf("not deterministic:\n%+v\n%+v", a.Result.Trials, b.Result.Trials)
		}
		o.Seed = 8
		c, err := RandomSearch(ctx, ds, o)
		if err != nil {
			t.Fatal(err)
		}
		if sameRandomTrials(a.Result.Trials, c.Result.Trials) {
			t.Fatalf("seeds 7 and 8 gave the same trials %+v", c.Result.Trials)
		}
	})

	t.Run("wall-clock budget", func(t *testing.T) {
		o := opts()
		o.Seconds = 1e-6 // spent by the first trial: exactly one trial, and it counts
		r, err := RandomSearch(ctx, ds, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Result.Trials) != 1 || r.Result.Arch != r.Result.Trials[0].Arch || !r.Result.Feasible {
			t.Fatalf("result %+v", r.Result)
		}
		o.Seconds, o.Trials = 3600, 2 // whichever comes first
		r, err = RandomSearch(ctx, ds, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Result.Trials) != 2 {
			t.Fatalf("%d trials, want 2", len(r.Result.Trials))
		}
	})

	t.Run("exhausts the feasible set", func(t *testing.T) {
		o := opts()
		o.Trials = 50
		o.Trial.Epochs = 1
		r, err := RandomSearch(ctx, ds, o)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Result.Exhausted || len(r.Result.Trials) != feasible {
			t.Fatalf("exhausted %v after %d trials, want all %d feasible", r.Result.Exhausted, len(r.Result.Trials), feasible)
		}
	})

	t.Run("errors", func(t *testing.T) {
		o := opts()
		if _, err := RandomSearch(ctx, ds, o); err == nil {
			t.Fatal("no budget accepted")
		}
		o.Trials = 1
		o.Constraints.MaxParams = 10 // below the smallest network
		if _, err := RandomSearch(ctx, ds, o); !errors.Is(err, search.ErrInfeasibleBudget) {
			t.Fatalf("err %v, want the infeasible-budget error", err)
		}
	})
}

func mustWidths(t *testing.T, s string) []int {
	t.Helper()
	w, err := space.ParseWidths(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// sameRandomTrials compares everything but timings.
func sameRandomTrials(a, b []RandomTrial) bool {
	strip := func(ts []RandomTrial) []RandomTrial {
		out := make([]RandomTrial, len(ts))
		for i, t := range ts {
			t.Seconds, t.Ended = 0, 0
			out[i] = t
		}
		return out
	}
	return reflect.DeepEqual(strip(a), strip(b))
}
