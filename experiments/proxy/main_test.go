package main

import (
	"context"
	"slices"
	"testing"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

// tauFloor is the regression threshold of the proxy's rank correlation on the bundled
// Connect-4 data (first 12,000 rows, budget 12,000 parameters, 800 steps, 14 uniform
// feasible architectures): with the default settings τ on the reward's rows measured
// 0.36, 0.36 and 0.43 for seeds 1–3 (mean 0.39; with the sandwich rule −0.14). The floor
// leaves room for the noise of a 14-architecture τ.
const tauFloor = 0.25

// The default proxy must rank architectures of a real dataset clearly better than chance.
func TestProxyRankCorrelationConnect4(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 10 networks stand-alone")
	}
	ctx := context.Background()
	store, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := header("../../data/connect4/connect4.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	opts := dataset.Options{RowLimit: 12000, Categorical: slices.DeleteFunc(hdr, func(s string) bool { return s == "target" })}
	if _, err := dataset.Ingest(ctx, "../../data/connect4/connect4.csv.gz", store, "c4", opts); err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.OpenDataset(ctx, store, "c4")
	if err != nil {
		t.Fatal(err)
	}
	load := func(split string) nn.Data {
		x, y, err := ds.ReadSplit(ctx, split, nil)
		if err != nil {
			t.Fatal(err)
		}
		return nn.Data{X: x, Y: y, Cols: ds.Manifest.FeatureWidth}
	}
	train, val := load(schemas.SplitTrain), load(schemas.SplitVal)
	task := taskOf(ds.Manifest)
	s, err := space.New(ds.Manifest.FeatureWidth, task.Outputs(), 3, space.DefaultWidths)
	if err != nil {
		t.Fatal(err)
	}
	cons := space.Constraints{space.MaxParams{Max: 12000}}
	archs, err := uniformFeasible(s, cons, 14)
	if err != nil {
		t.Fatal(err)
	}
	sa := make([]float64, len(archs))
	for i, a := range archs {
		_, h, err := nn.TrainStandalone(nn.Arch(s.ArchWidths(a)), task, train, val, nn.TrainConfig{Seed: 1, Epochs: 15, Patience: 4})
		if err != nil {
			t.Fatal(err)
		}
		sa[i] = h.BestValLoss
	}
	var taus []float64
	for seed := uint64(1); seed <= 3; seed++ {
		m, err := measure(ctx, s, cons, task, train, val, archs, sa, search.Config{Steps: 800, Seed: seed}.Defaults())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: τ %.3f (reward rows %.3f), ρ %.3f", seed, m.tauFull, m.tauRew, m.rhoFull)
		taus = append(taus, m.tauRew)
	}
	if got := mean(taus); got < tauFloor {
		t.Fatalf("mean τ of the proxy %.3f over 3 seeds, below the measured floor %.2f", got, tauFloor)
	}
}
