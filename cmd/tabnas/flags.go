package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/pipeline"
)

// runOpts are the flags of commands that start a run.
type runOpts struct {
	cfg      pipeline.RunConfig
	config   string
	jsonOut  bool
	quiet    bool
	natsDir  string
	prefix   string
	progress string
	began    time.Time // when the command started (the --max-time clock)
}

type widthsValue struct{ p *[]int }

func (w widthsValue) String() string {
	if w.p == nil {
		return ""
	}
	return space.FormatWidths(*w.p)
}
func (w widthsValue) Set(s string) error {
	v, err := pipeline.ParseWidthList(s)
	if err != nil {
		return err
	}
	*w.p = v
	return nil
}

type listValue struct{ p *[]string }

func (l listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}
func (l listValue) Set(s string) error {
	*l.p = nil
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*l.p = append(*l.p, f)
		}
	}
	return nil
}

// bindRun declares every run flag on fs, bound to o.cfg (whose current values are the defaults).
func bindRun(fs *flag.FlagSet, o *runOpts, distributed bool) {
	c := &o.cfg
	fs.StringVar(&o.config, "config", o.config, "YAML run spec (flags override its values)")
	fs.StringVar(&c.Data, "data", c.Data, "data: CSV (plain or .gz) or Parquet file, s3://bucket/key, or dataset:PREFIX")
	fs.StringVar(&c.Target, "target", c.Target, "target column (default \"target\")")
	fs.StringVar(&c.Run, "run", c.Run, "run id (default: generated)")
	fs.StringVar(&c.Task, "task", c.Task, "force regression, binary or multiclass (default: detected)")
	fs.Var(listValue{&c.Categorical}, "categorical", "comma-separated columns to treat as categorical; * = every input column")
	fs.Var(listValue{&c.Numeric}, "numeric", "comma-separated columns to treat as numeric")
	fs.Var(listValue{&c.Ignore}, "ignore", "comma-separated columns to drop")
	fs.IntVar(&c.Layers, "layers", c.Layers, "hidden layers, 1..32 (default 3)")
	fs.Var(widthsValue{&c.Widths}, "widths", "candidate widths per layer, e.g. 8,16,32 (default the 20-width TabNAS list)")
	fs.Int64Var(&c.Constraints.MaxParams, "max-params", c.Constraints.MaxParams, "parameter budget (weights and biases); 0 or unset: no parameter limit")
	fs.Float64Var(&c.Constraints.MaxLatencyMs, "max-latency-ms", c.Constraints.MaxLatencyMs, "inference latency limit, ms per batch (0: none)")
	fs.Float64Var(&c.Constraints.MaxTrainStepMs, "max-train-step-ms", c.Constraints.MaxTrainStepMs, "training latency limit, ms per step (0: none)")
	fs.IntVar(&c.Constraints.LatencyBatch, "latency-batch", c.Constraints.LatencyBatch, "rows per timed batch (default 256)")
	fs.StringVar(&c.Constraints.LatencyMode, "latency-mode", c.Constraints.LatencyMode, "measure (whole network) or estimate (sum of per-layer times)")
	fs.IntVar(&c.Search.Steps, "steps", c.Search.Steps, "search steps (default 500)")
	fs.Uint64Var(&c.Search.Seed, "seed", c.Search.Seed, "seed of the search")
	fs.Func("method", "tabnas (default), reject, abs or mnas", func(s string) error {
		c.Search.Policy.Method = policy.Method(s)
		return nil
	})
	fs.Func("correction", "auto (default: exact where one additive limit allows it, else mc), mc or exact", func(s string) error {
		c.Search.Policy.Correction = policy.Correction(s)
		return nil
	})
	fs.IntVar(&c.Search.Policy.Samples, "samples", c.Search.Policy.Samples, "Monte Carlo samples N for P(V) (default 256)")
	fs.Float64Var(&c.Search.Policy.LR, "rl-lr", c.Search.Policy.LR, "controller Adam learning rate (default 0.1)")
	fs.Float64Var(&c.Search.Policy.Beta, "beta", c.Search.Policy.Beta, "reward shaping β (< 0) for abs and mnas")
	fs.Float64Var(&c.Search.Policy.T0, "t0", c.Search.Policy.T0, "reward shaping target cost (default the parameter budget)")
	fs.IntVar(&c.Search.Policy.MaxTries, "max-tries", c.Search.Policy.MaxTries, "rejection cap per RL step (default 10000)")
	fs.IntVar(&c.Search.Batch, "batch", c.Search.Batch, "training rows per weight step (default 256)")
	fs.IntVar(&c.Search.ValBatch, "val-batch", c.Search.ValBatch, "validation rows per RL step (default 1024)")
	fs.Float64Var(&c.Search.WeightLR, "lr", c.Search.WeightLR, "SuperNet Adam learning rate (default 0.001)")
	fs.Float64Var(&c.Search.Warmup, "warmup", c.Search.Warmup, "fraction of steps with layer warmup (default 0.25)")
	fs.IntVar(&c.Search.TopK, "top-k", c.Search.TopK, "feasible architectures retrained at the end with --finish topk (default 3)")
	fs.Float64Var(&c.Search.Policy.Entropy, "entropy", c.Search.Policy.Entropy, "weight of the controller's entropy bonus (default 0)")
	fs.StringVar(&c.Search.Reward, "reward", c.Search.Reward, "fixed (default: every candidate scored on the same validation rows) or batch (a fresh batch per step)")
	fs.StringVar(&c.Search.Children, "children", c.Search.Children, "weight-step children: feasible (default, from p(·|V)) or policy (from p)")
	fs.StringVar(&c.Search.Sandwich, "sandwich", c.Search.Sandwich, "on: the smallest and largest feasible child join every weight step; off")
	fs.StringVar(&c.Search.AdamCounts, "adam-counts", c.Search.AdamCounts, "SuperNet Adam bias correction per weight (default) or global")
	fs.StringVar(&c.Finish.Mode, "finish", c.Finish.Mode, "final stage: halving (default: successive halving over the policy's and uniform feasible candidates) or topk")
	fs.IntVar(&c.Finish.Candidates, "finish-candidates", c.Finish.Candidates, "candidates of the halving finish without --max-time (default 9)")
	fs.IntVar(&c.Finish.CheckProxy, "check-proxy", c.Finish.CheckProxy, "train K architectures stand-alone to measure the proxy's rank correlation (0: off)")
	fs.Func("max-time", "wall-clock budget of the whole command, in seconds or as 90s, 20m, 1h (0: none)", func(s string) error {
		secs, err := parseSeconds(s)
		if err != nil {
			return fmt.Errorf("--max-time %q: %w", s, err)
		}
		c.Finish.MaxSeconds = secs
		return nil
	})
	fs.Uint64Var(&c.SplitSeed, "split-seed", c.SplitSeed, "seed of the train/validation/test split")
	fs.IntVar(&c.RowsPerShard, "rows-per-shard", c.RowsPerShard, "rows per Parquet shard (default 65536)")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "checkpoint every K steps (default 100)")
	fs.IntVar(&c.Trial.Epochs, "trial-epochs", c.Trial.Epochs, fmt.Sprintf("max epochs of the stand-alone retraining (default %d)", pipeline.DefaultTrial(0).Epochs))
	fs.IntVar(&c.Trial.Patience, "trial-patience", c.Trial.Patience, fmt.Sprintf("early-stopping patience of the retraining (default %d)", pipeline.DefaultTrial(0).Patience))
	fs.StringVar(&c.Store, "store", c.Store, "object store: directory, file:// or s3://bucket/prefix")
	if distributed {
		fs.StringVar(&c.Nats, "nats", c.Nats, "NATS URL (default $TABNAS_NATS_URL)")
	} else {
		fs.StringVar(&c.Bus, "bus", c.Bus, "where the services talk: memory (default), embedded (a JetStream server in this process) or a nats:// URL")
		fs.StringVar(&c.Nats, "nats", c.Nats, "NATS URL; same as --bus URL")
	}
	if !distributed {
		fs.StringVar(&c.Out, "out", c.Out, "output directory (store, model, report) (default ./runs)")
		fs.IntVar(&c.Evaluators, "evaluators", c.Evaluators, "evaluators in this process (default 1)")
		fs.StringVar(&o.natsDir, "nats-dir", o.natsDir, "JetStream directory of the embedded server (default: temporary)")
	}
	fs.StringVar(&o.prefix, "prefix", o.prefix, "stream and bucket name prefix on NATS (default tabnas)")
	fs.BoolVar(&o.jsonOut, "json", o.jsonOut, "print the result as one JSON object on the last line of stdout")
	fs.BoolVar(&o.quiet, "quiet", o.quiet, "log warnings only")
	fs.StringVar(&o.progress, "progress", o.progress, "auto (default), bar, log or none")
}

