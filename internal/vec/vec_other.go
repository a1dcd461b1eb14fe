//go:build !amd64 || purego

package vec

func biasReLU(z, b []float32, rows, n int)          { biasReLUGo(z, b, rows, n) }
func reluBackward(dh, a, db []float32, rows, n int) { reluBackwardGo(dh, a, db, rows, n) }
func adam(p, g, m, v []float32, k *AdamCoef)        { adamGo(p, g, m, v, k) }

// levels lists the implementations this build can run (for tests).
var levels = []string{"go"}

func setLevel(name string) bool { return name == "go" }
