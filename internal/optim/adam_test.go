package optim

import (
	"math"
	"testing"
)

// Two steps worked by hand with lr 0.1, β1 .9, β2 .999, ε 1e-8.
//
// Entry 0: p0 = 1, g = 0.5 then −1.
//
//	t=1: m = .05, v = .00025, m̂ = .5, v̂ = .25 → p = 1 − .1·.5/(.5+1e-8) = 0.900000002
//	t=2: m = .9·.05 − .1 = −.055, v = .999·.00025 + .001 = .00124975,
//	     m̂ = −.055/.19, v̂ = .00124975/.001999 → p = 0.9366103542405654
//
// Entry 1: p0 = −.5, g = 2 then 0.
//
//	t=1: m̂ = 2, v̂ = 4 → p = −.5 − .1·2/(2+1e-8) = −0.5999999995
//	t=2: m = .18, v = .003996, m̂ = .18/.19, v̂ = .003996/.001999 → p = −0.6670058244397327
var oracle = [2][2]float64{
	{0.900000002, 0.9366103542405654},
	{-0.5999999995, -0.6670058244397327},
}

func TestAdam64TwoStepOracle(t *testing.T) {
	a := NewAdam64(2, 0.1)
	p := []float64{1, -0.5}
	grads := [2][]float64{{0.5, 2}, {-1, 0}}
	for step := 0; step < 2; step++ {
		a.Step(p, grads[step])
		for i := range p {
			if d := math.Abs(p[i] - oracle[i][step]); d > 1e-12 {
				t.Errorf("step %d entry %d: got %.17g want %.17g (|diff| %g > 1e-12)", step+1, i, p[i], oracle[i][step], d)
			}
		}
	}
	// Closed form of step 2, entry 0, as a second check on the constants above.
	mh, vh := -0.055/0.19, 0.00124975/0.001999
	want := 0.900000002 - 0.1*mh/(math.Sqrt(vh)+1e-8)
	if math.Abs(want-oracle[0][1]) > 1e-12 {
		t.Fatalf("oracle constant inconsistent: %.17g vs %.17g", want, oracle[0][1])
	}
	if a.T != 2 {
		t.Fatalf("T = %d, want 2", a.T)
	}
}

func TestAdam64Ascend(t *testing.T) {
	a, b := NewAdam64(2, 0.1), NewAdam64(2, 0.1)
	p, q := []float64{1, -0.5}, []float64{1, -0.5}
	for _, g := range [][]float64{{0.5, 2}, {-1, 0}} {
		a.Ascend(p, g)
		b.Step(q, []float64{-g[0], -g[1]})
	}
	for i := range p {
		if p[i] != q[i] {
			t.Errorf("ascend(g) ≠ step(−g) at %d: %v vs %v", i, p[i], q[i])
		}
	}
}

func TestAdam32TwoStepOracle(t *testing.T) {
	a := NewAdam32(2, 0.1)
	p := []float32{1, -0.5}
	grads := [2][]float32{{0.5, 2}, {-1, 0}}
	for step := 0; step < 2; step++ {
		a.StepAll(p, grads[step])
		for i := range p {
			// float32 arithmetic: a few ulps of the O(1) result.
			if d := math.Abs(float64(p[i]) - oracle[i][step]); d > 1e-6 {
				t.Errorf("step %d entry %d: got %.9g want %.9g (|diff| %g > 1e-6)", step+1, i, p[i], oracle[i][step], d)
			}
		}
	}
}

