// Package search is the TabNAS search loop without I/O: one step is a weight step on a
// sampled child of the SuperNet and an RL step on a feasible candidate, with warmup,
// rejection, the P(V) correction and the final top-k selection. Data access (local
// shards, or evaluators over NATS) and P(V) estimation (in process, or the sampler service)
// come in through interfaces, so the one-process loop and the distributed coordinator run
// this same code.
package search

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/optim"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/space"
)

// Config of one search. Zero fields take defaults (see Defaults).
type Config struct {
	Policy   policy.Config `json:"policy" yaml:"policy"`
	Steps    int           `json:"steps" yaml:"steps"`
	Seed     uint64        `json:"seed" yaml:"seed"`
	Warmup   float64       `json:"warmup" yaml:"warmup"`       // fraction of steps with layer warmup
	Batch    int           `json:"batch" yaml:"batch"`         // training rows per weight step, all shards
	ValBatch int           `json:"val_batch" yaml:"val_batch"` // validation rows per RL step, all shards
	WeightLR float64       `json:"weight_lr" yaml:"weight_lr"` // Adam on the SuperNet
	TopK     int           `json:"top_k" yaml:"top_k"`

	// How the SuperNet is trained and scored (the shared-weight proxy). Each is a setting
	// so that its effect on the proxy's rank correlation can be measured.
	Reward     string `json:"reward,omitempty" yaml:"reward"`           // RewardFixed or RewardBatch
	Children   string `json:"children,omitempty" yaml:"children"`       // ChildrenFeasible or ChildrenPolicy
	Sandwich   string `json:"sandwich,omitempty" yaml:"sandwich"`       // On or Off
	AdamCounts string `json:"adam_counts,omitempty" yaml:"adam_counts"` // CountsWeight or CountsGlobal
}

// Values of the proxy settings.
const (
	// RewardFixed scores every candidate on the same validation rows (the first ValBatch
	// rows drawn once, or the whole split), so rewards differ only by architecture and
	// weights; RewardBatch draws a fresh validation batch every RL step.
	RewardFixed = "fixed"
	RewardBatch = "batch"
	// ChildrenFeasible draws the weight step's child from p(·|V) (by rejection, as the RL
	// candidate), so the shared weights are trained for the architectures that can win;
	// ChildrenPolicy draws it from p, feasible or not.
	ChildrenFeasible = "feasible"
	ChildrenPolicy   = "policy"
	// On and Off for switches such as Sandwich: the smallest and the largest feasible
	// child also contribute to every weight step (their gradients are summed with the
	// sampled child's into one update of the union of their slices).
	On  = "on"
	Off = "off"
	// CountsWeight bias-corrects Adam per weight by the steps that touched it;
	// CountsGlobal uses the global step count.
	CountsWeight = "weight"
	CountsGlobal = "global"
)

// Defaults fills unset fields.
func (c Config) Defaults() Config {
	c.Policy = c.Policy.Defaults()
	if c.Steps == 0 {
		c.Steps = 500
	}
	if c.Warmup == 0 {
		c.Warmup = 0.25
	}
	if c.Batch == 0 {
		c.Batch = 256
	}
	if c.ValBatch == 0 {
		c.ValBatch = 1024
	}
	if c.WeightLR == 0 {
		c.WeightLR = 1e-3
	}
	if c.TopK == 0 {
		c.TopK = 3
	}
	if c.Reward == "" {
		c.Reward = RewardFixed
	}
	if c.Children == "" {
		c.Children = ChildrenFeasible
	}
	if c.Sandwich == "" {
		c.Sandwich = Off // measured: it helps on Higgs and hurts on Connect-4 and adult (EXPERIMENTS.md)
	}
	if c.AdamCounts == "" {
		c.AdamCounts = CountsWeight
	}
	return c
}

func oneOf(name, v string, allowed ...string) error {
	if v == "" || slices.Contains(allowed, v) { // "" takes the default
		return nil
	}
	return fmt.Errorf("%s %q: want one of %v", name, v, allowed)
}

