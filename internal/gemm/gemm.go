// Package gemm is the single-precision matrix multiply used by the SuperNet.
// All matrices are row-major; a transposed operand is read transposed, never copied by the caller.
package gemm

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// threads is the number of goroutines one Sgemm call may use; 0 means GOMAXPROCS.
var threads atomic.Int32

// SetThreads sets how many goroutines one Sgemm call may use.
// n ≤ 0 restores the default, runtime.GOMAXPROCS(0) at call time.
func SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	threads.Store(int32(n))
}

// Threads reports how many goroutines one Sgemm call may use.
func Threads() int {
	if n := int(threads.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C where op(A) is m×k and op(B) is k×n.
// A is m×k (lda ≥ k) or, when tA, k×m (lda ≥ m); likewise B. C is m×n with ldc ≥ n.
// beta == 0 overwrites C without reading it (NaNs in C do not propagate).
// It panics on negative sizes, short leading dimensions or short slices.
func Sgemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if tA {
		ar, ac = k, m
	}
	br, bc := k, n
	if tB {
		br, bc = n, k
	}
	checkMat("A", a, ar, ac, lda)
	checkMat("B", b, br, bc, ldb)
	checkMat("C", c, m, n, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(c[:(m-1)*ldc+n], m, n, ldc, beta)
		return
	}
	cl := getCall()
	cl.p = params{
		tA: tA, tB: tB, m: m, n: n, k: k,
		alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
		beta: beta, c: c, ldc: ldc,
		kern: active,
	}
	run(cl)
	putCall(cl)
}

// checkMat panics unless x can hold a rows×cols row-major matrix with leading dimension ld.
func checkMat(name string, x []float32, rows, cols, ld int) {
	if ld < max(cols, 1) {
		panic(fmt.Sprintf("gemm: ld%s=%d < %d", name, ld, max(cols, 1)))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("gemm: %s has %d elements, needs %d (%d×%d, ld %d)", name, len(x), need, rows, cols, ld))
	}
}

// scaleC sets C = beta*C; beta == 0 writes zeros without reading.
func scaleC(c []float32, m, n, ldc int, beta float32) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}
