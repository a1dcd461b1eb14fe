package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Standalone is one fixed architecture: a SuperNet whose maximum widths are the
// architecture, so it runs through exactly the SuperNet code.
type Standalone struct {
	Net  *SuperNet
	Arch Arch
}

// NewStandalone initializes a network of architecture arch (see NewSuperNet).
func NewStandalone(in int, arch Arch, task Task, rng *rand.Rand) (*Standalone, error) {
	n, err := NewSuperNet(in, arch, task, rng)
	if err != nil {
		return nil, err
	}
	return &Standalone{Net: n, Arch: Arch(n.MaxWidths)}, nil
}

// LoadStandalone builds a network of architecture arch around existing weights (copied).
func LoadStandalone(in int, arch Arch, task Task, weights []float32) (*Standalone, error) {
	n, err := LoadSuperNet(in, arch, task, weights)
	if err != nil {
		return nil, err
	}
	return &Standalone{Net: n, Arch: Arch(n.MaxWidths)}, nil
}

// ExtractStandalone copies child arch of a SuperNet into a stand-alone network.
func ExtractStandalone(n *SuperNet, arch Arch) (*Standalone, error) {
	if err := n.CheckArch(arch); err != nil {
		return nil, err
	}
	buf := make([]float32, n.SliceLen(arch))
	n.PackSlice(arch, buf)
	return LoadStandalone(n.In, arch, n.Task, buf)
}

// NewWorkspace sizes a workspace for batches of up to maxRows rows.
func (s *Standalone) NewWorkspace(maxRows int) *Workspace { return NewWorkspace(s.Net, maxRows) }

// Forward returns the logits (see SuperNet.Forward).
func (s *Standalone) Forward(x []float32, rows int, ws *Workspace) []float32 {
	return s.Net.Forward(s.Arch, x, rows, ws)
}

// Loss returns Σ_rows loss (see SuperNet.Loss).
func (s *Standalone) Loss(x, labels []float32, rows int, ws *Workspace) float64 {
	return s.Net.Loss(s.Arch, x, labels, rows, ws)
}

// Predict writes predictions into out (see SuperNet.Predict).
func (s *Standalone) Predict(x []float32, rows int, ws *Workspace, out []float32) {
	s.Net.Predict(s.Arch, x, rows, ws, out)
}

// Evaluate returns mean loss and accuracy on d.
func (s *Standalone) Evaluate(d Data, ws *Workspace) Metrics {
	return s.Net.Evaluate(s.Arch, d.X, d.Y, d.Rows(), ws)
}

// Data is a row-major feature matrix with one label per row.
type Data struct {
	X    []float32 // Rows() × Cols
	Y    []float32 // value (regression) or class index (classification)
	Cols int
}

// Rows is the number of examples.
func (d Data) Rows() int { return len(d.Y) }

// Validate reports empty data, a shape mismatch, a NaN/Inf feature or label, or a label the
// task cannot use, naming the row and column.
func (d Data) Validate(task Task) error {
	if d.Rows() == 0 {
		return errors.New("data is empty")
	}
	if d.Cols < 1 {
		return fmt.Errorf("data has %d feature columns", d.Cols)
	}
	if len(d.X) != d.Rows()*d.Cols {
		return fmt.Errorf("%d features for %d rows × %d columns", len(d.X), d.Rows(), d.Cols)
	}
	for i, v := range d.X {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("feature at row %d, column %d is %v", i/d.Cols, i%d.Cols, v)
		}
	}
	for r, y := range d.Y {
		if err := task.CheckLabel(y); err != nil {
			return fmt.Errorf("row %d: %w", r, err)
		}
	}
	return nil
}

// TrainConfig controls TrainStandalone. Zero fields take the defaults.
type TrainConfig struct {
	Epochs    int     // maximum number of epochs (default 100)
	BatchSize int     // rows per Adam step (default 256)
	LR        float64 // Adam learning rate (default 1e-3)
	Patience  int     // epochs without a better validation loss before stopping (default 10)
	Seed      uint64  // initialization and shuffling
}

