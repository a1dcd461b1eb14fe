package gemm

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
)

// product is one Sgemm call of an MLP training step at batch 512.
type product struct {
	tA, tB        bool
	m, n, k       int
	lda, ldb, ldc int // 0 means tight
}

func (p product) flops() float64 { return 2 * float64(p.m) * float64(p.n) * float64(p.k) }

// stepProducts lists the products of one training step of an MLP with the given widths
// (input first, output last): forward Y = X·W (NN), input gradient dX = dY·Wᵀ (NT, skipped
// for the first layer) and weight gradient dW = Xᵀ·dY (TN). Weights live in a SuperNet
// matrix whose leading dimension is ld (0: tight).
func stepProducts(batch, ld int, widths ...int) []product {
	var ps []product
	for i := 0; i+1 < len(widths); i++ {
		in, out := widths[i], widths[i+1]
		ps = append(ps, product{m: batch, n: out, k: in, ldb: ld})
		if i > 0 {
			ps = append(ps, product{tB: true, m: batch, n: in, k: out, ldb: ld})
		}
		ps = append(ps, product{tA: true, m: in, n: out, k: batch, ldc: ld})
	}
	return ps
}

func benchProducts(b *testing.B, ps []product) {
	rng := rand.New(rand.NewPCG(1, 1))
	type mats struct{ a, b, c []float32 }
	ms := make([]mats, len(ps))
	var flops float64
	for i, p := range ps {
		ar, ac, br, bc := p.m, p.k, p.k, p.n
		if p.tA {
			ar, ac = ac, ar
		}
		if p.tB {
			br, bc = bc, br
		}
		ps[i].lda = max(p.lda, ac)
		ps[i].ldb = max(p.ldb, bc)
		ps[i].ldc = max(p.ldc, p.n)
		ms[i] = mats{randSlice(rng, ar*ps[i].lda), randSlice(rng, br*ps[i].ldb), randSlice(rng, p.m*ps[i].ldc)}
		flops += p.flops()
	}
	run := func() {
		for i, p := range ps {
			Sgemm(p.tA, p.tB, p.m, p.n, p.k, 1, ms[i].a, p.lda, ms[i].b, p.ldb, 0, ms[i].c, p.ldc)
		}
	}
	run()
	b.ResetTimer()
	for b.Loop() {
		run()
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

var kernelFlag = flag.String("kernel", "", "run BenchmarkSgemm with the named kernel instead of the best one (go4x4, avx2-6x16, avx512-12x32)")

// BenchmarkSgemm measures the products of a training step of MLP 54-512-512-512-7 and of the
// small child 180-48-160-32-144-10 at batch 512, one at a time and as whole steps.
func BenchmarkSgemm(b *testing.B) {
	cases := []struct {
		name string
		ps   []product
	}{
		{"fwd_512x512x512_NN", []product{{m: 512, n: 512, k: 512}}},
		{"dX_512x512x512_NT", []product{{tB: true, m: 512, n: 512, k: 512}}},
		{"dW_512x512x512_TN", []product{{tA: true, m: 512, n: 512, k: 512}}},
		{"fwd_in54_512x512x54_NN", []product{{m: 512, n: 512, k: 54}}},
		{"dW_in54_54x512x512_TN", []product{{tA: true, m: 54, n: 512, k: 512}}},
		{"fwd_out7_512x7x512_NN", []product{{m: 512, n: 7, k: 512}}},
		{"dX_out7_512x512x7_NT", []product{{tB: true, m: 512, n: 512, k: 7}}},
		{"dW_out7_512x7x512_TN", []product{{tA: true, m: 512, n: 7, k: 512}}},
		{"fwd_512x48x180_NN", []product{{m: 512, n: 48, k: 180, ldb: 512}}},
		{"fwd_512x10x144_NN", []product{{m: 512, n: 10, k: 144, ldb: 512}}},
		{"step_54-512-512-512-7", stepProducts(512, 0, 54, 512, 512, 512, 7)},
		{"step_180-48-160-32-144-10", stepProducts(512, 512, 180, 48, 160, 32, 144, 10)},
	}
	kn := active
	if *kernelFlag != "" {
		kn = nil
		for _, k := range kernels {
			if k.name == *kernelFlag {
				kn = k
			}
		}
		if kn == nil {
			b.Fatalf("kernel %q is not available on this CPU", *kernelFlag)
		}
	}
	b.Logf("kernel %s", kn.name)
	withKernel(kn, func() {
		for _, c := range cases {
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/threads=%d", c.name, th), func(b *testing.B) {
					withThreads(th, func() { benchProducts(b, c.ps) })
				})
			}
		}
	})
}

// BenchmarkMicro measures each micro-kernel alone on panels that sit in L1: the ceiling
// for the whole product.
func BenchmarkMicro(b *testing.B) {
	seen := map[*kernel]bool{}
	for _, kn := range kernels {
		for k := kn; k != nil; k = k.narrow {
			if seen[k] {
				continue
			}
			seen[k] = true
			b.Run(k.name, func(b *testing.B) {
				kc := 256
				a := make([]float32, k.mr*kc)
				bb := make([]float32, k.nr*kc)
				c := make([]float32, k.mr*k.nr)
				for b.Loop() {
					k.micro(kc, a, bb, c, k.nr, 0, 0)
				}
				b.ReportMetric(2*float64(k.mr*k.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkPack measures packing a 512×510 block of a 512×512 operand with the active
// kernel's routines: A row-major (N) or transposed (T) into mr-row panels, B likewise into
// nr-column panels.
func BenchmarkPack(b *testing.B) {
	const n = 512
	src := make([]float32, n*n)
	dst := make([]float32, n*n+64)
	cases := []struct {
		name  string
		trans bool
		isA   bool
		width int
	}{
		{"A_N_mr6", false, true, 6}, {"A_T_mr6", true, true, 6},
		{"A_N_mr12", false, true, 12}, {"A_T_mr12", true, true, 12},
		{"B_N_nr16", false, false, 16}, {"B_T_nr16", true, false, 16},
		{"B_N_nr32", false, false, 32}, {"B_T_nr32", true, false, 32},
		{"B_T_nr8", true, false, 8},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := &params{kern: active, tA: c.trans, tB: c.trans, a: src, lda: n, b: src, ldb: n, alpha: 1}
			for b.Loop() {
				for pc := 0; pc < n; pc += 256 {
					if c.isA {
						packA(dst, p, c.width, 0, n-2, pc, 256)
					} else {
						packB(dst, p, c.width, 0, n-2, pc, 256)
					}
				}
			}
			b.ReportMetric(float64(n*(n-2))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
}