// An entry first updated at step 2 must use the global bias correction of t = 2,
// and entries outside the spans keep parameters and moments bit-identical.
func TestAdam32SpansGlobalStep(t *testing.T) {
	a := NewAdam32(6, 0.01)
	p := []float32{0.25, 0.5, 0.75, 1, 1.25, 1.5}
	g := []float32{3, 3, 3, 3, 3, 3}
	a.Step(p, g, []Span{{4, 6}})
	before := append([]float32(nil), p...)
	a.Step(p, g, []Span{{0, 1}, {2, 3}})
	// t=2, first touch, g=3: m̂ = .3/.19, v̂ = .009/.001999.
	mh, vh := 0.3/0.19, 0.009/0.001999
	want := 0.25 - 0.01*mh/(math.Sqrt(vh)+1e-8) // 0.24255863179940035
	if d := math.Abs(float64(p[0]) - want); d > 1e-7 {
		t.Errorf("late-start entry: got %.9g want %.9g (|diff| %g > 1e-7)", p[0], want, d)
	}
	if p[2] == before[2] {
		t.Errorf("entry 2 not updated")
	}
	for _, i := range []int{1, 3, 4, 5} {
		if math.Float32bits(p[i]) != math.Float32bits(before[i]) {
			t.Errorf("entry %d outside spans changed: %v → %v", i, before[i], p[i])
		}
	}
	if a.M[1] != 0 || a.V[1] != 0 || a.M[3] != 0 || a.V[3] != 0 {
		t.Errorf("moments outside spans changed: M=%v V=%v", a.M, a.V)
	}
	if a.T != 2 {
		t.Errorf("T = %d, want 2", a.T)
	}
}

func TestAdamNoAlloc(t *testing.T) {
	a64 := NewAdam64(100, 1e-3)
	p64, g64 := make([]float64, 100), make([]float64, 100)
	a32 := NewAdam32(100, 1e-3)
	p32, g32 := make([]float32, 100), make([]float32, 100)
	spans := []Span{{0, 10}, {20, 50}}
	if n := testing.AllocsPerRun(50, func() {
		a64.Step(p64, g64)
		a32.Step(p32, g32, spans)
		a32.StepAll(p32, g32)
	}); n != 0 {
		t.Fatalf("allocs per step = %v, want 0", n)
	}
}

func TestAdamPanicsOnSizeMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on size mismatch")
		}
	}()
	NewAdam32(3, 1e-3).StepAll(make([]float32, 2), make([]float32, 2))
}

// Per-weight counts: every entry must follow exactly the Adam32 trajectory it would have
// as its own optimizer that only ever saw the steps that touched it.
func TestAdam32PerWeightCountsMatchesOwnOptimizer(t *testing.T) {
	const n = 7
	a := NewAdam32(n, 0.01)
	a.PerWeightCounts()
	p := []float32{0.5, -0.25, 1, 2, -3, 0.125, 4}
	own := make([]*Adam32, n)
	op := make([][]float32, n)
	for i := range own {
		own[i] = NewAdam32(1, 0.01)
		op[i] = []float32{p[i]}
	}
	// Prefix spans of varying width, like children of a SuperNet, plus a late-used tail.
	widths := []int{2, 5, 2, 3, 7, 1, 7, 4}
	for s, w := range widths {
		g := make([]float32, n)
		for i := range g {
			g[i] = float32(math.Sin(float64(3*s+i))) * float32(i+1)
		}
		a.Step(p, g, []Span{{0, w}})
		for i := 0; i < w; i++ {
			own[i].Step(op[i], g[i:i+1], []Span{{0, 1}})
		}
	}
	for i := range p {
		if p[i] != op[i][0] {
			t.Errorf("entry %d: %v with per-weight counts, %v with its own optimizer", i, p[i], op[i][0])
		}
		if want := uint32(own[i].T); a.Counts[i] != want {
			t.Errorf("entry %d counted %d steps, want %d", i, a.Counts[i], want)
		}
	}
}

// The first update of an entry first touched late is about lr with per-weight counts and
// 2.5–3.2× lr with the global counter.
func TestAdam32FirstUpdateOfLateEntry(t *testing.T) {
	for _, per := range []bool{false, true} {
		a := NewAdam32(2, 0.001)
		if per {
			a.PerWeightCounts()
		}
		p := []float32{0, 0}
		for s := 0; s < 1000; s++ {
			a.Step(p, []float32{1, 0}, []Span{{0, 1}})
		}
		a.Step(p, []float32{1, 1}, []Span{{0, 2}})
		ratio := math.Abs(float64(p[1])) / 0.001
		if per && math.Abs(ratio-1) > 1e-3 {
			t.Errorf("per-weight counts: first update %.4g× lr, want 1", ratio)
		}
		if !per && (ratio < 2.5 || ratio > 3.2) {
			t.Errorf("global counter: first update %.4g× lr, want 2.5–3.2", ratio)
		}
	}
}
