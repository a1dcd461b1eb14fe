// Package vec holds the element-wise float32 loops of a training step (bias plus ReLU,
// the ReLU backward mask with the bias-gradient column sums, the Adam update) with
// AVX-512 and AVX2 kernels on amd64 and plain Go elsewhere (or with the purego build tag).
//
// Every kernel computes bit for bit what its Go version computes: the vector code does
// the same float32 operations in the same order per element (and, for column sums, the
// same row-by-row order per column), so results do not depend on the CPU.
package vec

// BiasReLU sets z[r*n+j] ← max(z[r*n+j] + b[j], 0) for r < rows, j < n (Go's max: a NaN
// sum stays NaN, −0 becomes +0).
func BiasReLU(z, b []float32, rows, n int) {
	b = b[:n]
	if rows <= 0 || n == 0 {
		return
	}
	_ = z[rows*n-1]
	biasReLU(z, b, rows, n)
}

// ReLUBackward masks dh by the ReLU (d ← d where a > 0, else +0, bitwise) and adds the
// column sums of the masked dh to db, row by row: db[j] += d[r*n+j] for r = 0, 1, ….
func ReLUBackward(dh, a, db []float32, rows, n int) {
	db = db[:n]
	if rows <= 0 || n == 0 {
		return
	}
	_, _ = dh[rows*n-1], a[rows*n-1]
	reluBackward(dh, a, db, rows, n)
}

// AdamCoef are the float32 constants of one Adam step (the kernels read them in this order).
type AdamCoef struct {
	B1, B2 float32 // β1, β2
	O1, O2 float32 // 1−β1, 1−β2 (rounded from float64)
	LR     float32
	Eps    float32
	C1, C2 float32 // bias corrections 1/(1−β1^t), 1/(1−β2^t)
}

// Adam updates p, m and v in place from g (all of p's length):
//
//	m ← β1·m + (1−β1)·g;  v ← β2·v + ((1−β2)·g)·g
//	p ← p − (lr·(m·c1)) / (sqrt(v·c2) + ε)
//
// every operation rounded to float32 (the square root is correctly rounded, which is what
// float32(math.Sqrt(float64(x))) gives as well).
func Adam(p, g, m, v []float32, k *AdamCoef) {
	n := len(p)
	if n == 0 {
		return
	}
	g, m, v = g[:n], m[:n], v[:n]
	adam(p, g, m, v, k)
}

func biasReLUGo(z, b []float32, rows, n int) {
	b = b[:n]
	for r := 0; r < rows; r++ {
		zr := z[r*n : r*n+n]
		zr = zr[:len(b)]
		for j, bj := range b {
			zr[j] = max(zr[j]+bj, 0) // branch-free: a data-dependent branch mispredicts half the time
		}
	}
}

func reluBackwardGo(dh, a, db []float32, rows, n int) {
	db = db[:n]
	for r := 0; r < rows; r++ {
		d := dh[r*n : r*n+n]
		ar := a[r*n : r*n+n]
		d, ar = d[:len(db)], ar[:len(db)]
		for j := range db {
			// Select by bit mask rather than a branch (about 5× faster on random signs).
			var m uint32
			if ar[j] > 0 {
				m = ^uint32(0)
			}
			v := float32frombits(float32bits(d[j]) & m)
			d[j] = v
			db[j] += v
		}
	}
}

func adamGo(p, g, m, v []float32, k *AdamCoef) {
	b1, b2, o1, o2 := k.B1, k.B2, k.O1, k.O2
	lr, eps, c1, c2 := k.LR, k.Eps, k.C1, k.C2
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for i := range p {
		gi := g[i]
		// The float32 conversions forbid fused multiply-adds, so every architecture
		// rounds each product as the vector kernels do.
		mi := float32(b1*m[i]) + float32(o1*gi)
		vi := float32(b2*v[i]) + float32(float32(o2*gi)*gi)
		m[i], v[i] = mi, vi
		p[i] -= float32(lr*float32(mi*c1)) / (float32(sqrt(float64(vi*c2))) + eps)
	}
}
