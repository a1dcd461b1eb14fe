package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/pipeline"
)

// tinyCSV writes a small binary-classification CSV (two numeric inputs) and returns its path.
func tinyCSV(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("a,b,target\n")
	for i := 0; i < 120; i++ {
		a, c := float64(i%17)/4, float64((i*7)%11)
		fmt.Fprintf(&b, "%g,%g,%d\n", a, c, map[bool]int{true: 1, false: 0}[a+c/3 > 3])
	}
	p := filepath.Join(dir, "tiny.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFlagAndPathErrors walks values that used to be silently replaced by a default, and
// user mistakes that used to exit 4 (infrastructure), through the command: each exits 2 and
// the message names the flag or the path.
func TestFlagAndPathErrors(t *testing.T) {
	dir := t.TempDir()
	data := tinyCSV(t, dir)
	store := filepath.Join(dir, "store")
	out := filepath.Join(dir, "out")
	if r := tabnas(t, "ingest", "--data", data, "--store", store, "--prefix", "ds/tiny"); r.code != 0 {
		t.Fatalf("ingest: exit %d\n%s", r.code, r.stderr)
	}
	search := func(args ...string) []string {
		return append([]string{"search", "--data", data, "--out", out, "--max-params", "500", "--progress", "none", "--quiet"}, args...)
	}
	train := func(args ...string) []string {
		return append([]string{"train", "--arch", "4", "--data", data, "--out", out}, args...)
	}
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte("data: "+data+"\nsearch:\n  steps: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string // in the message
	}{
		{"search --steps 0", search("--steps", "0"), "--steps 0"},
		{"search --steps -3", search("--steps", "-3"), "--steps -3"},
		{"search --layers 0", search("--layers", "0"), "--layers 0"},
		{"search --lr -1", search("--lr", "-1"), "--lr -1"},
		{"search --warmup 0", search("--warmup", "0"), "--warmup 0"},
		{"search --batch 0", search("--batch", "0"), "--batch 0"},
		{"search --trial-epochs 0", search("--trial-epochs", "0"), "--trial-epochs 0"},
		{"search --evaluators 0", search("--evaluators", "0"), "--evaluators 0"},
		{"search --samples 0 with --config", []string{"search", "--config", spec, "--samples", "0"}, "--samples 0"},
		{"train --epochs 0", train("--epochs", "0"), "--epochs 0"},
		{"train --lr -1", train("--lr", "-1"), "--lr -1"},
		{"train --lr NaN", train("--lr", "NaN"), "--lr NaN"},
		{"train --batch 0", train("--batch", "0"), "--batch 0"},
		{"train --patience -1", train("--patience", "-1"), "--patience -1"},
		{"ingest --rows-per-shard 0", []string{"ingest", "--data", data, "--store", store, "--prefix", "x", "--rows-per-shard", "0"}, "--rows-per-shard 0"},

		{"search: directory as data", search("--data", dir), dir},
		{"train: directory as data", train("--data", dir), dir},
		{"ingest: directory as data", []string{"ingest", "--data", dir, "--store", store, "--prefix", "d"}, dir},
		{"search: missing data file", search("--data", filepath.Join(dir, "absent.csv")), "absent.csv"},
		{"search: invalid dataset prefix", search("--data", "dataset:../../x"), "dataset:../../x"},
		{"train: invalid dataset prefix", train("--data", "dataset:a//b"), "dataset:a//b"},
		{"search: no dataset at prefix", search("--data", "dataset:ds/none", "--store", store), "dataset:ds/none"},
		{"ingest: invalid prefix", []string{"ingest", "--data", data, "--store", store, "--prefix", "../up"}, "--prefix ../up"},
		{"ingest: existing dataset", []string{"ingest", "--data", data, "--store", store, "--prefix", "ds/tiny"}, "--overwrite"},
		{"resume: bad run id", []string{"resume", "--run", "../x", "--store", store}, "--run"},
		{"report: bad run id", []string{"report", "--run", "../x", "--store", store}, "--run"},
	}
	if os.Getuid() != 0 { // root reads any file
		locked := filepath.Join(dir, "locked.csv")
		if err := os.WriteFile(locked, []byte("a,target\n1,0\n"), 0o000); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct {
			name string
			args []string
			want string
		}{"search: unreadable data file", search("--data", locked), "locked.csv"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tabnas(t, c.args...)
			if r.code != exitBadInput || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d (want %d), stderr %q should name %q", r.code, exitBadInput, r.stderr, c.want)
			}
		})
	}
}