func (c TrainConfig) withDefaults() TrainConfig {
	if c.Epochs <= 0 {
		c.Epochs = 100
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	if c.LR <= 0 {
		c.LR = 1e-3
	}
	if c.Patience <= 0 {
		c.Patience = 10
	}
	return c
}

// EpochStats records one epoch.
type EpochStats struct {
	Epoch       int     // 1-based
	TrainLoss   float64 // mean loss over the epoch's batches, before each batch's update
	ValLoss     float64 // mean validation loss after the epoch
	ValAccuracy float64 // classification only
}

// History is the course of a TrainStandalone run.
type History struct {
	InitialValLoss float64 // validation loss of the initial weights
	Epochs         []EpochStats
	BestEpoch      int // epoch whose weights were kept (0: the initial weights)
	BestValLoss    float64
}

// TrainStandalone trains architecture arch from scratch with mini-batch Adam on train,
// shuffling every epoch, evaluating on val after every epoch and stopping after Patience
// epochs without improvement. The returned model holds the weights of the best epoch.
func TrainStandalone(arch Arch, task Task, train, val Data, cfg TrainConfig) (*Standalone, History, error) {
	cfg = cfg.withDefaults()
	var h History
	if err := task.Validate(); err != nil {
		return nil, h, err
	}
	if err := checkWidths(arch, nil); err != nil {
		return nil, h, err
	}
	if err := train.Validate(task); err != nil {
		return nil, h, fmt.Errorf("nn: training data: %w", err)
	}
	if err := val.Validate(task); err != nil {
		return nil, h, fmt.Errorf("nn: validation data: %w", err)
	}
	if train.Cols != val.Cols {
		return nil, h, fmt.Errorf("nn: training data has %d columns, validation data %d", train.Cols, val.Cols)
	}
	// Separate streams so that changing the shuffling never changes the initialization.
	model, err := NewStandalone(train.Cols, arch, task, rand.New(rand.NewPCG(cfg.Seed, 1)))
	if err != nil {
		return nil, h, err
	}
	shuffle := rand.New(rand.NewPCG(cfg.Seed, 2))

	net, cols, bs := model.Net, train.Cols, min(cfg.BatchSize, train.Rows())
	ws := NewWorkspace(net, bs)
	g := net.NewGrads()
	opt := net.NewAdam(cfg.LR)
	bx, by := make([]float32, bs*cols), make([]float32, bs)
	perm := make([]int, train.Rows())
	for i := range perm {
		perm[i] = i
	}
	best := append([]float32(nil), net.Weights...)
	h.InitialValLoss = model.Evaluate(val, ws).Loss
	h.BestValLoss = h.InitialValLoss
	wait := 0
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		shuffle.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		var sum float64
		for start := 0; start < len(perm); start += bs {
			idx := perm[start:min(start+bs, len(perm))]
			for k, r := range idx {
				copy(bx[k*cols:(k+1)*cols], train.X[r*cols:(r+1)*cols])
				by[k] = train.Y[r]
			}
			sum += net.TrainStep(model.Arch, bx, by, len(idx), ws, g, opt)
		}
		m := model.Evaluate(val, ws)
		h.Epochs = append(h.Epochs, EpochStats{Epoch: epoch, TrainLoss: sum / float64(len(perm)),
			ValLoss: m.Loss, ValAccuracy: m.Accuracy})
		if m.Loss < h.BestValLoss { // false for NaN: a diverged epoch never becomes the best
			h.BestValLoss, h.BestEpoch, wait = m.Loss, epoch, 0
			copy(best, net.Weights)
		} else if wait++; wait >= cfg.Patience {
			break
		}
		if math.IsNaN(sum) || math.IsInf(sum, 0) {
			break // diverged; the best weights so far are kept
		}
	}
	copy(net.Weights, best)
	return model, h, nil
}