// parseRun parses flags twice: first to find --config, then over the spec's values so
// that flags given on the command line win and the rest comes from the file.
func parseRun(name string, args []string, distributed bool) (*runOpts, error) {
	o := &runOpts{began: time.Now()}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bindRun(fs, o, distributed)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(os.Stdout)
			fmt.Fprintf(os.Stdout, "usage: tabnas %s [flags]\n", name)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, bad(err)
	}
	if fs.NArg() > 0 {
		return nil, bad(fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if err := checkPositive(fs, runPositive...); err != nil {
		return nil, err
	}
	if o.config != "" {
		cfg, err := pipeline.LoadConfig(o.config)
		if err != nil {
			return nil, bad(err)
		}
		o2 := &runOpts{cfg: cfg, config: o.config, began: o.began}
		fs2 := flag.NewFlagSet(name, flag.ContinueOnError)
		fs2.SetOutput(io.Discard)
		bindRun(fs2, o2, distributed)
		if err := fs2.Parse(args); err != nil {
			return nil, bad(err)
		}
		o = o2
	}
	if err := o.cfg.Validate(); err != nil {
		return nil, bad(err)
	}
	if err := checkData("--data", o.cfg.Data); err != nil {
		return nil, err
	}
	return o, nil
}

// runPositive are the run flags whose zero value means "the default": given explicitly on
// the command line, zero or a negative value is an error rather than silently replaced.
var runPositive = []string{"layers", "steps", "samples", "rl-lr", "max-tries", "batch", "val-batch", "lr", "warmup",
	"top-k", "finish-candidates", "rows-per-shard", "checkpoint-every", "trial-epochs", "trial-patience",
	"latency-batch", "evaluators"}

// checkPositive rejects a value that is not a positive finite number for each of names
// given on the command line (fs.Visit sees only those, not the defaults or a spec's values).
func checkPositive(fs *flag.FlagSet, names ...string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil || !slices.Contains(names, f.Name) {
			return
		}
		v, perr := strconv.ParseFloat(f.Value.String(), 64)
		if perr == nil && (!(v > 0) || math.IsInf(v, 0)) {
			err = bad(fmt.Errorf("--%s %s: must be a positive number (leave the flag out for the default)", f.Name, f.Value))
		}
	})
	return err
}

