package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/tabnas/tabnas/internal/gemm"
	"github.com/tabnas/tabnas/internal/optim"
	"github.com/tabnas/tabnas/internal/vec"
)

// layer locates one affine map in the flat weight vector.
type layer struct {
	in, out int // maximum widths; out is also W's leading dimension
	w, b    int // offsets of W (in×out) and b (out)
}

// SuperNet is a feed-forward ReLU network at maximum widths whose children share its weights.
type SuperNet struct {
	In        int
	MaxWidths []int
	Out       int
	Task      Task
	// Weights holds every W_l and b_l (see the package comment for the layout).
	Weights []float32
	layers  []layer
}

func newShape(in int, maxWidths []int, task Task) (*SuperNet, error) {
	if err := task.Validate(); err != nil {
		return nil, err
	}
	if in < 1 {
		return nil, fmt.Errorf("nn: input width %d must be at least 1", in)
	}
	if err := checkWidths(maxWidths, nil); err != nil {
		return nil, err
	}
	n := &SuperNet{In: in, MaxWidths: append([]int(nil), maxWidths...), Out: task.Outputs(), Task: task}
	off, prev := 0, in
	for l := 0; l <= len(maxWidths); l++ {
		out := n.Out
		if l < len(maxWidths) {
			out = maxWidths[l]
		}
		n.layers = append(n.layers, layer{in: prev, out: out, w: off, b: off + prev*out})
		off += prev*out + out
		prev = out
	}
	n.Weights = make([]float32, off)
	return n, nil
}

// NewSuperNet builds a SuperNet with input width in, hidden layers at maxWidths and the
// output layer of task. Hidden layers (followed by ReLU) get He-normal weights
// (std √(2/fan_in)), the output layer Glorot-uniform (±√(6/(fan_in+fan_out))), biases 0,
// all drawn from rng in layer order.
func NewSuperNet(in int, maxWidths []int, task Task, rng *rand.Rand) (*SuperNet, error) {
	if rng == nil {
		return nil, errors.New("nn: NewSuperNet needs a random source")
	}
	n, err := newShape(in, maxWidths, task)
	if err != nil {
		return nil, err
	}
	for l, ly := range n.layers {
		w := n.Weights[ly.w : ly.w+ly.in*ly.out]
		if l < len(n.layers)-1 {
			std := math.Sqrt(2 / float64(ly.in))
			for i := range w {
				w[i] = float32(rng.NormFloat64() * std)
			}
		} else {
			lim := math.Sqrt(6 / float64(ly.in+ly.out))
			for i := range w {
				w[i] = float32((2*rng.Float64() - 1) * lim)
			}
		}
	}
	return n, nil
}

// LoadSuperNet builds a SuperNet around existing weights (copied), e.g. from a checkpoint.
func LoadSuperNet(in int, maxWidths []int, task Task, weights []float32) (*SuperNet, error) {
	n, err := newShape(in, maxWidths, task)
	if err != nil {
		return nil, err
	}
	if len(weights) != len(n.Weights) {
		return nil, fmt.Errorf("nn: %d weights given, the network has %d", len(weights), len(n.Weights))
	}
	copy(n.Weights, weights)
	return n, nil
}

// Clone returns a deep copy.
func (n *SuperNet) Clone() *SuperNet {
	c := *n
	c.MaxWidths = append([]int(nil), n.MaxWidths...)
	c.Weights = append([]float32(nil), n.Weights...)
	c.layers = append([]layer(nil), n.layers...)
	return &c
}

// Hidden is the number of hidden layers.
func (n *SuperNet) Hidden() int { return len(n.MaxWidths) }

// CheckArch reports a child that does not fit: wrong depth or a width outside 1..MaxWidths[i].
func (n *SuperNet) CheckArch(arch Arch) error { return checkWidths(arch, n.MaxWidths) }

// SliceLen is the number of parameters of child arch (ParamCount of the child).
func (n *SuperNet) SliceLen(arch Arch) int {
	n.mustArch(arch)
	return ParamCount(n.In, arch, n.Out)
}

