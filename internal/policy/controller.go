package policy

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/tabnas/tabnas/internal/optim"
	"github.com/tabnas/tabnas/internal/space"
)

// Method selects how the controller treats the resource constraints.
type Method string

const (
	// TabNAS rejects infeasible samples and corrects the gradient by P(V).
	TabNAS Method = "tabnas"
	// Reject rejects infeasible samples without the correction.
	Reject Method = "reject"
	// AbsReward shapes the reward: Q + β·|T(y)/T0 − 1| (β < 0), no rejection.
	AbsReward Method = "abs"
	// Mnas shapes the reward MnasNet-style: Q·(T(y)/T0)^β (β < 0), no rejection.
	Mnas Method = "mnas"
)

// Correction selects how P(V) and the conditional marginals are obtained.
type Correction string

const (
	MC        Correction = "mc"
	ExactCorr Correction = "exact"
	// Auto is exact where it is cheap (one additive limit such as a parameter budget, by
	// the dynamic program, or no limit), Monte Carlo otherwise (measured latencies).
	Auto Correction = "auto"
)

// momentumEM is the baseline's EMA momentum.
const momentumEM = 0.9

// Config of the controller. Zero values take the defaults of DESIGN.md §1.
type Config struct {
	Method     Method     `json:"method" yaml:"method"`
	Correction Correction `json:"correction" yaml:"correction"`
	LR         float64    `json:"lr" yaml:"lr"`
	Samples    int        `json:"samples" yaml:"samples"`     // N for the Monte Carlo correction
	MaxTries   int        `json:"max_tries" yaml:"max_tries"` // rejection cap per RL step
	Beta       float64    `json:"beta,omitempty" yaml:"beta"` // shaping exponent/weight, < 0
	T0         float64    `json:"t0,omitempty" yaml:"t0"`     // shaping target cost
	// Entropy weights an entropy bonus on each layer's softmax, against an early collapse
	// of the policy on a noisy reward (0: none).
	Entropy float64 `json:"entropy,omitempty" yaml:"entropy"`
}

// Defaults fills unset fields.
func (c Config) Defaults() Config {
	if c.Method == "" {
		c.Method = TabNAS
	}
	if c.Correction == "" {
		c.Correction = Auto
	}
	if c.LR == 0 {
		c.LR = 0.1
	}
	if c.Samples == 0 {
		// A sample costs one (cached) feasibility check, so N can be large: with N = 5 a
		// tight budget skips most updates for want of a feasible sample.
		c.Samples = 256
	}
	if c.MaxTries == 0 {
		c.MaxTries = 10000
	}
	return c
}

// Validate names the bad field.
func (c Config) Validate() error {
	switch c.Method {
	case TabNAS, Reject:
	case AbsReward, Mnas:
		if !(c.Beta < 0) {
			return fmt.Errorf("method %s: beta must be negative, got %g", c.Method, c.Beta)
		}
		if !(c.T0 > 0) {
			return fmt.Errorf("method %s: t0 (target cost) must be positive, got %g", c.Method, c.T0)
		}
	default:
		return fmt.Errorf("method %q: want one of tabnas, reject, abs, mnas", c.Method)
	}
	if c.Correction != MC && c.Correction != ExactCorr && c.Correction != Auto {
		return fmt.Errorf("correction %q: want auto, mc or exact", c.Correction)
	}
	if c.Entropy < 0 || math.IsNaN(c.Entropy) || math.IsInf(c.Entropy, 0) {
		return fmt.Errorf("entropy must be a non-negative number, got %g", c.Entropy)
	}
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		return fmt.Errorf("lr must be positive, got %g", c.LR)
	}
	if c.Samples < 1 {
		return fmt.Errorf("samples (N) must be ≥ 1, got %d", c.Samples)
	}
	if c.MaxTries < 1 {
		return fmt.Errorf("max_tries must be ≥ 1, got %d", c.MaxTries)
	}
	return nil
}

// Rejects reports whether infeasible candidates are rejected (resampled).
func (c Config) Rejects() bool { return c.Method == TabNAS || c.Method == Reject }

// Corrects reports whether the gradient is corrected by P(V).
func (c Config) Corrects() bool { return c.Method == TabNAS }

// Controller is the RL state: logits, their Adam state and the reward baseline.
type Controller struct {
	Cfg    Config
	Policy *Policy
	flat   []float64
	opt    *optim.Adam64
	num    float64 // bias-corrected EMA baseline: b = num/den
	den    float64
	grad   []float64
}

// NewController starts from zero logits.
func NewController(s *space.Space, cfg Config) (*Controller, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := 0
	for _, ws := range s.Widths {
		n += len(ws)
	}
	// The per-layer logits are windows on one flat vector, which Adam updates in place.
	full := make([]float64, n)
	p := fromFlat(s, full)
	return &Controller{Cfg: cfg, Policy: p, flat: full, opt: optim.NewAdam64(n, cfg.LR), grad: make([]float64, n)}, nil
}

