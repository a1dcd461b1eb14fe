package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/tabnas/tabnas/internal/halving"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/rank"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

// ProxyCheck is how well the shared-weight score ranked architectures in this run.
type ProxyCheck struct {
	// K architectures trained with the full recipe (--check-proxy): Kendall's τ and
	// Spearman's ρ between their proxy score and their stand-alone validation loss.
	K          int   `json:"k,omitempty"`
	KendallTau Float `json:"kendall_tau"`
	Spearman   Float `json:"spearman"`
	// The same, measured for free on the finish's first rung: the proxy-scored pool
	// against its low-fidelity stand-alone losses (NaN when too few were scored).
	RungK   int   `json:"rung_k,omitempty"`
	RungTau Float `json:"rung_tau"`
	// Points are (proxy, stand-alone) pairs of the K architectures, for the report.
	Points []ProxyPoint `json:"points,omitempty"`
	// Trusted is false when τ (the K-check, else the rung's) is below TrustTau: the search
	// says so and the answer rests on stand-alone evidence alone.
	Trusted bool   `json:"trusted"`
	Note    string `json:"note,omitempty"`
}

// Float is a float64 that is null in JSON when not a number (a τ not measured).
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	return json.Unmarshal(b, (*float64)(f))
}

// ProxyPoint is one architecture of the proxy check.
type ProxyPoint struct {
	Arch       string  `json:"arch"`
	Source     string  `json:"source"`
	Proxy      float64 `json:"proxy"`
	Standalone float64 `json:"standalone"`
}

// TrustTau is the rank correlation below which the proxy is reported as not trusted.
const TrustTau = 0.2

// finished is what the final stage produced.
type finished struct {
	trials []schemas.TrialOutcome // every full-recipe training (answer candidates)
	pool   []search.PoolEntry
	ladder *halving.Result
	proxy  *ProxyCheck
}

// finish turns the searched policy into stand-alone trained answers: the top-k by p with
// the full recipe (FinishTopK), or successive halving over a pool of the policy's and
// uniform feasible candidates (FinishHalving), plus the optional proxy check. deadline
// (zero: none) bounds the halving; workers is how many trainings run at once.
func finish(ctx context.Context, log *slog.Logger, rb *remote, eng *search.Engine, sel search.Selection, spec *schemas.RunSpec, deadline time.Time, workers int) (*finished, error) {
	f := spec.Finish.Defaults()
	round := int64(spec.Search.Steps) + 1 // trial rounds after the search's steps
	run := func(reqs []trialRequest) ([]schemas.TrialOutcome, error) {
		round++
		return rb.trials(ctx, round, reqs)
	}
	full := spec.Trial
	out := &finished{}
	if f.CheckProxy > 0 {
		pc, trials, err := checkProxy(ctx, eng, spec, f.CheckProxy, run)
		if err != nil {
			return nil, fmt.Errorf("proxy check: %w", err)
		}
		out.proxy, out.trials = pc, append(out.trials, trials...)
	}
	if f.Mode == schemas.FinishTopK {
		reqs := make([]trialRequest, len(sel.Candidates))
		for i, c := range sel.Candidates {
			reqs[i] = trialRequest{Arch: c.Widths, Trial: full}
		}
		trials, err := run(reqs)
		if err != nil {
			return nil, err
		}
		out.trials = append(out.trials, trials...)
		return out, nil
	}
	n := f.Candidates
	if !deadline.IsZero() {
		n = max(n, 243) // the halving decides from the measured cost how many it can start
	}
	pool, err := eng.Pool(ctx, n, f.Uniform)
	if err != nil {
		return nil, err
	}
	out.pool = pool
	cands := make([][]int, len(pool))
	for i, p := range pool {
		cands[i] = p.Widths
	}
	train := func(ctx context.Context, _ int, idx []int, epochs int) ([]float64, error) {
		reqs := make([]trialRequest, len(idx))
		for i, k := range idx {
			t := full
			if epochs < full.Epochs {
				// A low rung: a fixed short budget, its schedule annealed over it.
				t.Epochs, t.Patience = epochs, epochs
			}
			reqs[i] = trialRequest{Arch: cands[k], Trial: t}
		}
		res, err := run(reqs)
		if err != nil {
			return nil, err
		}
		losses := make([]float64, len(res))
		for i, r := range res {
			losses[i] = r.ValLoss
		}
		if epochs >= full.Epochs {
			out.trials = append(out.trials, res...)
		}
		return losses, nil
	}
	lad, err := halving.Run(ctx, halving.Config{Candidates: cands, Eta: f.Eta, MinEpochs: f.MinEpochs, MaxEpochs: full.Epochs,
		Deadline: deadline, Workers: max(workers, 1)}, train)
	if err != nil {
		return nil, fmt.Errorf("successive halving: %w", err)
	}
	out.ladder = lad
	if !lad.Complete {
		log.Warn("the time budget ended the finish before its last rung; the answer is the best of the highest finished rung", "stopped", lad.Stopped)
		if len(out.trials) == 0 && lad.Best >= 0 {
			// No full-recipe training finished: train the best so far once, so the run
			// still ships a model (this may overrun the budget by one training).
			res, err := run([]trialRequest{{Arch: cands[lad.Best], Trial: full}})
			if err != nil {
				return nil, err
			}
			out.trials = append(out.trials, res...)
		}
	}
	// The proxy against the largest rung (the first of the ladder; probes are too small),
	// for free.
	var px, sa []float64
	for _, r := range lad.Rungs {
		var x, y []float64
		for i, k := range r.Candidates {
			if pool[k].Proxy != nil && !math.IsNaN(r.Losses[i]) {
				x, y = append(x, *pool[k].Proxy), append(y, r.Losses[i])
			}
		}
		if len(x) > len(px) {
			px, sa = x, y
		}
	}
	if out.proxy == nil {
		out.proxy = &ProxyCheck{KendallTau: Float(math.NaN()), Spearman: Float(math.NaN())}
	}
	out.proxy.RungK, out.proxy.RungTau = len(px), Float(math.NaN())
	if len(px) >= 3 {
		tau, _ := rank.KendallTau(px, sa)
		out.proxy.RungTau = Float(tau)
	}
	if pc := out.proxy; pc != nil {
		tau := float64(pc.KendallTau)
		if pc.K == 0 {
			tau = float64(pc.RungTau)
		}
		pc.Trusted = tau >= TrustTau
		if !pc.Trusted {
			pc.Note = fmt.Sprintf("the shared-weight score ranked architectures poorly here (τ %.2f < %.2f); the answer rests on stand-alone training of the pool, a third of it drawn uniformly from the feasible set", tau, TrustTau)
		}
	}
	return out, nil
}