func (n *SuperNet) mustArch(arch Arch) {
	if len(arch) != len(n.MaxWidths) {
		panic(n.CheckArch(arch).Error())
	}
	for i, w := range arch {
		if w < 1 || w > n.MaxWidths[i] {
			panic(n.CheckArch(arch).Error())
		}
	}
}

func sameShape(a, b []layer) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// dims gives the used input and output widths of layer l for child arch.
func (n *SuperNet) dims(arch Arch, l int) (in, out int) {
	in, out = n.In, n.Out
	if l > 0 {
		in = arch[l-1]
	}
	if l < len(arch) {
		out = arch[l]
	}
	return in, out
}

// eachBlock calls fn for every block of the child slice in packing order: W_l's used
// rows×cols block, then b_l's used 1×cols block; ld is the row stride in the flat vector.
func (n *SuperNet) eachBlock(arch Arch, fn func(off, rows, cols, ld int)) {
	for l, ly := range n.layers {
		in, out := n.dims(arch, l)
		fn(ly.w, in, out, ly.out)
		fn(ly.b, 1, out, ly.out)
	}
}

// AppendSpans appends the index spans of child arch in the flat weight vector (contiguous
// runs merged), as used by optim.Adam32.Step.
func (n *SuperNet) AppendSpans(dst []optim.Span, arch Arch) []optim.Span {
	n.mustArch(arch)
	add := func(lo, hi int) {
		if k := len(dst) - 1; k >= 0 && dst[k].Hi == lo {
			dst[k].Hi = hi
			return
		}
		dst = append(dst, optim.Span{Lo: lo, Hi: hi})
	}
	n.eachBlock(arch, func(off, rows, cols, ld int) {
		if cols == ld {
			add(off, off+rows*cols)
			return
		}
		for i := 0; i < rows; i++ {
			add(off+i*ld, off+i*ld+cols)
		}
	})
	return dst
}

// maxSpans bounds the number of spans of any child (one per W row plus one per bias).
func (n *SuperNet) maxSpans() int {
	s := 0
	for _, ly := range n.layers {
		s += ly.in + 1
	}
	return s
}

func packSlice(n *SuperNet, src []float32, arch Arch, dst []float32) {
	n.mustArch(arch)
	if want := ParamCount(n.In, arch, n.Out); len(dst) != want {
		panic(fmt.Sprintf("nn: PackSlice of %s needs %d values, got %d", arch, want, len(dst)))
	}
	k := 0
	n.eachBlock(arch, func(off, rows, cols, ld int) {
		for i := 0; i < rows; i++ {
			k += copy(dst[k:k+cols], src[off+i*ld:off+i*ld+cols])
		}
	})
}

func unpackSlice(n *SuperNet, dst []float32, arch Arch, src []float32) {
	n.mustArch(arch)
	if want := ParamCount(n.In, arch, n.Out); len(src) != want {
		panic(fmt.Sprintf("nn: UnpackSlice of %s needs %d values, got %d", arch, want, len(src)))
	}
	k := 0
	n.eachBlock(arch, func(off, rows, cols, ld int) {
		for i := 0; i < rows; i++ {
			k += copy(dst[off+i*ld:off+i*ld+cols], src[k:k+cols])
		}
	})
}

// PackSlice copies the weights of child arch into dst (len(dst) == SliceLen(arch)).
func (n *SuperNet) PackSlice(arch Arch, dst []float32) { packSlice(n, n.Weights, arch, dst) }

// UnpackSlice overwrites the weights of child arch from src (len(src) == SliceLen(arch));
// weights outside the slice are left alone.
func (n *SuperNet) UnpackSlice(arch Arch, src []float32) { unpackSlice(n, n.Weights, arch, src) }

// NewAdam returns an Adam optimizer over all weights with default betas and ε.
func (n *SuperNet) NewAdam(lr float64) *optim.Adam32 { return optim.NewAdam32(len(n.Weights), lr) }

