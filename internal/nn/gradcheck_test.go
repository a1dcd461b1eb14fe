package nn

import (
	"fmt"
	"math"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
)

var allTasks = []Task{RegressionTask(), BinaryTask(), MulticlassTask(3)}

// Loss gradients w.r.t. the logits. Logits are multiples of 1/16 and the step is 2⁻¹⁰, so
// z ± h is exact in float32 and the finite difference sees the float64 loss of exactly those
// logits: central-difference error O(h²) ≈ 1e-6. Tolerance |analytic − fd| ≤ 1e-5 + 1e-4·|fd|.
func TestLossGradientsFD(t *testing.T) {
	const rows = 6
	for _, task := range allTasks {
		k := task.Outputs()
		rng := testRNG(7)
		z := make([]float64, rows*k)
		for i := range z {
			z[i] = float64(rng.IntN(161)-80) / 16 // [−5, 5]
		}
		_, y := randomBatch(1, rows, task, 8)
		tmp := make([]float64, k)
		f := func(p []float64) float64 {
			z32 := make([]float32, len(p))
			for i, v := range p {
				z32[i] = float32(v)
			}
			return task.lossRows(z32, y, rows, nil, nil, 0, tmp, nil)
		}
		num := fd.Gradient(nil, f, z, &fd.Settings{Formula: fd.Central, Step: 1.0 / 1024})

		z32 := make([]float32, len(z))
		for i, v := range z {
			z32[i] = float32(v)
		}
		const scale = 0.5
		dz, db := make([]float32, len(z)), make([]float32, k)
		loss := task.lossRows(z32, y, rows, dz, db, scale, tmp, nil)
		if !near(loss, f(z), 0, 1e-12) {
			t.Errorf("%v: loss with gradient %v ≠ loss alone %v", task, loss, f(z))
		}
		colSum := make([]float64, k)
		for i := range z {
			got := float64(dz[i]) / scale
			if !near(got, num[i], 1e-5, 1e-4) {
				t.Errorf("%v: ∂loss/∂z[%d] = %v, finite difference %v", task, i, got, num[i])
			}
			colSum[i%k] += float64(dz[i])
		}
		for j := range db {
			if !near(float64(db[j]), colSum[j], 1e-6, 1e-6) {
				t.Errorf("%v: output bias gradient %d = %v, column sum of dz %v", task, j, db[j], colSum[j])
			}
		}
	}
}

// Losses must stay finite and exact at extreme logits (log-sum-exp, softplus).
func TestLossStability(t *testing.T) {
	tmp := make([]float64, 3)
	cases := []struct {
		task Task
		z    []float32
		y    float32
		want float64
	}{
		{BinaryTask(), []float32{800}, 0, 800},
		{BinaryTask(), []float32{800}, 1, 0},
		{BinaryTask(), []float32{-800}, 1, 800},
		{BinaryTask(), []float32{-800}, 0, 0},
		{BinaryTask(), []float32{0}, 1, math.Ln2},
		{MulticlassTask(3), []float32{1000, 0, -1000}, 0, 0},
		{MulticlassTask(3), []float32{1000, 0, -1000}, 2, 2000},
		{MulticlassTask(3), []float32{-1000, -1000, -1000}, 1, math.Log(3)},
		{RegressionTask(), []float32{3}, -1, 16},
	}
	for _, c := range cases {
		dz, db := make([]float32, len(c.z)), make([]float32, len(c.z))
		got := c.task.lossRows(c.z, []float32{c.y}, 1, dz, db, 1, tmp, nil)
		if !near(got, c.want, 1e-12, 1e-12) {
			t.Errorf("%v z=%v y=%v: loss %v, want %v", c.task, c.z, c.y, got, c.want)
		}
		for _, d := range dz {
			if math.IsNaN(float64(d)) || math.IsInf(float64(d), 0) {
				t.Errorf("%v z=%v y=%v: gradient %v not finite", c.task, c.z, c.y, dz)
			}
		}
	}
}

