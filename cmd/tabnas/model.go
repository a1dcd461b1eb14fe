package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/model"
	"github.com/tabnas/tabnas/pipeline"
	"github.com/tabnas/tabnas/report"
	"github.com/tabnas/tabnas/schemas"
)

func init() {
	extraCommands = append(extraCommands,
		command{"train", "train one architecture stand-alone (e.g. --arch 32-144-24) into a model", cmdTrain},
		command{"predict", "predict raw CSV rows with a model", cmdPredict},
		command{"export", "export a model to ONNX", cmdExport},
		command{"report", "write a run's HTML report", cmdReport},
	)
}

func newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Printf("usage: tabnas %s %s\n", name, usageLine)
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err // the flag package has printed fs.Usage
		}
		return bad(err)
	}
	if fs.NArg() > 0 {
		return bad(fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	return nil
}

func cmdPredict(ctx context.Context, args []string) error {
	fs := newFlags("predict", "--model DIR|s3://… --data ROWS.csv[.gz] [--out predictions.csv]")
	modelPath := fs.String("model", "", "model directory, file:// or s3:// URL (required)")
	data := fs.String("data", "", "CSV of raw rows with a header, plain or gzip (required; - for stdin)")
	outPath := fs.String("out", "", "output CSV (default stdout)")
	keep := fs.String("keep", "", "comma-separated input columns copied to the output (e.g. an id)")
	jsonOut := fs.Bool("json", false, "print the summary as JSON on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *data == "" {
		return bad(errors.New("--model and --data are required"))
	}
	art, err := model.Open(ctx, *modelPath)
	if err != nil {
		return bad(err)
	}
	p, err := art.Predictor()
	if err != nil {
		return bad(err)
	}
	var in io.Reader = os.Stdin
	name := "stdin"
	if *data != "-" {
		f, err := os.Open(*data)
		if err != nil {
			return bad(err)
		}
		defer f.Close()
		in, name = f, *data
	}
	var w io.Writer = os.Stdout
	var tmp *os.File
	if *outPath != "" {
		// Written beside the target and renamed at the end: no half-written predictions file.
		if tmp, err = os.CreateTemp(filepath.Dir(*outPath), ".predict-*"); err != nil {
			return bad(err)
		}
		defer os.Remove(tmp.Name())
		w = tmp
	}
	opts := model.PredictOptions{Name: name}
	if *keep != "" {
		opts.Keep = strings.Split(*keep, ",")
	}
	sum, err := p.PredictCSV(ctx, in, w, opts)
	if err != nil {
		return bad(err)
	}
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), *outPath); err != nil {
			return err
		}
	}
	if *jsonOut {
		b, err := json.Marshal(sum)
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, string(b))
		return nil
	}
	line := fmt.Sprintf("predicted %d rows", sum.Rows)
	if sum.Labeled {
		line += fmt.Sprintf("; loss %.6f, %s %.6f", sum.Loss, sum.MetricName, sum.Metric)
	}
	if sum.Clipped > 0 {
		line += fmt.Sprintf("; %d rows had values beyond ±%g standard deviations, clipped", sum.Clipped, model.MaxFeatureZ)
	}
	if sum.Rejected > 0 {
		line += fmt.Sprintf("; %d rows rejected (no finite output; their prediction cells are empty)", sum.Rejected)
	}
	fmt.Fprintln(os.Stderr, line)
	return nil
}

func cmdExport(ctx context.Context, args []string) error {
	fs := newFlags("export", "--model DIR --onnx OUT.onnx")
	modelPath := fs.String("model", "", "model directory, file:// or s3:// URL (required)")
	onnx := fs.String("onnx", "", "ONNX file to write (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *onnx == "" {
		return bad(errors.New("--model and --onnx are required"))
	}
	art, err := model.Open(ctx, *modelPath)
	if err != nil {
		return bad(err)
	}
	var buf bytes.Buffer
	if err := model.ExportONNX(art, &buf); err != nil {
		return err
	}
	if err := writeFileAtomic(*onnx, buf.Bytes()); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%d bytes): input %q [N, %d] of preprocessed features, output %q\n", *onnx, buf.Len(), model.ONNXInput, art.In, model.ONNXOutput)
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tabnas-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func cmdReport(ctx context.Context, args []string) error {
	fs := newFlags("report", "--run RUN [--store DIR|s3://…] [--out report.html]")
	run := fs.String("run", "", "run id (required)")
	store := fs.String("store", os.Getenv("TABNAS_STORE"), "object store of the run (default runs/store)")
	out := fs.String("out", "", "HTML file to write (default RUN.html)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *run == "" {
		return bad(errors.New("--run is required"))
	}
	if err := schemas.ValidRunID(*run); err != nil {
		return bad(fmt.Errorf("--run: %w", err))
	}
	if *store == "" {
		*store = "runs/store"
	}
	st, err := objstore.Open(ctx, *store, objstore.Options{})
	if err != nil {
		return bad(err)
	}
	r, err := st.Get(ctx, pipeline.ReportInputKey(*run))
	if err != nil {
		return bad(fmt.Errorf("run %s has no report data in %s: %w", *run, st.URL(), err))
	}
	defer r.Close()
	var in report.Input
	if err := json.NewDecoder(r).Decode(&in); err != nil {
		return bad(fmt.Errorf("report data of run %s: %w", *run, err))
	}
	var page bytes.Buffer
	if err := report.Write(&page, in); err != nil {
		return err
	}
	if *out == "" {
		*out = *run + ".html"
	}
	if err := writeFileAtomic(*out, page.Bytes()); err != nil {
		return err
	}
	fmt.Println(*out)
	return nil
}

