package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/tabnas/tabnas/internal/optim"
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

// Learning-rate schedules of TrainConfig.Schedule.
const (
	ScheduleConstant = "constant" // the base learning rate throughout
	ScheduleCosine   = "cosine"   // cosine decay from LR to LR·MinLRFactor over the Epochs budget, per step
	SchedulePlateau  = "plateau"  // LR × PlateauFactor after PlateauPatience epochs without a better validation loss
)

// TrainConfig controls TrainStandalone. Zero fields take the defaults; where zero is the
// default, a negative value switches the feature off.
type TrainConfig struct {
	Epochs    int     // maximum number of epochs (default 100)
	BatchSize int     // rows per Adam step (default 256)
	LR        float64 // base Adam learning rate (default 1e-3)
	Patience  int     // epochs without a better validation loss before stopping (default 10)
	Seed      uint64  // initialization and shuffling

	// Schedule is the learning-rate schedule: ScheduleConstant, ScheduleCosine or
	// SchedulePlateau (default DefaultSchedule).
	Schedule string
	// MinLRFactor is the floor of the schedule as a fraction of LR: the end of the cosine
	// (default DefaultMinLRFactor), the lowest plateau rate (default DefaultPlateauFloor);
	// negative: 0.
	MinLRFactor float64
	// PlateauPatience is the number of epochs without a better validation loss after which
	// the plateau schedule multiplies the rate by PlateauFactor (default
	// DefaultPlateauPatience).
	PlateauPatience int
	// PlateauFactor is the plateau schedule's multiplier, in (0, 1) (default
	// DefaultPlateauFactor).
	PlateauFactor float64
	// WeightDecay is the decoupled (AdamW) weight decay λ: before every Adam step each weight
	// of a W matrix (not the biases) is multiplied by 1 − lr_t·λ, lr_t the step's learning rate
	// (default DefaultWeightDecay; negative: none).
	WeightDecay float64
	// Refit, when set, retrains from scratch on train + validation for the best epoch count
	// (with the same per-epoch learning rates) and returns that network. Its validation loss
	// is then not held out: select on History.BestValLoss.
	Refit bool
}

// Defaults of the recipe's knobs, chosen by measurement (EXPERIMENTS.md, "Stand-alone
// recipe"): reduce-on-plateau and decoupled weight decay.
const (
	DefaultSchedule        = SchedulePlateau
	DefaultMinLRFactor     = 0.0      // the cosine schedule's floor
	DefaultPlateauFloor    = 1.0 / 64 // the plateau schedule's floor
	DefaultPlateauPatience = 2
	DefaultPlateauFactor   = 0.5
	DefaultWeightDecay     = 0.3
)

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
	if c.Schedule == "" {
		c.Schedule = DefaultSchedule
	}
	switch {
	case c.MinLRFactor < 0:
		c.MinLRFactor = 0
	case c.MinLRFactor == 0 && c.Schedule == SchedulePlateau:
		c.MinLRFactor = DefaultPlateauFloor
	case c.MinLRFactor == 0:
		c.MinLRFactor = DefaultMinLRFactor
	}
	if c.PlateauPatience <= 0 {
		c.PlateauPatience = DefaultPlateauPatience
	}
	if c.PlateauFactor <= 0 {
		c.PlateauFactor = DefaultPlateauFactor
	}
	switch {
	case c.WeightDecay < 0:
		c.WeightDecay = 0
	case c.WeightDecay == 0:
		c.WeightDecay = DefaultWeightDecay
	}
	return c
}

// Check reports a configuration TrainStandalone cannot use.
func (c TrainConfig) Check() error {
	switch c.Schedule {
	case "", ScheduleConstant, ScheduleCosine, SchedulePlateau:
	default:
		return fmt.Errorf("nn: learning-rate schedule %q: want %s, %s or %s", c.Schedule, ScheduleConstant, ScheduleCosine, SchedulePlateau)
	}
	for _, v := range []struct {
		name string
		x    float64
	}{{"learning rate", c.LR}, {"minimum learning-rate factor", c.MinLRFactor}, {"plateau factor", c.PlateauFactor}, {"weight decay", c.WeightDecay}} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return fmt.Errorf("nn: %s is %v", v.name, v.x)
		}
	}
	if c.MinLRFactor > 1 {
		return fmt.Errorf("nn: minimum learning-rate factor %g is above 1", c.MinLRFactor)
	}
	if c.PlateauFactor >= 1 {
		return fmt.Errorf("nn: plateau factor %g must be below 1", c.PlateauFactor)
	}
	return nil
}

