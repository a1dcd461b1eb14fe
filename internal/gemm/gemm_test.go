package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// relTol bounds |got − want| relative to Σ_p |alpha·a_ip·b_pj| + |beta·c_ij|, the magnitude
// of the terms summed in float32. Blocked float32 accumulation over k ≤ 600 terms stays far
// below it; a wrong element, a missed panel or a misplaced edge is off by order 1.
const relTol = 1e-5

// withKernel runs f with kn as the active kernel. Variants with tiny blocking parameters make
// moderate shapes cross many kc, mc and nc boundaries.
func withKernel(kn *kernel, f func()) {
	old := active
	active = kn
	defer func() { active = old }()
	f()
}

func withThreads(n int, f func()) {
	old := int(threads.Load())
	SetThreads(n)
	defer SetThreads(old)
	f()
}

// smallBlocks returns a copy of kn (and of its narrow variant) with tiny cache blocks.
func smallBlocks(kn *kernel) *kernel {
	s := *kn
	s.name += "-small"
	s.kc, s.mc, s.nc = 8, 2*kn.mr+1, 3*kn.nr
	if kn.narrow != nil {
		s.narrow = smallBlocks(kn.narrow)
	}
	return &s
}

func testKernels() []*kernel {
	var ks []*kernel
	for _, kn := range kernels {
		ks = append(ks, kn, smallBlocks(kn))
	}
	return ks
}

type shape struct {
	tA, tB           bool
	m, n, k          int
	padA, padB, padC int // extra leading-dimension columns
	alpha, beta      float32
}

func (s shape) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s/m%d_n%d_k%d/pad%d,%d,%d/a%g_b%g", t(s.tA), t(s.tB), s.m, s.n, s.k, s.padA, s.padB, s.padC, s.alpha, s.beta)
}

// check runs one Sgemm against a float64 reference and verifies that C outside the m×n window
// (the padding columns and the tail of the slice) is untouched.
func check(t *testing.T, rng *rand.Rand, s shape) {
	t.Helper()
	if err := checkErr(rng, s); err != nil {
		t.Fatal(err)
	}
}

func checkErr(rng *rand.Rand, s shape) error {
	ar, ac := s.m, s.k
	if s.tA {
		ar, ac = s.k, s.m
	}
	br, bc := s.k, s.n
	if s.tB {
		br, bc = s.n, s.k
	}
	lda, ldb, ldc := ac+s.padA, bc+s.padB, s.n+s.padC
	a := randSlice(rng, ar*lda)
	b := randSlice(rng, br*ldb)
	c := randSlice(rng, s.m*ldc+3)
	if s.beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN())
		}
	}
	orig := append([]float32(nil), c...)
	Sgemm(s.tA, s.tB, s.m, s.n, s.k, s.alpha, a, lda, b, ldb, s.beta, c, ldc)

	at := func(i, p int) float64 {
		if s.tA {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	bt := func(p, j int) float64 {
		if s.tB {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}
	for i := 0; i < s.m; i++ {
		for j := 0; j < ldc; j++ {
			got := c[i*ldc+j]
			if j >= s.n {
				if !same(got, orig[i*ldc+j]) {
					return fmt.Errorf("%v: C[%d][%d] outside the window changed: %v -> %v", s, i, j, orig[i*ldc+j], got)
				}
				continue
			}
			var want, mag float64
			for p := 0; p < s.k; p++ {
				x := float64(s.alpha) * at(i, p) * bt(p, j)
				want += x
				mag += math.Abs(x)
			}
			if s.beta != 0 {
				x := float64(s.beta) * float64(orig[i*ldc+j])
				want += x
				mag += math.Abs(x)
			}
			if d := math.Abs(float64(got) - want); !(d <= relTol*mag) {
				return fmt.Errorf("%v: C[%d][%d] = %v, want %v (|diff| %g > %g·%g)", s, i, j, got, want, d, relTol, mag)
			}
		}
	}
	for i := s.m * ldc; i < len(c); i++ {
		if !same(c[i], orig[i]) {
			return fmt.Errorf("%v: C tail [%d] changed", s, i)
		}
	}
	return nil
}

func same(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) }

func randSlice(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = rng.Float32()*2 - 1
	}
	return x
}

var sizes = []int{1, 2, 3, 5, 6, 7, 8, 9, 12, 13, 16, 17, 24, 31, 33, 48, 54, 61, 97}

func TestSgemmAllTransposes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, kn := range testKernels() {
		for _, th := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("%s/threads%d", kn.name, th), func(t *testing.T) {
				old := parallelMinFlops
				parallelMinFlops = 0 // exercise the split even on tiny shapes
				defer func() { parallelMinFlops = old }()
				withKernel(kn, func() {
					withThreads(th, func() {
						for _, tA := range []bool{false, true} {
							for _, tB := range []bool{false, true} {
								for it := 0; it < 40; it++ {
									s := shape{
										tA: tA, tB: tB,
										m: sizes[rng.IntN(len(sizes))], n: sizes[rng.IntN(len(sizes))], k: sizes[rng.IntN(len(sizes))],
										padA: rng.IntN(3) * rng.IntN(9), padB: rng.IntN(3) * rng.IntN(9), padC: rng.IntN(3) * rng.IntN(9),
										alpha: []float32{1, -0.5, 2.5}[rng.IntN(3)],
										beta:  []float32{0, 1, -1.5}[rng.IntN(3)],
									}
									check(t, rng, s)
								}
							}
						}
					})
				})
			})
		}
	}
}

