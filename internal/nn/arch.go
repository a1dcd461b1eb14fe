package nn

import (
	"fmt"
	"strconv"
	"strings"
)

// Arch is a child architecture: the width of each hidden layer, input first.
type Arch []int

// String writes the architecture as "32-144-24" (empty for no hidden layer).
func (a Arch) String() string {
	var sb strings.Builder
	for i, w := range a {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(strconv.Itoa(w))
	}
	return sb.String()
}

// ParseArch reads "32-144-24". The empty string is the architecture without hidden layers.
func ParseArch(s string) (Arch, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Arch{}, nil
	}
	parts := strings.Split(s, "-")
	a := make(Arch, len(parts))
	for i, p := range parts {
		w, err := strconv.Atoi(p)
		if err != nil || w < 1 {
			return nil, fmt.Errorf("nn: architecture %q: layer %d width %q is not a positive integer", s, i, p)
		}
		a[i] = w
	}
	return a, nil
}

// ParamCount is the number of weights and biases of a feed-forward network with input
// width in, the given hidden widths and output width out:
// Σ_{i=0..L} (n_i·n_{i+1} + n_{i+1}) with n_0 = in and n_{L+1} = out.
func ParamCount(in int, hidden []int, out int) int {
	total, prev := 0, in
	for _, w := range hidden {
		total += prev*w + w
		prev = w
	}
	return total + prev*out + out
}

// checkWidths reports widths that are not in 1..max[i] (max nil: no upper bound).
func checkWidths(arch Arch, max []int) error {
	if max != nil && len(arch) != len(max) {
		return fmt.Errorf("nn: architecture %s has %d hidden layers, the network has %d", arch, len(arch), len(max))
	}
	for i, w := range arch {
		if w < 1 {
			return fmt.Errorf("nn: architecture %s: width %d at layer %d must be at least 1", arch, w, i)
		}
		if max != nil && w > max[i] {
			return fmt.Errorf("nn: architecture %s: width %d at layer %d exceeds the maximum %d", arch, w, i, max[i])
		}
	}
	return nil
}
