//go:build amd64 && !purego

#include "textflag.h"

// Tail masks for AVX2: eight all-ones lanes then eight zero lanes; the 8 lanes starting at
// byte 32-4*r have the first r lanes set.
DATA tailmask<>+0(SB)/8, $0xffffffffffffffff
DATA tailmask<>+8(SB)/8, $0xffffffffffffffff
DATA tailmask<>+16(SB)/8, $0xffffffffffffffff
DATA tailmask<>+24(SB)/8, $0xffffffffffffffff
DATA tailmask<>+32(SB)/8, $0
DATA tailmask<>+40(SB)/8, $0
DATA tailmask<>+48(SB)/8, $0
DATA tailmask<>+56(SB)/8, $0
GLOBL tailmask<>(SB), RODATA|NOPTR, $64

// Operand order. Go's assembler lists sources in reverse: VOP s2, s1, d is d = s1 op s2.
// VMAXPS returns s2 when either input is NaN and when both are zero, so max(0, x) is
// computed as s1 = 0, s2 = x (NaN passes through), then +0 is added, turning −0 into +0
// and leaving everything else (NaN payloads included) unchanged: Go's max(x, 0).
// Sums keep the Go operand order (z+b, db+d) so even NaN payloads match.

// func biasReLU512(z, b *float32, rows, n int)
TEXT ·biasReLU512(SB), NOSPLIT, $0-32
	MOVQ z+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ n+24(FP), DX
	MOVQ DX, CX
	ANDQ $15, CX
	MOVL $1, BX
	SHLL CX, BX
	DECL BX
	KMOVW BX, K1                   // tail lanes
	MOVQ DX, R8
	ANDQ $-16, R8                  // full vectors end here
	MOVQ rows+16(FP), CX
	VPXORD Z31, Z31, Z31

br512row:
	XORQ AX, AX
	CMPQ R8, $0
	JEQ  br512tail

br512col:
	VMOVUPS (DI)(AX*4), Z0
	VADDPS  (SI)(AX*4), Z0, Z0
	VMAXPS  Z0, Z31, Z0
	VADDPS  Z31, Z0, Z0
	VMOVUPS Z0, (DI)(AX*4)
	ADDQ    $16, AX
	CMPQ    AX, R8
	JLT     br512col

br512tail:
	CMPQ AX, DX
	JEQ  br512next
	VMOVUPS.Z (DI)(AX*4), K1, Z0
	VMOVUPS.Z (SI)(AX*4), K1, Z1
	VADDPS    Z1, Z0, Z0
	VMAXPS    Z0, Z31, Z0
	VADDPS    Z31, Z0, Z0
	VMOVUPS   Z0, K1, (DI)(AX*4)

br512next:
	LEAQ (DI)(DX*4), DI
	DECQ CX
	JNZ  br512row
	VZEROUPPER
	RET

// func biasReLU256(z, b *float32, rows, n int)
TEXT ·biasReLU256(SB), NOSPLIT, $0-32
	MOVQ z+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ n+24(FP), DX
	MOVQ DX, BX
	ANDQ $7, BX
	SHLQ $2, BX
	LEAQ tailmask<>+32(SB), R9
	SUBQ BX, R9
	VMOVDQU (R9), Y14              // tail lanes
	MOVQ DX, R8
	ANDQ $-8, R8
	MOVQ rows+16(FP), CX
	VXORPS Y15, Y15, Y15

br256row:
	XORQ AX, AX
	CMPQ R8, $0
	JEQ  br256tail

br256col:
	VMOVUPS (DI)(AX*4), Y0
	VADDPS  (SI)(AX*4), Y0, Y0
	VMAXPS  Y0, Y15, Y0
	VADDPS  Y15, Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	CMPQ    AX, R8
	JLT     br256col

br256tail:
	CMPQ AX, DX
	JEQ  br256next
	VMASKMOVPS (DI)(AX*4), Y14, Y0
	VMASKMOVPS (SI)(AX*4), Y14, Y1
	VADDPS     Y1, Y0, Y0
	VMAXPS     Y0, Y15, Y0
	VADDPS     Y15, Y0, Y0
	VMASKMOVPS Y0, Y14, (DI)(AX*4)

br256next:
	LEAQ (DI)(DX*4), DI
	DECQ CX
	JNZ  br256row
	VZEROUPPER
	RET

// The mask keeps d where a > 0 (ordered: false for NaN) and writes +0 elsewhere; the
// masked d is added to db in full, as the Go loop does (so db = −0 becomes +0 there too).

// func reluBackward512(dh, a, db *float32, rows, n int)
TEXT ·reluBackward512(SB), NOSPLIT, $0-40
	MOVQ dh+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ db+16(FP), R10
	MOVQ n+32(FP), DX
	MOVQ DX, CX
	ANDQ $15, CX
	MOVL $1, BX
	SHLL CX, BX
	DECL BX
	KMOVW BX, K1
	MOVQ DX, R8
	ANDQ $-16, R8
	MOVQ rows+24(FP), CX
	VPXORD Z31, Z31, Z31

rb512row:
	XORQ AX, AX
	CMPQ R8, $0
	JEQ  rb512tail

