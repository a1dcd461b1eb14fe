//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

//go:generate go run asmgen.go

//go:noescape
func kern6x16(kc int, a, b, c *float32, ldc int, beta float32, load int)

//go:noescape
func kern12x32(kc int, a, b, c *float32, ldc int, beta float32, load int)

//go:noescape
func kern12x8(kc int, a, b, c *float32, ldc int, beta float32, load int)

//go:noescape
func transpose8(dst *float32, lddst int, src *float32, ldsrc int, n8 int, alpha float32)

//go:noescape
func transpose6(dst *float32, lddst int, src *float32, ldsrc int, n8 int, alpha float32)

//go:noescape
func transpose4(dst *float32, lddst int, src *float32, ldsrc int, n8 int, alpha float32)

func transposeAVX2(d []float32, ld int, src []float32, lds, rows, n8 int, alpha float32) {
	_, _ = d[(n8*8-1)*ld+7], src[(rows-1)*lds+n8*8-1] // the assembly trusts these bounds
	switch rows {
	case 8:
		transpose8(&d[0], ld, &src[0], lds, n8, alpha)
	case 6:
		transpose6(&d[0], ld, &src[0], lds, n8, alpha)
	case 4:
		transpose4(&d[0], ld, &src[0], lds, n8, alpha)
	default:
		panic("gemm: transposeAVX2 rows")
	}
}

//go:noescape
func copy32(dst *float32, src *float32, ldsrc int, kc int, alpha float32)

//go:noescape
func copy16(dst *float32, src *float32, ldsrc int, kc int, alpha float32)

//go:noescape
func copy12(dst *float32, src *float32, ldsrc int, kc int, alpha float32)

//go:noescape
func copy8(dst *float32, src *float32, ldsrc int, kc int, alpha float32)

//go:noescape
func copy6(dst *float32, src *float32, ldsrc int, kc int, alpha float32)

func copyAVX2(d []float32, ld int, src []float32, lds, kc int, alpha float32) bool {
	switch ld {
	case 32, 16, 12, 8, 6:
		if kc == 0 {
			return true
		}
	default:
		return false
	}
	_, _ = d[kc*ld-1], src[(kc-1)*lds+ld-1] // the assembly trusts these bounds
	switch ld {
	case 32:
		copy32(&d[0], &src[0], lds, kc, alpha)
	case 16:
		copy16(&d[0], &src[0], lds, kc, alpha)
	case 12:
		copy12(&d[0], &src[0], lds, kc, alpha)
	case 8:
		copy8(&d[0], &src[0], lds, kc, alpha)
	default:
		copy6(&d[0], &src[0], lds, kc, alpha)
	}
	return true
}

func micro6x16(kc int, a, b, c []float32, ldc int, beta float32, load int) {
	_, _, _ = a[6*kc-1], b[16*kc-1], c[5*ldc+15] // the assembly trusts these bounds
	kern6x16(kc, &a[0], &b[0], &c[0], ldc, beta, load)
}

func micro12x32(kc int, a, b, c []float32, ldc int, beta float32, load int) {
	_, _, _ = a[12*kc-1], b[32*kc-1], c[11*ldc+31]
	kern12x32(kc, &a[0], &b[0], &c[0], ldc, beta, load)
}

func micro12x8(kc int, a, b, c []float32, ldc int, beta float32, load int) {
	_, _, _ = a[12*kc-1], b[8*kc-1], c[11*ldc+7]
	kern12x8(kc, &a[0], &b[0], &c[0], ldc, beta, load)
}

var avx2Narrow = &kernel{
	name: "avx2-12x8",
	mr:   12, nr: 8,
	kc: 256, mc: 240, nc: 4096,
	micro:     micro12x8,
	transpose: transposeAVX2,
	copy:      copyAVX2,
}

// avx2Kernel uses 12 of the 16 ymm registers as accumulators, enough independent FMA chains
// to cover the FMA latency on both pipes, while the depth loop needs only 2 loads per 12 FMAs
// plus 6 broadcasts.
var avx2Kernel = &kernel{
	name: "avx2-6x16",
	mr:   6, nr: 16,
	kc: 256, mc: 144, nc: 4096,
	micro:     micro6x16,
	transpose: transposeAVX2,
	copy:      copyAVX2,
	narrow:    avx2Narrow,
}

// avx512Kernel doubles the vector width where the CPU has AVX-512: 24 of the 32 zmm
// registers accumulate a 12×32 tile. Narrower products fall back to the AVX2 tiles.
var avx512Kernel = &kernel{
	name: "avx512-12x32",
	mr:   12, nr: 32,
	kc: 256, mc: 240, nc: 4096,
	micro:     micro12x32,
	transpose: transposeAVX2,
	copy:      copyAVX2,
	narrow:    avx2Kernel,
}

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		active = avx2Kernel
		kernels = append(kernels, avx2Kernel)
		if cpu.X86.HasAVX512F {
			active = avx512Kernel
			kernels = append(kernels, avx512Kernel)
		}
	}
}
