package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// forEachLevel runs f once with every implementation this build and CPU can run.
func forEachLevel(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, name := range levels {
		t.Run(name, func(t *testing.T) {
			if !setLevel(name) {
				t.Fatalf("unknown level %q", name)
			}
			defer setLevel(levels[len(levels)-1])
			f(t)
		})
	}
}

var specials = []float32{
	float32(math.NaN()), math.Float32frombits(0x7fc12345), math.Float32frombits(0xffc00001),
	math.Float32frombits(0x7f800001), // signalling NaN
	float32(math.Inf(1)), float32(math.Inf(-1)),
	0, float32(math.Copysign(0, -1)),
	math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32,
	1, -1,
}

// randSlice returns n values, mostly N(0,1), with a fraction special values.
func randSlice(rng *rand.Rand, n int, special float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		if rng.Float64() < special {
			s[i] = specials[rng.IntN(len(specials))]
		} else {
			s[i] = float32(rng.NormFloat64())
		}
	}
	return s
}

// guarded returns a copy of s inside a larger buffer whose guard entries around s must not change.
const guard = 40

func guarded(s []float32) (buf, view []float32) {
	buf = make([]float32, len(s)+2*guard)
	for i := range buf {
		buf[i] = -12345
	}
	copy(buf[guard:], s)
	return buf, buf[guard : guard+len(s) : guard+len(s)]
}

func checkGuards(t *testing.T, what string, buf []float32) {
	t.Helper()
	for i := range guard {
		if buf[i] != -12345 || buf[len(buf)-1-i] != -12345 {
			t.Fatalf("%s: write outside the slice", what)
		}
	}
}

// sameBits requires identical bits, except that any NaN matches any NaN: when two NaNs
// meet in one operation, which payload survives depends on the operand order the compiler
// picked for the Go loop, which Go does not specify.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
			t.Fatalf("%s[%d] = %v (%#08x), want %v (%#08x)", what, i, got[i],
				math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

var testCols = []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47, 48, 63, 64, 65, 100, 144, 512, 513}

func TestBiasReLU(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, rows := range []int{1, 2, 3, 5, 17} {
			for _, n := range testCols {
				for _, special := range []float64{0, 0.2} {
					z := randSlice(rng, rows*n, special)
					b := randSlice(rng, n, special)
					want := slices.Clone(z)
					biasReLUGo(want, b, rows, n)
					zbuf, zv := guarded(z)
					bbuf, bv := guarded(b)
					BiasReLU(zv, bv, rows, n)
					checkGuards(t, "z", zbuf)
					checkGuards(t, "b", bbuf)
					sameBits(t, "z", zv, want)
					sameBits(t, "b", bv, b)
				}
			}
		}
	})
}

// TestBiasReLUSpecials checks every pair of special values, whichever lane they land in.
func TestBiasReLUSpecials(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		for _, n := range []int{1, 5, 16, 19, 40} {
			for _, x := range specials {
				for _, y := range specials {
					z := make([]float32, 2*n)
					b := make([]float32, n)
					for j := range z {
						z[j] = x
					}
					for j := range b {
						b[j] = y
					}
					want := slices.Clone(z)
					biasReLUGo(want, b, 2, n)
					BiasReLU(z, b, 2, n)
					sameBits(t, "z", z, want)
				}
			}
		}
	})
}

func TestBiasReLUGoMax(t *testing.T) {
	// The reference itself: Go's max(x, 0) keeps NaN and prefers +0 over −0.
	negZero := float32(math.Copysign(0, -1))
	z := []float32{float32(math.NaN()), negZero, -1, 2}
	b := []float32{0, negZero, 0, 0}
	for _, name := range levels {
		setLevel(name)
		zz := slices.Clone(z)
		BiasReLU(zz[:2], b[:2], 1, 2)
		BiasReLU(zz[2:], b[2:], 1, 2)
		if !math.IsNaN(float64(zz[0])) || math.Float32bits(zz[1]) != 0 || zz[2] != 0 || zz[3] != 2 {
			t.Errorf("%s: BiasReLU = %v", name, zz)
		}
	}
	setLevel(levels[len(levels)-1])
}

func TestReLUBackward(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, rows := range []int{1, 2, 3, 5, 17, 64} {
			for _, n := range testCols {
				for _, special := range []float64{0, 0.2} {
					dh := randSlice(rng, rows*n, special)
					a := randSlice(rng, rows*n, special)
					db := randSlice(rng, n, special)
					wantD, wantDB := slices.Clone(dh), slices.Clone(db)
					reluBackwardGo(wantD, a, wantDB, rows, n)
					dbuf, dv := guarded(dh)
					abuf, av := guarded(a)
					bbuf, bv := guarded(db)
					ReLUBackward(dv, av, bv, rows, n)
					checkGuards(t, "dh", dbuf)
					checkGuards(t, "a", abuf)
					checkGuards(t, "db", bbuf)
					sameBits(t, "dh", dv, wantD)
					sameBits(t, "db", bv, wantDB)
					sameBits(t, "a", av, a)
				}
			}
		}
	})
}

