package pipeline

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

const connect4 = "../../shared/datasets/connect4/connect4.csv.gz"

func needData(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared datasets not laid beside the repository: %v", err)
	}
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func TestOneProcessSearchConnect4(t *testing.T) {
	needData(t, connect4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := Open(ctx, EnvOptions{StoreURL: t.TempDir(), Bus: BusMemory, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ds, err := EnsureDataset(ctx, env, DatasetOptions{Data: connect4, RowsPerShard: 20000})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := BuildSpec(ds, SpecOptions{Run: "c4", Constraints: schemas.Constraints{MaxParams: 20000},
		Search: search.Config{Steps: 60, Seed: 1, TopK: 2}, CheckpointEvery: 25, Trial: schemas.Trial{Epochs: 3, Patience: 2}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := StartServices(ctx, env, 2, true, func(i int) EvaluatorOptions { return EvaluatorOptions{Name: EvaluatorName(i)} })
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	start := time.Now()
	out, err := coordinator.Run(ctx, coordinator.Config{Bus: env.Bus, Store: env.Store, Log: env.Log, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run took %v; stats %+v", time.Since(start), out.Stats)
	if out.Best == nil || out.Best.Params > 20000 {
		t.Fatalf("best %+v", out.Best)
	}
	for _, c := range out.Selection.Candidates {
		if !c.Feasible || c.Params > 20000 {
			t.Fatalf("candidate %+v infeasible", c)
		}
	}
	// Every candidate of the finish and every trained network is feasible, and the finish
	// ran its halving over the pool with the proxy measured on a rung.
	if len(out.Pool) == 0 || out.Ladder == nil || !out.Ladder.Complete {
		t.Fatalf("no complete halving finish: pool %d, ladder %+v", len(out.Pool), out.Ladder)
	}
	for _, p := range out.Pool {
		if !p.Feasible || p.Params > 20000 {
			t.Fatalf("pool candidate %+v infeasible", p)
		}
	}
	for _, tr := range out.Trials {
		if tr.Params > 20000 || !out.Feasible(tr.Arch) {
			t.Fatalf("trained %s with %d params is not known feasible", tr.Arch, tr.Params)
		}
	}
	if out.Applied+out.Skipped != int64(spec.Search.Steps)-spec.Search.WarmupSteps() || out.Skipped != 0 {
		t.Fatalf("%d applied and %d skipped RL updates over %d RL steps (exact correction skips none)", out.Applied, out.Skipped, int64(spec.Search.Steps)-spec.Search.WarmupSteps())
	}
	if out.Proxy == nil || out.Proxy.RungK < 3 {
		t.Fatalf("proxy not measured on the finish's rung: %+v", out.Proxy)
	}
	t.Logf("best %s params %d val %.4f test %.4f %s %.4f", out.Best.Arch, out.Best.Params, out.Best.ValLoss, out.Best.TestLoss, out.Best.Metric, out.Best.TestMetric)
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}
