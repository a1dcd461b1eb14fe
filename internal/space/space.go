// Package space defines the TabNAS search space (layers × candidate widths), architectures,
// their parameter count and the resource constraints that decide feasibility.
package space

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// DefaultWidths is the 20-choice width list of the TabNAS paper.
var DefaultWidths = []int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 384, 512}

// Space is L hidden layers, layer i choosing a width from Widths[i] (ascending, distinct),
// between an input of width In and an output of width Out.
type Space struct {
	In     int
	Out    int
	Widths [][]int
}

// New builds a space of layers identical layers over widths.
func New(in, out, layers int, widths []int) (*Space, error) {
	if layers < 1 {
		return nil, fmt.Errorf("space: need at least 1 hidden layer, got %d", layers)
	}
	w := make([][]int, layers)
	for i := range w {
		w[i] = append([]int(nil), widths...)
	}
	s := &Space{In: in, Out: out, Widths: w}
	return s, s.Validate()
}

// Validate checks widths are positive, distinct and ascending, and the endpoints are positive.
func (s *Space) Validate() error {
	if s.In < 1 || s.Out < 1 {
		return fmt.Errorf("space: input width %d and output width %d must be ≥ 1", s.In, s.Out)
	}
	if len(s.Widths) == 0 {
		return errors.New("space: no hidden layers")
	}
	for i, ws := range s.Widths {
		if len(ws) == 0 {
			return fmt.Errorf("space: layer %d has an empty width list", i+1)
		}
		for j, w := range ws {
			if w < 1 {
				return fmt.Errorf("space: layer %d width %d is not positive", i+1, w)
			}
			if j > 0 && w <= ws[j-1] {
				return fmt.Errorf("space: layer %d widths must be ascending and distinct (%d after %d)", i+1, w, ws[j-1])
			}
		}
	}
	return nil
}

// Layers is the number of hidden layers.
func (s *Space) Layers() int { return len(s.Widths) }

// MaxWidths is the SuperNet shape: the largest width of every layer.
func (s *Space) MaxWidths() []int {
	m := make([]int, len(s.Widths))
	for i, ws := range s.Widths {
		m[i] = ws[len(ws)-1]
	}
	return m
}

// Size is the number of architectures in the space (saturating at MaxInt64).
func (s *Space) Size() int64 {
	n := int64(1)
	for _, ws := range s.Widths {
		if n > (1<<62)/int64(len(ws)) {
			return 1<<63 - 1
		}
		n *= int64(len(ws))
	}
	return n
}

// Arch is one architecture as choice indices into the space's width lists.
type Arch []int

// Widths maps choice indices to widths.
func (s *Space) ArchWidths(a Arch) []int {
	w := make([]int, len(a))
	for i, c := range a {
		w[i] = s.Widths[i][c]
	}
	return w
}

// Format writes an architecture as "32-144-24".
func (s *Space) Format(a Arch) string { return FormatWidths(s.ArchWidths(a)) }

// FormatWidths writes widths as "32-144-24".
func FormatWidths(w []int) string {
	parts := make([]string, len(w))
	for i, x := range w {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, "-")
}

// ParseWidths reads "32-144-24".
func ParseWidths(str string) ([]int, error) {
	str = strings.TrimSpace(str)
	if str == "" {
		return nil, errors.New("empty architecture")
	}
	parts := strings.Split(str, "-")
	w := make([]int, len(parts))
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 1 {
			return nil, fmt.Errorf("architecture %q: layer %d width %q is not a positive integer", str, i+1, p)
		}
		w[i] = x
	}
	return w, nil
}

// Parse reads "32-144-24" into choice indices of this space.
func (s *Space) Parse(str string) (Arch, error) {
	w, err := ParseWidths(str)
	if err != nil {
		return nil, err
	}
	return s.FromWidths(w)
}

// FromWidths maps widths to choice indices, failing if a width is not a candidate.
func (s *Space) FromWidths(w []int) (Arch, error) {
	if len(w) != len(s.Widths) {
		return nil, fmt.Errorf("architecture %s has %d layers, the space has %d", FormatWidths(w), len(w), len(s.Widths))
	}
	a := make(Arch, len(w))
	for i, x := range w {
		j := sort.SearchInts(s.Widths[i], x)
		if j == len(s.Widths[i]) || s.Widths[i][j] != x {
			return nil, fmt.Errorf("architecture %s: width %d is not a candidate of layer %d %v", FormatWidths(w), x, i+1, s.Widths[i])
		}
		a[i] = j
	}
	return a, nil
}

// ParamsWidths counts weights and biases of an MLP in → w... → out.
func ParamsWidths(in int, w []int, out int) int64 {
	var p int64
	prev := int64(in)
	for _, x := range w {
		p += prev*int64(x) + int64(x)
		prev = int64(x)
	}
	return p + prev*int64(out) + int64(out)
}

// Params is params(y) = Σ_{i=0..L} (n_i·n_{i+1} + n_{i+1}).
func (s *Space) Params(a Arch) int64 {
	var p int64
	prev := int64(s.In)
	for i, c := range a {
		x := int64(s.Widths[i][c])
		p += prev*x + x
		prev = x
	}
	return p + prev*int64(s.Out) + int64(s.Out)
}

// EdgeParams is the parameter count of the edge into layer i (0-based hidden layer,
// i == Layers() is the output) from width a to width b.
func EdgeParams(a, b int) int64 { return int64(a)*int64(b) + int64(b) }

// Index enumerates architectures in lexicographic order: it returns the arch of rank r.
func (s *Space) Index(r int64) Arch {
	a := make(Arch, len(s.Widths))
	for i := len(s.Widths) - 1; i >= 0; i-- {
		n := int64(len(s.Widths[i]))
		a[i] = int(r % n)
		r /= n
	}
	return a
}

// Equal reports whether two architectures choose the same indices.
func Equal(a, b Arch) bool {
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