func TestReLUBackwardSpecials(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		for _, n := range []int{1, 5, 16, 19, 40} {
			for _, x := range specials { // dh
				for _, y := range specials { // a
					for _, w := range specials { // db
						dh := make([]float32, 2*n)
						a := make([]float32, 2*n)
						db := make([]float32, n)
						for j := range dh {
							dh[j], a[j] = x, y
						}
						for j := range db {
							db[j] = w
						}
						wantD, wantDB := slices.Clone(dh), slices.Clone(db)
						reluBackwardGo(wantD, a, wantDB, 2, n)
						ReLUBackward(dh, a, db, 2, n)
						sameBits(t, "dh", dh, wantD)
						sameBits(t, "db", db, wantDB)
					}
				}
			}
		}
	})
}

func testCoef(t int, lr float64) AdamCoef {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	return AdamCoef{
		B1: b1, B2: b2, O1: float32(1 - b1), O2: float32(1 - b2),
		LR: float32(lr), Eps: eps,
		C1: float32(1 / (1 - math.Pow(b1, float64(t)))),
		C2: float32(1 / (1 - math.Pow(b2, float64(t)))),
	}
}

func TestAdam(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, n := range append(testCols, 1000, 4099) {
			for _, special := range []float64{0, 0.1} {
				for _, step := range []int{1, 2, 10, 1000} {
					k := testCoef(step, 1e-3)
					p := randSlice(rng, n, special)
					g := randSlice(rng, n, special)
					m := randSlice(rng, n, special)
					v := randSlice(rng, n, 0)
					for i := range v {
						v[i] *= v[i] * float32(rng.ExpFloat64()) // non-negative, wide range
						if rng.Float64() < special {
							v[i] = specials[rng.IntN(len(specials))]
						}
					}
					wp, wm, wv := slices.Clone(p), slices.Clone(m), slices.Clone(v)
					adamGo(wp, g, wm, wv, &k)
					pbuf, pv := guarded(p)
					gbuf, gv := guarded(g)
					mbuf, mv := guarded(m)
					vbuf, vv := guarded(v)
					Adam(pv, gv, mv, vv, &k)
					for _, b := range [][]float32{pbuf, gbuf, mbuf, vbuf} {
						checkGuards(t, "adam", b)
					}
					sameBits(t, "p", pv, wp)
					sameBits(t, "m", mv, wm)
					sameBits(t, "v", vv, wv)
					sameBits(t, "g", gv, g)
				}
			}
		}
	})
}

// TestAdamSqrt checks that float32 square roots (what the kernels use) equal
// float32(math.Sqrt(float64(x))) (what the Go loop writes) over many magnitudes.
func TestAdamSqrt(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	k := AdamCoef{B2: 1, C2: 1, Eps: 0, LR: 1, C1: 1, B1: 1} // p ← p − m / sqrt(v)
	const n = 1 << 16
	p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for range 16 {
		for i := range v {
			v[i] = math.Float32frombits(rng.Uint32() & 0x7fffffff)
			m[i] = 1
			p[i] = 0
		}
		wp, wm, wv := slices.Clone(p), slices.Clone(m), slices.Clone(v)
		adamGo(wp, g, wm, wv, &k)
		Adam(p, g, m, v, &k)
		sameBits(t, "p", p, wp)
	}
}

func TestZeroAllocs(t *testing.T) {
	z, b := make([]float32, 64*70), make([]float32, 70)
	a := make([]float32, 64*70)
	k := testCoef(3, 1e-3)
	for _, name := range levels {
		setLevel(name)
		if n := testing.AllocsPerRun(10, func() {
			BiasReLU(z, b, 64, 70)
			ReLUBackward(z, a, b, 64, 70)
			Adam(z[:70], a[:70], b, b, &k)
		}); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
	setLevel(levels[len(levels)-1])
}

func TestShortSlicesPanic(t *testing.T) {
	for _, f := range []func(){
		func() { BiasReLU(make([]float32, 5), make([]float32, 3), 2, 3) },
		func() { BiasReLU(make([]float32, 6), make([]float32, 2), 2, 3) },
		func() { ReLUBackward(make([]float32, 6), make([]float32, 5), make([]float32, 3), 2, 3) },
		func() {
			Adam(make([]float32, 6), make([]float32, 5), make([]float32, 6), make([]float32, 6), &AdamCoef{})
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic on short slices")
				}
			}()
			f()
		}()
	}
}

func BenchmarkBiasReLU(b *testing.B) {
	z, bias := make([]float32, 512*512), make([]float32, 512)
	for _, name := range levels {
		b.Run(name, func(b *testing.B) {
			setLevel(name)
			defer setLevel(levels[len(levels)-1])
			b.SetBytes(int64(8 * len(z)))
			for b.Loop() {
				BiasReLU(z, bias, 512, 512)
			}
		})
	}
}

func BenchmarkReLUBackward(b *testing.B) {
	dh, a, db := make([]float32, 512*512), make([]float32, 512*512), make([]float32, 512)
	for i := range a {
		a[i] = float32(i%3) - 1
	}
	for _, name := range levels {
		b.Run(name, func(b *testing.B) {
			setLevel(name)
			defer setLevel(levels[len(levels)-1])
			b.SetBytes(int64(12 * len(dh)))
			for b.Loop() {
				ReLUBackward(dh, a, db, 512, 512)
			}
		})
	}
}

func BenchmarkAdam(b *testing.B) {
	const n = 600000
	p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	k := testCoef(10, 1e-3)
	for _, name := range levels {
		b.Run(name, func(b *testing.B) {
			setLevel(name)
			defer setLevel(levels[len(levels)-1])
			b.SetBytes(int64(28 * n))
			for b.Loop() {
				Adam(p, g, m, v, &k)
			}
		})
	}
}