// CosineLR is the cosine schedule at progress p ∈ [0, 1] of the budget:
// min + (base − min)·(1 + cos(π·p))/2 with min = base·minFactor; p is clamped to [0, 1].
func CosineLR(base, minFactor, p float64) float64 {
	p = max(0, min(1, p))
	lo := base * minFactor
	return lo + (base-lo)*(1+math.Cos(math.Pi*p))/2
}

// EpochStats records one epoch.
type EpochStats struct {
	Epoch       int     // 1-based
	TrainLoss   float64 // mean loss over the epoch's batches, before each batch's update
	ValLoss     float64 // mean validation loss after the epoch
	ValAccuracy float64 // classification only
	LR          float64 // learning rate at the epoch's first step
}

// History is the course of a TrainStandalone run.
type History struct {
	InitialValLoss float64 // validation loss of the initial weights
	Epochs         []EpochStats
	BestEpoch      int // epoch whose weights were kept (0: the initial weights)
	BestValLoss    float64
	// RefitEpochs is the number of epochs of the refit on train + validation (0: no refit).
	RefitEpochs int
}

// trainer is one network, its optimizer and its learning-rate schedule.
type trainer struct {
	model   *Standalone
	cfg     TrainConfig
	ws      *Workspace
	g       *Grads
	opt     *optim.Adam32
	bx, by  []float32
	steps   int     // steps per epoch (for the cosine schedule)
	plateau float64 // current rate of the plateau schedule
	wait    int     // plateau: epochs without improvement since the last improvement or cut
}

func newTrainer(model *Standalone, cfg TrainConfig, rows int) *trainer {
	net, bs := model.Net, min(cfg.BatchSize, rows)
	return &trainer{model: model, cfg: cfg, ws: NewWorkspace(net, bs), g: net.NewGrads(), opt: net.NewAdam(cfg.LR),
		bx: make([]float32, bs*net.In), by: make([]float32, bs), steps: (rows + bs - 1) / bs, plateau: cfg.LR}
}

// lr is the learning rate of step k (0-based) of epoch e (1-based).
func (t *trainer) lr(e, k int) float64 {
	c := t.cfg
	switch c.Schedule {
	case ScheduleCosine:
		return CosineLR(c.LR, c.MinLRFactor, (float64(e-1)+float64(k)/float64(t.steps))/float64(c.Epochs))
	case SchedulePlateau:
		return t.plateau
	}
	return c.LR
}

// endEpoch tells the plateau schedule whether the epoch improved the validation loss.
func (t *trainer) endEpoch(improved bool) {
	if t.cfg.Schedule != SchedulePlateau {
		return
	}
	if improved {
		t.wait = 0
		return
	}
	if t.wait++; t.wait >= t.cfg.PlateauPatience {
		t.plateau = max(t.plateau*t.cfg.PlateauFactor, t.cfg.LR*t.cfg.MinLRFactor)
		t.wait = 0
	}
}

// update takes one AdamW step with learning rate lr from the gradient in t.g: the
// decoupled decay of the W matrices, then the Adam step.
func (t *trainer) update(lr float64) {
	net := t.model.Net
	if t.cfg.WeightDecay > 0 {
		f := float32(1 - lr*t.cfg.WeightDecay)
		for _, ly := range net.layers {
			w := net.Weights[ly.w : ly.w+ly.in*ly.out]
			for i := range w {
				w[i] *= f
			}
		}
	}
	t.opt.LR = lr
	net.Apply(t.model.Arch, t.g, t.opt)
}

