package space

import (
	"fmt"
	"math"
	"strings"
)

// Constraint is one resource limit: an architecture is feasible for it when Cost ≤ Limit.
type Constraint interface {
	// Name is a short identifier such as "params" or "latency_ms".
	Name() string
	Limit() float64
	// Cost may be measured (latency) and so may fail.
	Cost(s *Space, a Arch) (float64, error)
}

// Additive is a constraint whose cost is a sum over edges, Σ_{i=0..L} EdgeCost(i, n_i, n_{i+1}),
// with every edge cost ≥ 0. Parameter counts and per-layer latency estimates are additive;
// it is what makes the exact dynamic program and cost lower bounds possible.
type Additive interface {
	Constraint
	// EdgeCost is the cost of the edge into hidden layer i (i == Layers() means the output
	// layer) from width from to width to.
	EdgeCost(i, from, to int) float64
}

// MaxParams limits the parameter count (weights and biases).
type MaxParams struct{ Max int64 }

func (c MaxParams) Name() string                           { return "params" }
func (c MaxParams) Limit() float64                         { return float64(c.Max) }
func (c MaxParams) Cost(s *Space, a Arch) (float64, error) { return float64(s.Params(a)), nil }
func (c MaxParams) EdgeCost(_ int, from, to int) float64   { return float64(EdgeParams(from, to)) }

// AdditiveCost sums an additive constraint's edge costs over an architecture.
func AdditiveCost(c Additive, s *Space, a Arch) float64 {
	var sum float64
	prev := s.In
	for i, ch := range a {
		w := s.Widths[i][ch]
		sum += c.EdgeCost(i, prev, w)
		prev = w
	}
	return sum + c.EdgeCost(len(a), prev, s.Out)
}

// Constraints combine with AND. An empty set makes every architecture feasible.
type Constraints []Constraint

// Feasible reports whether every cost is within its limit.
func (cs Constraints) Feasible(s *Space, a Arch) (bool, error) {
	for _, c := range cs {
		v, err := c.Cost(s, a)
		if err != nil {
			return false, fmt.Errorf("%s cost of %s: %w", c.Name(), s.Format(a), err)
		}
		if math.IsNaN(v) || v > c.Limit() {
			return false, nil
		}
	}
	return true, nil
}

// Costs evaluates every constraint, keyed by name.
func (cs Constraints) Costs(s *Space, a Arch) (map[string]float64, error) {
	out := make(map[string]float64, len(cs))
	for _, c := range cs {
		v, err := c.Cost(s, a)
		if err != nil {
			return nil, fmt.Errorf("%s cost of %s: %w", c.Name(), s.Format(a), err)
		}
		out[c.Name()] = v
	}
	return out, nil
}

// String lists the limits, e.g. "params ≤ 41153".
func (cs Constraints) String() string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s ≤ %g", c.Name(), c.Limit())
	}
	return strings.Join(parts, " AND ")
}

// SingleAdditive returns the only constraint when there is exactly one and it is additive.
func (cs Constraints) SingleAdditive() (Additive, bool) {
	if len(cs) != 1 {
		return nil, false
	}
	a, ok := cs[0].(Additive)
	return a, ok
}

// MinCompletion returns, for each hidden layer i and choice j, the smallest additive cost of
// the edges after layer i (into layer i+1 … output) over all completions. It bounds the cost
// of any architecture extending a prefix, for pruning.
func MinCompletion(c Additive, s *Space) [][]float64 {
	L := s.Layers()
	m := make([][]float64, L)
	for i := L - 1; i >= 0; i-- {
		m[i] = make([]float64, len(s.Widths[i]))
		for j, w := range s.Widths[i] {
			if i == L-1 {
				m[i][j] = c.EdgeCost(L, w, s.Out)
				continue
			}
			best := math.Inf(1)
			for k, w2 := range s.Widths[i+1] {
				if v := c.EdgeCost(i+1, w, w2) + m[i+1][k]; v < best {
					best = v
				}
			}
			m[i][j] = best
		}
	}
	return m
}