// cmdTrain trains a given architecture stand-alone on a dataset: the same training and
// the same artifact as the final stage of a search, for references and baselines.
func cmdTrain(ctx context.Context, args []string) error {
	fs := newFlags("train", "--arch 32-144-24 --data FILE [flags]")
	arch := fs.String("arch", "", "architecture, hidden widths such as 32-144-24 (required)")
	data := fs.String("data", "", "data file or dataset:PREFIX (required)")
	target := fs.String("target", "target", "target column")
	var cols struct {
		task             string
		cat, num, ignore []string
	}
	fs.StringVar(&cols.task, "task", "", "force regression, binary or multiclass (default: detected)")
	fs.Var(listValue{&cols.cat}, "categorical", "comma-separated columns to treat as categorical; * = every input column")
	fs.Var(listValue{&cols.num}, "numeric", "comma-separated columns to treat as numeric")
	fs.Var(listValue{&cols.ignore}, "ignore", "comma-separated columns to drop")
	out := fs.String("out", "runs", "output directory")
	store := fs.String("store", "", "object store (default OUT/store)")
	splitSeed := fs.Uint64("split-seed", 0, "seed of the split")
	rows := fs.Int("rows-per-shard", 0, "rows per Parquet shard (default 65536)")
	seed := fs.Uint64("seed", 0, "seed of initialization and shuffling")
	def := pipeline.DefaultTrial(0) // the same recipe as a search's final training
	epochs := fs.Int("epochs", def.Epochs, "maximum epochs")
	batch := fs.Int("batch", def.Batch, "rows per step")
	lr := fs.Float64("lr", def.LR, "Adam learning rate")
	patience := fs.Int("patience", def.Patience, "early-stopping patience in epochs")
	name := fs.String("name", "", "output name (default train-ARCH-SEED)")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkPositive(fs, "epochs", "batch", "lr", "patience", "rows-per-shard"); err != nil {
		return err
	}
	widths, err := space.ParseWidths(*arch)
	if err != nil {
		return bad(fmt.Errorf("--arch: %w", err))
	}
	if *data == "" {
		return bad(errors.New("--data is required"))
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
	env, err := pipeline.Open(ctx, pipeline.EnvOptions{StoreURL: *store, Log: newLogger(true, false), Name: "tabnas-train"})
	if err != nil {
		return infra(err)
	}
	defer env.Close()
	ds, err := pipeline.EnsureDataset(ctx, env, pipeline.DatasetOptions{Data: *data, Target: *target, SplitSeed: *splitSeed, RowsPerShard: *rows,
		Task: cols.task, Categorical: cols.cat, Numeric: cols.num, Ignore: cols.ignore})
	if err != nil {
		return datasetErr(*data, err)
	}
	task, err := model.TaskOf(ds.Manifest)
	if err != nil {
		return bad(err)
	}
	load := func(split string) (nn.Data, error) {
		x, y, err := ds.ReadSplit(ctx, split, nil)
		return nn.Data{X: x, Y: y, Cols: ds.Manifest.FeatureWidth}, err
	}
	train, err := load(schemas.SplitTrain)
	if err != nil {
		return infra(err)
	}
	val, err := load(schemas.SplitVal)
	if err != nil {
		return infra(err)
	}
	test, err := load(schemas.SplitTest)
	if err != nil {
		return infra(err)
	}
	start := time.Now()
	trial := pipeline.MergeTrial(def, schemas.Trial{Epochs: *epochs, Batch: *batch, LR: *lr, Patience: *patience, Seed: *seed})
	net, h, err := nn.TrainStandalone(nn.Arch(widths), task, train, val, trial.TrainConfig())
	if err != nil {
		return bad(err)
	}
	secs := time.Since(start).Seconds()
	ws := net.NewWorkspace(1024)
	art, err := model.New(net, ds.Manifest)
	if err != nil {
		return err
	}
	art.Metrics = model.NewMetrics(ds.Manifest, net.Evaluate(val, ws), net.Evaluate(test, ws))
	art.Seed = *seed
	art.Created = time.Now().UTC()
	// What was used, not what was typed: the recipe after defaults.
	art.Run, _ = json.Marshal(map[string]any{"command": "train", "arch": *arch, "data": *data, "epochs": trial.Epochs, "batch": trial.Batch,
		"lr": trial.LR, "patience": trial.Patience, "seed": *seed, "split_seed": *splitSeed, "trial": trial})
	if *name == "" {
		*name = fmt.Sprintf("train-%s-%d", space.FormatWidths(widths), *seed)
	}
	dir := filepath.Join(*out, *name)
	local, err := objstore.NewLocal(dir)
	if err != nil {
		return bad(err)
	}
	if err := model.Save(ctx, local, "model", art); err != nil {
		return err
	}
	res := map[string]any{"arch": space.FormatWidths(widths), "params": space.ParamsWidths(ds.Manifest.FeatureWidth, widths, task.Outputs()),
		"val_loss": art.Metrics.ValLoss, "test_loss": art.Metrics.TestLoss, "test_metric": art.Metrics.TestMetric, "metric": art.Metrics.MetricName,
		"epochs": len(h.Epochs), "best_epoch": h.BestEpoch, "seconds": secs, "model": filepath.Join(dir, "model"), "seed": *seed}
	if *jsonOut {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return nil
	}
	fmt.Printf("%s: %v params, val loss %.4f, test loss %.4f, test %s %.4f (%d epochs, best %d, %.1fs)\nmodel: %s\n",
		res["arch"], res["params"], art.Metrics.ValLoss, art.Metrics.TestLoss, art.Metrics.MetricName, art.Metrics.TestMetric,
		len(h.Epochs), h.BestEpoch, secs, res["model"])
	return nil
}
