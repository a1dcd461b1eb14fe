package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/pipeline"
	"github.com/tabnas/tabnas/schemas"
)

const bundled = "../../data/connect4/connect4.csv.gz"

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tabnas-cmd-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "tabnas")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building tabnas: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type ran struct {
	stdout, stderr string
	code           int
}

func tabnas(t *testing.T, args ...string) ran {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := ran{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func result(t *testing.T, r ran) pipeline.Result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var res pipeline.Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line of stdout is not JSON: %v\n%s", err, r.stdout)
	}
	return res
}

var quick = []string{"--data", bundled, "--max-params", "12000", "--steps", "40", "--seed", "3", "--top-k", "1",
	"--trial-epochs", "2", "--trial-patience", "1", "--json", "--quiet", "--progress", "none"}

// The YAML spec and the same choices as flags give identical runs; flags override the file.
func TestSpecFileEqualsFlags(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "run.yaml")
	os.WriteFile(spec, []byte(fmt.Sprintf(`data: %s
constraints:
  max_params: 12000
search:
  steps: 40
  seed: 99   # overridden by --seed below
  top_k: 1
trial:
  epochs: 2
  patience: 1
`, bundled)), 0o644)
	a := result(t, tabnas(t, append([]string{"search", "--out", filepath.Join(dir, "a"), "--run", "flags"}, quick...)...))
	b := result(t, tabnas(t, "search", "--config", spec, "--seed", "3", "--out", filepath.Join(dir, "b"), "--run", "yaml", "--json", "--quiet", "--progress", "none"))
	if a.Trace != b.Trace || a.Arch != b.Arch || a.TestLoss != b.TestLoss || a.Seed != 3 || b.Seed != 3 {
		t.Fatalf("flags: %s %s %v seed %d; spec: %s %s %v seed %d", a.Trace[:12], a.Arch, a.TestLoss, a.Seed, b.Trace[:12], b.Arch, b.TestLoss, b.Seed)
	}
	for _, k := range []string{"run", "arch", "params", "feasible", "val_loss", "steps", "seed", "test_loss", "test_metric", "model", "report"} {
		if !jsonHas(t, a, k) {
			t.Errorf("result JSON lacks %q", k)
		}
	}
}

func jsonHas(t *testing.T, r pipeline.Result, key string) bool {
	b, _ := json.Marshal(r)
	var m map[string]any
	json.Unmarshal(b, &m)
	_, ok := m[key]
	return ok
}

// Bad specs and flags fail before anything runs, naming the field, with exit codes a
// scheduler can act on.
func TestBadInputExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown key", []string{"search", "--config", write("u.yaml", "data: x.csv\nconstraints:\n  max_parms: 5\n")}, exitBadInput, "max_parms"},
		{"negative budget", []string{"search", "--config", write("n.yaml", "data: x.csv\nconstraints:\n  max_params: -5\n")}, exitBadInput, "max_params"},
		{"missing data", []string{"search", "--config", write("m.yaml", "constraints:\n  max_params: 500\n")}, exitBadInput, "data"},
		{"bad method", []string{"search", "--data", bundled, "--method", "magic"}, exitBadInput, "method"},
		{"bad flag value", []string{"search", "--data", bundled, "--steps", "many"}, exitBadInput, "steps"},
		{"no such file", []string{"search", "--data", filepath.Join(dir, "absent.csv"), "--out", dir}, exitBadInput, "absent.csv"},
		{"budget too small", []string{"search", "--data", bundled, "--max-params", "100", "--out", dir}, exitInfeasible, "infeasible"},
		{"bad run id", []string{"search", "--data", bundled, "--run", "a/b"}, exitBadInput, "run"},
		{"unknown command", []string{"frobnicate"}, exitBadInput, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tabnas(t, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d (want %d), stderr %q should mention %q", r.code, c.code, r.stderr, c.want)
			}
		})
	}
}

