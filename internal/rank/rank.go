// Package rank measures how well one score orders items like another: Kendall's τ-b and
// Spearman's ρ (with average ranks for ties). The search uses them to say how far the
// shared-weight proxy can be trusted.
package rank

import (
	"fmt"
	"math"
	"slices"
)

// KendallTau is Kendall's τ-b of x and y: (concordant − discordant) pairs over the
// geometric mean of the pairs not tied in x and not tied in y. It is NaN when either
// side is constant.
func KendallTau(x, y []float64) (float64, error) {
	if err := check(x, y); err != nil {
		return math.NaN(), err
	}
	var conc, disc, tx, ty float64
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			dx, dy := sign(x[i]-x[j]), sign(y[i]-y[j])
			switch {
			case dx == 0 && dy == 0:
			case dx == 0:
				tx++
			case dy == 0:
				ty++
			case dx == dy:
				conc++
			default:
				disc++
			}
		}
	}
	den := math.Sqrt((conc + disc + tx) * (conc + disc + ty))
	if den == 0 {
		return math.NaN(), nil
	}
	return (conc - disc) / den, nil
}

// Spearman is Pearson's correlation of the average ranks of x and y.
func Spearman(x, y []float64) (float64, error) {
	if err := check(x, y); err != nil {
		return math.NaN(), err
	}
	return pearson(Ranks(x), Ranks(y)), nil
}

// Ranks returns 1-based ranks, ties sharing their average rank.
func Ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmpF(x[a], x[b]) })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && x[idx[j]] == x[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1 … j
		for k := i; k < j; k++ {
			r[idx[k]] = avg
		}
		i = j
	}
	return r
}

func pearson(a, b []float64) float64 {
	n := float64(len(a))
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma, mb = ma/n, mb/n
	var sab, saa, sbb float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	if saa == 0 || sbb == 0 {
		return math.NaN()
	}
	return sab / math.Sqrt(saa*sbb)
}

func check(x, y []float64) error {
	if len(x) != len(y) {
		return fmt.Errorf("rank: %d and %d values", len(x), len(y))
	}
	if len(x) < 2 {
		return fmt.Errorf("rank: need at least 2 pairs, got %d", len(x))
	}
	for i := range x {
		if math.IsNaN(x[i]) || math.IsNaN(y[i]) {
			return fmt.Errorf("rank: NaN at pair %d", i)
		}
	}
	return nil
}

func sign(v float64) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func cmpF(a, b float64) int { return sign(a - b) }