// Validate names the bad field.
func (c Config) Validate() error {
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	switch {
	case c.Steps < 1:
		return fmt.Errorf("steps must be ≥ 1, got %d", c.Steps)
	case c.Warmup < 0 || c.Warmup >= 1 || math.IsNaN(c.Warmup):
		return fmt.Errorf("warmup must be in [0, 1), got %g", c.Warmup)
	case c.Batch < 1:
		return fmt.Errorf("batch must be ≥ 1, got %d", c.Batch)
	case c.ValBatch < 1:
		return fmt.Errorf("val_batch must be ≥ 1, got %d", c.ValBatch)
	case !(c.WeightLR > 0):
		return fmt.Errorf("weight_lr must be positive, got %g", c.WeightLR)
	case c.TopK < 1:
		return fmt.Errorf("top_k must be ≥ 1, got %d", c.TopK)
	}
	return errors.Join(oneOf("reward", c.Reward, RewardFixed, RewardBatch),
		oneOf("children", c.Children, ChildrenFeasible, ChildrenPolicy),
		oneOf("sandwich", c.Sandwich, On, Off),
		oneOf("adam_counts", c.AdamCounts, CountsWeight, CountsGlobal))
}

// ValRowsStep is the step whose validation rows score a candidate at step: always the
// same (-1) with the fixed reward, so every evaluator and the in-process loop pick the
// same rows.
func (c Config) ValRowsStep(step int64) int64 {
	if c.Reward == RewardBatch {
		return step
	}
	return -1
}

// WarmupSteps is the number of steps of layer warmup (no RL updates).
func (c Config) WarmupSteps() int64 { return int64(c.Warmup * float64(c.Steps)) }

// Backend computes what needs the data, at the SuperNet weights the engine holds (or a
// replica at the same version).
type Backend interface {
	// Gradient adds to g the mean gradient of child over the step's training batch (every
	// shard, reduced in shard order) and returns the batch's mean loss.
	Gradient(ctx context.Context, step int64, child nn.Arch, g *nn.Grads) (float64, error)
	// Committed tells the backend that the weights of child's slice changed, giving the
	// new SuperNet version (replicas follow it).
	Committed(ctx context.Context, version int64, child nn.Arch) error
	// ValLoss is the mean validation loss of child on the step's validation batch.
	ValLoss(ctx context.Context, step int64, child nn.Arch) (float64, error)
}

// Estimator gives P(V) and the marginals of p(·|V) for the policy of a step.
type Estimator interface {
	Estimate(ctx context.Context, step int64, probs [][]float64) (policy.Estimate, error)
	// Feasible checks one architecture (cached by the implementation).
	Feasible(ctx context.Context, a space.Arch) (bool, error)
}

// Prefetcher is an Estimator that can start the estimate for a step early, so that it is
// computed while the weight step runs.
type Prefetcher interface {
	Prefetch(ctx context.Context, step int64, probs [][]float64)
}

// Record is what one step did, kept for reports and for determinism checks.
type Record struct {
	Step      int64       `json:"step"`
	Warmup    bool        `json:"warmup,omitempty"`
	Child     string      `json:"child"` // trained in the weight step
	TrainLoss float64     `json:"train_loss"`
	Candidate string      `json:"candidate,omitempty"` // scored in the RL step
	Tries     int         `json:"tries,omitempty"`     // draws until feasible
	ValLoss   float64     `json:"val_loss,omitempty"`
	Reward    float64     `json:"reward,omitempty"`
	Baseline  float64     `json:"baseline,omitempty"`
	Advantage float64     `json:"advantage,omitempty"`
	PV        float64     `json:"pv,omitempty"`
	Accepted  int         `json:"accepted,omitempty"`
	Updated   bool        `json:"updated,omitempty"`
	Probs     [][]float64 `json:"probs,omitempty"` // policy after the step
}

// Engine is the search state machine. Only the engine writes search state.
type Engine struct {
	Cfg   Config
	Space *space.Space
	Cons  space.Constraints
	Net   *nn.SuperNet
	Ctrl  *policy.Controller
	Opt   *optim.Adam32
	Step  int64 // steps completed
	Hist  []Record

	// Counters of the RL updates: applied, and skipped because the Monte Carlo
	// estimate saw no feasible sample.
	Applied, Skipped int64

	backend Backend
	est     Estimator
	grads   *nn.Grads
	part    *nn.Grads // one child's gradient under the sandwich rule
	full    nn.Arch
	small   nn.Arch // smallest and largest feasible child (sandwich rule)
	large   nn.Arch
	bufA    []float32
	bufB    []float32
}

