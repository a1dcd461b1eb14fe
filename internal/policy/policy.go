// Package policy is the TabNAS controller: factorized softmax logits over layer widths,
// sampling, REINFORCE with a bias-corrected EMA baseline, rejection of infeasible samples,
// and the correction of the policy gradient by the probability of feasibility P(V),
// estimated by Monte Carlo or computed exactly (enumeration or dynamic programming).
package policy

import (
	"math"
	"math/rand/v2"

	"github.com/tabnas/tabnas/internal/space"
)

// Policy holds one logit vector per layer: p(y) = Π_i softmax(θ_i)[y_i].
type Policy struct {
	Space  *space.Space
	Logits [][]float64
}

// NewPolicy starts with all logits at zero (uniform).
func NewPolicy(s *space.Space) *Policy {
	n := 0
	for _, ws := range s.Widths {
		n += len(ws)
	}
	return fromFlat(s, make([]float64, n))
}

// fromFlat views one flat vector (what the optimizer updates) as per-layer logits.
func fromFlat(s *space.Space, flat []float64) *Policy {
	l := make([][]float64, s.Layers())
	off := 0
	for i, ws := range s.Widths {
		l[i] = flat[off : off+len(ws) : off+len(ws)]
		off += len(ws)
	}
	return &Policy{Space: s, Logits: l}
}

// Flat returns the logits as one vector, layer after layer (a copy).
func (p *Policy) Flat() []float64 {
	var out []float64
	for _, l := range p.Logits {
		out = append(out, l...)
	}
	return out
}

// Clone deep-copies the logits (the space is shared, it is immutable).
func (p *Policy) Clone() *Policy { return fromFlat(p.Space, p.Flat()) }

// Probs returns softmax(θ_i) for every layer.
func (p *Policy) Probs() [][]float64 {
	out := make([][]float64, len(p.Logits))
	for i, th := range p.Logits {
		out[i] = softmax(th, make([]float64, len(th)))
	}
	return out
}

func softmax(th, dst []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range th {
		m = math.Max(m, v)
	}
	var z float64
	for j, v := range th {
		dst[j] = math.Exp(v - m)
		z += dst[j]
	}
	for j := range dst {
		dst[j] /= z
	}
	return dst
}

// Sample draws y ~ p with the given probabilities (from Probs) into dst.
func Sample(probs [][]float64, rng *rand.Rand, dst space.Arch) space.Arch {
	if dst == nil {
		dst = make(space.Arch, len(probs))
	}
	for i, pr := range probs {
		dst[i] = draw(pr, rng.Float64())
	}
	return dst
}

func draw(pr []float64, u float64) int {
	var acc float64
	for j, v := range pr {
		acc += v
		if u < acc {
			return j
		}
	}
	// u ≥ Σ p only through rounding: take the last choice with positive mass.
	for j := len(pr) - 1; j >= 0; j-- {
		if pr[j] > 0 {
			return j
		}
	}
	return len(pr) - 1
}

// LogProb is log p(a).
func LogProb(probs [][]float64, a space.Arch) float64 {
	var lp float64
	for i, c := range a {
		lp += math.Log(probs[i][c])
	}
	return lp
}

// Argmax is the per-layer most probable choice (often infeasible; never the search result).
func Argmax(probs [][]float64) space.Arch {
	a := make(space.Arch, len(probs))
	for i, pr := range probs {
		for j, v := range pr {
			if v > pr[a[i]] {
				a[i] = j
			}
		}
	}
	return a
}

// Stream returns a deterministic random source for a purpose at a step, so that any
// process (coordinator, sampler, a resumed run) derives the same numbers without shared state.
func Stream(seed uint64, purpose string, step int64) *rand.Rand {
	h := uint64(1469598103934665603)
	for _, b := range []byte(purpose) {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, h^uint64(step)*0xbf58476d1ce4e5b9))
}
