package space

import (
	"strings"
	"testing"
)

func TestParamsDesignChecks(t *testing.T) {
	cases := []struct {
		in, out int
		arch    string
		want    int64
	}{
		{2, 1, "4-2", 25},
		{2, 1, "3-3", 25},
		{2, 1, "4-4", 37},
		{1027, 1, "32-144-24", 41153},
		{180, 10, "48-160-32-144", 27882},
	}
	for _, c := range cases {
		w, err := ParseWidths(c.arch)
		if err != nil {
			t.Fatal(err)
		}
		if got := ParamsWidths(c.in, w, c.out); got != c.want {
			t.Errorf("params(%s, in %d, out %d) = %d, want %d", c.arch, c.in, c.out, got, c.want)
		}
		s, err := New(c.in, c.out, len(w), DefaultWidths)
		if err != nil {
			t.Fatal(err)
		}
		if c.in == 2 {
			s, _ = New(c.in, c.out, 2, []int{2, 3, 4})
		}
		a, err := s.Parse(c.arch)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Params(a); got != c.want {
			t.Errorf("Space.Params(%s) = %d, want %d", c.arch, got, c.want)
		}
		if got := AdditiveCost(MaxParams{}, s, a); got != float64(c.want) {
			t.Errorf("AdditiveCost(%s) = %g, want %d", c.arch, got, c.want)
		}
		if s.Format(a) != c.arch {
			t.Errorf("Format round trip %s -> %s", c.arch, s.Format(a))
		}
	}
}

func TestToyFeasibleSet(t *testing.T) {
	s, _ := New(2, 1, 2, []int{2, 3, 4})
	cs := Constraints{MaxParams{Max: 25}}
	var feas []string
	for r := int64(0); r < s.Size(); r++ {
		a := s.Index(r)
		ok, err := cs.Feasible(s, a)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			feas = append(feas, s.Format(a))
		}
	}
	if got := strings.Join(feas, " "); got != "2-2 2-3 2-4 3-2 3-3 4-2" {
		t.Fatalf("feasible set = %s", got)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := New(4, 1, 2, nil); err == nil || !strings.Contains(err.Error(), "empty width list") {
		t.Errorf("empty width list: err = %v", err)
	}
	if _, err := New(4, 1, 2, []int{8, 8}); err == nil {
		t.Error("duplicate widths accepted")
	}
	if _, err := New(4, 1, 0, []int{8}); err == nil {
		t.Error("zero layers accepted")
	}
	s, _ := New(4, 1, 2, []int{8, 16})
	for _, bad := range []string{"", "8", "8-x", "8-0", "8-32", "8-16-8"} {
		if _, err := s.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestMinCompletion(t *testing.T) {
	s, _ := New(3, 2, 3, []int{2, 5, 7})
	c := MaxParams{}
	m := MinCompletion(c, s)
	// Brute force: min over completions after each (layer, choice).
	for i := 0; i < s.Layers(); i++ {
		for j := range s.Widths[i] {
			best := -1.0
			for r := int64(0); r < s.Size(); r++ {
				a := s.Index(r)
				if a[i] != j {
					continue
				}
				var rest float64
				prev := s.Widths[i][j]
				for k := i + 1; k < s.Layers(); k++ {
					w := s.Widths[k][a[k]]
					rest += c.EdgeCost(k, prev, w)
					prev = w
				}
				rest += c.EdgeCost(s.Layers(), prev, s.Out)
				if best < 0 || rest < best {
					best = rest
				}
			}
			if m[i][j] != best {
				t.Errorf("MinCompletion[%d][%d] = %g, want %g", i, j, m[i][j], best)
			}
		}
	}
}