// Apply takes one Adam step on the slice of child arch using the gradient in g.
func (n *SuperNet) Apply(arch Arch, g *Grads, opt *optim.Adam32) {
	g.check(n)
	g.spans = n.AppendSpans(g.spans[:0], arch)
	opt.Step(n.Weights, g.Data, g.spans)
}

// TrainStep is one training step of child arch on a batch: zero g's slice, accumulate the
// mean-loss gradient (scale 1/rows), and take an Adam step on the slice. It returns the
// batch's loss sum.
func (n *SuperNet) TrainStep(arch Arch, x, labels []float32, rows int, ws *Workspace, g *Grads, opt *optim.Adam32) float64 {
	g.Zero(arch)
	if rows == 0 {
		return 0
	}
	sum := n.Gradient(arch, x, labels, rows, 1/float32(rows), ws, g)
	n.Apply(arch, g, opt)
	return sum
}

func (n *SuperNet) checkInputs(arch Arch, x, labels []float32, rows int, ws *Workspace) {
	n.mustArch(arch)
	ws.check(n)
	if rows < 0 || len(x) < rows*n.In {
		panic(fmt.Sprintf("nn: %d rows of %d features need %d inputs, got %d", rows, n.In, rows*n.In, len(x)))
	}
	if labels != nil && len(labels) < rows {
		panic(fmt.Sprintf("nn: %d rows need %d labels, got %d", rows, rows, len(labels)))
	}
}

// forward runs child arch on rows ≤ ws.maxRows rows and returns the logits (rows × Out),
// keeping every hidden activation in ws for the backward pass.
func (n *SuperNet) forward(arch Arch, x []float32, rows int, ws *Workspace) []float32 {
	h, ldh := x, n.In
	for l, ly := range n.layers {
		in, out := n.dims(arch, l)
		z := ws.act[l][:rows*out]
		gemm.Sgemm(false, false, rows, out, in, 1, h, ldh, n.Weights[ly.w:], ly.out, 0, z, out)
		b := n.Weights[ly.b : ly.b+out]
		if l < len(arch) {
			BiasReLU(z, b, rows, out)
		} else {
			AddBias(z, b, rows, out)
		}
		h, ldh = z, out
	}
	return h
}

// Forward returns the logits (rows × Out) of child arch on x (rows × In, row-major), as a
// view into ws valid until its next use. rows must not exceed ws.MaxRows().
func (n *SuperNet) Forward(arch Arch, x []float32, rows int, ws *Workspace) []float32 {
	n.checkInputs(arch, x, nil, rows, ws)
	if rows > ws.maxRows {
		panic(fmt.Sprintf("nn: Forward of %d rows on a workspace for %d", rows, ws.maxRows))
	}
	return n.forward(arch, x, rows, ws)
}

// Loss returns Σ_rows loss of child arch. Inputs larger than the workspace are processed in
// chunks of ws.MaxRows() rows.
func (n *SuperNet) Loss(arch Arch, x, labels []float32, rows int, ws *Workspace) float64 {
	n.checkInputs(arch, x, labels, rows, ws)
	var sum float64
	for r := 0; r < rows; r += ws.maxRows {
		c := min(ws.maxRows, rows-r)
		logits := n.forward(arch, x[r*n.In:], c, ws)
		sum += n.Task.lossRows(logits, labels[r:], c, nil, nil, 0, ws.tmp, nil)
	}
	return sum
}

// Metrics summarizes a model on a data set.
type Metrics struct {
	Rows     int
	Loss     float64 // mean loss per row
	Accuracy float64 // fraction classified correctly (classification tasks only; 0 for regression)
}

// Evaluate returns the mean loss and, for classification, the accuracy of child arch.
func (n *SuperNet) Evaluate(arch Arch, x, labels []float32, rows int, ws *Workspace) Metrics {
	n.checkInputs(arch, x, labels, rows, ws)
	var sum float64
	correct := 0
	for r := 0; r < rows; r += ws.maxRows {
		c := min(ws.maxRows, rows-r)
		logits := n.forward(arch, x[r*n.In:], c, ws)
		sum += n.Task.lossRows(logits, labels[r:], c, nil, nil, 0, ws.tmp, &correct)
	}
	m := Metrics{Rows: rows}
	if rows > 0 {
		m.Loss = sum / float64(rows)
		m.Accuracy = float64(correct) / float64(rows)
	}
	return m
}

