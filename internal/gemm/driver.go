package gemm

import "sync/atomic"

// The driver follows the BLIS scheme: op(A) is packed into mr-row panels and op(B) into
// nr-column panels, kc deep, and the micro-kernel sweeps a block of C tile by tile from them.
// Packing absorbs transposes, alpha and the zero padding of edge panels, so the micro-kernel
// only ever sees contiguous full panels.
//
// C is cut into chunks that threads claim from a shared counter: row blocks when op(A) has
// more register tiles than op(B) (each thread packs op(B) once, whole depth, and packs op(A)
// per chunk), column blocks otherwise. Claiming instead of a fixed split keeps the product
// fast when another process holds one of the cores for a while.

// params is one Sgemm call and its plan.
type params struct {
	tA, tB  bool
	m, n, k int
	alpha   float32
	a       []float32
	lda     int
	b       []float32
	ldb     int
	beta    float32
	c       []float32
	ldc     int
	kern    *kernel

	kc       int  // depth of one pass over k
	splitM   bool // chunks are row blocks (else column blocks)
	mcb, ncb int  // rows and columns of one chunk of C
	nI, nJ   int  // chunks along m and along n
	next     atomic.Int32
}

// plan chooses the depth pass and the chunks for t threads.
func (p *params) plan(t int) {
	kn := p.kern
	p.kc = blocks(p.k, kn.kc, 8)
	mp := (p.m + kn.mr - 1) / kn.mr
	np := (p.n + kn.nr - 1) / kn.nr
	p.splitM = mp >= np
	p.mcb = blocks(p.m, kn.mc, kn.mr)
	p.ncb = blocks(p.n, kn.nc, kn.nr)
	if t > 1 {
		// Several chunks per thread along the split dimension, so that a thread that starts
		// late or runs slow leaves its share to the others. (2 to 16 measured the same.)
		if p.splitM {
			p.mcb = min(p.mcb, max(ceilDiv(mp, chunksPerThread*t), 2)*kn.mr)
		} else {
			p.ncb = min(p.ncb, max(ceilDiv(np, chunksPerThread*t), 2)*kn.nr)
		}
	}
	p.nI, p.nJ = ceilDiv(p.m, p.mcb), ceilDiv(p.n, p.ncb)
	p.next.Store(0)
}

const chunksPerThread = 4

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// workspace holds the pack buffers of one goroutine. They grow to the largest request seen
// and are then reused, so steady-state calls do not allocate.
type workspace struct {
	ap, bp []float32
	tile   [maxTile]float32
}

// maxTile bounds mr×nr over all kernels.
const maxTile = 16 * 32

func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// blocks splits total into the fewest pieces of at most limit, of nearly equal size rounded
// up to a multiple of unit, so that a size just over the limit does not leave a thin remainder.
func blocks(total, limit, unit int) int {
	if total <= limit {
		return total
	}
	pieces := (total + limit - 1) / limit
	size := (total + pieces - 1) / pieces
	return (size + unit - 1) / unit * unit
}

// work claims chunks of C until none is left. The operand shared by consecutive chunks
// (op(B) for row blocks, op(A) for column blocks) is packed over the whole depth once and
// kept while the claimed chunks stay in the same block of it.
func (w *workspace) work(p *params) {
	kn := p.kern
	mr, nr := kn.mr, kn.nr
	chunks := p.nI * p.nJ
	kept := -1
	for {
		ch := int(p.next.Add(1)) - 1
		if ch >= chunks {
			return
		}
		var bi, bj int
		if p.splitM {
			bj, bi = ch/p.nI, ch%p.nI
		} else {
			bi, bj = ch/p.nJ, ch%p.nJ
		}
		i0, j0 := bi*p.mcb, bj*p.ncb
		mc, nc := min(p.mcb, p.m-i0), min(p.ncb, p.n-j0)
		mw, nw := ceilDiv(mc, mr)*mr, ceilDiv(nc, nr)*nr // padded widths of the packed blocks
		if p.splitM {
			if kept != bj {
				w.bp = grow(w.bp, nw*p.k+packSlack)
				for pc := 0; pc < p.k; pc += p.kc {
					packB(w.bp[pc*nw:], p, nr, j0, nc, pc, min(p.kc, p.k-pc))
				}
				kept = bj
			}
			w.ap = grow(w.ap, mw*p.kc+packSlack)
		} else {
			if kept != bi {
				w.ap = grow(w.ap, mw*p.k+packSlack)
				for pc := 0; pc < p.k; pc += p.kc {
					packA(w.ap[pc*mw:], p, mr, i0, mc, pc, min(p.kc, p.k-pc))
				}
				kept = bi
			}
			w.bp = grow(w.bp, nw*p.kc+packSlack)
		}
		for pc := 0; pc < p.k; pc += p.kc {
			kc := min(p.kc, p.k-pc)
			var ap, bp []float32
			if p.splitM {
				packA(w.ap, p, mr, i0, mc, pc, kc)
				ap, bp = w.ap, w.bp[pc*nw:]
			} else {
				packB(w.bp, p, nr, j0, nc, pc, kc)
				ap, bp = w.ap[pc*mw:], w.bp
			}
			beta, load := p.beta, 1
			if pc > 0 {
				beta = 1
			} else if beta == 0 {
				load = 0
			}
			w.macro(p, ap, bp, kc, i0, mc, j0, nc, beta, load)
		}
	}
}