// Baseline is the current b (0 before any reward).
func (c *Controller) Baseline() float64 {
	if c.den == 0 {
		return 0
	}
	return c.num / c.den
}

// Reward turns the validation quality Q into the reward of the method: Q itself for the
// rejection methods, Q shaped by the cost T for Abs Reward and MnasNet.
func (c *Controller) Reward(q, cost float64) float64 {
	switch c.Cfg.Method {
	case AbsReward:
		return q + c.Cfg.Beta*math.Abs(cost/c.Cfg.T0-1)
	case Mnas:
		return q * math.Pow(cost/c.Cfg.T0, c.Cfg.Beta)
	}
	return q
}

// Advantage updates the baseline with r first, then returns A = r − b (so the first A is 0).
func (c *Controller) Advantage(r float64) float64 {
	c.num = momentumEM*c.num + (1-momentumEM)*r
	c.den = momentumEM*c.den + (1 - momentumEM)
	return r - c.num/c.den
}

// Update ascends J with ∇_{θ_i} J = A·(onehot(y_i) − f_i). With the correction, f_i are
// the marginals of p(·|V) from est; without, f_i = p_i (plain REINFORCE). It reports false
// and changes nothing when the correction has no feasible sample to estimate from.
func (c *Controller) Update(y space.Arch, adv float64, est *Estimate) bool {
	var f [][]float64
	if c.Cfg.Corrects() {
		if est == nil || est.Marginals == nil {
			return false
		}
		f = est.Marginals
	} else {
		f = c.Policy.Probs()
	}
	off := 0
	for i, fi := range f {
		for j, v := range fi {
			g := -v
			if y[i] == j {
				g += 1
			}
			c.grad[off+j] = adv * g
		}
		off += len(fi)
	}
	if c.Cfg.Entropy > 0 {
		// ∂H_i/∂θ_ij = −p_ij·(log p_ij + H_i) for H_i = −Σ_j p_ij log p_ij.
		off = 0
		for _, pi := range c.Policy.Probs() {
			var h float64
			for _, p := range pi {
				if p > 0 {
					h -= p * math.Log(p)
				}
			}
			for j, p := range pi {
				if p > 0 {
					c.grad[off+j] -= c.Cfg.Entropy * p * (math.Log(p) + h)
				}
			}
			off += len(pi)
		}
	}
	c.opt.Ascend(c.flat, c.grad)
	return true
}

// ErrRejectionCap is returned when no feasible candidate was drawn within the cap.
var ErrRejectionCap = errors.New("no feasible architecture sampled")

// SampleCandidate draws the RL step's candidate y. Rejection methods resample until y ∈ V
// (up to MaxTries, then an error naming the estimated P(V)); shaping methods take the first
// sample. It returns the candidate and the number of draws.
func (c *Controller) SampleCandidate(rng *rand.Rand, feasible Feasible) (space.Arch, int, error) {
	probs := c.Policy.Probs()
	y := make(space.Arch, len(probs))
	if !c.Cfg.Rejects() {
		return Sample(probs, rng, y), 1, nil
	}
	for try := 1; try <= c.Cfg.MaxTries; try++ {
		Sample(probs, rng, y)
		ok, err := feasible(y)
		if err != nil {
			return nil, try, err
		}
		if ok {
			return y, try, nil
		}
	}
	return nil, c.Cfg.MaxTries, fmt.Errorf("%w in %d tries: estimated P(V) < %.2g under the current policy; the budget is too tight for this space (loosen the constraint or raise max_tries)",
		ErrRejectionCap, c.Cfg.MaxTries, 1/float64(c.Cfg.MaxTries))
}

// State is the controller's full state for checkpoints.
type State struct {
	Logits  []float64 `json:"logits"`
	AdamM   []float64 `json:"adam_m"`
	AdamV   []float64 `json:"adam_v"`
	AdamT   int       `json:"adam_t"`
	BaseNum float64   `json:"baseline_num"`
	BaseDen float64   `json:"baseline_den"`
}

// State copies the controller state.
func (c *Controller) State() State {
	return State{Logits: append([]float64(nil), c.flat...), AdamM: append([]float64(nil), c.opt.M...),
		AdamV: append([]float64(nil), c.opt.V...), AdamT: c.opt.T, BaseNum: c.num, BaseDen: c.den}
}

// Restore loads a state taken from a controller over the same space.
func (c *Controller) Restore(s State) error {
	n := len(c.flat)
	if len(s.Logits) != n || len(s.AdamM) != n || len(s.AdamV) != n {
		return fmt.Errorf("controller state has %d logits, the space needs %d", len(s.Logits), n)
	}
	copy(c.flat, s.Logits)
	copy(c.opt.M, s.AdamM)
	copy(c.opt.V, s.AdamV)
	c.opt.T = s.AdamT
	c.num, c.den = s.BaseNum, s.BaseDen
	return nil
}