// checkProxy trains k architectures with the full recipe — half the policy's most
// probable feasible ones, half uniform from V — and correlates their proxy scores with
// their stand-alone validation losses.
func checkProxy(ctx context.Context, eng *search.Engine, spec *schemas.RunSpec, k int, run func([]trialRequest) ([]schemas.TrialOutcome, error)) (*ProxyCheck, []schemas.TrialOutcome, error) {
	probs := eng.Ctrl.Policy.Probs()
	top, err := policy.TopKFeasible(eng.Space, probs, eng.Cons, k-k/2, policy.Stream(spec.Search.Seed, "check-proxy", eng.Step))
	if err != nil {
		return nil, nil, err
	}
	type pick struct {
		widths []int
		source string
	}
	var picks []pick
	for _, r := range top.Archs {
		picks = append(picks, pick{eng.Space.ArchWidths(r.Arch), search.FromTop})
	}
	uni, err := UniformFeasible(eng, k-len(picks), func(w []int) bool {
		return slices.ContainsFunc(picks, func(p pick) bool { return slices.Equal(p.widths, w) })
	})
	if err != nil {
		return nil, nil, err
	}
	for _, w := range uni {
		picks = append(picks, pick{w, search.FromUniform})
	}
	reqs := make([]trialRequest, len(picks))
	for i, p := range picks {
		reqs[i] = trialRequest{Arch: p.widths, Trial: spec.Trial}
	}
	trials, err := run(reqs)
	if err != nil {
		return nil, nil, err
	}
	pc := &ProxyCheck{K: len(picks)}
	px, sa := make([]float64, len(picks)), make([]float64, len(picks))
	for i, p := range picks {
		if px[i], err = eng.ProxyScore(ctx, p.widths); err != nil {
			return nil, nil, err
		}
		sa[i] = trials[i].ValLoss
		pc.Points = append(pc.Points, ProxyPoint{Arch: trials[i].Arch, Source: p.source, Proxy: px[i], Standalone: sa[i]})
	}
	pc.KendallTau, pc.Spearman = Float(math.NaN()), Float(math.NaN())
	if len(picks) >= 2 {
		tau, _ := rank.KendallTau(px, sa)
		rho, _ := rank.Spearman(px, sa)
		pc.KendallTau, pc.Spearman = Float(tau), Float(rho)
	}
	return pc, trials, nil
}

// UniformFeasible draws up to n distinct architectures uniformly from V (seeded by the
// run), skipping those excluded.
func UniformFeasible(eng *search.Engine, n int, exclude func([]int) bool) ([][]int, error) {
	probs := policy.NewPolicy(eng.Space).Probs()
	rng := policy.Stream(eng.Cfg.Seed, "uniform-feasible", eng.Step)
	var out [][]int
	for tries := 0; len(out) < n && tries < 200*n+1000; tries++ {
		a := policy.Sample(probs, rng, nil)
		w := eng.Space.ArchWidths(a)
		if exclude(w) || slices.ContainsFunc(out, func(o []int) bool { return slices.Equal(o, w) }) {
			continue
		}
		ok, err := eng.Cons.Feasible(eng.Space, a)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, w)
		}
	}
	return out, nil
}

// Feasible reports whether arch, one of the run's trained answers, was known feasible:
// the selection's candidates carry their check, and the pool and the proxy check only
// ever hold architectures drawn through the feasibility check.
func (o *Outcome) Feasible(arch string) bool {
	for _, c := range o.Selection.Candidates {
		if c.Arch == arch {
			return c.Feasible
		}
	}
	for _, p := range o.Pool {
		if p.Arch == arch {
			return p.Feasible
		}
	}
	if o.Proxy != nil {
		for _, p := range o.Proxy.Points {
			if p.Arch == arch {
				return true
			}
		}
	}
	return false
}
