// Package toy reproduces the TabNAS toy study (DESIGN.md §1): two layers of widths {2,3,4},
// input 2, output 1, a parameter budget of 25 and losses fixed by a table, over many seeds,
// for TabNAS, rejection without correction and the reward-shaping baselines.
package toy

import (
	"fmt"
	"math/rand/v2"

	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/space"
)

// Budget is the toy's parameter limit; V = {2-2, 2-3, 2-4, 3-2, 3-3, 4-2}.
const Budget = 25

// Loss is the toy table: Loss[i][j] for layer-1 width Widths[i], layer-2 width Widths[j].
var (
	Widths = []int{2, 3, 4}
	Loss   = [3][3]float64{
		{0.9, 0.9, 0.66},
		{0.9, 0.66, 0.3},
		{0.6, 0.3, 0.1},
	}
)

// Space returns the toy space.
func Space() *space.Space {
	s, err := space.New(2, 1, 2, Widths)
	if err != nil {
		panic(err)
	}
	return s
}

// Run is one search of the toy: steps RL updates, reward 1 − loss.
type Run struct {
	Final        space.Arch // the method's answer
	Feasible     bool       // whether the answer is in V
	BestFeasible space.Arch // most probable feasible architecture (equal to Final for rejection methods)
}

// Search runs one seed of the toy with the controller configuration.
func Search(cfg policy.Config, steps int, seed uint64) (Run, error) {
	s := Space()
	cs := space.Constraints{space.MaxParams{Max: Budget}}
	feasible := func(a space.Arch) (bool, error) { return cs.Feasible(s, a) }
	c, err := policy.NewController(s, cfg)
	if err != nil {
		return Run{}, err
	}
	for t := 0; t < steps; t++ {
		y, _, err := c.SampleCandidate(policy.Stream(seed, "rl", int64(t)), feasible)
		if err != nil {
			return Run{}, fmt.Errorf("seed %d step %d: %w", seed, t, err)
		}
		q := 1 - Loss[y[0]][y[1]]
		adv := c.Advantage(c.Reward(q, float64(s.Params(y))))
		var est *policy.Estimate
		if c.Cfg.Corrects() {
			var e policy.Estimate
			if c.Cfg.Correction == policy.ExactCorr {
				e, err = policy.Exact(s, c.Policy.Probs(), cs)
			} else {
				e, err = policy.MonteCarlo(c.Policy.Probs(), c.Cfg.Samples, policy.Stream(seed, "mc", int64(t)), feasible)
			}
			if err != nil {
				return Run{}, err
			}
			est = &e
		}
		c.Update(y, adv, est)
	}
	probs := c.Policy.Probs()
	top, err := policy.TopKFeasible(s, probs, cs, 1, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		return Run{}, err
	}
	r := Run{BestFeasible: top.Archs[0].Arch}
	if c.Cfg.Rejects() {
		r.Final = r.BestFeasible
	} else {
		// A shaping method knows no hard budget: its answer is the most probable architecture,
		// which for a factorized policy is the per-layer argmax.
		r.Final = policy.Argmax(probs)
	}
	r.Feasible, _ = cs.Feasible(s, r.Final)
	return r, nil
}

// Summary aggregates one method over seeds.
type Summary struct {
	Method       string         `json:"method"`
	Beta         float64        `json:"beta,omitempty"`
	Seeds        int            `json:"seeds"`
	Success      float64        `json:"success"`               // share of answers equal to 4-2
	Infeasible   float64        `json:"infeasible"`            // share of answers outside V
	BestFeasible float64        `json:"best_feasible_success"` // share whose most probable feasible is 4-2
	Answers      map[string]int `json:"answers"`
}

// Study runs seeds 0..seeds-1 of one configuration.
func Study(name string, cfg policy.Config, steps, seeds int, seed0 uint64) (Summary, error) {
	s := Space()
	want, _ := s.Parse("4-2")
	sum := Summary{Method: name, Beta: cfg.Beta, Seeds: seeds, Answers: map[string]int{}}
	var ok, infeas, bf int
	for k := 0; k < seeds; k++ {
		r, err := Search(cfg, steps, seed0+uint64(k))
		if err != nil {
			return sum, err
		}
		sum.Answers[s.Format(r.Final)]++
		if space.Equal(r.Final, want) {
			ok++
		}
		if !r.Feasible {
			infeas++
		}
		if space.Equal(r.BestFeasible, want) {
			bf++
		}
	}
	n := float64(seeds)
	sum.Success, sum.Infeasible, sum.BestFeasible = float64(ok)/n, float64(infeas)/n, float64(bf)/n
	return sum, nil
}
