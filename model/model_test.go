package model

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/advancedclimatesystems/gonnx"
	"gorgonia.org/tensor"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
)

// TestEndToEnd trains a small network on each real dataset, saves and loads it, and checks
// that prediction on the raw test rows reproduces, row by row, what the network computes on
// the ingested test shards, and that the ONNX export computes the same function.
func TestEndToEnd(t *testing.T) {
	for _, name := range []string{"adult", "california", "connect4"} {
		t.Run(name, func(t *testing.T) { testEndToEnd(t, name) })
	}
}

func testEndToEnd(t *testing.T, name string) {
	f := getFixture(t, name)
	ctx := context.Background()
	store, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(ctx, store, "models/"+name, f.art); err != nil {
		t.Fatal(err)
	}
	a, err := Load(ctx, store, "models/"+name)
	if err != nil {
		t.Fatal(err)
	}
	sameArtifact(t, f.art, a)
	t.Logf("%s: arch %s, %d inputs, %s, metrics %+v", name, a.Arch, a.In, a.Task, a.Metrics)
	p, err := a.Predictor()
	if err != nil {
		t.Fatal(err)
	}

	header, rows := f.rawSplit(t, dataset.Test)
	if len(rows) != f.test.Rows() {
		t.Fatalf("split rule gives %d raw test rows, the shards hold %d", len(rows), f.test.Rows())
	}
	in := csvBytes(t, header, rows, "")
	var out bytes.Buffer
	sum, err := p.PredictCSV(ctx, bytes.NewReader(in), &out, PredictOptions{Name: name + "-test.csv", BatchSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	m := f.art.Metrics
	if sum.Rows != int64(len(rows)) || !sum.Labeled || sum.MetricName != m.MetricName {
		t.Fatalf("summary %+v, want %d labeled rows scored by %s", sum, len(rows), m.MetricName)
	}
	if d := math.Abs(sum.Metric - m.TestMetric); d > 1e-6 {
		t.Errorf("%s from raw rows %.12g, from shards %.12g (diff %g)", m.MetricName, sum.Metric, m.TestMetric, d)
	}
	if d := math.Abs(sum.Loss - m.TestLoss); d > 1e-6 {
		t.Errorf("loss from raw rows %.12g, from shards %.12g (diff %g)", sum.Loss, m.TestLoss, d)
	}
	t.Logf("%s: test %s %.6g over %d raw rows (shards: %.6g)", name, sum.MetricName, sum.Metric, sum.Rows, m.TestMetric)

	checkRows(t, f, header, rows, out.Bytes())

	// Without the target column: same predictions, nothing scored.
	var out2 bytes.Buffer
	sum2, err := p.PredictCSV(ctx, bytes.NewReader(csvBytes(t, header, rows, "target")), &out2, PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum2.Labeled || sum2.Rows != sum.Rows {
		t.Errorf("unlabeled run: summary %+v", sum2)
	}
	if !bytes.Equal(out2.Bytes(), out.Bytes()) {
		t.Errorf("predictions differ when the target column is absent")
	}
	// Gzip-compressed input, another batch size: same output.
	var out3 bytes.Buffer
	if _, err := p.PredictCSV(ctx, bytes.NewReader(gzipBytes(t, in)), &out3, PredictOptions{BatchSize: 77}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out3.Bytes(), out.Bytes()) {
		t.Errorf("predictions differ for gzip input / batch size 77")
	}

	checkONNX(t, a, f.test)
}

func sameArtifact(t *testing.T, want, got *Artifact) {
	t.Helper()
	switch {
	case !slices.Equal(want.Arch, got.Arch) || want.Task != got.Task || want.In != got.In:
		t.Fatalf("loaded %s/%s/%d, saved %s/%s/%d", got.Arch, got.Task, got.In, want.Arch, want.Task, want.In)
	case !slices.Equal(want.Weights, got.Weights):
		t.Fatal("weights differ after the round trip")
	case want.Metrics != got.Metrics || want.Seed != got.Seed || !want.Created.Equal(got.Created):
		t.Fatalf("loaded %+v %d %v, saved %+v %d %v", got.Metrics, got.Seed, got.Created, want.Metrics, want.Seed, want.Created)
	case !bytes.Equal(compactJSON(t, want.Run), compactJSON(t, got.Run)):
		t.Fatalf("run spec %s, saved %s", got.Run, want.Run)
	}
	wm, _ := want.Manifest.Encode()
	gm, _ := got.Manifest.Encode()
	if !bytes.Equal(wm, gm) {
		t.Fatal("manifest differs after the round trip")
	}
}

func compactJSON(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	if len(b) > 0 {
		if err := json.Compact(&out, b); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// checkRows compares every output row with the network run on the matching shard row, and
// the raw row's encoding with the shard's features (bit for bit).
func checkRows(t *testing.T, f *fixture, header []string, rows [][]string, out []byte) {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	classes := f.ds.Manifest.Target.Classes
	wantHeader := []string{PredictionColumn}
	for _, c := range classes {
		wantHeader = append(wantHeader, ProbPrefix+c)
	}
	if !slices.Equal(recs[0], wantHeader) || len(recs) != len(rows)+1 {
		t.Fatalf("output header %q and %d rows, want %q and %d", recs[0], len(recs)-1, wantHeader, len(rows))
	}
	pre, err := dataset.NewPreprocessor(f.ds.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := pre.ForHeader(header)
	if err != nil {
		t.Fatal(err)
	}
	k := f.net.Net.Out
	ws := f.net.NewWorkspace(1)
	o := make([]float32, k)
	var x []float32
	for r, rec := range rows {
		s, j := dataset.Locate(int64(r), len(f.testShards))
		sh := f.testShards[s]
		want := sh.Row(int(j))
		if x, err = enc.Encode(rec, x); err != nil {
			t.Fatal(err)
		}
		for c := range x {
			if math.Float32bits(x[c]) != math.Float32bits(want[c]) {
				t.Fatalf("test row %d feature %d: raw row encodes to %v, shard holds %v", r, c, x[c], want[c])
			}
		}
		if y, err := enc.Label(rec); err != nil || y != sh.Y[j] {
			t.Fatalf("test row %d: label %v (%v), shard holds %v", r, y, err, sh.Y[j])
		}
		f.net.Predict(want, 1, ws, o)
		got := recs[r+1]
		if f.net.Net.Task.Kind == nn.Regression {
			v, err := strconv.ParseFloat(got[0], 64)
			ref := pre.DecodeRegression(float64(o[0]))
			if err != nil || math.Abs(v-ref) > 1e-5*math.Max(1, math.Abs(ref)) {
				t.Fatalf("test row %d: prediction %q, network on the shard row gives %v", r, got[0], ref)
			}
			continue
		}
		probs := o
		if k == 1 {
			probs = []float32{1 - o[0], o[0]}
		}
		best, second := 0, -1
		for c, v := range probs {
			pv, err := strconv.ParseFloat(got[1+c], 32)
			if err != nil || math.Abs(pv-float64(v)) > 1e-6 {
				t.Fatalf("test row %d: %s = %q, network on the shard row gives %v", r, wantHeader[1+c], got[1+c], v)
			}
			if v > probs[best] {
				best = c
			}
		}
		for c, v := range probs {
			if c != best && (second < 0 || v > probs[second]) {
				second = c
			}
		}
		if got[0] != classes[best] && probs[best]-probs[second] > 1e-5 {
			t.Fatalf("test row %d: predicted %q, probabilities %v say %q", r, got[0], probs, classes[best])
		}
	}
}

// checkONNX runs the exported graph with an independent ONNX runtime on real preprocessed
// rows and compares with the network.
func checkONNX(t *testing.T, a *Artifact, d nn.Data) {
	t.Helper()
	var buf bytes.Buffer
	if err := ExportONNX(a, &buf); err != nil {
		t.Fatal(err)
	}
	mdl, err := gonnx.NewModelFromBytes(buf.Bytes())
	if err != nil {
		t.Fatalf("ONNX runtime rejects the export: %v", err)
	}
	if !slices.Equal(mdl.InputNames(), []string{ONNXInput}) || !slices.Equal(mdl.OutputNames(), []string{ONNXOutput}) {
		t.Fatalf("ONNX inputs %q, outputs %q", mdl.InputNames(), mdl.OutputNames())
	}
	n := min(d.Rows(), 512)
	x := append([]float32(nil), d.X[:n*a.In]...)
	res, err := mdl.Run(gonnx.Tensors{ONNXInput: tensor.New(tensor.WithShape(n, a.In), tensor.WithBacking(x))})
	if err != nil {
		t.Fatalf("ONNX run: %v", err)
	}
	o := res[ONNXOutput]
	if o == nil || !slices.Equal([]int(o.Shape()), []int{n, a.Outputs()}) {
		t.Fatalf("ONNX output %v, want shape [%d %d]", o, n, a.Outputs())
	}
	got, ok := o.Data().([]float32)
	if !ok {
		t.Fatalf("ONNX output holds %T, want []float32", o.Data())
	}
	p, err := a.Predictor()
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.PredictFeatures(d.X[:n*a.In], n)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-4 {
		t.Fatalf("ONNX differs from Predict by up to %g", worst)
	}
	t.Logf("ONNX (%d bytes) matches Predict on %d rows within %.2g", buf.Len(), n, worst)
}

// TestONNXShapes exports networks of other depths (none, three hidden layers) for every task
// with random weights and checks them against Predict.
func TestONNXShapes(t *testing.T) {
	for _, name := range []string{"adult", "california", "connect4"} {
		f := getFixture(t, name)
		task, err := TaskOf(f.ds.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		for _, arch := range []nn.Arch{{}, {7, 5, 3}} {
			label := arch.String()
			if label == "" {
				label = "no-hidden-layer"
			}
			t.Run(name+"/"+label, func(t *testing.T) {
				net, err := nn.NewStandalone(f.ds.Manifest.FeatureWidth, arch, task, rand.New(rand.NewPCG(1, 2)))
				if err != nil {
					t.Fatal(err)
				}
				a, err := New(net, f.ds.Manifest)
				if err != nil {
					t.Fatal(err)
				}
				checkONNX(t, a, f.val)
			})
		}
	}
}

// TestFeatureNames checks that the ONNX feature names cover the input width.
func TestFeatureNames(t *testing.T) {
	f := getFixture(t, "california")
	names := FeatureNames(f.ds.Manifest)
	if len(names) != f.ds.Manifest.FeatureWidth {
		t.Fatalf("%d names for %d features", len(names), f.ds.Manifest.FeatureWidth)
	}
	if !slices.Contains(names, "total_bedrooms#missing") || !slices.Contains(names, "ocean_proximity=NEAR BAY") {
		t.Fatalf("names %q lack the missing indicator or a category", names)
	}
}