rb512col:
	VMOVUPS   (SI)(AX*4), Z1
	VCMPPS    $0x1e, Z31, Z1, K2   // a > 0 (GT_OQ)
	VMOVUPS.Z (DI)(AX*4), K2, Z0
	VMOVUPS   (R10)(AX*4), Z2
	VADDPS    Z0, Z2, Z2
	VMOVUPS   Z0, (DI)(AX*4)
	VMOVUPS   Z2, (R10)(AX*4)
	ADDQ      $16, AX
	CMPQ      AX, R8
	JLT       rb512col

rb512tail:
	CMPQ AX, DX
	JEQ  rb512next
	VMOVUPS.Z (SI)(AX*4), K1, Z1
	VCMPPS    $0x1e, Z31, Z1, K1, K2
	VMOVUPS.Z (DI)(AX*4), K2, Z0
	VMOVUPS.Z (R10)(AX*4), K1, Z2
	VADDPS    Z0, Z2, Z2
	VMOVUPS   Z0, K1, (DI)(AX*4)
	VMOVUPS   Z2, K1, (R10)(AX*4)

rb512next:
	LEAQ (DI)(DX*4), DI
	LEAQ (SI)(DX*4), SI
	DECQ CX
	JNZ  rb512row
	VZEROUPPER
	RET

// func reluBackward256(dh, a, db *float32, rows, n int)
TEXT ·reluBackward256(SB), NOSPLIT, $0-40
	MOVQ dh+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ db+16(FP), R10
	MOVQ n+32(FP), DX
	MOVQ DX, BX
	ANDQ $7, BX
	SHLQ $2, BX
	LEAQ tailmask<>+32(SB), R9
	SUBQ BX, R9
	VMOVDQU (R9), Y14
	MOVQ DX, R8
	ANDQ $-8, R8
	MOVQ rows+24(FP), CX
	VXORPS Y15, Y15, Y15

rb256row:
	XORQ AX, AX
	CMPQ R8, $0
	JEQ  rb256tail

rb256col:
	VMOVUPS (SI)(AX*4), Y1
	VCMPPS  $0x1e, Y15, Y1, Y1
	VANDPS  (DI)(AX*4), Y1, Y0
	VMOVUPS (R10)(AX*4), Y2
	VADDPS  Y0, Y2, Y2
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y2, (R10)(AX*4)
	ADDQ    $8, AX
	CMPQ    AX, R8
	JLT     rb256col

rb256tail:
	CMPQ AX, DX
	JEQ  rb256next
	VMASKMOVPS (SI)(AX*4), Y14, Y1
	VMASKMOVPS (DI)(AX*4), Y14, Y0
	VCMPPS     $0x1e, Y15, Y1, Y1
	VANDPS     Y0, Y1, Y0
	VMASKMOVPS (R10)(AX*4), Y14, Y2
	VADDPS     Y0, Y2, Y2
	VMASKMOVPS Y0, Y14, (DI)(AX*4)
	VMASKMOVPS Y2, Y14, (R10)(AX*4)

rb256next:
	LEAQ (DI)(DX*4), DI
	LEAQ (SI)(DX*4), SI
	DECQ CX
	JNZ  rb256row
	VZEROUPPER
	RET

// Adam: per element, in the order of the Go loop,
//   m = b1*m + o1*g;  v = b2*v + (o2*g)*g;  p = p - (lr*(m*c1)) / (sqrt(v*c2) + eps).
// Coefficients (AdamCoef): b1 0, b2 4, o1 8, o2 12, lr 16, eps 20, c1 24, c2 28.

#define ADAM(rg, rm, rv, rp, rt, rd) \
	VMULPS  rm, B1, rm; \
	VMULPS  rg, O1, rt; \
	VADDPS  rt, rm, rm; \
	VMULPS  rv, B2, rv; \
	VMULPS  rg, O2, rt; \
	VMULPS  rg, rt, rt; \
	VADDPS  rt, rv, rv; \
	VMULPS  C2, rv, rd; \
	VSQRTPS rd, rd; \
	VADDPS  EPS, rd, rd; \
	VMULPS  C1, rm, rt; \
	VMULPS  rt, LR, rt; \
	VDIVPS  rd, rt, rt; \
	VSUBPS  rt, rp, rp

