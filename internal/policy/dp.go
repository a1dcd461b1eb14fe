package policy

import (
	"math"
	"slices"
	"sort"

	"github.com/tabnas/tabnas/internal/space"
)

// entry is one cumulative-cost bucket of a DP state (layer, width): all partial
// architectures reaching that state with exactly this cost, and their total probability.
type entry struct {
	cost, mass float64
}

type costList []entry

// cdf returns Σ mass over entries with cost ≤ x, using prefix sums pre (len = len(l)+1).
func (l costList) cdf(pre []float64, x float64) float64 {
	i := sort.Search(len(l), func(i int) bool { return l[i].cost > x })
	return pre[i]
}

// find returns the index of the entry with exactly this cost, or -1.
func (l costList) find(x float64) int {
	i := sort.Search(len(l), func(i int) bool { return l[i].cost >= x })
	if i < len(l) && l[i].cost == x {
		return i
	}
	return -1
}

func prefixSums(l costList) []float64 {
	pre := make([]float64, len(l)+1)
	for i, e := range l {
		pre[i+1] = pre[i] + e.mass
	}
	return pre
}

// merge sorts by cost and sums entries of equal cost.
func merge(l costList) costList {
	slices.SortFunc(l, func(a, b entry) int {
		switch {
		case a.cost < b.cost:
			return -1
		case a.cost > b.cost:
			return 1
		}
		return 0
	})
	out := l[:0]
	for _, e := range l {
		if n := len(out); n > 0 && out[n-1].cost == e.cost {
			out[n-1].mass += e.mass
			continue
		}
		out = append(out, e)
	}
	return out
}

