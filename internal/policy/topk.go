package policy

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/tabnas/tabnas/internal/space"
)

// Ranked is one architecture with its probability under the policy.
type Ranked struct {
	Arch    space.Arch
	LogProb float64
}

// TopK is the answer of TopKFeasible: the k most probable feasible architectures, best first.
type TopK struct {
	Archs []Ranked
	// Exact is false when the best-first search ran out of its expansion budget and the
	// list comes from sampling instead.
	Exact bool
}

// MaxExpansions bounds the best-first search before it falls back to sampling.
const MaxExpansions = 2_000_000

type node struct {
	prefix []int
	lp     float64 // log p of the prefix
	bound  float64 // lp + best possible log p of the remaining layers
	cost   []float64
}

type nodeHeap []*node

func (h nodeHeap) Len() int { return len(h) }
func (h nodeHeap) Less(i, j int) bool {
	if h[i].bound != h[j].bound {
		return h[i].bound > h[j].bound
	}
	if len(h[i].prefix) != len(h[j].prefix) {
		return len(h[i].prefix) > len(h[j].prefix)
	}
	return slices.Compare(h[i].prefix, h[j].prefix) < 0
}
func (h nodeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)   { *h = append(*h, x.(*node)) }
func (h *nodeHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	*h = old[:len(old)-1]
	return n
}

// TopKFeasible returns the k most probable architectures of V, most probable first — the
// search's answer is the first, argmax_{y∈V} p(y), which is not the per-layer argmax.
// It runs a best-first search over layer prefixes ordered by an admissible bound on log p,
// pruning prefixes whose additive costs cannot fit any more; when that exceeds
// MaxExpansions it samples instead (Exact false). Ties break lexicographically.
func TopKFeasible(s *space.Space, probs [][]float64, cs space.Constraints, k int, rng *rand.Rand) (TopK, error) {
	if k < 1 {
		return TopK{}, fmt.Errorf("top-k needs k ≥ 1, got %d", k)
	}
	L := s.Layers()
	var adds []space.Additive
	var minAfter [][][]float64
	for _, c := range cs {
		if a, ok := c.(space.Additive); ok {
			adds = append(adds, a)
			minAfter = append(minAfter, space.MinCompletion(a, s))
		}
	}
	// bestRest[i] = Σ_{l≥i} max_j log p_l(j)
	bestRest := make([]float64, L+1)
	for i := L - 1; i >= 0; i-- {
		mx := math.Inf(-1)
		for _, v := range probs[i] {
			mx = math.Max(mx, math.Log(v))
		}
		bestRest[i] = bestRest[i+1] + mx
	}
	h := &nodeHeap{{bound: bestRest[0], cost: make([]float64, len(adds))}}
	var out []Ranked
	for n := 0; h.Len() > 0 && len(out) < k; n++ {
		if n > MaxExpansions {
			return topKSampled(s, probs, cs, k, rng)
		}
		nd := heap.Pop(h).(*node)
		d := len(nd.prefix)
		if d == L {
			a := space.Arch(nd.prefix)
			ok, err := cs.Feasible(s, a)
			if err != nil {
				return TopK{}, err
			}
			if ok {
				out = append(out, Ranked{Arch: a, LogProb: nd.lp})
			}
			continue
		}
		prev := s.In
		if d > 0 {
			prev = s.Widths[d-1][nd.prefix[d-1]]
		}
	child:
		for j, w := range s.Widths[d] {
			if probs[d][j] == 0 {
				continue
			}
			cost := make([]float64, len(adds))
			for ci, c := range adds {
				cost[ci] = nd.cost[ci] + c.EdgeCost(d, prev, w)
				if cost[ci]+minAfter[ci][d][j] > c.Limit() {
					continue child
				}
			}
			lp := nd.lp + math.Log(probs[d][j])
			p := append(slices.Clip(nd.prefix), j)
			heap.Push(h, &node{prefix: p, lp: lp, bound: lp + bestRest[d+1], cost: cost})
		}
	}
	return TopK{Archs: out, Exact: true}, nil
}

// topKSampled ranks distinct feasible architectures among many samples by probability.
func topKSampled(s *space.Space, probs [][]float64, cs space.Constraints, k int, rng *rand.Rand) (TopK, error) {
	seen := map[string]bool{}
	var out []Ranked
	a := make(space.Arch, s.Layers())
	for n := 0; n < 200_000; n++ {
		Sample(probs, rng, a)
		key := fmt.Sprint([]int(a))
		if seen[key] {
			continue
		}
		seen[key] = true
		ok, err := cs.Feasible(s, a)
		if err != nil {
			return TopK{}, err
		}
		if ok {
			out = append(out, Ranked{Arch: slices.Clone(a), LogProb: LogProb(probs, a)})
		}
	}
	slices.SortFunc(out, func(x, y Ranked) int {
		if x.LogProb != y.LogProb {
			if x.LogProb > y.LogProb {
				return -1
			}
			return 1
		}
		return slices.Compare(x.Arch, y.Arch)
	})
	if len(out) > k {
		out = out[:k]
	}
	return TopK{Archs: out}, nil
}