// Predict writes predictions of child arch into out (rows × Out): class probabilities
// (softmax) for multiclass, P(y=1) for binary, the value for regression.
func (n *SuperNet) Predict(arch Arch, x []float32, rows int, ws *Workspace, out []float32) {
	n.checkInputs(arch, x, nil, rows, ws)
	if len(out) < rows*n.Out {
		panic(fmt.Sprintf("nn: Predict of %d rows needs %d outputs, got %d", rows, rows*n.Out, len(out)))
	}
	for r := 0; r < rows; r += ws.maxRows {
		c := min(ws.maxRows, rows-r)
		logits := n.forward(arch, x[r*n.In:], c, ws)
		o := out[r*n.Out : (r+c)*n.Out]
		copy(o, logits)
		n.Task.outputRows(o, c, ws.tmp)
	}
}

// Gradient adds scale·Σ_rows ∂loss_r/∂w to g for the weights w in the slice of child arch
// (nothing else in g is touched) and returns Σ_rows loss_r. Shards of a batch may accumulate
// into one Grads one after another with scale = 1/(total rows) to obtain the batch mean.
// Inputs larger than the workspace are processed in chunks of ws.MaxRows() rows.
func (n *SuperNet) Gradient(arch Arch, x, labels []float32, rows int, scale float32, ws *Workspace, g *Grads) float64 {
	n.checkInputs(arch, x, labels, rows, ws)
	g.check(n)
	var sum float64
	for r := 0; r < rows; r += ws.maxRows {
		c := min(ws.maxRows, rows-r)
		sum += n.gradient(arch, x[r*n.In:], labels[r:], c, scale, ws, g)
	}
	return sum
}

func (n *SuperNet) gradient(arch Arch, x, labels []float32, rows int, scale float32, ws *Workspace, g *Grads) float64 {
	logits := n.forward(arch, x, rows, ws)
	last := len(n.layers) - 1
	outB := n.layers[last].b
	dz := ws.dOut[:rows*n.Out]
	sum := n.Task.lossRows(logits, labels, rows, dz, g.Data[outB:outB+n.Out], scale, ws.tmp, nil)
	for l := last; l >= 0; l-- {
		ly := n.layers[l]
		in, out := n.dims(arch, l)
		h := x
		if l > 0 {
			h = ws.act[l-1]
		}
		// dW_l += hᵀ·dz, read and written in place through the SuperNet's leading dimension.
		gemm.Sgemm(true, false, in, out, rows, 1, h, in, dz, out, 1, g.Data[ly.w:], ly.out)
		if l == 0 {
			break
		}
		// dh = dz·W_lᵀ, then through the ReLU of layer l−1 (its bias gradient in the same pass).
		dh := ws.dA[l&1][:rows*in]
		gemm.Sgemm(false, true, rows, in, out, 1, dz, out, n.Weights[ly.w:], ly.out, 0, dh, in)
		pb := n.layers[l-1].b
		ReLUBackward(dh, ws.act[l-1][:rows*in], g.Data[pb:pb+in], rows, in)
		dz = dh
	}
	return sum
}

// BiasReLU sets z ← max(z + b, 0) row by row (z is rows × n). NaN passes through.
func BiasReLU(z, b []float32, rows, n int) { vec.BiasReLU(z, b, rows, n) }

// AddBias sets z ← z + b row by row (the output layer: no activation).
func AddBias(z, b []float32, rows, n int) {
	b = b[:n]
	for r := 0; r < rows; r++ {
		zr := z[r*n : r*n+n]
		zr = zr[:len(b)]
		for j, bj := range b {
			zr[j] += bj
		}
	}
}

// ReLUBackward masks dh by the ReLU (a = post-activation; a > 0 where the unit was active)
// and adds the column sums of the masked dh to db.
func ReLUBackward(dh, a, db []float32, rows, n int) { vec.ReLUBackward(dh, a, db, rows, n) }