// DP computes P(V) and the marginals of p(·|V) exactly for one additive constraint
// (a parameter budget, or a per-layer latency estimate) by dynamic programming over
// (layer, width, cumulative cost). Prefix states are built forward over the first m layers,
// suffix states backward over the rest, pruned by cost bounds and merged by equal cost;
// they meet at the edge into layer m, and feasible-completion masses are then propagated
// back through both halves, as in a forward-backward pass. Work grows with the number of
// distinct partial costs, about width^(L/2), instead of width^L for enumeration.
func DP(s *space.Space, probs [][]float64, c space.Additive) (Estimate, error) {
	L := s.Layers()
	B := c.Limit()
	W := s.Widths
	minAfter := space.MinCompletion(c, s)
	minUpTo := minPrefix(c, s)

	m := (L + 1) / 2 // prefix layers 0..m-1, suffix layers m..L-1
	if L == 1 {
		m = 1
	}

	// Forward: F[i][j] = cost of edges into layers 0..i with y_i = j, mass Π_{l≤i} p_l.
	F := make([][]costList, m)
	F[0] = make([]costList, len(W[0]))
	for j, w := range W[0] {
		if cost := c.EdgeCost(0, s.In, w); cost+minAfter[0][j] <= B && probs[0][j] > 0 {
			F[0][j] = costList{{cost, probs[0][j]}}
		}
	}
	for i := 1; i < m; i++ {
		F[i] = make([]costList, len(W[i]))
		for k, wk := range W[i] {
			pk := probs[i][k]
			if pk == 0 {
				continue
			}
			var l costList
			for j, wj := range W[i-1] {
				e := c.EdgeCost(i, wj, wk)
				for _, en := range F[i-1][j] {
					if cost := en.cost + e; cost+minAfter[i][k] <= B {
						l = append(l, entry{cost, en.mass * pk})
					}
				}
			}
			F[i][k] = merge(l)
		}
	}

	// Backward: S[i][k] = cost of edges after layer i (into i+1..output) with y_i = k,
	// mass Π_{l>i} p_l (p_i itself excluded).
	S := make([][]costList, L)
	for i := L - 1; i >= m; i-- {
		S[i] = make([]costList, len(W[i]))
		for k, wk := range W[i] {
			if i == L-1 {
				if cost := c.EdgeCost(L, wk, s.Out); cost+minUpTo[i][k] <= B {
					S[i][k] = costList{{cost, 1}}
				}
				continue
			}
			var l costList
			for n, wn := range W[i+1] {
				pn := probs[i+1][n]
				if pn == 0 {
					continue
				}
				e := c.EdgeCost(i+1, wk, wn)
				for _, en := range S[i+1][n] {
					if cost := en.cost + e; cost+minUpTo[i][k] <= B {
						l = append(l, entry{cost, en.mass * pn})
					}
				}
			}
			S[i][k] = merge(l)
		}
	}

	// Bk[i][j][x]: probability mass of feasible completions (layers i+1..L-1) of the prefix
	// bucket F[i][j][x]. Fk[i][k][x]: mass of feasible prefixes (layers 0..i-1) of S[i][k][x].
	Bk := make([][][]float64, m)
	Fk := make([][][]float64, L)
	last := m - 1
	Bk[last] = make([][]float64, len(W[last]))
	if m == L {
		for j, wj := range W[last] {
			e := c.EdgeCost(L, wj, s.Out)
			Bk[last][j] = make([]float64, len(F[last][j]))
			for x, en := range F[last][j] {
				if en.cost+e <= B {
					Bk[last][j][x] = 1
				}
			}
		}
	} else {
		preS := make([][]float64, len(W[m]))
		for k := range W[m] {
			preS[k] = prefixSums(S[m][k])
		}
		preF := make([][]float64, len(W[last]))
		for j := range W[last] {
			preF[j] = prefixSums(F[last][j])
		}
		for j, wj := range W[last] {
			Bk[last][j] = make([]float64, len(F[last][j]))
			for x, en := range F[last][j] {
				var sum float64
				for k, wk := range W[m] {
					if pk := probs[m][k]; pk > 0 {
						sum += pk * S[m][k].cdf(preS[k], B-en.cost-c.EdgeCost(m, wj, wk))
					}
				}
				Bk[last][j][x] = sum
			}
		}
		Fk[m] = make([][]float64, len(W[m]))
		for k, wk := range W[m] {
			Fk[m][k] = make([]float64, len(S[m][k]))
			for x, en := range S[m][k] {
				var sum float64
				for j, wj := range W[last] {
					sum += F[last][j].cdf(preF[j], B-en.cost-c.EdgeCost(m, wj, wk))
				}
				Fk[m][k][x] = sum
			}
		}
	}
	for i := last - 1; i >= 0; i-- {
		Bk[i] = make([][]float64, len(W[i]))
		for j, wj := range W[i] {
			Bk[i][j] = make([]float64, len(F[i][j]))
			for x, en := range F[i][j] {
				var sum float64
				for k, wk := range W[i+1] {
					pk := probs[i+1][k]
					if pk == 0 {
						continue
					}
					if y := F[i+1][k].find(en.cost + c.EdgeCost(i+1, wj, wk)); y >= 0 {
						sum += pk * Bk[i+1][k][y]
					}
				}
				Bk[i][j][x] = sum
			}
		}
	}
	for i := m + 1; i < L; i++ {
		Fk[i] = make([][]float64, len(W[i]))
		for k, wk := range W[i] {
			Fk[i][k] = make([]float64, len(S[i][k]))
			for x, en := range S[i][k] {
				var sum float64
				for j, wj := range W[i-1] {
					pj := probs[i-1][j]
					if pj == 0 {
						continue
					}
					if y := S[i-1][j].find(en.cost + c.EdgeCost(i, wj, wk)); y >= 0 {
						sum += pj * Fk[i-1][j][y]
					}
				}
				Fk[i][k][x] = sum
			}
		}
	}

	joint := make([][]float64, L)
	for i := 0; i < L; i++ {
		joint[i] = make([]float64, len(W[i]))
		for j := range W[i] {
			var sum float64
			if i < m {
				for x, en := range F[i][j] {
					sum += en.mass * Bk[i][j][x]
				}
			} else {
				for x, en := range S[i][j] {
					sum += en.mass * Fk[i][j][x]
				}
				sum *= probs[i][j]
			}
			joint[i][j] = sum
		}
	}
	var pv float64
	for _, v := range joint[0] {
		pv += v
	}
	return normalize(joint, pv), nil
}

// minPrefix[i][j] is the smallest cost of the edges into layers 0..i with y_i = j.
func minPrefix(c space.Additive, s *space.Space) [][]float64 {
	L := s.Layers()
	m := make([][]float64, L)
	for i := 0; i < L; i++ {
		m[i] = make([]float64, len(s.Widths[i]))
		for k, wk := range s.Widths[i] {
			if i == 0 {
				m[i][k] = c.EdgeCost(0, s.In, wk)
				continue
			}
			best := math.Inf(1)
			for j, wj := range s.Widths[i-1] {
				best = math.Min(best, m[i-1][j]+c.EdgeCost(i, wj, wk))
			}
			m[i][k] = best
		}
	}
	return m
}

// MinCost is the smallest cost of any architecture under an additive constraint, used to
// reject a budget no architecture meets before a search starts.
func MinCost(c space.Additive, s *space.Space) float64 {
	m := space.MinCompletion(c, s)
	best := math.Inf(1)
	for j, w := range s.Widths[0] {
		best = math.Min(best, c.EdgeCost(0, s.In, w)+m[0][j])
	}
	return best
}
