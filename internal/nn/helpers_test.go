package nn

import (
	"math"
	"math/rand/v2"
)

func testRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 99)) }

// randomNet returns a SuperNet whose every weight is uniform in [−1, 1] and every bias
// uniform in [0.2, 1], so that even width-1 layers are active on some rows.
func randomNet(in int, maxWidths []int, task Task, seed uint64) *SuperNet {
	rng := testRNG(seed)
	n, err := NewSuperNet(in, maxWidths, task, rng)
	if err != nil {
		panic(err)
	}
	for i := range n.Weights {
		n.Weights[i] = float32(2*rng.Float64() - 1)
	}
	for _, ly := range n.layers {
		for j := 0; j < ly.out; j++ {
			n.Weights[ly.b+j] = float32(0.2 + 0.8*rng.Float64())
		}
	}
	return n
}

// randomBatch returns rows standard-normal inputs and labels valid for task.
func randomBatch(in, rows int, task Task, seed uint64) (x, y []float32) {
	rng := testRNG(seed)
	x = make([]float32, rows*in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y = make([]float32, rows)
	for r := range y {
		switch task.Kind {
		case Regression:
			y[r] = float32(rng.NormFloat64())
		case Binary:
			y[r] = float32(rng.IntN(2))
		case Multiclass:
			y[r] = float32(rng.IntN(task.Classes))
		}
	}
	return x, y
}

// refLoss is an independent float64 implementation of Σ_rows loss for a child given its
// packed parameters (per layer: W row-major in×out, then b).
func refLoss(in int, arch Arch, task Task, p []float64, x, y []float32, rows int) float64 {
	widths := append(append([]int{in}, arch...), task.Outputs())
	var total float64
	for r := 0; r < rows; r++ {
		h := make([]float64, in)
		for i := range h {
			h[i] = float64(x[r*in+i])
		}
		k := 0
		for l := 0; l+1 < len(widths); l++ {
			ni, no := widths[l], widths[l+1]
			w := p[k : k+ni*no]
			k += ni * no
			b := p[k : k+no]
			k += no
			z := make([]float64, no)
			for j := range z {
				s := b[j]
				for i := 0; i < ni; i++ {
					s += h[i] * w[i*no+j]
				}
				if l+2 < len(widths) {
					s = math.Max(s, 0)
				}
				z[j] = s
			}
			h = z
		}
		total += refRowLoss(task, h, y[r])
	}
	return total
}

func refRowLoss(task Task, z []float64, y float32) float64 {
	switch task.Kind {
	case Regression:
		d := z[0] - float64(y)
		return d * d
	case Binary:
		return math.Log1p(math.Exp(z[0])) - float64(y)*z[0]
	default:
		var s float64
		for _, v := range z {
			s += math.Exp(v)
		}
		return math.Log(s) - z[int(y)]
	}
}

func toF64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// near reports |a − b| ≤ atol + rtol·|b|.
func near(a, b, atol, rtol float64) bool { return math.Abs(a-b) <= atol+rtol*math.Abs(b) }