// New builds an engine at step 0. The SuperNet must have the space's maximum widths.
func New(cfg Config, s *space.Space, cons space.Constraints, net *nn.SuperNet, b Backend, e Estimator) (*Engine, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := CheckBudget(s, cons); err != nil {
		return nil, err
	}
	if net.In != s.In || net.Out != s.Out || !slices.Equal(net.MaxWidths, s.MaxWidths()) {
		return nil, fmt.Errorf("SuperNet %d-%v-%d does not match the space %d-%v-%d", net.In, net.MaxWidths, net.Out, s.In, s.MaxWidths(), s.Out)
	}
	pc := cfg.Policy
	if (pc.Method == policy.AbsReward || pc.Method == policy.Mnas) && len(cons) == 0 {
		return nil, fmt.Errorf("method %s needs a constraint to shape the reward with", pc.Method)
	}
	ctrl, err := policy.NewController(s, pc)
	if err != nil {
		return nil, err
	}
	eng := &Engine{Cfg: cfg, Space: s, Cons: cons, Net: net, Ctrl: ctrl, Opt: net.NewAdam(cfg.WeightLR),
		backend: b, est: e, grads: net.NewGrads(), full: nn.Arch(s.MaxWidths())}
	if cfg.AdamCounts == CountsWeight {
		eng.Opt.PerWeightCounts()
	}
	if cfg.Sandwich == On {
		eng.part = net.NewGrads()
		small, large, err := Extremes(context.Background(), s, cons, e)
		if err != nil {
			return nil, err
		}
		eng.small, eng.large = nn.Arch(s.ArchWidths(small)), nn.Arch(s.ArchWidths(large))
	}
	return eng, nil
}

// Extremes returns the smallest architecture of the space (every layer at its narrowest,
// the cheapest under any cost that grows with width) and the largest feasible one by
// parameter count: exactly by enumeration where the space is small enough and the
// constraints are analytic, else greedily widening one layer at a time.
func Extremes(ctx context.Context, s *space.Space, cons space.Constraints, e Estimator) (small, large space.Arch, err error) {
	small = make(space.Arch, s.Layers())
	feasible := func(a space.Arch) (bool, error) {
		if e != nil {
			return e.Feasible(ctx, a)
		}
		return cons.Feasible(s, a)
	}
	if _, ok := cons.SingleAdditive(); (ok || len(cons) == 0) && s.Size() <= 1<<20 {
		best, bestP := space.Arch(nil), int64(-1)
		for r := int64(0); r < s.Size(); r++ {
			a := s.Index(r)
			if p := s.Params(a); p > bestP {
				if ok, err := cons.Feasible(s, a); err != nil {
					return nil, nil, err
				} else if ok {
					best, bestP = slices.Clone(a), p
				}
			}
		}
		if best == nil {
			return nil, nil, fmt.Errorf("%w: no architecture of the space meets %s", ErrInfeasibleBudget, cons)
		}
		return small, best, nil
	}
	large = slices.Clone(small)
	for {
		grown := false
		for i := range large {
			if large[i]+1 >= len(s.Widths[i]) {
				continue
			}
			large[i]++
			ok, err := feasible(large)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				grown = true
			} else {
				large[i]--
			}
		}
		if !grown {
			return small, large, nil
		}
	}
}

// ErrInfeasibleBudget marks a constraint set no architecture of the space meets.
var ErrInfeasibleBudget = errors.New("infeasible budget")

// CheckBudget rejects up front a budget that no architecture meets (for additive limits).
func CheckBudget(s *space.Space, cons space.Constraints) error {
	for _, c := range cons {
		if a, ok := c.(space.Additive); ok {
			if m := policy.MinCost(a, s); m > c.Limit() {
				return fmt.Errorf("%w: no architecture of the space meets %s ≤ %g; the smallest needs %g", ErrInfeasibleBudget, c.Name(), c.Limit(), m)
			}
		}
	}
	return nil
}

// Done reports whether every step has run.
func (e *Engine) Done() bool { return e.Step >= int64(e.Cfg.Steps) }