// func adam512(p, grad, m, v *float32, n int, k *AdamCoef)
TEXT ·adam512(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R10
	MOVQ v+24(FP), R11
	MOVQ n+32(FP), DX
	MOVQ k+40(FP), R9
	VBROADCASTSS 0(R9), Z20
	VBROADCASTSS 4(R9), Z21
	VBROADCASTSS 8(R9), Z22
	VBROADCASTSS 12(R9), Z23
	VBROADCASTSS 16(R9), Z24
	VBROADCASTSS 20(R9), Z25
	VBROADCASTSS 24(R9), Z26
	VBROADCASTSS 28(R9), Z27
#define B1 Z20
#define B2 Z21
#define O1 Z22
#define O2 Z23
#define LR Z24
#define EPS Z25
#define C1 Z26
#define C2 Z27
	MOVQ DX, CX
	ANDQ $15, CX
	MOVL $1, BX
	SHLL CX, BX
	DECL BX
	KMOVW BX, K1
	MOVQ DX, R8
	ANDQ $-32, R8                  // pairs of full vectors
	XORQ AX, AX
	CMPQ R8, $0
	JEQ  ad512one

ad512two:
	VMOVUPS (SI)(AX*4), Z0
	VMOVUPS (R10)(AX*4), Z1
	VMOVUPS (R11)(AX*4), Z2
	VMOVUPS (DI)(AX*4), Z3
	VMOVUPS 64(SI)(AX*4), Z6
	VMOVUPS 64(R10)(AX*4), Z7
	VMOVUPS 64(R11)(AX*4), Z8
	VMOVUPS 64(DI)(AX*4), Z9
	ADAM(Z0, Z1, Z2, Z3, Z4, Z5)
	ADAM(Z6, Z7, Z8, Z9, Z10, Z11)
	VMOVUPS Z1, (R10)(AX*4)
	VMOVUPS Z2, (R11)(AX*4)
	VMOVUPS Z3, (DI)(AX*4)
	VMOVUPS Z7, 64(R10)(AX*4)
	VMOVUPS Z8, 64(R11)(AX*4)
	VMOVUPS Z9, 64(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R8
	JLT  ad512two

ad512one:
	MOVQ DX, R8
	ANDQ $-16, R8
	CMPQ AX, R8
	JEQ  ad512tail
	VMOVUPS (SI)(AX*4), Z0
	VMOVUPS (R10)(AX*4), Z1
	VMOVUPS (R11)(AX*4), Z2
	VMOVUPS (DI)(AX*4), Z3
	ADAM(Z0, Z1, Z2, Z3, Z4, Z5)
	VMOVUPS Z1, (R10)(AX*4)
	VMOVUPS Z2, (R11)(AX*4)
	VMOVUPS Z3, (DI)(AX*4)
	ADDQ $16, AX

ad512tail:
	CMPQ AX, DX
	JEQ  ad512done
	VMOVUPS.Z (SI)(AX*4), K1, Z0
	VMOVUPS.Z (R10)(AX*4), K1, Z1
	VMOVUPS.Z (R11)(AX*4), K1, Z2
	VMOVUPS.Z (DI)(AX*4), K1, Z3
	ADAM(Z0, Z1, Z2, Z3, Z4, Z5)
	VMOVUPS Z1, K1, (R10)(AX*4)
	VMOVUPS Z2, K1, (R11)(AX*4)
	VMOVUPS Z3, K1, (DI)(AX*4)

ad512done:
	VZEROUPPER
	RET

#undef B1
#undef B2
#undef O1
#undef O2
#undef LR
#undef EPS
#undef C1
#undef C2

// func adam256(p, grad, m, v *float32, n int, k *AdamCoef)
TEXT ·adam256(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R10
	MOVQ v+24(FP), R11
	MOVQ n+32(FP), DX
	MOVQ k+40(FP), R9
	VBROADCASTSS 0(R9), Y8
	VBROADCASTSS 4(R9), Y9
	VBROADCASTSS 8(R9), Y10
	VBROADCASTSS 12(R9), Y11
	VBROADCASTSS 16(R9), Y12
	VBROADCASTSS 20(R9), Y13
	VBROADCASTSS 24(R9), Y14
	VBROADCASTSS 28(R9), Y15
#define B1 Y8
#define B2 Y9
#define O1 Y10
#define O2 Y11
#define LR Y12
#define EPS Y13
#define C1 Y14
#define C2 Y15
	MOVQ DX, R8
	ANDQ $-8, R8
	XORQ AX, AX
	CMPQ R8, $0
	JEQ  ad256tail

ad256one:
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS (R10)(AX*4), Y1
	VMOVUPS (R11)(AX*4), Y2
	VMOVUPS (DI)(AX*4), Y3
	ADAM(Y0, Y1, Y2, Y3, Y4, Y5)
	VMOVUPS Y1, (R10)(AX*4)
	VMOVUPS Y2, (R11)(AX*4)
	VMOVUPS Y3, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, R8
	JLT  ad256one

ad256tail:
	CMPQ AX, DX
	JEQ  ad256done
	MOVQ DX, BX
	ANDQ $7, BX
	SHLQ $2, BX
	LEAQ tailmask<>+32(SB), R9
	SUBQ BX, R9
	VMOVDQU (R9), Y7
	VMASKMOVPS (SI)(AX*4), Y7, Y0
	VMASKMOVPS (R10)(AX*4), Y7, Y1
	VMASKMOVPS (R11)(AX*4), Y7, Y2
	VMASKMOVPS (DI)(AX*4), Y7, Y3
	ADAM(Y0, Y1, Y2, Y3, Y4, Y5)
	VMASKMOVPS Y1, Y7, (R10)(AX*4)
	VMASKMOVPS Y2, Y7, (R11)(AX*4)
	VMASKMOVPS Y3, Y7, (DI)(AX*4)

ad256done:
	VZEROUPPER
	RET