// epoch trains one epoch e over perm (reshuffled by shuffle) and returns the loss sum and
// the epoch's first learning rate.
func (t *trainer) epoch(e int, d Data, perm []int, shuffle *rand.Rand, lrOf func(k int) float64) (float64, float64) {
	shuffle.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	net, arch, cols, bs := t.model.Net, t.model.Arch, d.Cols, len(t.by)
	var sum, first float64
	for k, start := 0, 0; start < len(perm); k, start = k+1, start+bs {
		idx := perm[start:min(start+bs, len(perm))]
		for j, r := range idx {
			copy(t.bx[j*cols:(j+1)*cols], d.X[r*cols:(r+1)*cols])
			t.by[j] = d.Y[r]
		}
		lr := lrOf(k)
		if k == 0 {
			first = lr
		}
		t.g.Zero(arch)
		sum += net.Gradient(arch, t.bx, t.by, len(idx), 1/float32(len(idx)), t.ws, t.g)
		t.update(lr)
	}
	return sum, first
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// TrainStandalone trains architecture arch from scratch with mini-batch AdamW on train,
// shuffling every epoch, following the learning-rate schedule, evaluating on val after
// every epoch and stopping after Patience epochs without improvement. The returned model
// holds the weights of the best epoch, or with Refit the network retrained on train + val
// for that many epochs.
func TrainStandalone(arch Arch, task Task, train, val Data, cfg TrainConfig) (*Standalone, History, error) {
	var h History
	if err := cfg.Check(); err != nil {
		return nil, h, err
	}
	cfg = cfg.withDefaults()
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
	t := newTrainer(model, cfg, train.Rows())
	net, perm := model.Net, identity(train.Rows())
	best := append([]float32(nil), net.Weights...)
	h.InitialValLoss = model.Evaluate(val, t.ws).Loss
	h.BestValLoss = h.InitialValLoss
	wait := 0
	for e := 1; e <= cfg.Epochs; e++ {
		sum, lr := t.epoch(e, train, perm, shuffle, func(k int) float64 { return t.lr(e, k) })
		m := model.Evaluate(val, t.ws)
		h.Epochs = append(h.Epochs, EpochStats{Epoch: e, TrainLoss: sum / float64(len(perm)),
			ValLoss: m.Loss, ValAccuracy: m.Accuracy, LR: lr})
		improved := m.Loss < h.BestValLoss // false for NaN: a diverged epoch never becomes the best
		t.endEpoch(improved)
		if improved {
			h.BestValLoss, h.BestEpoch, wait = m.Loss, e, 0
			copy(best, net.Weights)
		} else if wait++; wait >= cfg.Patience {
			break
		}
		if math.IsNaN(sum) || math.IsInf(sum, 0) {
			break // diverged; the best weights so far are kept
		}
	}
	copy(net.Weights, best)
	if !cfg.Refit || h.BestEpoch == 0 {
		return model, h, nil
	}
	return refit(arch, task, train, val, cfg, h)
}

// refit retrains from the same initialization on train + val for h.BestEpoch epochs, each
// with the learning rates its epoch had (the cosine position, or the plateau rate).
func refit(arch Arch, task Task, train, val Data, cfg TrainConfig, h History) (*Standalone, History, error) {
	all := Data{X: append(append(make([]float32, 0, len(train.X)+len(val.X)), train.X...), val.X...),
		Y: append(append(make([]float32, 0, len(train.Y)+len(val.Y)), train.Y...), val.Y...), Cols: train.Cols}
	model, err := NewStandalone(all.Cols, arch, task, rand.New(rand.NewPCG(cfg.Seed, 1)))
	if err != nil {
		return nil, h, err
	}
	shuffle := rand.New(rand.NewPCG(cfg.Seed, 3))
	t := newTrainer(model, cfg, all.Rows())
	perm := identity(all.Rows())
	for e := 1; e <= h.BestEpoch; e++ {
		// The schedule runs by epoch progress, so a longer epoch keeps each epoch's rates.
		rate := h.Epochs[e-1].LR
		t.epoch(e, all, perm, shuffle, func(k int) float64 {
			if cfg.Schedule == SchedulePlateau {
				return rate
			}
			return t.lr(e, k)
		})
	}
	h.RefitEpochs = h.BestEpoch
	return model, h, nil
}