// TestHelpDocumentsDefaults: the zero values that mean something are documented.
func TestHelpDocumentsDefaults(t *testing.T) {
	r := tabnas(t, "search", "-h")
	for _, want := range []string{"no parameter limit", "search steps (default 500)", "hidden layers, 1..32 (default 3)",
		fmt.Sprintf("retraining (default %d)", pipeline.DefaultTrial(0).Patience)} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("search -h does not say %q", want)
		}
	}
	r = tabnas(t, "train", "-h")
	if !strings.Contains(r.stdout, fmt.Sprintf("maximum epochs (default %d)", pipeline.DefaultTrial(0).Epochs)) {
		t.Errorf("train -h does not give the default epochs:\n%s", r.stdout)
	}
}

// TestTrainRecordsUsedRecipeAndPredictClips: model.json records the recipe the training
// used (defaults filled in), and predict on a row with a cell of 1e308 writes no NaN and
// reports the clipped row.
func TestTrainRecordsUsedRecipeAndPredictClips(t *testing.T) {
	dir := t.TempDir()
	data := tinyCSV(t, dir)
	out := filepath.Join(dir, "out")
	if r := tabnas(t, "train", "--arch", "4", "--data", data, "--out", out, "--epochs", "2", "--name", "m"); r.code != 0 {
		t.Fatalf("train: exit %d\n%s", r.code, r.stderr)
	}
	raw, err := os.ReadFile(filepath.Join(out, "m", "model", "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	var art struct {
		Run map[string]any `json:"run"`
	}
	if err := json.Unmarshal(raw, &art); err != nil {
		t.Fatal(err)
	}
	def := pipeline.DefaultTrial(0)
	if art.Run["epochs"] != 2.0 || art.Run["lr"] != def.LR || art.Run["batch"] != float64(def.Batch) || art.Run["patience"] != float64(def.Patience) {
		t.Fatalf("model.json run %v, want epochs 2 and the default lr, batch and patience", art.Run)
	}

	rows := filepath.Join(dir, "rows.csv")
	if err := os.WriteFile(rows, []byte("a,b,target\n1,2,0\n1e308,2,1\n-1e300,5,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pred := filepath.Join(dir, "pred.csv")
	r := tabnas(t, "predict", "--model", filepath.Join(out, "m", "model"), "--data", rows, "--out", pred, "--json")
	if r.code != 0 {
		t.Fatalf("predict: exit %d\n%s", r.code, r.stderr)
	}
	got, err := os.ReadFile(pred)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(got)), "nan") || strings.Count(string(got), "\n") != 4 {
		t.Fatalf("predictions:\n%s", got)
	}
	var sum struct {
		Rows, Clipped, Rejected int64
		Labeled                 bool
		Loss                    float64
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stderr)), &sum); err != nil {
		t.Fatalf("summary %q: %v", r.stderr, err)
	}
	if sum.Rows != 3 || sum.Clipped != 2 || sum.Rejected != 0 || !sum.Labeled || math.IsNaN(sum.Loss) {
		t.Fatalf("summary %+v", sum)
	}
}

// TestUnmeetableLatencyExitsUpFront: a latency limit far below what the smallest
// architecture takes exits 3 before the search, naming the flag (no step is run, so no
// step count appears in the output).
func TestUnmeetableLatencyExitsUpFront(t *testing.T) {
	dir := t.TempDir()
	for _, flag := range []string{"--max-latency-ms", "--max-train-step-ms"} {
		r := tabnas(t, "search", "--data", tinyCSV(t, dir), "--out", filepath.Join(dir, "out"), flag, "1e-9",
			"--steps", "20", "--progress", "none", "--quiet", "--json")
		if r.code != exitInfeasible || !strings.Contains(r.stderr, flag) || !strings.Contains(r.stderr, "smallest architecture") {
			t.Fatalf("%s: exit %d (want %d), stderr %q", flag, r.code, exitInfeasible, r.stderr)
		}
	}
}
