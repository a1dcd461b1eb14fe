package gemm

// microFunc computes one mr×nr tile of C from packed panels:
// a holds kc groups of mr values of op(A) (already scaled by alpha), b holds kc groups of nr values of op(B).
// With load == 0 it stores the product into c without reading c (so NaN garbage is ignored);
// otherwise it stores product + beta*c.
type microFunc func(kc int, a, b, c []float32, ldc int, beta float32, load int)

// kernel describes one micro-kernel and the cache blocking that suits it.
type kernel struct {
	name   string
	mr, nr int // register tile
	kc     int // depth of one pass: an nr×kc B panel and an mr×kc A panel stay in L1
	mc     int // rows of A packed at once: mc×kc stays in L2
	nc     int // columns of B packed at once (over the whole depth), kept in L2/L3
	micro  microFunc
	// transpose and copy, when set, are vector routines for packing (see packA, packB).
	transpose transposeFunc
	copy      copyFunc
	// narrow, when set, is a kernel with a smaller nr used when n is at most its nr,
	// so that outputs like n = 7 do not waste half of every register tile.
	narrow *kernel
}

// goKernel is the portable fallback: a 4×4 register tile in plain Go.
var goKernel = &kernel{
	name: "go4x4",
	mr:   4, nr: 4,
	kc: 256, mc: 128, nc: 2048,
	micro: microGo4x4,
}

// active is the kernel Sgemm uses; init code of the architecture files may replace it.
// kernels lists every kernel this CPU can run, so that tests cover each of them.
var (
	active  = goKernel
	kernels = []*kernel{goKernel}
)

// microGo4x4 keeps 16 accumulators in registers; it is the micro-kernel of the pure-Go build.
func microGo4x4(kc int, a, b, c []float32, ldc int, beta float32, load int) {
	a = a[:4*kc]
	b = b[:4*kc]
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	for len(a) >= 4 && len(b) >= 4 {
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
		a = a[4:]
		b = b[4:]
	}
	r0 := c[0:4:4]
	r1 := c[ldc : ldc+4 : ldc+4]
	r2 := c[2*ldc : 2*ldc+4 : 2*ldc+4]
	r3 := c[3*ldc : 3*ldc+4 : 3*ldc+4]
	if load != 0 {
		c00 += beta * r0[0]
		c01 += beta * r0[1]
		c02 += beta * r0[2]
		c03 += beta * r0[3]
		c10 += beta * r1[0]
		c11 += beta * r1[1]
		c12 += beta * r1[2]
		c13 += beta * r1[3]
		c20 += beta * r2[0]
		c21 += beta * r2[1]
		c22 += beta * r2[2]
		c23 += beta * r2[3]
		c30 += beta * r3[0]
		c31 += beta * r3[1]
		c32 += beta * r3[2]
		c33 += beta * r3[3]
	}
	r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
	r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
	r2[0], r2[1], r2[2], r2[3] = c20, c21, c22, c23
	r3[0], r3[1], r3[2], r3[3] = c30, c31, c32, c33
}