// macro runs the micro-kernel over one packed mc×nc block at (ic, jc).
func (w *workspace) macro(p *params, ap, bp []float32, kc, ic, mc, jc, nc int, beta float32, load int) {
	kn := p.kern
	mr, nr := kn.mr, kn.nr
	micro := kn.micro
	c, ldc := p.c, p.ldc
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		bpan := bp[(jr/nr)*kc*nr : (jr/nr+1)*kc*nr]
		for ir := 0; ir < mc; ir += mr {
			rows := min(mr, mc-ir)
			apan := ap[(ir/mr)*kc*mr : (ir/mr+1)*kc*mr]
			off := (ic+ir)*ldc + jc + jr
			if rows == mr && cols == nr {
				micro(kc, apan, bpan, c[off:off+(mr-1)*ldc+nr], ldc, beta, load)
				continue
			}
			// Edge tile: compute the full tile into scratch, then merge the valid part,
			// so the kernel never touches C outside the m×n window.
			t := w.tile[:mr*nr]
			micro(kc, apan, bpan, t, nr, 0, 0)
			for r := 0; r < rows; r++ {
				dst := c[off+r*ldc : off+r*ldc+cols]
				src := t[r*nr : r*nr+cols]
				if load == 0 {
					copy(dst, src)
					continue
				}
				for j, v := range src {
					dst[j] = v + beta*dst[j]
				}
			}
		}
	}
}

// packA packs rows [i0,i0+mc) and depth [p0,p0+kc) of alpha*op(A) into mr-row panels:
// panel q holds, for each depth index, the mr values of its rows; missing rows are zero.
// dst needs packSlack floats past the last panel (see transposeFunc).
func packA(dst []float32, p *params, mr, i0, mc, p0, kc int) {
	a, lda, alpha := p.a, p.lda, p.alpha
	if p.tA {
		// op(A)[i][q] = a[q*lda+i]: each depth index reads contiguous values across panels.
		copyPanels(p.kern.copy, dst, mr, a[p0*lda+i0:], lda, mc, kc, alpha)
		return
	}
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		d := dst[(ir/mr)*kc*mr:]
		src := a[(i0+ir)*lda+p0:]
		q0 := 0
		if rows == mr {
			q0 = transposeRows(p.kern.transpose, d, mr, src, lda, rows, kc, alpha)
		}
		interleave(d, mr, src, lda, rows, q0, kc, alpha)
	}
}

// packB packs columns [j0,j0+nc) and depth [p0,p0+kc) of op(B) into nr-column panels:
// panel q holds, for each depth index, the nr values of its columns; missing columns are zero.
// dst needs packSlack floats past the last panel.
func packB(dst []float32, p *params, nr, j0, nc, p0, kc int) {
	b, ldb := p.b, p.ldb
	if !p.tB {
		copyPanels(p.kern.copy, dst, nr, b[p0*ldb+j0:], ldb, nc, kc, 1)
		return
	}
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		d := dst[(jr/nr)*kc*nr:]
		// op(B)[q][j] = b[j*ldb+q]: column j of the panel is a contiguous run of row j of b.
		src := b[(j0+jr)*ldb+p0:]
		q0 := 0
		if cols == nr {
			q0 = transposeRows(p.kern.transpose, d, nr, src, ldb, cols, kc, 1)
		}
		interleave(d, nr, src, ldb, cols, q0, kc, 1)
	}
}

// packSlack is the room packing may write past the last panel.
const packSlack = 8

// transposeFunc, when a kernel has one, writes d[q*ld+r] = alpha*src[r*lds+q] for r < rows
// and q < n8*8, in 8-index blocks, rows ∈ {4, 6, 8}. With 6 rows it stores whole 8-float
// vectors, zeros in slots 6 and 7, spilling into the slots of the next depth index (or past
// the panel end, hence packSlack); callers write those slots afterwards.
type transposeFunc func(d []float32, ld int, src []float32, lds, rows, n8 int, alpha float32)

