package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

// Benchmarks of the search loop on connect4 (one-hot, 126 features, 3 training shards),
// budget 20,000 parameters: steps per second after warmup (warmup steps move the whole
// SuperNet and are counted apart) of the direct in-process loop of the core and of the
// one-process pipeline (embedded NATS; evaluators and sampler as services), with bytes
// moved over the bus per step. Two workloads: the default batch (256 training rows,
// 1,024 validation rows per step) and a large one (4,096 and 8,192).

func benchSpec(b *testing.B, env *Env, run string, steps, batch, valBatch int) *schemas.RunSpec {
	b.Helper()
	ds, err := EnsureDataset(context.Background(), env, DatasetOptions{Data: "../data/connect4/connect4.csv.gz", Categorical: []string{"*"}, RowsPerShard: 20000})
	if err != nil {
		b.Fatal(err)
	}
	spec, err := BuildSpec(ds, SpecOptions{Run: run, Constraints: schemas.Constraints{MaxParams: 20000},
		Search:          search.Config{Steps: steps, Seed: 1, TopK: 1, Warmup: 0.1, Batch: batch, ValBatch: valBatch},
		CheckpointEvery: 1000, Trial: schemas.Trial{Epochs: 1, Patience: 1}})
	if err != nil {
		b.Fatal(err)
	}
	spec.Finish.Mode = schemas.FinishTopK // one short retraining: the steps are measured
	return spec
}

const benchSteps = 300

// timer measures the steps after warmup.
type timer struct {
	warm       int64
	start, end time.Time
	steps      int
}

func (t *timer) step(r search.Record) {
	switch {
	case r.Step == t.warm:
		t.start = time.Now()
	case r.Step > t.warm:
		t.end = time.Now()
		t.steps++
	}
}

// BenchmarkSearchLoop measures, side by side in one run, the direct loop and the
// one-process pipeline over each bus: memory (channels and maps) and JetStream (an
// embedded server), with 1 (and 2) evaluators. Compare ratios, not absolute figures.
func BenchmarkSearchLoop(b *testing.B) {
	ctx := context.Background()
	store := b.TempDir()
	envs := map[string]*Env{}
	for _, k := range []struct{ name, bus string }{{"direct", ""}, {"memory", BusMemory}, {"jetstream", BusEmbedded}} {
		env, err := Open(ctx, EnvOptions{StoreURL: store, Bus: k.bus, Log: quietLog()})
		if err != nil {
			b.Fatal(err)
		}
		defer env.Close()
		envs[k.name] = env
	}
	for _, w := range []struct {
		name            string
		batch, valBatch int
	}{{"batch256", 256, 1024}, {"batch4096", 4096, 8192}} {
		b.Run(w.name+"/direct", func(b *testing.B) {
			env := envs["direct"]
			var steps int
			var el time.Duration
			for i := 0; i < b.N; i++ {
				spec := benchSpec(b, env, "direct", benchSteps, w.batch, w.valBatch)
				e, err := DirectEngine(ctx, env.Store, spec)
				if err != nil {
					b.Fatal(err)
				}
				tm := &timer{warm: spec.Search.WarmupSteps()}
				if err := e.Run(ctx, func(r search.Record) error { tm.step(r); return nil }); err != nil {
					b.Fatal(err)
				}
				el += tm.end.Sub(tm.start)
				steps += tm.steps
			}
			b.ReportMetric(float64(steps)/el.Seconds(), "steps/s")
		})
		for _, kind := range []string{"memory", "jetstream"} {
			for _, n := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s-%d-evaluators", w.name, kind, n), func(b *testing.B) {
					env := envs[kind]
					svc, err := StartServices(ctx, env, n, true, func(i int) EvaluatorOptions { return EvaluatorOptions{Name: EvaluatorName(i)} })
					if err != nil {
						b.Fatal(err)
					}
					defer svc.Stop()
					var steps int
					var el time.Duration
					var bytes int64
					for i := 0; i < b.N; i++ {
						spec := benchSpec(b, env, "bench-"+NewRunID()[16:], benchSteps, w.batch, w.valBatch)
						tm := &timer{warm: spec.Search.WarmupSteps()}
						out, err := coordinator.Run(ctx, coordinator.Config{Bus: env.Bus, Store: env.Store, Log: env.Log, Spec: spec,
							OnStep: func(r search.Record, _ *search.Engine) { tm.step(r) }})
						if err != nil {
							b.Fatal(err)
						}
						el += tm.end.Sub(tm.start)
						steps += tm.steps
						bytes += out.Stats.BytesIn + out.Stats.BytesOut
					}
					b.ReportMetric(float64(steps)/el.Seconds(), "steps/s")
					b.ReportMetric(float64(bytes)/float64(b.N*benchSteps), "bus-bytes/step")
				})
			}
		}
	}
}
