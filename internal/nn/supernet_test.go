package nn

import (
	"math"
	"sync"
	"testing"
)

// A child's forward equals that of a stand-alone network built by copying the child's
// sub-matrices element by element. Tolerance |Δ| ≤ 1e-6·(1+|v|); bitwise equality is logged.
func TestChildEqualsStandaloneCopy(t *testing.T) {
	const in, rows = 9, 13
	for _, task := range allTasks {
		n := randomNet(in, []int{16, 12, 10}, task, 3)
		x, _ := randomBatch(in, rows, task, 4)
		for _, arch := range []Arch{{16, 12, 10}, {5, 12, 1}, {1, 1, 1}, {7, 3, 9}} {
			sa, err := NewStandalone(in, arch, task, testRNG(5))
			if err != nil {
				t.Fatal(err)
			}
			widths := append(append([]int{in}, arch...), n.Out)
			for l, ly := range n.layers {
				sl := sa.Net.layers[l]
				for i := 0; i < widths[l]; i++ {
					for j := 0; j < widths[l+1]; j++ {
						sa.Net.Weights[sl.w+i*sl.out+j] = n.Weights[ly.w+i*ly.out+j]
					}
				}
				for j := 0; j < widths[l+1]; j++ {
					sa.Net.Weights[sl.b+j] = n.Weights[ly.b+j]
				}
			}
			ex, err := ExtractStandalone(n, arch)
			if err != nil {
				t.Fatal(err)
			}
			for i := range ex.Net.Weights {
				if ex.Net.Weights[i] != sa.Net.Weights[i] {
					t.Fatalf("%v %s: ExtractStandalone weight %d = %v, manual copy %v", task, arch, i, ex.Net.Weights[i], sa.Net.Weights[i])
				}
			}
			got := append([]float32(nil), n.Forward(arch, x, rows, NewWorkspace(n, rows))...)
			want := sa.Forward(x, rows, sa.NewWorkspace(rows))
			bitwise := true
			for i := range want {
				if got[i] != want[i] {
					bitwise = false
				}
				if !near(float64(got[i]), float64(want[i]), 1e-6, 1e-6) {
					t.Errorf("%v %s: logit %d child %v, stand-alone %v", task, arch, i, got[i], want[i])
				}
			}
			t.Logf("%v %s: bitwise equal = %v", task, arch, bitwise)
		}
	}
}

// One Adam step on a child's slice leaves every weight (and Adam moment) outside the slice
// bit-identical and moves the weights inside it.
func TestAdamUpdatesOnlySlice(t *testing.T) {
	const in, rows = 6, 20
	task := MulticlassTask(4)
	n := randomNet(in, []int{8, 7, 5}, task, 11)
	x, y := randomBatch(in, rows, task, 12)
	ws, g, opt := NewWorkspace(n, rows), n.NewGrads(), n.NewAdam(1e-2)
	for step, arch := range []Arch{{3, 7, 1}, {8, 2, 5}, {1, 1, 1}, {8, 7, 5}} {
		before := append([]float32(nil), n.Weights...)
		m0, v0 := append([]float32(nil), opt.M...), append([]float32(nil), opt.V...)
		n.TrainStep(arch, x, y, rows, ws, g, opt)
		mask := sliceMask(n, arch)
		changed, inside := 0, 0
		for i := range n.Weights {
			if !mask[i] {
				if math.Float32bits(n.Weights[i]) != math.Float32bits(before[i]) ||
					math.Float32bits(opt.M[i]) != math.Float32bits(m0[i]) ||
					math.Float32bits(opt.V[i]) != math.Float32bits(v0[i]) {
					t.Fatalf("step %d %s: entry %d outside the slice changed", step, arch, i)
				}
				continue
			}
			inside++
			if n.Weights[i] != before[i] {
				changed++
			}
		}
		if inside != n.SliceLen(arch) {
			t.Fatalf("%s: mask has %d entries, SliceLen %d", arch, inside, n.SliceLen(arch))
		}
		// Dead units get zero gradients, so not every entry must move, but most do.
		if changed < inside/2 {
			t.Errorf("step %d %s: only %d of %d slice weights changed", step, arch, changed, inside)
		}
		if opt.T != step+1 {
			t.Errorf("Adam step counter %d after %d steps", opt.T, step+1)
		}
	}
}

