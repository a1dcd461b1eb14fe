package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/tabnas/tabnas/internal/space"
)

// Feasible decides membership of V. It may be slow (measured latency) or fail.
type Feasible func(a space.Arch) (bool, error)

// Estimate is P(V) and the layer marginals of p(·|V), which the correction subtracts
// from onehot(y_i) in place of p_i.
type Estimate struct {
	PV        float64     `json:"pv"`
	Marginals [][]float64 `json:"marginals,omitempty"` // nil when no feasible sample was seen
	Samples   int         `json:"samples"`             // N for Monte Carlo, 0 when exact
	Accepted  int         `json:"accepted"`            // feasible samples among N
	Exact     bool        `json:"exact"`
}

// MonteCarlo draws n samples z_k ~ p and returns P̂(V) = (1/n)·Σ 1[z_k ∈ V] and the empirical
// distribution of each layer's choices among the feasible samples.
func MonteCarlo(probs [][]float64, n int, rng *rand.Rand, feasible Feasible) (Estimate, error) {
	if n < 1 {
		return Estimate{}, fmt.Errorf("monte carlo needs at least one sample, got %d", n)
	}
	counts := make([][]float64, len(probs))
	for i := range counts {
		counts[i] = make([]float64, len(probs[i]))
	}
	z := make(space.Arch, len(probs))
	acc := 0
	for k := 0; k < n; k++ {
		Sample(probs, rng, z)
		ok, err := feasible(z)
		if err != nil {
			return Estimate{}, err
		}
		if !ok {
			continue
		}
		acc++
		for i, c := range z {
			counts[i][c]++
		}
	}
	e := Estimate{PV: float64(acc) / float64(n), Samples: n, Accepted: acc}
	if acc > 0 {
		for i := range counts {
			for j := range counts[i] {
				counts[i][j] /= float64(acc)
			}
		}
		e.Marginals = counts
	}
	return e, nil
}

// MaxEnumerate bounds the spaces Enumerate accepts.
const MaxEnumerate = 1 << 22

// Enumerate computes P(V) and the marginals of p(·|V) exactly by visiting every architecture.
func Enumerate(s *space.Space, probs [][]float64, feasible Feasible) (Estimate, error) {
	size := s.Size()
	if size > MaxEnumerate {
		return Estimate{}, fmt.Errorf("space has %d architectures, more than %d to enumerate", size, MaxEnumerate)
	}
	marg := make([][]float64, len(probs))
	for i := range marg {
		marg[i] = make([]float64, len(probs[i]))
	}
	var pv float64
	a := make(space.Arch, s.Layers())
	for r := int64(0); r < size; r++ {
		copy(a, s.Index(r))
		ok, err := feasible(a)
		if err != nil {
			return Estimate{}, err
		}
		if !ok {
			continue
		}
		pa := 1.0
		for i, c := range a {
			pa *= probs[i][c]
		}
		pv += pa
		for i, c := range a {
			marg[i][c] += pa
		}
	}
	return normalize(marg, pv), nil
}

func normalize(joint [][]float64, pv float64) Estimate {
	e := Estimate{PV: pv, Exact: true}
	if pv <= 0 {
		return e
	}
	for i := range joint {
		for j := range joint[i] {
			joint[i][j] /= pv
		}
	}
	e.Marginals = joint
	return e
}

// ErrNoExact says the exact correction has no method for this space and constraint set.
var ErrNoExact = errors.New("exact correction needs an enumerable space or a single additive constraint (such as a parameter budget)")

// Exact picks enumeration for small spaces with cheap constraints and the dynamic program
// for a single additive constraint otherwise.
func Exact(s *space.Space, probs [][]float64, cs space.Constraints) (Estimate, error) {
	if c, ok := cs.SingleAdditive(); ok {
		if s.Size() <= 4096 {
			return Enumerate(s, probs, func(a space.Arch) (bool, error) { return cs.Feasible(s, a) })
		}
		return DP(s, probs, c)
	}
	if s.Size() <= MaxEnumerate {
		return Enumerate(s, probs, func(a space.Arch) (bool, error) { return cs.Feasible(s, a) })
	}
	return Estimate{}, ErrNoExact
}