// Gradients of every weight and bias of every layer against central finite differences of
// an independent float64 forward (refLoss) at the child's packed parameters.
// Step 1e-6 (truncation ~1e-12, round-off ~1e-10); the analytic gradient is float32, so the
// tolerance is |analytic − fd| ≤ 1e-5 + 1e-4·|fd| (observed ≤ 1e-6). The float32 loss itself must match the
// float64 reference within relative 1e-5.
func TestGradientFD(t *testing.T) {
	nets := []struct {
		in    int
		max   []int
		archs []Arch
	}{
		{5, []int{6, 4, 3}, []Arch{{6, 4, 3}, {1, 4, 1}, {3, 1, 2}, {1, 1, 1}, {6, 2, 3}}},
		{4, []int{5}, []Arch{{5}, {1}, {2}}},
		{4, []int{}, []Arch{{}}},
	}
	const rows = 7
	for ni, nc := range nets {
		for _, task := range allTasks {
			n := randomNet(nc.in, nc.max, task, uint64(10+ni))
			x, y := randomBatch(nc.in, rows, task, uint64(20+ni))
			ws := NewWorkspace(n, rows)
			for _, arch := range nc.archs {
				name := fmt.Sprintf("%d-%s-%d/%v", nc.in, Arch(nc.max), task.Outputs(), task)
				t.Run(name+"/"+arch.String(), func(t *testing.T) {
					checkGradientFD(t, n, arch, x, y, rows, ws)
				})
			}
		}
	}
}

func checkGradientFD(t *testing.T, n *SuperNet, arch Arch, x, y []float32, rows int, ws *Workspace) {
	p32 := make([]float32, n.SliceLen(arch))
	n.PackSlice(arch, p32)
	p := toF64(p32)
	f := func(q []float64) float64 { return refLoss(n.In, arch, n.Task, q, x, y, rows) }

	if got, want := n.Loss(arch, x, y, rows, ws), f(p); !near(got, want, 0, 1e-5) {
		t.Errorf("float32 loss %v, float64 reference %v", got, want)
	}

	g := n.NewGrads()
	const sentinel = 12345
	for i := range g.Data {
		g.Data[i] = sentinel
	}
	g.Zero(arch)
	lossSum := n.Gradient(arch, x, y, rows, 1, ws, g)
	if !near(lossSum, f(p), 0, 1e-5) {
		t.Errorf("Gradient's loss %v, reference %v", lossSum, f(p))
	}
	got := make([]float32, len(p))
	g.PackSlice(arch, got)
	num := fd.Gradient(nil, f, p, &fd.Settings{Formula: fd.Central, Step: 1e-6})

	// Walk the packed vector layer by layer to name failures and to require that every
	// layer's weights and biases were compared.
	widths := append(append([]int{n.In}, arch...), n.Out)
	k := 0
	for l := 0; l+1 < len(widths); l++ {
		for part, cnt := range []int{widths[l] * widths[l+1], widths[l+1]} {
			kind := [2]string{"W", "b"}[part]
			worst, nonzero := 0.0, 0
			for i := 0; i < cnt; i++ {
				a, b := float64(got[k+i]), num[k+i]
				if !near(a, b, 1e-5, 1e-4) {
					t.Errorf("layer %d %s[%d]: analytic %v, finite difference %v", l, kind, i, a, b)
				}
				worst = math.Max(worst, math.Abs(a-b))
				if b != 0 {
					nonzero++
				}
			}
			t.Logf("layer %d %s: %d entries (%d non-zero), max |analytic − fd| = %.2g", l, kind, cnt, nonzero, worst)
			if nonzero == 0 {
				t.Errorf("layer %d %s: every gradient is zero, the check would be vacuous", l, kind)
			}
			k += cnt
		}
	}
	if k != len(p) {
		t.Fatalf("walked %d entries of %d", k, len(p))
	}
	// Everything outside the slice still holds the sentinel.
	in := sliceMask(n, arch)
	for i, v := range g.Data {
		if !in[i] && v != sentinel {
			t.Fatalf("gradient outside the slice touched at %d: %v", i, v)
		}
	}
}

// sliceMask marks the flat indices of child arch, derived from the layout directly.
func sliceMask(n *SuperNet, arch Arch) []bool {
	m := make([]bool, len(n.Weights))
	widths := append(append([]int{n.In}, arch...), n.Out)
	for l, ly := range n.layers {
		for i := 0; i < widths[l]; i++ {
			for j := 0; j < widths[l+1]; j++ {
				m[ly.w+i*ly.out+j] = true
			}
		}
		for j := 0; j < widths[l+1]; j++ {
			m[ly.b+j] = true
		}
	}
	return m
}
