package nn

import (
	"fmt"

	"github.com/tabnas/tabnas/internal/optim"
)

// Workspace holds the activations and backward buffers of one goroutine for batches of up
// to MaxRows rows of any child of one SuperNet shape. Reusing it makes every step
// allocation-free.
type Workspace struct {
	layers  []layer
	maxRows int
	act     [][]float32  // output of layer l (rows × width, compact)
	dA      [2][]float32 // ping-pong gradients w.r.t. hidden activations
	dOut    []float32    // gradient w.r.t. the logits
	tmp     []float64    // one row of output scratch
}

// NewWorkspace sizes a workspace for n (or any SuperNet of the same shape) and batches of
// up to maxRows rows.
func NewWorkspace(n *SuperNet, maxRows int) *Workspace {
	if maxRows < 1 {
		panic(fmt.Sprintf("nn: workspace needs at least 1 row, got %d", maxRows))
	}
	ws := &Workspace{layers: n.layers, maxRows: maxRows}
	widest := 0
	for _, ly := range n.layers {
		ws.act = append(ws.act, make([]float32, maxRows*ly.out))
		widest = max(widest, ly.out)
	}
	for i := range ws.dA {
		ws.dA[i] = make([]float32, maxRows*widest)
	}
	ws.dOut = make([]float32, maxRows*n.Out)
	ws.tmp = make([]float64, n.Out)
	return ws
}

// MaxRows is the largest batch the workspace holds at once.
func (ws *Workspace) MaxRows() int { return ws.maxRows }

func (ws *Workspace) check(n *SuperNet) {
	if !sameShape(ws.layers, n.layers) {
		panic("nn: workspace was sized for a SuperNet of another shape")
	}
}

// Grads is a gradient in the SuperNet's flat layout (Data parallels SuperNet.Weights).
// Only the slice of the child being trained is meaningful; the rest is never touched.
type Grads struct {
	Data  []float32
	shape *SuperNet // geometry only (no weights): slices for Zero/Pack/Unpack
	spans []optim.Span
}

// NewGrads returns a zero gradient for n (usable with any SuperNet of the same shape).
func (n *SuperNet) NewGrads() *Grads {
	shape := &SuperNet{In: n.In, MaxWidths: n.MaxWidths, Out: n.Out, Task: n.Task, layers: n.layers}
	return &Grads{Data: make([]float32, len(n.Weights)), shape: shape,
		spans: make([]optim.Span, 0, n.maxSpans())}
}

func (g *Grads) check(n *SuperNet) {
	if !sameShape(g.shape.layers, n.layers) {
		panic("nn: gradient was sized for a SuperNet of another shape")
	}
}

// Zero clears the slice of child arch.
func (g *Grads) Zero(arch Arch) {
	g.shape.mustArch(arch)
	g.shape.eachBlock(arch, func(off, rows, cols, ld int) {
		for i := 0; i < rows; i++ {
			clear(g.Data[off+i*ld : off+i*ld+cols])
		}
	})
}

// PackSlice copies the gradient of child arch into dst (len(dst) == SliceLen(arch)).
func (g *Grads) PackSlice(arch Arch, dst []float32) { packSlice(g.shape, g.Data, arch, dst) }

// UnpackSlice overwrites the gradient of child arch from src (len(src) == SliceLen(arch)).
func (g *Grads) UnpackSlice(arch Arch, src []float32) { unpackSlice(g.shape, g.Data, arch, src) }