// Run steps until done or the context ends. onStep, when set, sees each record.
func (e *Engine) Run(ctx context.Context, onStep func(Record) error) error {
	for !e.Done() {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := e.StepOnce(ctx)
		if err != nil {
			return err
		}
		if onStep != nil {
			if err := onStep(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// StepOnce runs step e.Step: weight step, then (after warmup) the RL step.
func (e *Engine) StepOnce(ctx context.Context) (Record, error) {
	t := e.Step
	cfg := e.Cfg
	rec := Record{Step: t}
	probs := e.Ctrl.Policy.Probs()
	if pf, ok := e.est.(Prefetcher); ok && e.Ctrl.Cfg.Corrects() && t >= cfg.WarmupSteps() {
		pf.Prefetch(ctx, t, probs)
	}

	// 1. Weight step, with layer warmup: whole SuperNet with probability p_w = 1 − t/W.
	child := e.full
	warm := cfg.WarmupSteps()
	rec.Warmup = t < warm
	if !(rec.Warmup && policy.Stream(cfg.Seed, "warmup", t).Float64() < 1-float64(t)/float64(warm)) {
		rng := policy.Stream(cfg.Seed, "weight", t)
		var x space.Arch
		if cfg.Children == ChildrenFeasible && e.Ctrl.Cfg.Rejects() {
			var err error
			x, _, err = e.Ctrl.SampleCandidate(rng, func(a space.Arch) (bool, error) { return e.est.Feasible(ctx, a) })
			if errors.Is(err, policy.ErrRejectionCap) {
				// The RL step owns the error for a budget the policy cannot meet; during
				// warmup there is none, and a weight step on a child of p is still useful.
				x, err = policy.Sample(probs, rng, nil), nil
			}
			if err != nil {
				return rec, fmt.Errorf("step %d weight step: %w", t, err)
			}
		} else {
			x = policy.Sample(probs, rng, nil)
		}
		child = nn.Arch(e.Space.ArchWidths(x))
	}
	rec.Child = space.FormatWidths(child)
	loss, update, err := e.weightStep(ctx, t, child)
	if err != nil {
		return rec, fmt.Errorf("step %d weight step on %s: %w", t, rec.Child, err)
	}
	rec.TrainLoss = loss
	e.Net.Apply(update, e.grads, e.Opt)
	if err := e.backend.Committed(ctx, t+1, update); err != nil {
		return rec, fmt.Errorf("step %d: publishing SuperNet version %d: %w", t, t+1, err)
	}

	// 2. RL step (none during warmup).
	if !rec.Warmup {
		feasible := func(a space.Arch) (bool, error) { return e.est.Feasible(ctx, a) }
		var est *policy.Estimate
		if e.Ctrl.Cfg.Corrects() {
			// Depends only on the policy of this step; the estimator may compute it in parallel.
			es, err := e.est.Estimate(ctx, t, probs)
			if err != nil {
				return rec, fmt.Errorf("step %d: estimating P(V): %w", t, err)
			}
			est = &es
			rec.PV, rec.Accepted = es.PV, es.Accepted
		}
		y, tries, err := e.Ctrl.SampleCandidate(policy.Stream(cfg.Seed, "rl", t), feasible)
		if err != nil {
			return rec, fmt.Errorf("step %d: %w", t, err)
		}
		yw := e.Space.ArchWidths(y)
		rec.Candidate, rec.Tries = space.FormatWidths(yw), tries
		vl, err := e.backend.ValLoss(ctx, t, nn.Arch(yw))
		if err != nil {
			return rec, fmt.Errorf("step %d scoring %s: %w", t, rec.Candidate, err)
		}
		var cost float64
		if len(e.Cons) > 0 {
			if cost, err = e.Cons[0].Cost(e.Space, y); err != nil {
				return rec, err
			}
		}
		rec.ValLoss = vl
		rec.Reward = e.Ctrl.Reward(1-vl, cost)
		rec.Advantage = e.Ctrl.Advantage(rec.Reward)
		rec.Baseline = e.Ctrl.Baseline()
		rec.Updated = e.Ctrl.Update(y, rec.Advantage, est)
		if rec.Updated {
			e.Applied++
		} else {
			e.Skipped++
		}
	}
	rec.Probs = e.Ctrl.Policy.Probs()
	e.Hist = append(e.Hist, rec)
	e.Step++
	return rec, nil
}

// weightStep fills e.grads with the step's gradient and returns the sampled child's
// training loss and the slice to update. Under the sandwich rule the smallest and the
// largest feasible child add their gradients on the same batch, and the update covers the
// union of the slices (children are prefixes, so the union is the per-layer maximum).
func (e *Engine) weightStep(ctx context.Context, t int64, child nn.Arch) (float64, nn.Arch, error) {
	if e.Cfg.Sandwich != On || slices.Equal(child, e.full) {
		e.grads.Zero(child)
		loss, err := e.backend.Gradient(ctx, t, child, e.grads)
		return loss, child, err
	}
	union := slices.Clone(child)
	for i := range union {
		union[i] = max(union[i], e.small[i], e.large[i])
	}
	e.grads.Zero(union)
	var loss float64
	for k, c := range []nn.Arch{child, e.small, e.large} {
		if k > 0 && (slices.Equal(c, child) || (k == 2 && slices.Equal(c, e.small))) {
			continue // the same child twice would be the same work item
		}
		e.part.Zero(c)
		l, err := e.backend.Gradient(ctx, t, c, e.part)
		if err != nil {
			return 0, nil, err
		}
		if k == 0 {
			loss = l
		}
		n := e.Net.SliceLen(c)
		e.bufA, e.bufB = Grow(e.bufA, n), Grow(e.bufB, n)
		e.grads.PackSlice(c, e.bufA)
		e.part.PackSlice(c, e.bufB)
		AddInto(e.bufA, e.bufB)
		e.grads.UnpackSlice(c, e.bufA)
	}
	return loss, nn.Arch(union), nil
}

// Candidate is one architecture of the final selection.
type Candidate struct {
	Arch     string  `json:"arch"`
	Widths   []int   `json:"widths"`
	Params   int64   `json:"params"`
	Prob     float64 `json:"prob"`
	Feasible bool    `json:"feasible"`
}

// Selection is the search's answer before stand-alone retraining: the most probable
// feasible architectures (rejection methods), or for shaping methods the most probable
// architecture first, which may be infeasible.
type Selection struct {
	Candidates   []Candidate `json:"candidates"`
	Exact        bool        `json:"exact"`
	MostProbable Candidate   `json:"most_probable"` // per-layer argmax, for information
}

// Select returns the top-k feasible architectures under the current policy.
func (e *Engine) Select(ctx context.Context) (Selection, error) {
	probs := e.Ctrl.Policy.Probs()
	top, err := policy.TopKFeasible(e.Space, probs, e.Cons, e.Cfg.TopK, policy.Stream(e.Cfg.Seed, "select", e.Step))
	if err != nil {
		return Selection{}, err
	}
	sel := Selection{Exact: top.Exact}
	mk := func(a space.Arch) (Candidate, error) {
		ok, err := e.Cons.Feasible(e.Space, a)
		if err != nil {
			return Candidate{}, err
		}
		w := e.Space.ArchWidths(a)
		return Candidate{Arch: space.FormatWidths(w), Widths: w, Params: e.Space.Params(a), Prob: math.Exp(policy.LogProb(probs, a)), Feasible: ok}, nil
	}
	if sel.MostProbable, err = mk(policy.Argmax(probs)); err != nil {
		return sel, err
	}
	if !e.Ctrl.Cfg.Rejects() {
		sel.Candidates = append(sel.Candidates, sel.MostProbable)
	}
	for _, r := range top.Archs {
		if len(sel.Candidates) >= e.Cfg.TopK {
			break
		}
		c, err := mk(r.Arch)
		if err != nil {
			return sel, err
		}
		if c.Arch != sel.MostProbable.Arch || e.Ctrl.Cfg.Rejects() {
			sel.Candidates = append(sel.Candidates, c)
		}
	}
	if len(sel.Candidates) == 0 {
		return sel, fmt.Errorf("%w: no feasible architecture found under %s", ErrInfeasibleBudget, e.Cons)
	}
	return sel, nil
}

// Pool sources.
const (
	FromTop     = "top"     // argmax over V of p, the method's own answer
	FromPolicy  = "policy"  // drawn from p(·|V), kept by the proxy score
	FromUniform = "uniform" // drawn uniformly from V
)

// PoolEntry is one candidate of the finish, with where it came from and its proxy score
// (the shared-weight validation loss on the reward's rows; nil when not scored).
type PoolEntry struct {
	Candidate
	Source string   `json:"source"`
	Proxy  *float64 `json:"proxy,omitempty"`
}

// Pool returns up to n distinct feasible candidates for the final stage, in the order to
// consider them: the most probable feasible architecture first, then alternately the
// best by proxy score of 3× as many draws from p(·|V) and uniform draws from V
// (a share uniform of n). The uniform part keeps the finish honest when the proxy ranks
// poorly; the proxy part is where the search earns its cost.
func (e *Engine) Pool(ctx context.Context, n int, uniform float64) ([]PoolEntry, error) {
	if n < 1 {
		return nil, nil
	}
	probs := e.Ctrl.Policy.Probs()
	mk := func(a space.Arch, src string) PoolEntry {
		w := e.Space.ArchWidths(a)
		return PoolEntry{Candidate: Candidate{Arch: space.FormatWidths(w), Widths: w, Params: e.Space.Params(a),
			Prob: math.Exp(policy.LogProb(probs, a)), Feasible: true}, Source: src}
	}
	seen := map[string]bool{}
	feasible := func(a space.Arch) (bool, error) { return e.est.Feasible(ctx, a) }
	// draw collects up to k new distinct feasible architectures from probs.
	draw := func(pr [][]float64, k int, purpose string) ([]space.Arch, error) {
		rng := policy.Stream(e.Cfg.Seed, purpose, e.Step)
		var out []space.Arch
		for tries := 0; len(out) < k && tries < 200*k+1000; tries++ {
			a := policy.Sample(pr, rng, nil)
			key := e.Space.Format(a)
			if seen[key] {
				continue
			}
			ok, err := feasible(a)
			if err != nil {
				return nil, err
			}
			if ok {
				seen[key] = true
				out = append(out, a)
			}
		}
		return out, nil
	}
	top, err := policy.TopKFeasible(e.Space, probs, e.Cons, 1, policy.Stream(e.Cfg.Seed, "select", e.Step))
	if err != nil {
		return nil, err
	}
	var first []PoolEntry
	if len(top.Archs) > 0 && e.Ctrl.Cfg.Rejects() {
		a := top.Archs[0].Arch
		seen[e.Space.Format(a)] = true
		first = append(first, mk(a, FromTop))
	}
	nu := int(math.Round(float64(n) * uniform))
	np := max(n-nu-len(first), 0)
	drawn, err := draw(probs, 3*np, "pool")
	if err != nil {
		return nil, err
	}
	pol := make([]PoolEntry, len(drawn))
	for i, a := range drawn {
		pol[i] = mk(a, FromPolicy)
		w := e.Space.ArchWidths(a)
		v, err := e.backend.ValLoss(ctx, e.Step, nn.Arch(w))
		if err != nil {
			return nil, fmt.Errorf("proxy score of %s: %w", pol[i].Arch, err)
		}
		pol[i].Proxy = &v
	}
	slices.SortStableFunc(pol, func(a, b PoolEntry) int { return cmpNaN(*a.Proxy, *b.Proxy) })
	for _, p := range pol[min(np, len(pol)):] {
		delete(seen, p.Arch) // not kept: a uniform draw may take it
	}
	pol = pol[:min(np, len(pol))]
	un, err := draw(policy.NewPolicy(e.Space).Probs(), n-len(first)-len(pol), "pool-uniform")
	if err != nil {
		return nil, err
	}
	out := first
	for i := 0; i < max(len(pol), len(un)); i++ {
		if i < len(pol) {
			out = append(out, pol[i])
		}
		if i < len(un) {
			out = append(out, mk(un[i], FromUniform))
		}
	}
	if len(first) > 0 {
		v, err := e.backend.ValLoss(ctx, e.Step, nn.Arch(first[0].Widths))
		if err != nil {
			return nil, err
		}
		out[0].Proxy = &v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no feasible architecture found under %s", ErrInfeasibleBudget, e.Cons)
	}
	return out, nil
}

// ProxyScore is the shared-weight validation loss of widths on the reward's rows.
func (e *Engine) ProxyScore(ctx context.Context, widths []int) (float64, error) {
	return e.backend.ValLoss(ctx, e.Step, nn.Arch(widths))
}

func cmpNaN(a, b float64) int {
	switch {
	case math.IsNaN(a) && math.IsNaN(b):
		return 0
	case math.IsNaN(a):
		return 1
	case math.IsNaN(b):
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
