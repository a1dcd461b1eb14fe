package rank

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestKendallAndSpearmanKnownValues(t *testing.T) {
	for _, c := range []struct {
		name     string
		x, y     []float64
		tau, rho float64
	}{
		{"identical order", []float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}, 1, 1},
		{"reversed", []float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, -1, -1},
		// One swapped pair of 4: 5 concordant, 1 discordant → τ = 4/6; ρ = 1 − 6·2/(4·15) = 0.8.
		{"one swap", []float64{1, 2, 3, 4}, []float64{1, 3, 2, 4}, 4.0 / 6, 0.8},
		// Ties in x (τ-b): pairs (0,1) tied in x; concordant 5, discordant 0, tx 1, ty 0:
		// τ-b = 5/sqrt(6·5).
		{"tie", []float64{1, 1, 2, 3}, []float64{1, 2, 3, 4}, 5 / math.Sqrt(30), pearson([]float64{1.5, 1.5, 3, 4}, []float64{1, 2, 3, 4})},
	} {
		tau, err := KendallTau(c.x, c.y)
		if err != nil {
			t.Fatal(err)
		}
		rho, err := Spearman(c.x, c.y)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(tau-c.tau) > 1e-12 || math.Abs(rho-c.rho) > 1e-12 {
			t.Errorf("%s: τ %.6f ρ %.6f, want %.6f %.6f", c.name, tau, rho, c.tau, c.rho)
		}
	}
}

// Without ties, Spearman equals 1 − 6Σd²/(n(n²−1)) and Kendall equals the brute-force count.
func TestAgainstTextbookFormulas(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 50; trial++ {
		n := 2 + rng.IntN(30)
		x, y := make([]float64, n), make([]float64, n)
		for i := range x {
			x[i], y[i] = rng.Float64(), rng.Float64()+0.5*x[i]
		}
		rx, ry := Ranks(x), Ranks(y)
		var d2 float64
		for i := range rx {
			d2 += (rx[i] - ry[i]) * (rx[i] - ry[i])
		}
		want := 1 - 6*d2/float64(n*(n*n-1))
		got, _ := Spearman(x, y)
		if math.Abs(got-want) > 1e-9 {
			t.Fatalf("n=%d: ρ %v, formula %v", n, got, want)
		}
		var s float64
		for i := range x {
			for j := range x {
				if i < j {
					s += float64(sign(x[i]-x[j]) * sign(y[i]-y[j]))
				}
			}
		}
		tau, _ := KendallTau(x, y)
		if w := s / float64(n*(n-1)/2); math.Abs(tau-w) > 1e-12 {
			t.Fatalf("n=%d: τ %v, brute force %v", n, tau, w)
		}
	}
}

func TestRanksAverageTies(t *testing.T) {
	got := Ranks([]float64{3, 1, 3, 2, 3})
	if want := []float64{4, 1, 4, 2, 4}; !slices.Equal(got, want) {
		t.Fatalf("ranks %v, want %v", got, want)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := KendallTau([]float64{1}, []float64{1}); err == nil {
		t.Error("one pair accepted")
	}
	if _, err := Spearman([]float64{1, 2}, []float64{1}); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := KendallTau([]float64{1, math.NaN()}, []float64{1, 2}); err == nil {
		t.Error("NaN accepted")
	}
	if tau, err := KendallTau([]float64{1, 1, 1}, []float64{1, 2, 3}); err != nil || !math.IsNaN(tau) {
		t.Errorf("constant side: τ %v err %v, want NaN", tau, err)
	}
}