// Accumulating two shards with scale 1/total equals one pass over their union.
// Tolerance 1e-6·(1+|g|): only the order of float32 sums may differ.
func TestShardAccumulation(t *testing.T) {
	const in, rows = 7, 23
	for _, task := range allTasks {
		n := randomNet(in, []int{12, 9}, task, 21)
		x, y := randomBatch(in, rows, task, 22)
		arch := Arch{10, 4}
		ws := NewWorkspace(n, rows)
		scale := float32(1) / rows

		one := n.NewGrads()
		one.Zero(arch)
		lossOne := n.Gradient(arch, x, y, rows, scale, ws, one)

		two := n.NewGrads()
		two.Zero(arch)
		const cut = 9
		lossTwo := n.Gradient(arch, x[:cut*in], y[:cut], cut, scale, ws, two)
		lossTwo += n.Gradient(arch, x[cut*in:], y[cut:], rows-cut, scale, ws, two)

		if !near(lossTwo, lossOne, 0, 1e-12) {
			t.Errorf("%v: loss over shards %v, over union %v", task, lossTwo, lossOne)
		}
		for i := range one.Data {
			if !near(float64(two.Data[i]), float64(one.Data[i]), 1e-6, 1e-6) {
				t.Errorf("%v: gradient %d over shards %v, over union %v", task, i, two.Data[i], one.Data[i])
			}
		}
	}
}

// Shards computed concurrently (each with its own workspace and Grads) and reduced in a
// fixed order give the same bits as the same shards computed serially.
func TestConcurrentShards(t *testing.T) {
	const in, shards, per = 5, 4, 16
	task := MulticlassTask(3)
	n := randomNet(in, []int{32, 16}, task, 31)
	x, y := randomBatch(in, shards*per, task, 32)
	arch := Arch{20, 16}
	run := func(parallel bool) []float32 {
		gs := make([]*Grads, shards)
		var wg sync.WaitGroup
		for s := 0; s < shards; s++ {
			gs[s] = n.NewGrads()
			f := func(s int) {
				defer wg.Done()
				ws := NewWorkspace(n, per)
				gs[s].Zero(arch)
				n.Gradient(arch, x[s*per*in:(s+1)*per*in], y[s*per:(s+1)*per], per, 1.0/(shards*per), ws, gs[s])
			}
			wg.Add(1)
			if parallel {
				go f(s)
			} else {
				f(s)
			}
		}
		wg.Wait()
		sum := make([]float32, n.SliceLen(arch))
		buf := make([]float32, len(sum))
		for _, g := range gs {
			g.PackSlice(arch, buf)
			for i, v := range buf {
				sum[i] += v
			}
		}
		return sum
	}
	a, b := run(false), run(true)
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("entry %d: serial %v, concurrent %v", i, a[i], b[i])
		}
	}
}

// Inputs larger than the workspace are processed in chunks with the same results.
// Tolerance 1e-6·(1+|v|) (loss sums and gradient sums in another order).
func TestChunking(t *testing.T) {
	const in, rows = 4, 10
	for _, task := range allTasks {
		n := randomNet(in, []int{6, 5}, task, 41)
		x, y := randomBatch(in, rows, task, 42)
		arch := Arch{4, 5}
		big, small := NewWorkspace(n, rows), NewWorkspace(n, 3)
		if a, b := n.Loss(arch, x, y, rows, small), n.Loss(arch, x, y, rows, big); !near(a, b, 0, 1e-6) {
			t.Errorf("%v: chunked loss %v, whole %v", task, a, b)
		}
		pa, pb := make([]float32, rows*n.Out), make([]float32, rows*n.Out)
		n.Predict(arch, x, rows, small, pa)
		n.Predict(arch, x, rows, big, pb)
		for i := range pa {
			if pa[i] != pb[i] {
				t.Errorf("%v: chunked prediction %d = %v, whole %v", task, i, pa[i], pb[i])
			}
		}
		ga, gb := n.NewGrads(), n.NewGrads()
		n.Gradient(arch, x, y, rows, 0.1, small, ga)
		n.Gradient(arch, x, y, rows, 0.1, big, gb)
		for i := range ga.Data {
			if !near(float64(ga.Data[i]), float64(gb.Data[i]), 1e-6, 1e-6) {
				t.Errorf("%v: chunked gradient %d = %v, whole %v", task, i, ga.Data[i], gb.Data[i])
			}
		}
	}
}

