//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

//go:noescape
func biasReLU512(z, b *float32, rows, n int)

//go:noescape
func biasReLU256(z, b *float32, rows, n int)

//go:noescape
func reluBackward512(dh, a, db *float32, rows, n int)

//go:noescape
func reluBackward256(dh, a, db *float32, rows, n int)

//go:noescape
func adam512(p, grad, m, v *float32, n int, k *AdamCoef)

//go:noescape
func adam256(p, grad, m, v *float32, n int, k *AdamCoef)

// Implementation levels.
const (
	levelGo = iota
	levelAVX2
	levelAVX512
)

// level is the implementation in use; init picks the best one this CPU runs.
var level = levelGo

// levels lists the implementations this CPU can run (for tests).
var levels = []string{"go"}

var levelNames = map[string]int{"go": levelGo, "avx2": levelAVX2, "avx512": levelAVX512}

func init() {
	if cpu.X86.HasAVX2 {
		level = levelAVX2
		levels = append(levels, "avx2")
		if cpu.X86.HasAVX512F {
			level = levelAVX512
			levels = append(levels, "avx512")
		}
	}
}

// setLevel selects an implementation by name (tests only); it reports whether it is known.
func setLevel(name string) bool {
	l, ok := levelNames[name]
	if ok {
		level = l
	}
	return ok
}

// The callers have checked the bounds: rows*n entries of z (dh, a), n of b (db), len(p) of
// p, g, m and v, all non-empty.

func biasReLU(z, b []float32, rows, n int) {
	switch level {
	case levelAVX512:
		biasReLU512(&z[0], &b[0], rows, n)
	case levelAVX2:
		biasReLU256(&z[0], &b[0], rows, n)
	default:
		biasReLUGo(z, b, rows, n)
	}
}

func reluBackward(dh, a, db []float32, rows, n int) {
	switch level {
	case levelAVX512:
		reluBackward512(&dh[0], &a[0], &db[0], rows, n)
	case levelAVX2:
		reluBackward256(&dh[0], &a[0], &db[0], rows, n)
	default:
		reluBackwardGo(dh, a, db, rows, n)
	}
}

func adam(p, g, m, v []float32, k *AdamCoef) {
	switch level {
	case levelAVX512:
		adam512(&p[0], &g[0], &m[0], &v[0], len(p), k)
	case levelAVX2:
		adam256(&p[0], &g[0], &m[0], &v[0], len(p), k)
	default:
		adamGo(p, g, m, v, k)
	}
}
