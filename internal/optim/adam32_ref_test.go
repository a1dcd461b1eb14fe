package optim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// stepRef is the scalar Adam32 loop the vector kernels must reproduce bit for bit.
func stepRef(a *Adam32, params, grad []float32, spans []Span) {
	a.T++
	c1 := float32(1 / (1 - math.Pow(a.Beta1, float64(a.T))))
	c2 := float32(1 / (1 - math.Pow(a.Beta2, float64(a.T))))
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	o1, o2 := float32(1-a.Beta1), float32(1-a.Beta2)
	lr, eps := float32(a.LR), float32(a.Eps)
	for _, s := range spans {
		for i := s.Lo; i < s.Hi; i++ {
			gi := grad[i]
			mi := float32(b1*a.M[i]) + float32(o1*gi)
			vi := float32(b2*a.V[i]) + float32(float32(o2*gi)*gi)
			a.M[i], a.V[i] = mi, vi
			params[i] -= float32(lr*float32(mi*c1)) / (float32(math.Sqrt(float64(vi*c2))) + eps)
		}
	}
}

func TestAdam32MatchesScalarBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n = 3000
	a, ref := NewAdam32(n, 3e-3), NewAdam32(n, 3e-3)
	p := make([]float32, n)
	for i := range p {
		p[i] = float32(rng.NormFloat64())
	}
	pr := slices.Clone(p)
	g := make([]float32, n)
	for step := range 50 {
		for i := range g {
			g[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()*3))
		}
		// Spans of odd lengths (vector tails), single entries and an empty one.
		var spans []Span
		for lo := step % 7; lo < n; {
			hi := min(lo+1+rng.IntN(200), n)
			spans = append(spans, Span{lo, hi})
			lo = hi + rng.IntN(5)
		}
		spans = append(spans, Span{0, 0})
		a.Step(p, g, spans)
		stepRef(ref, pr, g, spans)
		for i := range p {
			if math.Float32bits(p[i]) != math.Float32bits(pr[i]) ||
				math.Float32bits(a.M[i]) != math.Float32bits(ref.M[i]) ||
				math.Float32bits(a.V[i]) != math.Float32bits(ref.V[i]) {
				t.Fatalf("step %d entry %d: p,m,v = %v %v %v, want %v %v %v",
					step, i, p[i], a.M[i], a.V[i], pr[i], ref.M[i], ref.V[i])
			}
		}
	}
}
