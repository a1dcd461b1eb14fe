package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/pipeline"
)

func cmdSearch(ctx context.Context, args []string) error {
	o, err := parseRun("search", args, false)
	if err != nil {
		return err
	}
	c := &o.cfg
	if c.Out == "" {
		c.Out = "runs"
	}
	if c.Store == "" {
		c.Store = filepath.Join(c.Out, "store")
		if err := os.MkdirAll(c.Store, 0o755); err != nil {
			return bad(fmt.Errorf("output directory: %w", err))
		}
	}
	if c.Evaluators == 0 {
		c.Evaluators = 1
	}
	log := newLogger(o.quiet, false)
	env, err := pipeline.Open(ctx, pipeline.EnvOptions{StoreURL: c.Store, Bus: c.BusChoice(), NatsDir: o.natsDir, Prefix: o.prefix, Name: "tabnas-search", Log: log})
	if err != nil {
		return infra(err)
	}
	defer env.Close()
	res, err := runSearch(ctx, env, o, log, true)
	if err != nil {
		return err
	}
	return printResult(o, res)
}

// runSearch ingests if needed, builds the spec and runs the coordinator; with local
// services, evaluators and a sampler run in this process too.
func runSearch(ctx context.Context, env *pipeline.Env, o *runOpts, log *slog.Logger, local bool) (*pipeline.Result, error) {
	c := &o.cfg
	ds, err := pipeline.EnsureDataset(ctx, env, pipeline.DatasetOptions{Data: c.Data, Target: c.Target, SplitSeed: c.SplitSeed, RowsPerShard: c.RowsPerShard,
		Task: c.Task, Categorical: c.Categorical, Numeric: c.Numeric, Ignore: c.Ignore})
	if err != nil {
		return nil, datasetErr(c.Data, err)
	}
	spec, err := pipeline.BuildSpec(ds, pipeline.SpecOptions{Run: c.Run, Layers: c.Layers, Widths: c.Widths, Constraints: c.Constraints,
		Search: c.Search, CheckpointEvery: c.CheckpointEvery, Trial: c.Trial, Finish: c.Finish})
	if err != nil {
		if errors.Is(err, search.ErrInfeasibleBudget) {
			return nil, err
		}
		return nil, bad(err)
	}
	if local {
		if err := checkLatencyLimits(ctx, spec); err != nil {
			return nil, classify(err)
		}
		svc, err := pipeline.StartServices(ctx, env, c.Evaluators, true, func(i int) pipeline.EvaluatorOptions {
			return pipeline.EvaluatorOptions{Name: pipeline.EvaluatorName(i)}
		})
		if err != nil {
			return nil, infra(err)
		}
		defer svc.Stop()
	}
	log.Info("search", "run", spec.Run, "data", c.Data, "task", spec.Task, "features", spec.In, "layers", len(spec.Widths),
		"constraints", fmt.Sprintf("%+v", spec.Constraints), "steps", spec.Search.Steps)
	prog := newProgress(o.progress, spec.Search.Steps)
	workers := 1
	if local {
		workers = c.Evaluators
	}
	out, err := coordinator.Run(ctx, coordinator.Config{Bus: env.Bus, Store: env.Store, Log: env.Log, Spec: spec, OnStep: prog.step, Workers: workers, Started: o.began})
	prog.done()
	if err != nil {
		return nil, classify(err)
	}
	res := pipeline.Summarize(out)
	localDir := ""
	if local {
		localDir = c.Out
	}
	if err := pipeline.Finish(ctx, env, out, &res, localDir); err != nil {
		return nil, infra(fmt.Errorf("saving the model and report: %w", err))
	}
	return &res, nil
}

// self is how the user ran this binary, for the hints it prints.
func self() string {
	exe := os.Args[0]
	if strings.Contains(exe, "go-build") {
		return "go run ./cmd/tabnas"
	}
	if !strings.Contains(exe, "/") {
		return exe
	}
	if rel, err := filepath.Rel(".", exe); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return exe
}

// classify maps a run's error to its exit code class.
func classify(err error) error {
	var bi badInput
	switch {
	case errors.Is(err, search.ErrInfeasibleBudget), errors.As(err, &bi), errors.Is(err, context.Canceled):
		return err
	case isInputError(err):
		return bad(err)
	}
	return infra(err)
}

func printResult(o *runOpts, r *pipeline.Result) error {
	if o.jsonOut {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Println(string(data))
		return nil
	}
	fmt.Printf("run %s: %s (%d params, feasible %v) val loss %.4f, test loss %.4f, test %s %.4f\n",
		r.Run, r.Arch, r.Params, r.Feasible, r.ValLoss, r.TestLoss, r.Metric, r.TestMetric)
	for _, t := range r.Trials {
		fmt.Printf("  retrained %-16s %7d params  val %.4f  test %.4f  %s %.4f  (%d epochs, %.1fs)\n", t.Arch, t.Params, t.ValLoss, t.TestLoss, t.Metric, t.TestMetric, t.Epochs, t.Seconds)
	}
	if l := r.Ladder; l != nil {
		fmt.Printf("finish: successive halving over %d candidates in %d rungs (%d search steps run, %d RL updates applied, %d skipped)\n",
			len(r.Pool), len(l.Rungs), r.StepsRun, r.Applied, r.Skipped)
	}
	if p := r.Proxy; p != nil {
		if p.K > 0 {
			fmt.Printf("proxy check: %d architectures, Kendall τ %.2f, Spearman ρ %.2f\n", p.K, p.KendallTau, p.Spearman)
		}
		if p.Note != "" {
			fmt.Printf("note: %s\n", p.Note)
		}
	}
	fmt.Printf("search took %s\n", time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond))
	if r.Model != "" {
		fmt.Printf("model:  %s\nreport: %s\n", r.Model, r.Report)
		data := o.cfg.Data
		if data == "" || strings.HasPrefix(data, "dataset:") || strings.HasPrefix(data, "s3://") {
			data = "ROWS.csv"
		}
		fmt.Printf("next:   %s predict --model %s --data %s --out predictions.csv\n", self(), r.Model, data)
	}
	return nil
}
