package nn

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The shared datasets live beside the repository (shared/ next to it).
const higgsPath = "../../../shared/datasets/higgs/higgs_26k.csv.gz"

// readCSVSample reads the first rows data rows of a gzip CSV whose last column is the label.
func readCSVSample(t *testing.T, path string, rows int) (x [][]float64, y []float32) {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("dataset %s not found (shared/ is expected beside the repository); skipping", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Scan() // header
	for len(y) < rows && sc.Scan() {
		fields := strings.Split(sc.Text(), ",")
		row := make([]float64, len(fields)-1)
		for i, s := range fields[:len(fields)-1] {
			if row[i], err = strconv.ParseFloat(s, 64); err != nil {
				t.Fatalf("%s row %d column %d: %v", path, len(y)+1, i, err)
			}
		}
		lab, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("%s row %d label: %v", path, len(y)+1, err)
		}
		x = append(x, row)
		y = append(y, float32(lab))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return x, y
}

// standardize turns rows into Data with train's mean and standard deviation per column.
func standardize(train, val [][]float64, ytr, yva []float32) (Data, Data) {
	cols := len(train[0])
	mean, sd := make([]float64, cols), make([]float64, cols)
	for _, r := range train {
		for j, v := range r {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(len(train))
	}
	for _, r := range train {
		for j, v := range r {
			sd[j] += (v - mean[j]) * (v - mean[j])
		}
	}
	for j := range sd {
		sd[j] = math.Sqrt(sd[j] / float64(len(train)))
		if sd[j] == 0 {
			sd[j] = 1
		}
	}
	conv := func(rows [][]float64, y []float32) Data {
		d := Data{X: make([]float32, 0, len(rows)*cols), Y: y, Cols: cols}
		for _, r := range rows {
			for j, v := range r {
				d.X = append(d.X, float32((v-mean[j])/sd[j]))
			}
		}
		return d
	}
	return conv(train, ytr), conv(val, yva)
}

// On a real sample of HIGGS (binary), training must beat the constant predictor P(y=1) =
// training base rate on validation log-loss by at least 0.01 nats, and the returned model
// must be the best epoch's.
func TestTrainStandaloneHiggs(t *testing.T) {
	const nTrain, nVal = 8000, 2000
	x, y := readCSVSample(t, higgsPath, nTrain+nVal)
	if len(y) < nTrain+nVal {
		t.Fatalf("%s has only %d rows", higgsPath, len(y))
	}
	train, val := standardize(x[:nTrain], x[nTrain:], y[:nTrain], y[nTrain:])

	var pos float64
	for _, v := range train.Y {
		pos += float64(v)
	}
	p := pos / nTrain
	var constLoss float64
	for _, v := range val.Y {
		if v == 1 {
			constLoss -= math.Log(p)
		} else {
			constLoss -= math.Log(1 - p)
		}
	}
	constLoss /= nVal

	model, h, err := TrainStandalone(Arch{64, 32}, BinaryTask(), train, val,
		TrainConfig{Epochs: 30, BatchSize: 128, LR: 1e-3, Patience: 5, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range h.Epochs {
		t.Logf("epoch %2d train %.4f val %.4f acc %.3f", e.Epoch, e.TrainLoss, e.ValLoss, e.ValAccuracy)
	}
	t.Logf("constant predictor val loss %.4f; best epoch %d val %.4f", constLoss, h.BestEpoch, h.BestValLoss)
	if h.BestValLoss > constLoss-0.01 {
		t.Errorf("best validation loss %.4f does not beat the constant predictor %.4f by 0.01", h.BestValLoss, constLoss)
	}
	if first, last := h.Epochs[0].TrainLoss, h.Epochs[len(h.Epochs)-1].TrainLoss; !(last < first) {
		t.Errorf("training loss did not decrease: %.4f → %.4f", first, last)
	}
	ws := model.NewWorkspace(256)
	// Another workspace size sums the loss in other chunks: equal up to rounding.
	if got := model.Evaluate(val, ws).Loss; !near(got, h.BestValLoss, 0, 1e-12) {
		t.Errorf("returned model's validation loss %v ≠ best epoch's %v (best weights not kept)", got, h.BestValLoss)
	}
}

// Same seed, same result; the stand-alone path is deterministic.
func TestTrainStandaloneDeterministic(t *testing.T) {
	train, val := synthetic(MulticlassTask(3), 300, 100, 5)
	cfg := TrainConfig{Epochs: 4, BatchSize: 32, Seed: 9}
	a, _, err := TrainStandalone(Arch{8}, MulticlassTask(3), train, val, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := TrainStandalone(Arch{8}, MulticlassTask(3), train, val, cfg)
	for i := range a.Net.Weights {
		if math.Float32bits(a.Net.Weights[i]) != math.Float32bits(b.Net.Weights[i]) {
			t.Fatalf("weight %d differs between identical runs", i)
		}
	}
}

// synthetic builds learnable data: a random linear map of standard-normal features,
// thresholded into classes or used as a regression target.
func synthetic(task Task, nTrain, nVal int, cols int) (Data, Data) {
	rng := testRNG(77)
	k := task.Outputs()
	w := make([]float64, cols*k)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	gen := func(rows int) Data {
		d := Data{X: make([]float32, rows*cols), Y: make([]float32, rows), Cols: cols}
		for r := 0; r < rows; r++ {
			s := make([]float64, k)
			for j := 0; j < cols; j++ {
				v := rng.NormFloat64()
				d.X[r*cols+j] = float32(v)
				for c := 0; c < k; c++ {
					s[c] += v * w[j*k+c]
				}
			}
			switch task.Kind {
			case Regression:
				d.Y[r] = float32(math.Abs(s[0]) + 0.1*rng.NormFloat64())
			case Binary:
				if s[0]*s[0] > 1 {
					d.Y[r] = 1
				}
			case Multiclass:
				best := 0
				for c := range s {
					if s[c] > s[best] {
						best = c
					}
				}
				d.Y[r] = float32(best)
			}
		}
		return d
	}
	return gen(nTrain), gen(nVal)
}

// Every task learns a non-linear synthetic problem well below its constant-predictor loss.
func TestTrainStandaloneSynthetic(t *testing.T) {
	for _, task := range allTasks {
		train, val := synthetic(task, 1500, 500, 6)
		model, h, err := TrainStandalone(Arch{32, 16}, task, train, val,
			TrainConfig{Epochs: 40, BatchSize: 64, LR: 3e-3, Patience: 5, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		c := constantLoss(task, train, val)
		t.Logf("%v: initial %.4f, best %.4f at epoch %d, constant %.4f", task, h.InitialValLoss, h.BestValLoss, h.BestEpoch, c)
		if h.BestValLoss > 0.7*c {
			t.Errorf("%v: best validation loss %.4f not below 0.7 × constant predictor %.4f", task, h.BestValLoss, c)
		}
		if m := model.Evaluate(val, model.NewWorkspace(100)); !near(m.Loss, h.BestValLoss, 0, 1e-12) {
			t.Errorf("%v: model loss %v ≠ best %v", task, m.Loss, h.BestValLoss)
		}
	}
}

// constantLoss is the validation loss of the best constant prediction fitted on train.
func constantLoss(task Task, train, val Data) float64 {
	k := task.Outputs()
	switch task.Kind {
	case Regression:
		var m float64
		for _, y := range train.Y {
			m += float64(y)
		}
		m /= float64(train.Rows())
		var s float64
		for _, y := range val.Y {
			s += (float64(y) - m) * (float64(y) - m)
		}
		return s / float64(val.Rows())
	default:
		n := max(k, 2)
		freq := make([]float64, n)
		for _, y := range train.Y {
			freq[int(y)]++
		}
		var s float64
		for _, y := range val.Y {
			s -= math.Log(freq[int(y)] / float64(train.Rows()))
		}
		return s / float64(val.Rows())
	}
}

func TestTrainStandaloneErrors(t *testing.T) {
	good, val := synthetic(MulticlassTask(3), 20, 10, 4)
	nan := Data{X: append([]float32(nil), good.X...), Y: good.Y, Cols: 4}
	nan.X[4*3+2] = float32(math.NaN())
	inf := Data{X: good.X, Y: append([]float32(nil), good.Y...), Cols: 4}
	inf.Y[5] = float32(math.Inf(1))
	badLabel := Data{X: good.X, Y: append([]float32(nil), good.Y...), Cols: 4}
	badLabel.Y[7] = 3
	frac := Data{X: good.X, Y: append([]float32(nil), good.Y...), Cols: 4}
	frac.Y[2] = 0.5
	cases := []struct {
		name       string
		arch       Arch
		task       Task
		train, val Data
		want       string
	}{
		{"nan feature", Arch{4}, MulticlassTask(3), nan, val, "row 3, column 2 is NaN"},
		{"inf label", Arch{4}, MulticlassTask(3), inf, val, "row 5: label is +Inf"},
		{"label out of range", Arch{4}, MulticlassTask(3), badLabel, val, "row 7: label 3 out of range"},
		{"fractional label", Arch{4}, MulticlassTask(3), frac, val, "row 2: label 0.5"},
		{"binary label 2", Arch{4}, BinaryTask(), good, val, "not 0 or 1"},
		{"empty train", Arch{4}, MulticlassTask(3), Data{Cols: 4}, val, "training data: data is empty"},
		{"empty val", Arch{4}, MulticlassTask(3), good, Data{Cols: 4}, "validation data: data is empty"},
		{"zero width", Arch{4, 0}, MulticlassTask(3), good, val, "width 0 at layer 1"},
		{"one class", Arch{4}, MulticlassTask(1), good, val, "at least 2 classes"},
		{"column mismatch", Arch{4}, MulticlassTask(3), good, Data{X: val.X[:len(val.X)/2], Y: val.Y[:len(val.Y)/2], Cols: 2}, "columns"},
		{"shape", Arch{4}, MulticlassTask(3), Data{X: good.X[:7], Y: good.Y, Cols: 4}, val, "7 features for 20 rows"},
	}
	for _, c := range cases {
		_, _, err := TrainStandalone(c.arch, c.task, c.train, c.val, TrainConfig{Epochs: 1})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
