package nn

import (
	"strings"
	"testing"
)

// The checks listed in DESIGN.md §1 (Cost).
func TestParamCountDesignChecks(t *testing.T) {
	cases := []struct {
		in   int
		arch string
		out  int
		want int
	}{
		{2, "4-2", 1, 25},
		{2, "3-3", 1, 25},
		{2, "4-4", 1, 37},
		{1027, "32-144-24", 1, 41153},
		{180, "48-160-32-144", 10, 27882},
		{5, "", 3, 18},
	}
	for _, c := range cases {
		a, err := ParseArch(c.arch)
		if err != nil {
			t.Fatal(err)
		}
		if got := ParamCount(c.in, a, c.out); got != c.want {
			t.Errorf("ParamCount(%d, %s, %d) = %d, want %d", c.in, c.arch, c.out, got, c.want)
		}
		if a.String() != c.arch {
			t.Errorf("round trip %q → %q", c.arch, a.String())
		}
	}
}

func TestSliceLenMatchesParamCount(t *testing.T) {
	n := randomNet(180, []int{512, 512, 512, 512}, MulticlassTask(10), 1)
	arch := Arch{48, 160, 32, 144}
	if got := n.SliceLen(arch); got != 27882 {
		t.Fatalf("SliceLen = %d, want 27882", got)
	}
	if len(n.Weights) != ParamCount(180, n.MaxWidths, 10) {
		t.Fatalf("SuperNet holds %d weights, ParamCount of max widths is %d", len(n.Weights), ParamCount(180, n.MaxWidths, 10))
	}
}

func TestParseArchErrors(t *testing.T) {
	for _, s := range []string{"3--4", "0-2", "a", "-1"} {
		if _, err := ParseArch(s); err == nil {
			t.Errorf("ParseArch(%q): no error", s)
		}
	}
}

func TestCheckArch(t *testing.T) {
	n := randomNet(3, []int{4, 4}, BinaryTask(), 1)
	for _, c := range []struct {
		arch Arch
		msg  string
	}{
		{Arch{4}, "hidden layers"},
		{Arch{5, 1}, "exceeds"},
		{Arch{0, 1}, "at least 1"},
	} {
		err := n.CheckArch(c.arch)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("CheckArch(%v) = %v, want an error containing %q", c.arch, err, c.msg)
		}
	}
	if err := n.CheckArch(Arch{1, 4}); err != nil {
		t.Errorf("CheckArch(1-4) = %v", err)
	}
}