// TestSgemmNetworkShapes covers the products of one training step of a small child network
// and a slice of a wide layer, with leading dimensions of the full SuperNet matrix.
func TestSgemmNetworkShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type dims struct{ m, n, k int }
	var cases []shape
	for _, d := range []dims{{64, 48, 180}, {64, 10, 144}, {64, 7, 200}, {54, 130, 64}, {130, 150, 70}, {100, 1, 300}} {
		cases = append(cases,
			shape{m: d.m, n: d.n, k: d.k, padA: 5, padB: 512 - d.n, padC: 1, alpha: 1, beta: 0},             // forward
			shape{tB: true, m: d.m, n: d.k, k: d.n, padA: 2, padB: 512 - d.n, padC: 0, alpha: 1, beta: 0},   // input gradient
			shape{tA: true, m: d.k, n: d.n, k: d.m, padA: 3, padB: 0, padC: 512 - d.n, alpha: 0.5, beta: 1}, // weight gradient
		)
	}
	for _, kn := range testKernels() {
		for _, th := range []int{1, 2} {
			withKernel(kn, func() {
				withThreads(th, func() {
					for _, s := range cases {
						t.Run(fmt.Sprintf("%s/threads%d/%v", kn.name, th, s), func(t *testing.T) { check(t, rng, s) })
					}
				})
			})
		}
	}
}

// TestSgemmDeep crosses several kc blocks with the real blocking parameters.
func TestSgemmDeep(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, kn := range kernels {
		withKernel(kn, func() {
			for _, s := range []shape{
				{m: 37, n: 45, k: 600, alpha: 1, beta: 0.5, padC: 3},
				{tA: true, tB: true, m: 29, n: 23, k: 530, alpha: -1, beta: 0, padA: 1, padB: 2},
				{m: 150, n: 35, k: 260, alpha: 1, beta: 0},
			} {
				t.Run(kn.name+"/"+s.String(), func(t *testing.T) { check(t, rng, s) })
			}
		})
	}
}

func TestSgemmDegenerate(t *testing.T) {
	for _, kn := range kernels {
		withKernel(kn, func() {
			// k == 0 and alpha == 0 scale C by beta; beta 0 clears NaNs.
			c := []float32{float32(math.NaN()), 2, 3, 4}
			Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
			if c[0] != 0 || c[1] != 0 || c[2] != 0 || c[3] != 0 {
				t.Fatalf("%s: k=0 beta=0: %v", kn.name, c)
			}
			c = []float32{1, 2, 3, 4}
			a := []float32{1, 1, 1, 1}
			Sgemm(false, false, 2, 2, 2, 0, a, 2, a, 2, 2, c, 2)
			if c[0] != 2 || c[1] != 4 || c[2] != 6 || c[3] != 8 {
				t.Fatalf("%s: alpha=0 beta=2: %v", kn.name, c)
			}
			// m == 0 or n == 0 touches nothing, even with empty slices.
			Sgemm(true, true, 0, 5, 3, 1, nil, 1, make([]float32, 15), 3, 0, nil, 5)
			Sgemm(false, false, 4, 0, 3, 1, make([]float32, 12), 3, nil, 1, 0, nil, 1)
		})
	}
}

func TestSgemmPanics(t *testing.T) {
	x := make([]float32, 100)
	for name, f := range map[string]func(){
		"negative":  func() { Sgemm(false, false, -1, 2, 2, 1, x, 2, x, 2, 0, x, 2) },
		"short lda": func() { Sgemm(false, false, 2, 2, 3, 1, x, 2, x, 2, 0, x, 2) },
		"short ldc": func() { Sgemm(false, false, 2, 3, 2, 1, x, 2, x, 3, 0, x, 2) },
		"short A":   func() { Sgemm(true, false, 2, 2, 20, 1, x[:10], 2, x, 2, 0, x, 2) },
		"short C":   func() { Sgemm(false, false, 20, 2, 2, 1, x, 2, x, 2, 0, x[:30], 2) },
	} {
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

func TestThreads(t *testing.T) {
	withThreads(3, func() {
		if Threads() != 3 {
			t.Fatalf("Threads() = %d after SetThreads(3)", Threads())
		}
	})
	SetThreads(0)
	if Threads() < 1 {
		t.Fatalf("default Threads() = %d", Threads())
	}
}

// TestSgemmConcurrentCallers checks that calls from several goroutines at once, sharing the
// worker pool, each get their own buffers.
func TestSgemmConcurrentCallers(t *testing.T) {
	old := parallelMinFlops
	parallelMinFlops = 0
	defer func() { parallelMinFlops = old }()
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for it := 0; it < 10; it++ {
				if err := checkErr(rng, shape{tA: it%2 == 0, tB: it%3 == 0, m: 20 + g, n: 30 + it, k: 17, alpha: 1, beta: 0}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

func TestSgemmNoAllocs(t *testing.T) {
	a := make([]float32, 256*256)
	b := make([]float32, 256*256)
	c := make([]float32, 256*256)
	for _, th := range []int{1, 2} {
		withThreads(th, func() {
			for _, s := range []shape{{m: 256, n: 256, k: 256}, {tA: true, m: 256, n: 7, k: 256}, {tB: true, m: 64, n: 10, k: 32}} {
				f := func() { Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, 256, b, 256, 0, c, 256) }
				f() // grow the pack buffers and start the workers
				if n := testing.AllocsPerRun(20, f); n != 0 {
					t.Errorf("threads %d %v: %v allocations per call", th, s, n)
				}
			}
		})
	}
}