// checkData rejects, before any work, a --data that cannot be read: a local path that is
// missing, a directory or unreadable, or a dataset: prefix that is not a valid store key.
// s3:// objects are checked when read.
func checkData(flagName, data string) error {
	switch {
	case data == "" || strings.HasPrefix(data, "s3://"):
		return nil
	case strings.HasPrefix(data, "dataset:"):
		p := strings.TrimSuffix(strings.TrimPrefix(data, "dataset:"), "/")
		if err := objstore.ValidateKey(p); err != nil {
			return bad(fmt.Errorf("%s %s: not a valid dataset prefix: %w", flagName, data, err))
		}
		return nil
	}
	path := strings.TrimPrefix(data, "file://")
	st, err := os.Stat(path)
	if err != nil {
		return bad(fmt.Errorf("%s %s: %w", flagName, data, err))
	}
	if st.IsDir() {
		return bad(fmt.Errorf("%s %s: is a directory, want a CSV or Parquet file", flagName, data))
	}
	f, err := os.Open(path)
	if err != nil {
		return bad(fmt.Errorf("%s %s: %w", flagName, data, err))
	}
	f.Close()
	return nil
}

// parseSeconds reads a non-negative time budget given in seconds ("90", "2.5") or as a
// duration ("90s", "20m", "1h").
func parseSeconds(s string) (float64, error) {
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, errors.New("want a non-negative number of seconds")
		}
		return v, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("want seconds or a duration such as 90s, 20m or 1h")
	}
	return d.Seconds(), nil
}

// datasetErr classifies an error of pipeline.EnsureDataset: a dataset: prefix that holds no
// dataset in the store is the user's mistake, not the store's.
func datasetErr(data string, err error) error {
	if strings.HasPrefix(data, "dataset:") && errors.Is(err, objstore.ErrNotFound) {
		return bad(fmt.Errorf("--data %s: no dataset at that prefix of the store: %w", data, err))
	}
	return classify(err)
}