func TestPredict(t *testing.T) {
	const in, rows = 5, 8
	for _, task := range allTasks {
		n := randomNet(in, []int{6}, task, 51)
		x, y := randomBatch(in, rows, task, 52)
		arch := Arch{3}
		ws := NewWorkspace(n, rows)
		logits := append([]float32(nil), n.Forward(arch, x, rows, ws)...)
		p := make([]float32, rows*n.Out)
		n.Predict(arch, x, rows, ws, p)
		var loss float64
		for r := 0; r < rows; r++ {
			pr, zr := p[r*n.Out:(r+1)*n.Out], logits[r*n.Out:(r+1)*n.Out]
			switch task.Kind {
			case Regression:
				if pr[0] != zr[0] {
					t.Errorf("regression prediction %v ≠ output %v", pr[0], zr[0])
				}
				loss += (float64(pr[0]) - float64(y[r])) * (float64(pr[0]) - float64(y[r]))
			case Binary:
				if want := 1 / (1 + math.Exp(-float64(zr[0]))); !near(float64(pr[0]), want, 1e-7, 1e-6) {
					t.Errorf("binary probability %v, sigmoid %v", pr[0], want)
				}
				q := float64(pr[0])
				if y[r] == 0 {
					q = 1 - q
				}
				loss -= math.Log(q)
			case Multiclass:
				var s float64
				for _, v := range pr {
					s += float64(v)
				}
				if !near(s, 1, 1e-6, 0) {
					t.Errorf("softmax row %d sums to %v", r, s)
				}
				loss -= math.Log(float64(pr[int(y[r])]))
			}
		}
		// The loss is the negative log-likelihood (or squared error) of the predictions.
		if l := n.Loss(arch, x, y, rows, ws); !near(l, loss, 1e-6, 1e-5) {
			t.Errorf("%v: Loss %v, from predictions %v", task, l, loss)
		}
	}
}

func TestPackUnpackAndZero(t *testing.T) {
	n := randomNet(5, []int{7, 6}, MulticlassTask(3), 61)
	arch := Arch{2, 6}
	buf := make([]float32, n.SliceLen(arch))
	n.PackSlice(arch, buf)

	// Packing order: layer by layer, W rows (in × out) then b.
	widths := []int{5, 2, 6, 3}
	k := 0
	for l, ly := range n.layers {
		for i := 0; i < widths[l]; i++ {
			for j := 0; j < widths[l+1]; j++ {
				if buf[k] != n.Weights[ly.w+i*ly.out+j] {
					t.Fatalf("packed %d ≠ W%d[%d,%d]", k, l, i, j)
				}
				k++
			}
		}
		for j := 0; j < widths[l+1]; j++ {
			if buf[k] != n.Weights[ly.b+j] {
				t.Fatalf("packed %d ≠ b%d[%d]", k, l, j)
			}
			k++
		}
	}

	// The packed slice moves into a SuperNet with other maximum widths.
	m := randomNet(5, []int{9, 6}, MulticlassTask(3), 62)
	m.UnpackSlice(arch, buf)
	x, _ := randomBatch(5, 4, m.Task, 63)
	a := append([]float32(nil), n.Forward(arch, x, 4, NewWorkspace(n, 4))...)
	b := m.Forward(arch, x, 4, NewWorkspace(m, 4))
	for i := range a {
		if !near(float64(a[i]), float64(b[i]), 1e-6, 1e-6) {
			t.Fatalf("logit %d: %v vs %v after moving the slice", i, a[i], b[i])
		}
	}

	// Unpack writes only the slice; Zero clears only the slice.
	g := n.NewGrads()
	for i := range g.Data {
		g.Data[i] = 7
	}
	ones := make([]float32, len(buf))
	for i := range ones {
		ones[i] = 1
	}
	g.UnpackSlice(arch, ones)
	mask := sliceMask(n, arch)
	for i, v := range g.Data {
		if want := map[bool]float32{true: 1, false: 7}[mask[i]]; v != want {
			t.Fatalf("after UnpackSlice entry %d = %v, want %v", i, v, want)
		}
	}
	g.Zero(arch)
	for i, v := range g.Data {
		if want := map[bool]float32{true: 0, false: 7}[mask[i]]; v != want {
			t.Fatalf("after Zero entry %d = %v, want %v", i, v, want)
		}
	}
	out := make([]float32, len(buf))
	g.PackSlice(arch, out)
	for _, v := range out {
		if v != 0 {
			t.Fatal("packed zero gradient is not zero")
		}
	}
}