// predict on the raw test rows of the run reproduces the run's test metric; the model
// exports to ONNX; the report can be rebuilt from the store.
func TestSearchThenPredictExportReport(t *testing.T) {
	dir := t.TempDir()
	res := result(t, tabnas(t, append([]string{"search", "--out", dir, "--run", "shipit"}, quick...)...))
	if !res.Feasible || res.Params > 12000 || res.Model == "" || res.Report == "" {
		t.Fatalf("result %+v", res)
	}
	// Raw rows of the test split, by the manifest's split rule (seed 0, 0.8/0.1/0.1).
	test := filepath.Join(dir, "test.csv")
	n := writeSplit(t, bundled, test, dataset.Test)
	r := tabnas(t, "predict", "--model", res.Model, "--data", test, "--out", filepath.Join(dir, "pred.csv"), "--json")
	if r.code != 0 {
		t.Fatalf("predict: %s", r.stderr)
	}
	var sum struct {
		Rows         int64
		Loss, Metric float64
		MetricName   string
		Labeled      bool
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stderr)), &sum); err != nil {
		t.Fatalf("predict summary: %v: %q", err, r.stderr)
	}
	if sum.Rows != int64(n) || math.Abs(sum.Metric-res.TestMetric) > 1e-9 || math.Abs(sum.Loss-res.TestLoss) > 1e-6 {
		t.Fatalf("predict on %d test rows: %s %v loss %v; run: %s %v loss %v", sum.Rows, sum.MetricName, sum.Metric, sum.Loss, res.Metric, res.TestMetric, res.TestLoss)
	}
	pred, _ := os.ReadFile(filepath.Join(dir, "pred.csv"))
	if lines := strings.Count(string(pred), "\n"); lines != n+1 || !strings.HasPrefix(string(pred), "prediction,prob_0,prob_1,prob_2") {
		t.Fatalf("predictions file: %d lines, header %q", lines, strings.SplitN(string(pred), "\n", 2)[0])
	}
	onnx := filepath.Join(dir, "m.onnx")
	if r := tabnas(t, "export", "--model", res.Model, "--onnx", onnx); r.code != 0 {
		t.Fatalf("export: %s", r.stderr)
	}
	if st, err := os.Stat(onnx); err != nil || st.Size() < int64(4*res.Params) {
		t.Fatalf("onnx file: %v %v", st, err)
	}
	page := filepath.Join(dir, "again.html")
	if r := tabnas(t, "report", "--run", "shipit", "--store", filepath.Join(dir, "store"), "--out", page); r.code != 0 {
		t.Fatalf("report: %s", r.stderr)
	}
	if b, _ := os.ReadFile(page); !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("shipit")) {
		t.Fatal("rebuilt report has no charts")
	}
	// A bad row is an error naming the row and column, and leaves no output file.
	badCSV := filepath.Join(dir, "bad.csv")
	head, _ := os.ReadFile(test)
	lines := strings.SplitN(string(head), "\n", 3)
	os.WriteFile(badCSV, []byte(lines[0]+"\n"+lines[1]+"\n"+strings.Replace(lines[1], ",", ",,", 1)+"\n"), 0o644)
	r = tabnas(t, "predict", "--model", res.Model, "--data", badCSV, "--out", filepath.Join(dir, "bad-pred.csv"))
	if r.code != exitBadInput || !strings.Contains(r.stderr, "line 3") {
		t.Fatalf("bad row: exit %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad-pred.csv")); err == nil {
		t.Fatal("a failed predict left an output file")
	}
}

func writeSplit(t *testing.T, src, dst string, split int) int {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := csv.NewReader(bufio.NewReader(gz))
	out, _ := os.Create(dst)
	defer out.Close()
	w := csv.NewWriter(out)
	head, _ := r.Read()
	w.Write(head)
	n := 0
	for i := int64(0); ; i++ {
		rec, err := r.Read()
		if err != nil {
			break
		}
		if dataset.SplitOf(0, schemas.DefaultFractions, i) == split {
			w.Write(rec)
			n++
		}
	}
	w.Flush()
	return n
}

func TestToyJSON(t *testing.T) {
	r := tabnas(t, "toy", "--seeds", "60", "--json")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tabnas", "reject", "abs", "tabnas_exact"} {
		v, ok := m[k].(float64)
		if !ok || v < 0 || v > 1 {
			t.Fatalf("toy JSON %s = %v", k, m[k])
		}
	}
	if m["tabnas"].(float64) <= m["abs"].(float64) {
		t.Fatalf("toy: tabnas %v not above abs %v", m["tabnas"], m["abs"])
	}
}
