// Package optim holds the optimizers of the search: Adam over float64 vectors (controller
// logits) and Adam over float32 vectors that can update only chosen index spans (the
// SuperNet slice of one child), with a global or a per-entry step counter for bias correction.
//
// Optimizer state is kept in exported fields so that a checkpoint can save and restore it
// exactly. Steps do not allocate.
package optim

import (
	"fmt"
	"math"

	"github.com/tabnas/tabnas/internal/vec"
)

// Default Adam hyper-parameters (Kingma & Ba).
const (
	DefaultBeta1 = 0.9
	DefaultBeta2 = 0.999
	DefaultEps   = 1e-8
)

// Adam64 is Adam over a flat float64 vector.
//
// Update (t counted from 1): m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
// p ← p − lr·m̂/(√v̂ + ε) with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t).
type Adam64 struct {
	LR, Beta1, Beta2, Eps float64
	M, V                  []float64 // first and second moments
	T                     int       // steps taken
}

// NewAdam64 returns Adam with default betas and ε for n parameters.
func NewAdam64(n int, lr float64) *Adam64 {
	return &Adam64{LR: lr, Beta1: DefaultBeta1, Beta2: DefaultBeta2, Eps: DefaultEps,
		M: make([]float64, n), V: make([]float64, n)}
}

// Step takes one descent step: params ← params − update(grad).
func (a *Adam64) Step(params, grad []float64) { a.step(params, grad, -1) }

// Ascend takes one ascent step: params ← params + update(grad) (policy-gradient ascent).
func (a *Adam64) Ascend(params, grad []float64) { a.step(params, grad, 1) }

func (a *Adam64) step(params, grad []float64, sign float64) {
	n := len(a.M)
	if len(params) != n || len(grad) != n || len(a.V) != n {
		panic(fmt.Sprintf("optim: Adam64 sized %d got params %d, grad %d", n, len(params), len(grad)))
	}
	a.T++
	c1 := 1 / (1 - math.Pow(a.Beta1, float64(a.T)))
	c2 := 1 / (1 - math.Pow(a.Beta2, float64(a.T)))
	b1, b2 := a.Beta1, a.Beta2
	lr := sign * a.LR
	m, v, g := a.M[:n], a.V[:n], grad[:n]
	for i := range params[:n] {
		gi := g[i]
		mi := b1*m[i] + (1-b1)*gi
		vi := b2*v[i] + (1-b2)*gi*gi
		m[i], v[i] = mi, vi
		params[i] += lr * (mi * c1) / (math.Sqrt(vi*c2) + a.Eps)
	}
}

// Span is the half-open index range [Lo, Hi) of a flat parameter vector.
type Span struct{ Lo, Hi int }

// Adam32 is Adam over a flat float32 vector where each step may touch only some spans.
// Entries outside the spans of a step keep their parameters and moments bit-identical.
//
// Bias correction: with Counts nil the step counter T is global, so an entry first touched
// at step t is corrected with t, as if its earlier gradients had been zero, and its first
// update is (1−β1)·√((1−β2^t)/(1−β2)) times the learning rate: 2.5–3.2× for t ≥ 1000. With Counts set
// (PerWeightCounts), each entry is corrected with the number of steps that touched it —
// Adam's rule for a parameter that exists from its first gradient on.
type Adam32 struct {
	LR, Beta1, Beta2, Eps float64
	M, V                  []float32
	T                     int
	Counts                []uint32 // per-entry step counts; nil: global T

	coef []AdamCoefPair // bias corrections by count, grown on demand
}

// AdamCoefPair is 1/(1−β1^t), 1/(1−β2^t) for one t.
type AdamCoefPair struct{ C1, C2 float32 }

// PerWeightCounts switches bias correction to per-entry step counts (all zero now).
func (a *Adam32) PerWeightCounts() { a.Counts = make([]uint32, len(a.M)) }

func (a *Adam32) coefAt(t uint32) AdamCoefPair {
	for uint32(len(a.coef)) <= t {
		k := float64(len(a.coef))
		a.coef = append(a.coef, AdamCoefPair{
			C1: float32(1 / (1 - math.Pow(a.Beta1, k))),
			C2: float32(1 / (1 - math.Pow(a.Beta2, k))),
		})
	}
	return a.coef[t]
}

// NewAdam32 returns Adam with default betas and ε for n parameters.
func NewAdam32(n int, lr float64) *Adam32 {
	return &Adam32{LR: lr, Beta1: DefaultBeta1, Beta2: DefaultBeta2, Eps: DefaultEps,
		M: make([]float32, n), V: make([]float32, n)}
}

// Step advances T once and updates params[s.Lo:s.Hi] from grad[s.Lo:s.Hi] for every span.
// Spans must not overlap (an overlapped entry would be updated twice).
func (a *Adam32) Step(params, grad []float32, spans []Span) {
	n := len(a.M)
	if len(params) != n || len(grad) != n || len(a.V) != n {
		panic(fmt.Sprintf("optim: Adam32 sized %d got params %d, grad %d", n, len(params), len(grad)))
	}
	a.T++
	// Scalars in float64, cast once: the per-entry arithmetic stays in float32
	// (see vec.Adam for the exact order of operations).
	k := vec.AdamCoef{
		B1: float32(a.Beta1), B2: float32(a.Beta2),
		O1: float32(1 - a.Beta1), O2: float32(1 - a.Beta2),
		LR: float32(a.LR), Eps: float32(a.Eps),
		C1: float32(1 / (1 - math.Pow(a.Beta1, float64(a.T)))),
		C2: float32(1 / (1 - math.Pow(a.Beta2, float64(a.T)))),
	}
	for _, s := range spans {
		if s.Lo < 0 || s.Hi > n || s.Lo > s.Hi {
			panic(fmt.Sprintf("optim: span [%d,%d) outside [0,%d)", s.Lo, s.Hi, n))
		}
		if a.Counts == nil {
			vec.Adam(params[s.Lo:s.Hi], grad[s.Lo:s.Hi], a.M[s.Lo:s.Hi], a.V[s.Lo:s.Hi], &k)
			continue
		}
		// Runs of equal counts share their corrections; a child is a prefix of every
		// layer, so a row of a span has only as many runs as widths were used before.
		cnt := a.Counts
		for lo := s.Lo; lo < s.Hi; {
			t := cnt[lo] + 1
			hi := lo + 1
			for hi < s.Hi && cnt[hi]+1 == t {
				hi++
			}
			c := a.coefAt(t)
			k.C1, k.C2 = c.C1, c.C2
			vec.Adam(params[lo:hi], grad[lo:hi], a.M[lo:hi], a.V[lo:hi], &k)
			for i := lo; i < hi; i++ {
				cnt[i] = t
			}
			lo = hi
		}
	}
}

// StepAll updates every entry (one span covering the whole vector).
func (a *Adam32) StepAll(params, grad []float32) {
	s := [1]Span{{0, len(a.M)}}
	a.Step(params, grad, s[:])
}
