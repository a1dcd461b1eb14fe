package nn

import (
	"math"
	"reflect"
	"testing"
)

func TestCosineLR(t *testing.T) {
	for _, c := range []struct{ base, minF, p, want float64 }{
		{1e-3, 0, 0, 1e-3},
		{1e-3, 0, 0.5, 5e-4},
		{1e-3, 0, 1, 0},
		{1e-3, 0.1, 0.5, 1e-4 + 9e-4*0.5},
		{1e-3, 0.1, 1, 1e-4},
		{1e-3, 0, 0.25, 1e-3 * (1 + math.Sqrt2/2) / 2},
		{1e-3, 0, -1, 1e-3}, // clamped
		{1e-3, 0, 2, 0},
	} {
		if got := CosineLR(c.base, c.minF, c.p); math.Abs(got-c.want) > 1e-18 {
			t.Errorf("CosineLR(%g, %g, %g) = %.17g, want %.17g", c.base, c.minF, c.p, got, c.want)
		}
	}
}

// The learning rate of each epoch's first step, as recorded in the history, at known epochs.
func TestScheduleAtKnownEpochs(t *testing.T) {
	task := BinaryTask()
	x, y := randomBatch(3, 64, task, 1)
	vx, vy := randomBatch(3, 32, task, 2)
	train, val := Data{X: x, Y: y, Cols: 3}, Data{X: vx, Y: vy, Cols: 3}
	cfg := TrainConfig{Epochs: 8, BatchSize: 64, LR: 0.01, Patience: 100, Schedule: ScheduleCosine, MinLRFactor: 0.1, WeightDecay: -1, Seed: 3}
	_, h, err := TrainStandalone(Arch{4}, task, train, val, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Epochs) != 8 {
		t.Fatalf("%d epochs", len(h.Epochs))
	}
	// One step per epoch: epoch e starts at progress (e−1)/8.
	for e, want := range map[int]float64{1: 0.01, 3: 0.001 + 0.009*(1+math.Cos(math.Pi/4))/2, 5: 0.0055, 7: 0.001 + 0.009*(1+math.Cos(3*math.Pi/4))/2} {
		if got := h.Epochs[e-1].LR; math.Abs(got-want) > 1e-15 {
			t.Errorf("cosine epoch %d: lr %.17g, want %.17g", e, got, want)
		}
	}
	// Two steps per epoch: the second step of epoch 5 is at progress 4.5/8.
	tr := &trainer{cfg: TrainConfig{Epochs: 8, LR: 0.01, MinLRFactor: 0.1, Schedule: ScheduleCosine}, steps: 2}
	if got, want := tr.lr(5, 1), CosineLR(0.01, 0.1, 4.5/8); got != want {
		t.Errorf("cosine step: %g, want %g", got, want)
	}
	// Constant: the base rate.
	cfg.Schedule, cfg.Epochs = ScheduleConstant, 3
	if _, h, err = TrainStandalone(Arch{4}, task, train, val, cfg); err != nil {
		t.Fatal(err)
	}
	for _, ep := range h.Epochs {
		if ep.LR != 0.01 {
			t.Errorf("constant epoch %d: lr %g", ep.Epoch, ep.LR)
		}
	}
}

func TestPlateauSchedule(t *testing.T) {
	cfg := TrainConfig{LR: 0.01, Schedule: SchedulePlateau, PlateauPatience: 2, PlateauFactor: 0.5, MinLRFactor: 0.2}.withDefaults()
	tr := &trainer{cfg: cfg, plateau: cfg.LR}
	// improved after each epoch, and the rate of the next epoch
	steps := []struct {
		improved bool
		want     float64
	}{
		{true, 0.01}, {false, 0.01}, {false, 0.005}, {true, 0.005}, {false, 0.005}, {false, 0.0025},
		{false, 0.0025}, {false, 0.002}, {false, 0.002}, {false, 0.002}, // floored at 0.2·lr
	}
	for i, s := range steps {
		tr.endEpoch(s.improved)
		if got := tr.lr(i+2, 0); math.Abs(got-s.want) > 1e-18 {
			t.Errorf("after epoch %d: lr %g, want %g", i+1, got, s.want)
		}
	}
	if d := (TrainConfig{Schedule: SchedulePlateau}).withDefaults(); d.MinLRFactor != 1.0/64 || d.PlateauPatience != 2 || d.PlateauFactor != 0.5 || d.WeightDecay != 0.3 {
		t.Errorf("plateau defaults %+v", d)
	}
}