// transposeRows packs as many depth indices of a full panel as the kernel's transposer can,
// in 8-row blocks from the highest, so that a block's spill is overwritten by the next call,
// and returns how many it did.
func transposeRows(tf transposeFunc, d []float32, ld int, src []float32, lds, rows, kc int, alpha float32) int {
	n8 := kc / 8
	if tf == nil || n8 == 0 {
		return 0
	}
	for off := 0; off < rows; off += 8 {
		if n := min(8, rows-off); n != 8 && n != 6 && n != 4 {
			return 0
		}
	}
	for off := (rows - 1) / 8 * 8; off >= 0; off -= 8 {
		tf(d[off:], ld, src[off*lds:], lds, min(8, rows-off), n8, alpha)
	}
	return n8 * 8
}

// interleave writes d[q*ld+r] = alpha*src[r*lds+q] for q ∈ [q0,kc) and r < rows, and zeros
// for r ∈ [rows,ld).
func interleave(d []float32, ld int, src []float32, lds, rows, q0, kc int, alpha float32) {
	if q0 >= kc {
		return
	}
	if rows == 6 && ld == 6 {
		interleave6(d[q0*6:kc*6], src[q0:], lds, kc-q0, alpha)
		return
	}
	for r := 0; r < rows; r++ {
		s := src[r*lds+q0 : r*lds+kc]
		for q, v := range s {
			d[(q0+q)*ld+r] = alpha * v
		}
	}
	for q := q0; q < kc; q++ {
		clear(d[q*ld+rows : q*ld+ld])
	}
}

// interleave6 is interleave for full 6-row panels, reading the six rows in step.
func interleave6(d, a []float32, lda, n int, alpha float32) {
	s0 := a[0*lda : 0*lda+n]
	s1 := a[1*lda : 1*lda+n]
	s2 := a[2*lda : 2*lda+n]
	s3 := a[3*lda : 3*lda+n]
	s4 := a[4*lda : 4*lda+n]
	s5 := a[5*lda : 5*lda+n]
	d = d[:6*n]
	for q := range s0 {
		dd := (*[6]float32)(d[q*6:])
		dd[0] = alpha * s0[q]
		dd[1] = alpha * s1[q]
		dd[2] = alpha * s2[q]
		dd[3] = alpha * s3[q]
		dd[4] = alpha * s4[q]
		dd[5] = alpha * s5[q]
	}
}

// copyPanels packs an operand already laid out along the panels (each depth index q is a
// contiguous run src[q*lds : q*lds+width]) into ld-wide panels of kc depth indices.
// It walks 16 depth indices at a time across all panels, so that the source rows it reads
// stay in L1 while every panel takes its slice of them.
func copyPanels(fast copyFunc, dst []float32, ld int, src []float32, lds, width, kc int, alpha float32) {
	full := width / ld
	if fast != nil && full > 0 && fast(nil, ld, nil, 0, 0, 0) {
		const qstep = 16
		for qb := 0; qb < kc; qb += qstep {
			n := min(qstep, kc-qb)
			for pi := 0; pi < full; pi++ {
				fast(dst[pi*kc*ld+qb*ld:], ld, src[qb*lds+pi*ld:], lds, n, alpha)
			}
		}
	} else {
		full = 0
	}
	for pi := full; pi*ld < width; pi++ {
		copyRows(nil, dst[pi*kc*ld:], ld, src[pi*ld:], lds, min(ld, width-pi*ld), kc, alpha)
	}
}

// copyFunc, when a kernel has one, writes d[q*ld+r] = alpha*src[q*lds+r] for q < kc and
// r < ld, and reports false (writing nothing) for a width it does not handle; kc == 0 asks
// only whether ld is handled.
type copyFunc func(d []float32, ld int, src []float32, lds, kc int, alpha float32) bool

// copyRows writes d[q*ld+r] = alpha*src[q*lds+r] for q < kc and r < cols, zeros for r ≥ cols:
// the operand is already laid out along the panel, one contiguous run per depth index.
func copyRows(fast copyFunc, d []float32, ld int, src []float32, lds, cols, kc int, alpha float32) {
	if cols == ld && fast != nil && fast(d, ld, src, lds, kc, alpha) {
		return
	}
	for q := 0; q < kc; q++ {
		dd := d[q*ld : q*ld+ld]
		s := src[q*lds : q*lds+cols]
		for r, v := range s {
			dd[r] = alpha * v
		}
		clear(dd[cols:])
	}
}
