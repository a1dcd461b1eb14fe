package nn

import (
	"fmt"
	"math"
)

// Kind is the kind of prediction task.
type Kind int

const (
	// Regression: one output, loss (ŷ − y)².
	Regression Kind = iota
	// Binary: one logit z, loss softplus(z) − y·z (logistic cross-entropy), y ∈ {0, 1}.
	Binary
	// Multiclass: K logits, loss logsumexp(z) − z_y (softmax cross-entropy), y ∈ {0..K−1}.
	Multiclass
)

// Task fixes the output layer and the loss. Labels are float32: the value for regression,
// the class index for classification.
type Task struct {
	Kind    Kind
	Classes int // Multiclass only (≥ 2)
}

// RegressionTask is MSE regression with one output.
func RegressionTask() Task { return Task{Kind: Regression} }

// BinaryTask is logistic classification with one output.
func BinaryTask() Task { return Task{Kind: Binary} }

// MulticlassTask is softmax classification over classes outputs.
func MulticlassTask(classes int) Task { return Task{Kind: Multiclass, Classes: classes} }

// Outputs is the width of the output layer.
func (t Task) Outputs() int {
	if t.Kind == Multiclass {
		return t.Classes
	}
	return 1
}

func (t Task) String() string {
	switch t.Kind {
	case Regression:
		return "regression"
	case Binary:
		return "binary"
	case Multiclass:
		return fmt.Sprintf("multiclass(%d)", t.Classes)
	}
	return fmt.Sprintf("Task(%d)", int(t.Kind))
}

// Validate reports an unusable task.
func (t Task) Validate() error {
	switch t.Kind {
	case Regression, Binary:
		return nil
	case Multiclass:
		if t.Classes < 2 {
			return fmt.Errorf("nn: multiclass task needs at least 2 classes, got %d", t.Classes)
		}
		return nil
	}
	return fmt.Errorf("nn: unknown task kind %d", int(t.Kind))
}

// CheckLabel reports a label the task cannot use (the hot paths panic on one instead, so
// data should be checked once when loaded).
func (t Task) CheckLabel(y float32) error {
	f := float64(y)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("label is %v", y)
	}
	switch t.Kind {
	case Binary:
		if y != 0 && y != 1 {
			return fmt.Errorf("label %v is not 0 or 1 for a binary task", y)
		}
	case Multiclass:
		if y != float32(int(y)) || y < 0 || int(y) >= t.Classes {
			return fmt.Errorf("label %v out of range for %d classes (want an integer in 0..%d)", y, t.Classes, t.Classes-1)
		}
	}
	return nil
}

// classOf converts a classification label, panicking with a clear message if it is invalid.
func (t Task) classOf(y float32, row int) int {
	n := t.Classes
	if t.Kind == Binary {
		n = 2
	}
	c := int(y)
	if float32(c) != y || c < 0 || c >= n {
		panic(fmt.Sprintf("nn: row %d: %v", row, t.CheckLabel(y)))
	}
	return c
}

// softplus(z) = log(1 + e^z) without overflow.
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// lossRows returns Σ_r loss_r over logits (rows × Outputs, contiguous). With dz ≠ nil it
// also writes dz = scale·∂loss_r/∂z and adds its column sums to db (the output bias
// gradient), so the loss pass doubles as the first backward pass. With correct ≠ nil it
// counts correct classifications. tmp holds Outputs float64s.
func (t Task) lossRows(logits, labels []float32, rows int, dz, db []float32, scale float32, tmp []float64, correct *int) float64 {
	k := t.Outputs()
	var sum float64
	switch t.Kind {
	case Regression:
		for r := 0; r < rows; r++ {
			e := float64(logits[r]) - float64(labels[r])
			sum += e * e
			if dz != nil {
				d := scale * float32(2*e)
				dz[r] = d
				db[0] += d
			}
		}
	case Binary:
		for r := 0; r < rows; r++ {
			z := float64(logits[r])
			y := t.classOf(labels[r], r)
			sum += softplus(z) - float64(y)*z
			if dz != nil {
				d := scale * float32(sigmoid(z)-float64(y))
				dz[r] = d
				db[0] += d
			}
			if correct != nil && (z > 0) == (y == 1) {
				*correct++
			}
		}
	case Multiclass:
		e := tmp[:k]
		for r := 0; r < rows; r++ {
			zr := logits[r*k : r*k+k]
			y := t.classOf(labels[r], r)
			m, arg := float64(zr[0]), 0
			for j := 1; j < k; j++ {
				if v := float64(zr[j]); v > m {
					m, arg = v, j
				}
			}
			var s float64
			for j := range e {
				e[j] = math.Exp(float64(zr[j]) - m)
				s += e[j]
			}
			// loss = logsumexp(z) − z_y = log s − (z_y − m)
			sum += math.Log(s) - (float64(zr[y]) - m)
			if dz != nil {
				dr := dz[r*k : r*k+k]
				inv := 1 / s
				for j := range dr {
					p := e[j] * inv
					if j == y {
						p--
					}
					d := scale * float32(p)
					dr[j] = d
					db[j] += d
				}
			}
			if correct != nil && arg == y {
				*correct++
			}
		}
	}
	return sum
}

// outputRows turns logits into predictions in place: softmax rows, sigmoid, or identity.
func (t Task) outputRows(logits []float32, rows int, tmp []float64) {
	switch t.Kind {
	case Binary:
		for r := 0; r < rows; r++ {
			logits[r] = float32(sigmoid(float64(logits[r])))
		}
	case Multiclass:
		k := t.Classes
		e := tmp[:k]
		for r := 0; r < rows; r++ {
			zr := logits[r*k : r*k+k]
			m := float64(zr[0])
			for _, v := range zr[1:] {
				m = math.Max(m, float64(v))
			}
			var s float64
			for j := range e {
				e[j] = math.Exp(float64(zr[j]) - m)
				s += e[j]
			}
			for j := range zr {
				zr[j] = float32(e[j] / s)
			}
		}
	}
}
