package nn

import (
	"strconv"
	"strings"
	"testing"
)

const benchRows = 512

// benchSpecs are "input-hidden…-classes": Covertype-like and a mid-size 4-layer child.
var benchSpecs = []string{"54-512-512-512-7", "180-48-160-32-144-10"}

func parseSpec(b *testing.B, spec string) (in int, arch Arch, classes int) {
	parts := strings.Split(spec, "-")
	v := make([]int, len(parts))
	for i, p := range parts {
		var err error
		if v[i], err = strconv.Atoi(p); err != nil {
			b.Fatal(err)
		}
	}
	return v[0], Arch(v[1 : len(v)-1]), v[len(v)-1]
}

// flopsForward counts 2·rows·Σ n_i·n_{i+1} (GEMMs only).
func flopsForward(in int, arch Arch, out, rows int) float64 {
	return 2 * float64(rows) * float64(ParamCount(in, arch, out)-biasCount(arch, out))
}

// flopsTrain adds the weight gradients (same count) and the input gradients of every layer
// but the first.
func flopsTrain(in int, arch Arch, out, rows int) float64 {
	f := flopsForward(in, arch, out, rows)
	return 3*f - 2*float64(rows)*float64(in*firstWidth(arch, out))
}

func biasCount(arch Arch, out int) int {
	s := out
	for _, w := range arch {
		s += w
	}
	return s
}

func firstWidth(arch Arch, out int) int {
	if len(arch) > 0 {
		return arch[0]
	}
	return out
}

func report(b *testing.B, iters int, rows int, flops float64) {
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(iters*rows)/sec, "samples/s")
	b.ReportMetric(float64(iters)*flops/sec/1e9, "GFLOP/s")
}

func benchTrainStep(b *testing.B, n *SuperNet, arch Arch) {
	task := n.Task
	x, y := randomBatch(n.In, benchRows, task, 1)
	ws, g, opt := NewWorkspace(n, benchRows), n.NewGrads(), n.NewAdam(1e-3)
	b.ReportAllocs()
	iters := 0
	for b.Loop() {
		n.TrainStep(arch, x, y, benchRows, ws, g, opt)
		iters++
	}
	report(b, iters, benchRows, flopsTrain(n.In, arch, n.Out, benchRows))
}

// BenchmarkTrainStep is one full step (forward, backward, Adam on the slice) of a batch of
// 512 rows on a network whose maximum widths are the architecture.
func BenchmarkTrainStep(b *testing.B) {
	for _, spec := range benchSpecs {
		b.Run(spec, func(b *testing.B) {
			in, arch, k := parseSpec(b, spec)
			n, err := NewSuperNet(in, arch, MulticlassTask(k), testRNG(1))
			if err != nil {
				b.Fatal(err)
			}
			benchTrainStep(b, n, arch)
		})
	}
}

// BenchmarkChildTrainStep trains the 4-layer child inside a SuperNet of 512-wide layers, so
// every GEMM reads a sub-matrix through a leading dimension of 512.
func BenchmarkChildTrainStep(b *testing.B) {
	in, arch, k := parseSpec(b, "180-48-160-32-144-10")
	n, err := NewSuperNet(in, []int{512, 512, 512, 512}, MulticlassTask(k), testRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	benchTrainStep(b, n, arch)
}

// BenchmarkForward is inference (logits) on a batch of 512 rows.
func BenchmarkForward(b *testing.B) {
	for _, spec := range benchSpecs {
		b.Run(spec, func(b *testing.B) {
			in, arch, k := parseSpec(b, spec)
			n, err := NewSuperNet(in, arch, MulticlassTask(k), testRNG(1))
			if err != nil {
				b.Fatal(err)
			}
			x, _ := randomBatch(in, benchRows, n.Task, 1)
			ws := NewWorkspace(n, benchRows)
			b.ReportAllocs()
			iters := 0
			for b.Loop() {
				n.Forward(arch, x, benchRows, ws)
				iters++
			}
			report(b, iters, benchRows, flopsForward(in, arch, k, benchRows))
		})
	}
}