// With a zero gradient Adam leaves the weights alone, so AdamW's decay is all that acts:
// W ← W·(1 − lr_t·λ) after every step, in float32, and the biases never change.
func TestWeightDecayZeroGradient(t *testing.T) {
	task := MulticlassTask(3)
	net := randomNet(5, []int{4, 6}, task, 7)
	model := &Standalone{Net: net, Arch: Arch{4, 6}}
	cfg := TrainConfig{Epochs: 10, LR: 0.05, WeightDecay: 0.3, Schedule: ScheduleCosine}.withDefaults()
	tr := newTrainer(model, cfg, 10)
	want := append([]float32(nil), net.Weights...)
	isBias := make([]bool, len(want))
	for _, ly := range net.layers {
		for j := 0; j < ly.out; j++ {
			isBias[ly.b+j] = true
		}
	}
	tr.g.Zero(model.Arch)
	for k := 0; k < 5; k++ {
		lr := tr.lr(1+k/2, k%2)
		tr.update(lr)
		f := float32(1 - lr*0.3)
		for i := range want {
			if !isBias[i] {
				want[i] *= f
			}
		}
	}
	for i := range want {
		if net.Weights[i] != want[i] {
			t.Fatalf("weight %d (bias %v): %v, want %v", i, isBias[i], net.Weights[i], want[i])
		}
	}
	// No decay: nothing moves.
	before := append([]float32(nil), net.Weights...)
	tr.cfg.WeightDecay = 0
	tr.update(0.05)
	if !reflect.DeepEqual(before, net.Weights) {
		t.Error("weights moved without gradient or decay")
	}
	if d := (TrainConfig{WeightDecay: -1}).withDefaults(); d.WeightDecay != 0 {
		t.Errorf("negative decay gives %g, want none", d.WeightDecay)
	}
}

func TestRecipeDeterministic(t *testing.T) {
	task := MulticlassTask(3)
	x, y := randomBatch(6, 300, task, 11)
	vx, vy := randomBatch(6, 100, task, 12)
	train, val := Data{X: x, Y: y, Cols: 6}, Data{X: vx, Y: vy, Cols: 6}
	for _, cfg := range []TrainConfig{
		{Epochs: 12, BatchSize: 32, LR: 3e-3, Patience: 4, Schedule: ScheduleCosine, WeightDecay: 0.1, Seed: 5},
		{Epochs: 12, BatchSize: 32, LR: 3e-3, Patience: 6, Schedule: SchedulePlateau, PlateauPatience: 1, WeightDecay: 0.1, Seed: 5},
		{Epochs: 12, BatchSize: 32, LR: 3e-3, Patience: 4, Refit: true, Seed: 5},
	} {
		a, ha, err := TrainStandalone(Arch{8, 5}, task, train, val, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, hb, err := TrainStandalone(Arch{8, 5}, task, train, val, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a.Net.Weights, b.Net.Weights) || !reflect.DeepEqual(ha, hb) {
			t.Errorf("%+v: two runs differ", cfg)
		}
		if cfg.Refit != (ha.RefitEpochs == ha.BestEpoch && ha.BestEpoch > 0) {
			t.Errorf("%+v: refit %d epochs, best %d", cfg, ha.RefitEpochs, ha.BestEpoch)
		}
		cfg.Seed++
		c, _, err := TrainStandalone(Arch{8, 5}, task, train, val, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(a.Net.Weights, c.Net.Weights) {
			t.Errorf("%+v: another seed gives the same weights", cfg)
		}
	}
}

func TestTrainConfigCheck(t *testing.T) {
	for _, c := range []TrainConfig{
		{Schedule: "linear"}, {WeightDecay: math.NaN()}, {MinLRFactor: 2}, {PlateauFactor: 1}, {LR: math.Inf(1)},
	} {
		if err := c.Check(); err == nil {
			t.Errorf("%+v accepted", c)
		}
		if _, _, err := TrainStandalone(Arch{2}, BinaryTask(), Data{X: []float32{1}, Y: []float32{1}, Cols: 1}, Data{X: []float32{1}, Y: []float32{1}, Cols: 1}, c); err == nil {
			t.Errorf("TrainStandalone accepted %+v", c)
		}
	}
}
