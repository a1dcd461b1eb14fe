package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/model"
	"github.com/tabnas/tabnas/report"
	"github.com/tabnas/tabnas/schemas"
)

// Keys of a run's outputs in the store.
func ModelPrefix(run string) string { return "runs/" + run + "/model" }
func ReportKey(run string) string   { return "runs/" + run + "/report.html" }
func ReportInputKey(run string) string {
	return "runs/" + run + "/report.json"
}
func ResultKey(run string) string { return "runs/" + run + "/result.json" }

// Finish turns a finished run into what a user ships and reads: the best retrained
// network as a model artifact (with its preprocessing), the HTML report and the result
// JSON, in the store under runs/<run>/ and, when localDir is set, also under
// localDir/<run>/. It fills r.Model and r.Report.
func Finish(ctx context.Context, env *Env, out *coordinator.Outcome, r *Result, localDir string) error {
	spec := out.Spec
	if out.Best == nil {
		return fmt.Errorf("run %s has no retrained architecture", spec.Run)
	}
	ds, err := dataset.OpenDataset(ctx, env.Store, spec.Dataset.Prefix)
	if err != nil {
		return err
	}
	raw, err := env.Bus.Res.Blobs.GetBytes(ctx, out.Best.WeightsBlob)
	if err != nil {
		return fmt.Errorf("weights of %s: %w", out.Best.Arch, err)
	}
	w, err := schemas.ParseFloats(raw, nil)
	if err != nil {
		return err
	}
	widths, err := space.ParseWidths(out.Best.Arch)
	if err != nil {
		return err
	}
	net, err := nn.LoadStandalone(spec.In, nn.Arch(widths), spec.NNTask(), w)
	if err != nil {
		return err
	}
	art, err := model.New(net, ds.Manifest)
	if err != nil {
		return err
	}
	b := out.Best
	art.Metrics = model.Metrics{ValLoss: b.ValLoss, TestLoss: b.TestLoss, TestMetric: b.TestMetric, MetricName: b.Metric,
		ValRows: sum(spec.Dataset.ValRows), TestRows: sum(spec.Dataset.TestRows)}
	if art.Run, err = json.Marshal(spec); err != nil {
		return err
	}
	art.Seed = spec.Trial.Seed
	art.Created = time.Now().UTC()

	in := ReportInput(out, ds.Manifest.Source.Path)
	var page bytes.Buffer
	if err := report.Write(&page, in); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	inJSON, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("report input: %w", err)
	}
	resJSON, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}

	write := func(st objstore.Store, modelPrefix, reportKey, inputKey, resultKey string) error {
		if err := model.Save(ctx, st, modelPrefix, art); err != nil {
			return err
		}
		for _, o := range []struct {
			key  string
			data []byte
		}{{reportKey, page.Bytes()}, {inputKey, inJSON}, {resultKey, resJSON}} {
			if err := st.Put(ctx, o.key, bytes.NewReader(o.data), int64(len(o.data))); err != nil {
				return err
			}
		}
		return nil
	}
	run := spec.Run
	if err := write(env.Store, ModelPrefix(run), ReportKey(run), ReportInputKey(run), ResultKey(run)); err != nil {
		return err
	}
	r.Model = env.Store.URL() + "/" + ModelPrefix(run)
	r.Report = env.Store.URL() + "/" + ReportKey(run)
	if localDir == "" {
		return nil
	}
	dir := filepath.Join(localDir, run)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	local, err := objstore.NewLocal(dir)
	if err != nil {
		return err
	}
	if err := write(local, "model", "report.html", "report.json", "result.json"); err != nil {
		return err
	}
	r.Model, r.Report = filepath.Join(dir, "model"), filepath.Join(dir, "report.html")
	// The result file names the local copies.
	resJSON, _ = json.MarshalIndent(r, "", "  ")
	return local.Put(ctx, "result.json", bytes.NewReader(resJSON), int64(len(resJSON)))
}

func sum(v []int) int {
	s := 0
	for _, x := range v {
		s += x
	}
	return s
}

// ReportInput gathers a finished run for the HTML report.
func ReportInput(out *coordinator.Outcome, data string) report.Input {
	spec := out.Spec
	s, _ := spec.SpaceOf()
	in := report.Input{RunID: spec.Run, Dataset: data, Task: spec.NNTask().String(), Method: string(spec.Search.Policy.Method),
		Seed: spec.Search.Seed, Space: *s, Constraints: report.Constraints(spec.ParamsConstraint()), Config: report.ConfigKV(spec.Search),
		History: out.History, Selection: out.Selection.Candidates, Created: time.Now().UTC(),
		Timings: []report.Timing{{Name: "search", Duration: secs(out.Search)}, {Name: "retraining", Duration: secs(out.Retrain)}}}
	if c := spec.Constraints; c.MaxLatencyMs > 0 {
		in.Constraints = append(in.Constraints, report.Constraint{Name: "latency_ms", Limit: c.MaxLatencyMs, Text: fmt.Sprintf("latency_ms ≤ %g", c.MaxLatencyMs)})
	}
	if c := spec.Constraints; c.MaxTrainStepMs > 0 {
		in.Constraints = append(in.Constraints, report.Constraint{Name: "train_step_ms", Limit: c.MaxTrainStepMs, Text: fmt.Sprintf("train_step_ms ≤ %g", c.MaxTrainStepMs)})
	}
	if pc := out.Proxy; pc != nil {
		in.Proxy = &report.Proxy{KendallTau: report.Measured(float64(pc.KendallTau)), Spearman: report.Measured(float64(pc.Spearman)), RungTau: report.Measured(float64(pc.RungTau)), Trusted: pc.Trusted, Note: pc.Note}
		for _, p := range pc.Points {
			in.Proxy.Points = append(in.Proxy.Points, report.ProxyPoint{Arch: p.Arch, Source: p.Source, Proxy: p.Proxy, Standalone: p.Standalone})
		}
	}
	for _, t := range out.Trials {
		tr := report.Trial{Arch: t.Arch, Params: t.Params, ValLoss: t.ValLoss, TestLoss: t.TestLoss, MetricName: t.Metric, Metric: t.TestMetric, Epochs: t.Epochs, Seconds: t.Seconds}
		in.Trials = append(in.Trials, tr)
		if out.Best != nil && t.Arch == out.Best.Arch {
			res := report.Result{Trial: tr, Feasible: out.Feasible(t.Arch)}
			in.Result = &res
		}
	}
	return in
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
