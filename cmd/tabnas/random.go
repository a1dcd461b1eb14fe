package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/model"
	"github.com/tabnas/tabnas/pipeline"
	"github.com/tabnas/tabnas/schemas"
)

func init() {
	extraCommands = append(extraCommands,
		command{"random", "random-search baseline (--halving: successive halving): uniformly drawn feasible architectures for a time or trial budget", cmdRandom})
}

// cmdRandom is the budget-matched random-search baseline: architectures drawn uniformly
// from the feasible set, each trained stand-alone like the final stage of a search, until
// the wall-clock budget or the number of trials is used; the best by validation loss wins.
// With --halving it is successive-halving random search over such architectures.
func cmdRandom(ctx context.Context, args []string) error {
	began := time.Now()
	fs := newFlags("random", "--data FILE --max-params N (--seconds S | --max-time S | --trials N) [--halving] [flags]")
	data := fs.String("data", "", "data file or dataset:PREFIX (required)")
	target := fs.String("target", "target", "target column")
	task := fs.String("task", "", "force regression, binary or multiclass (default: detected)")
	var categorical, numeric, ignore []string
	fs.Var(listValue{&categorical}, "categorical", "comma-separated columns to treat as categorical; * = every input column")
	fs.Var(listValue{&numeric}, "numeric", "comma-separated columns to treat as numeric")
	fs.Var(listValue{&ignore}, "ignore", "comma-separated columns to drop")
	maxParams := fs.Int64("max-params", 0, "parameter budget (weights and biases); 0: none")
	layers := fs.Int("layers", 3, "hidden layers")
	var widths []int
	fs.Var(widthsValue{&widths}, "widths", "candidate widths per layer, e.g. 8,16,32 (default the 20-width TabNAS list)")
	seconds := fs.Float64("seconds", 0, "wall-clock budget in seconds (trials that would end later are not started or not counted)")
	maxTime := fs.Float64("max-time", 0, "wall-clock budget in seconds of the whole command, data loading included (instead of --seconds)")
	trials := fs.Int("trials", 0, "most trials (with --halving: candidates drawn, default 243)")
	halve := fs.Bool("halving", false, "successive-halving random search: rungs of η× more epochs, the best 1/η promoted, the last rung the full recipe")
	eta := fs.Int("eta", 3, "halving: promotion ratio η")
	minEpochs := fs.Int("min-epochs", 1, "halving: epochs of the lowest rung")
	seed := fs.Uint64("seed", 0, "seed of the draws and of every trial's initialization and shuffling")
	def := pipeline.DefaultTrial(0)
	epochs := fs.Int("epochs", def.Epochs, "maximum epochs per trial")
	patience := fs.Int("patience", def.Patience, "early-stopping patience in epochs")
	batch := fs.Int("batch", def.Batch, "rows per step")
	lr := fs.Float64("lr", def.LR, "Adam learning rate")
	schedule := fs.String("schedule", def.Schedule, "learning-rate schedule: constant, cosine or plateau")
	weightDecay := fs.Float64("weight-decay", def.WeightDecay, "decoupled weight decay λ (negative: none)")
	splitSeed := fs.Uint64("split-seed", 0, "seed of the split")
	rows := fs.Int("rows-per-shard", 0, "rows per Parquet shard")
	out := fs.String("out", "runs", "output directory")
	store := fs.String("store", "", "object store (default OUT/store)")
	name := fs.String("name", "", "output name (default random-SEED)")
	jsonOut := fs.Bool("json", false, "print the result as one JSON object on the last line of stdout")
	quiet := fs.Bool("quiet", false, "log warnings only")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *data == "":
		return bad(errors.New("--data is required"))
	case *seconds > 0 && *maxTime > 0:
		return bad(errors.New("give --seconds or --max-time, not both"))
	case *seconds <= 0 && *maxTime <= 0 && *trials <= 0:
		return bad(errors.New("give --seconds (or --max-time), --trials or both"))
	case *seconds < 0 || *maxTime < 0 || *trials < 0 || *maxParams < 0 || *layers < 1:
		return bad(errors.New("--seconds, --max-time, --trials and --max-params must not be negative, --layers at least 1"))
	case *eta < 2 || *minEpochs < 1:
		return bad(errors.New("--eta must be at least 2, --min-epochs at least 1"))
	case *epochs < 1 || *patience < 1 || *batch < 1 || *lr <= 0:
		return bad(errors.New("--epochs, --patience, --batch and --lr must be positive"))
	}
	if err := checkData("--data", *data); err != nil {
		return err
	}
	if *store == "" {
		*store = filepath.Join(*out, "store")
		if err := os.MkdirAll(*store, 0o755); err != nil {
			return bad(err)
		}
	}
	log := newLogger(*quiet, false)
	env, err := pipeline.Open(ctx, pipeline.EnvOptions{StoreURL: *store, Log: log, Name: "tabnas-random"})
	if err != nil {
		return infra(err)
	}
	defer env.Close()
	ds, err := pipeline.EnsureDataset(ctx, env, pipeline.DatasetOptions{Data: *data, Target: *target, SplitSeed: *splitSeed, RowsPerShard: *rows,
		Task: *task, Categorical: categorical, Numeric: numeric, Ignore: ignore})
	if err != nil {
		return datasetErr(*data, err)
	}
	ro := pipeline.RandomOptions{Layers: *layers, Widths: widths,
		Constraints: schemas.Constraints{MaxParams: *maxParams}, Seconds: *seconds, Trials: *trials, Seed: *seed,
		Trial:   schemas.Trial{Epochs: *epochs, Patience: *patience, Batch: *batch, LR: *lr, Schedule: *schedule, WeightDecay: *weightDecay},
		Halving: *halve, Eta: *eta, MinEpochs: *minEpochs, Log: log}
	if *maxTime > 0 {
		// The whole command counts: the clock started before the data was loaded.
		ro.Seconds, ro.Started = *maxTime, began
	}
	if err := ro.Trial.Validate(); err != nil {
		return bad(err)
	}
	o, err := pipeline.RandomSearch(ctx, ds, ro)
	if err != nil {
		if errors.Is(err, search.ErrInfeasibleBudget) || errors.Is(err, context.Canceled) {
			return err
		}
		return bad(err)
	}
	res := &o.Result
	art := o.Artifact
	art.Created = time.Now().UTC()
	art.Run, _ = json.Marshal(map[string]any{"command": "random", "data": *data, "task": *task, "categorical": categorical, "numeric": numeric, "ignore": ignore, "max_params": *maxParams, "layers": *layers,
		"widths": res.Widths, "seconds": *seconds, "max_time": *maxTime, "halving": *halve, "eta": *eta, "min_epochs": *minEpochs, "trials": *trials, "seed": *seed, "split_seed": *splitSeed, "trial": res.Trial})
	if *name == "" {
		*name = fmt.Sprintf("%s-%d", res.Method, *seed)
	}
	dir := filepath.Join(*out, *name)
	local, err := objstore.NewLocal(dir)
	if err != nil {
		return bad(err)
	}
	if err := model.Save(ctx, local, "model", art); err != nil {
		return err
	}
	res.Model = filepath.Join(dir, "model")
	resJSON, _ := json.MarshalIndent(res, "", "  ")
	if err := local.Put(ctx, "result.json", bytes.NewReader(resJSON), int64(len(resJSON))); err != nil {
		return err
	}
	if *jsonOut {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	for _, t := range res.Trials {
		late := ""
		if t.Late {
			late = "  (late: not counted)"
		}
		if t.Rung != nil {
			late = fmt.Sprintf("  (rung %d, at most %d epochs)", *t.Rung, t.MaxEpochs)
		}
		fmt.Printf("  trial %-3d %-16s %7d params  val %.4f  test %.4f  %s %.4f  (%d epochs, %.1fs)%s\n",
			t.Index, t.Arch, t.Params, t.ValLoss, t.TestLoss, t.Metric, t.TestMetric, t.Epochs, t.Seconds, late)
	}
	if l := res.Ladder; l != nil && !l.Complete {
		fmt.Printf("halving stopped early: %s; the answer is the best of rung %d\n", l.Stopped, l.BestRung)
	}
	fmt.Printf("%s: %s (%d params, feasible %v) val loss %.4f, test loss %.4f, test %s %.4f; %d trials in %s\nmodel: %s\n",
		res.Method, res.Arch, res.Params, res.Feasible, res.ValLoss, res.TestLoss, res.Metric, res.TestMetric, len(res.Trials),
		time.Duration(res.Seconds*float64(time.Second)).Round(time.Millisecond), res.Model)
	return nil
}