func TestSpansCoverSlice(t *testing.T) {
	n := randomNet(5, []int{7, 6, 4}, BinaryTask(), 71)
	for _, arch := range []Arch{{7, 6, 4}, {1, 6, 2}, {3, 1, 4}} {
		mask := sliceMask(n, arch)
		got := make([]bool, len(mask))
		prevHi := -1
		for _, s := range n.AppendSpans(nil, arch) {
			if s.Lo <= prevHi {
				t.Fatalf("%s: spans overlap, unsorted or unmerged at %v", arch, s)
			}
			prevHi = s.Hi
			for i := s.Lo; i < s.Hi; i++ {
				got[i] = true
			}
		}
		for i := range mask {
			if mask[i] != got[i] {
				t.Fatalf("%s: index %d in slice %v, in spans %v", arch, i, mask[i], got[i])
			}
		}
	}
	// The full SuperNet is one contiguous span.
	if s := n.AppendSpans(nil, Arch{7, 6, 4}); len(s) != 1 || s[0].Lo != 0 || s[0].Hi != len(n.Weights) {
		t.Errorf("full SuperNet spans %v", s)
	}
}

func TestZeroAllocations(t *testing.T) {
	const in, rows = 10, 64
	task := MulticlassTask(5)
	n := randomNet(in, []int{32, 24, 16}, task, 81)
	x, y := randomBatch(in, rows, task, 82)
	ws, g, opt := NewWorkspace(n, 32), n.NewGrads(), n.NewAdam(1e-3)
	out := make([]float32, rows*n.Out)
	buf := make([]float32, n.SliceLen(Arch{32, 24, 16}))
	archs := []Arch{{32, 24, 16}, {5, 1, 16}, {17, 24, 3}}
	for _, arch := range archs {
		arch := arch
		allocs := testing.AllocsPerRun(20, func() {
			n.TrainStep(arch, x, y, rows, ws, g, opt) // rows > ws rows: chunked
			n.Gradient(arch, x, y, 32, 0.5, ws, g)
			n.Loss(arch, x, y, rows, ws)
			n.Evaluate(arch, x, y, rows, ws)
			n.Predict(arch, x, rows, ws, out)
			n.Forward(arch, x, 32, ws)
			b := buf[:n.SliceLen(arch)]
			n.PackSlice(arch, b)
			g.PackSlice(arch, b)
			g.UnpackSlice(arch, b)
			g.Zero(arch)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per step, want 0", arch, allocs)
		}
	}
}

func TestHotPathPanicsOnBadInput(t *testing.T) {
	n := randomNet(3, []int{4}, MulticlassTask(3), 91)
	ws := NewWorkspace(n, 4)
	x := make([]float32, 12)
	cases := map[string]func(){
		"arch too wide": func() { n.Loss(Arch{5}, x, []float32{0, 1, 2, 0}, 4, ws) },
		"label range":   func() { n.Loss(Arch{4}, x, []float32{0, 1, 3, 0}, 4, ws) },
		"short input":   func() { n.Loss(Arch{4}, x[:5], []float32{0, 1, 2, 0}, 4, ws) },
		"foreign ws": func() {
			n.Loss(Arch{4}, x, []float32{0, 1, 2, 0}, 4, NewWorkspace(randomNet(3, []int{5}, n.Task, 1), 4))
		},
		"forward rows": func() { n.Forward(Arch{4}, make([]float32, 15), 5, ws) },
	}
	for name, f := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
