package model

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/schemas"
)

// smallModel ingests a synthetic CSV (two numeric columns, one category, a binary or
// regression target) and trains a tiny network on it.
func smallModel(t *testing.T, task string) *Artifact {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("a,b,c,target\n")
	for i := 0; i < 400; i++ {
		a, bb := rng.NormFloat64(), rng.NormFloat64()*10+3
		c := []string{"x", "y", "z"}[i%3]
		y := strconv.Itoa(map[bool]int{true: 1, false: 0}[a+bb/10 > 0.3])
		if task == schemas.TaskRegression {
			y = strconv.FormatFloat(2*a-bb/5+rng.NormFloat64()*0.1, 'g', 6, 64)
		}
		fmt.Fprintf(&b, "%g,%g,%s,%s\n", a, bb, c, y)
	}
	src := filepath.Join(dir, "data.csv")
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := objstore.NewLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dataset.Ingest(ctx, src, store, "ds", dataset.Options{Task: task, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.OpenDataset(ctx, store, "ds")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := TaskOf(ds.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	train := nn.Data{Cols: ds.Manifest.FeatureWidth}
	for _, sh := range ds.Shards(schemas.SplitTrain) {
		d, err := ds.ReadShard(ctx, sh)
		if err != nil {
			t.Fatal(err)
		}
		train.X, train.Y = append(train.X, d.X...), append(train.Y, d.Y...)
	}
	net, _, err := nn.TrainStandalone(nn.Arch{8, 4}, tk, train, train, nn.TrainConfig{Epochs: 2, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(net, ds.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func predictAll(t *testing.T, a *Artifact, in string) (Summary, [][]string) {
	t.Helper()
	p, err := a.Predictor()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, err := p.PredictCSV(context.Background(), strings.NewReader(in), &out, PredictOptions{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return sum, recs[1:]
}

func noNonFinite(t *testing.T, sum Summary, recs [][]string) {
	t.Helper()
	for _, f := range []float64{sum.Loss, sum.Metric} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			t.Fatalf("summary %+v has a non-finite value", sum)
		}
	}
	for i, r := range recs {
		for _, c := range r {
			if v, err := strconv.ParseFloat(c, 64); err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
				t.Fatalf("output row %d %q has a non-finite cell", i+1, r)
			}
			if strings.Contains(strings.ToLower(c), "nan") || strings.Contains(strings.ToLower(c), "inf") {
				t.Fatalf("output row %d %q has a non-finite cell", i+1, r)
			}
		}
	}
}

// TestPredictExtremeValuesClipped: a finite cell far beyond anything seen in training (1e308,
// -1e300, 1e38) used to overflow float32 and give NaN predictions and a NaN loss. The value
// is clipped to ±MaxFeatureZ standard deviations and the row counted.
func TestPredictExtremeValuesClipped(t *testing.T) {
	for _, task := range []string{schemas.TaskBinary, schemas.TaskRegression} {
		t.Run(task, func(t *testing.T) {
			a := smallModel(t, task)
			in := "a,b,c,target\n" +
				"0.1,3,x,1\n" +
				"1e308,3,y,0\n" + // clipped
				"0.2,-1e300,z,1\n" + // clipped
				"0.3,1e38,x,0\n" + // clipped
				"0.4,2,w,1\n" +
				"0.5,,y," + map[bool]string{true: "1e308", false: "1"}[task == schemas.TaskRegression] + "\n" // target clipped (regression only)
			sum, recs := predictAll(t, a, in)
			noNonFinite(t, sum, recs)
			want := int64(3)
			if task == schemas.TaskRegression {
				want = 4
			}
			if sum.Rows != 6 || len(recs) != 6 || sum.Clipped != want || sum.Rejected != 0 || !sum.Labeled {
				t.Fatalf("summary %+v, %d output rows; want 6 rows, %d clipped, 0 rejected, labeled", sum, len(recs), want)
			}
			for i, r := range recs {
				if r[0] == "" {
					t.Fatalf("row %d has no prediction: %q", i+1, r)
				}
			}
			// Clipping is to the bound: 1e308 predicts exactly as the bound itself does.
			m := a.Manifest.Inputs[0].Numeric
			edge := strconv.FormatFloat(m.Mean+MaxFeatureZ*m.Std, 'g', -1, 64)
			_, r2 := predictAll(t, a, "a,b,c\n1e308,3,y\n"+edge+",3,y\n")
			if r2[0][0] != r2[1][0] {
				t.Fatalf("1e308 predicts %q, the bound %s predicts %q", r2[0], edge, r2[1])
			}
		})
	}
}

// TestPredictNonFiniteOutputRejected: a model whose weights overflow float32 even on
// ordinary rows gets its rows rejected (empty prediction cells, counted, not scored), never
// written as NaN.
func TestPredictNonFiniteOutputRejected(t *testing.T) {
	for _, task := range []string{schemas.TaskBinary, schemas.TaskRegression} {
		t.Run(task, func(t *testing.T) {
			a := smallModel(t, task)
			for i := range a.Weights {
				a.Weights[i] = 3e38
			}
			sum, recs := predictAll(t, a, "a,b,c,target\n0.1,3,x,1\n-0.2,5,y,0\n0.3,-4,z,1\n")
			noNonFinite(t, sum, recs)
			if sum.Rows != 3 || len(recs) != 3 || sum.Rejected == 0 {
				t.Fatalf("summary %+v, %d output rows; want 3 rows with some rejected", sum, len(recs))
			}
			rejected := int64(0)
			for _, r := range recs {
				if r[0] == "" {
					rejected++
				}
			}
			if rejected != sum.Rejected {
				t.Fatalf("%d rows with empty predictions, summary says %d rejected", rejected, sum.Rejected)
			}
		})
	}
}
