package policy

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/internal/space"
)

func randomPolicy(s *space.Space, rng *rand.Rand, scale float64) *Policy {
	p := NewPolicy(s)
	for _, l := range p.Logits {
		for j := range l {
			l[j] = rng.NormFloat64() * scale
		}
	}
	return p
}

func feasibleOf(s *space.Space, cs space.Constraints) Feasible {
	return func(a space.Arch) (bool, error) { return cs.Feasible(s, a) }
}

// DP must equal enumeration for every layer count, random policies and budgets that cut
// the space at several places, including all-feasible and none-feasible.
func TestDPEqualsEnumeration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, L := range []int{1, 2, 3, 4, 5} {
		widths := []int{8, 16, 24, 48, 64, 96}
		if L == 5 {
			widths = []int{8, 32, 64, 128}
		}
		s, err := space.New(13, 3, L, widths)
		if err != nil {
			t.Fatal(err)
		}
		all := make([]float64, 0, s.Size())
		for r := int64(0); r < s.Size(); r++ {
			all = append(all, float64(s.Params(s.Index(r))))
		}
		sort.Float64s(all)
		for trial := 0; trial < 6; trial++ {
			p := randomPolicy(s, rng, 1.5)
			probs := p.Probs()
			var budget int64
			switch trial {
			case 0:
				budget = int64(all[0]) - 1 // nothing feasible
			case 1:
				budget = int64(all[len(all)-1]) // everything feasible
			case 2:
				budget = int64(all[0]) // exactly one (or a few) feasible
			default:
				budget = int64(all[rng.IntN(len(all))])
			}
			cs := space.Constraints{space.MaxParams{Max: budget}}
			want, err := Enumerate(s, probs, feasibleOf(s, cs))
			if err != nil {
				t.Fatal(err)
			}
			got, err := DP(s, probs, space.MaxParams{Max: budget})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.PV-want.PV) > 1e-12 {
				t.Fatalf("L=%d budget %d: DP P(V) = %.15g, enumeration %.15g", L, budget, got.PV, want.PV)
			}
			if (got.Marginals == nil) != (want.Marginals == nil) {
				t.Fatalf("L=%d budget %d: marginals nil mismatch", L, budget)
			}
			for i := range want.Marginals {
				for j := range want.Marginals[i] {
					if d := math.Abs(got.Marginals[i][j] - want.Marginals[i][j]); d > 1e-9 {
						t.Fatalf("L=%d budget %d: marginal[%d][%d] DP %.12g enum %.12g", L, budget, i, j, got.Marginals[i][j], want.Marginals[i][j])
					}
				}
			}
		}
	}
}

// P(V) itself: the DP's P(V) is also checked against an independent brute-force sum.
func TestDPZeroProbabilityChoices(t *testing.T) {
	s, _ := space.New(5, 2, 3, []int{4, 8, 12, 16})
	p := NewPolicy(s)
	probs := p.Probs()
	probs[1] = []float64{0, 0.5, 0.5, 0} // some choices impossible
	c := space.MaxParams{Max: 300}
	want, _ := Enumerate(s, probs, feasibleOf(s, space.Constraints{c}))
	got, _ := DP(s, probs, c)
	if math.Abs(got.PV-want.PV) > 1e-12 {
		t.Fatalf("P(V) DP %g enum %g", got.PV, want.PV)
	}
	for i := range want.Marginals {
		for j := range want.Marginals[i] {
			if math.Abs(got.Marginals[i][j]-want.Marginals[i][j]) > 1e-9 {
				t.Fatalf("marginal[%d][%d]: %g vs %g", i, j, got.Marginals[i][j], want.Marginals[i][j])
			}
		}
	}
}

// The Monte Carlo estimate converges to the exact values: at each N, the error of P̂(V) is
// within 5 binomial standard deviations, and the mean marginal error shrinks like 1/√N.
func TestMonteCarloConverges(t *testing.T) {
	s, _ := space.New(20, 2, 3, []int{8, 16, 32, 64, 128})
	rng := rand.New(rand.NewPCG(7, 7))
	p := randomPolicy(s, rng, 0.8)
	probs := p.Probs()
	cs := space.Constraints{space.MaxParams{Max: 4000}}
	exact, _ := Exact(s, probs, cs)
	if exact.PV < 0.1 || exact.PV > 0.9 {
		t.Fatalf("test setup: P(V) = %g should be interior", exact.PV)
	}
	var prevErr float64
	for _, n := range []int{100, 1000, 10000, 100000} {
		// Average the marginal error over repetitions so the decrease is not luck.
		var errSum float64
		reps := 20
		for r := 0; r < reps; r++ {
			e, err := MonteCarlo(probs, n, Stream(uint64(n), "mc-test", int64(r)), feasibleOf(s, cs))
			if err != nil {
				t.Fatal(err)
			}
			sd := math.Sqrt(exact.PV * (1 - exact.PV) / float64(n))
			if math.Abs(e.PV-exact.PV) > 5*sd {
				t.Fatalf("N=%d: P̂(V) = %g, exact %g, beyond 5 sd (%g)", n, e.PV, exact.PV, sd)
			}
			for i := range exact.Marginals {
				for j := range exact.Marginals[i] {
					errSum += math.Abs(e.Marginals[i][j] - exact.Marginals[i][j])
				}
			}
		}
		meanErr := errSum / float64(reps)
		t.Logf("N=%d mean Σ|f̂−f| = %.5f", n, meanErr)
		if prevErr > 0 && meanErr > prevErr/2 {
			t.Fatalf("N=%d: marginal error %g did not shrink ~√10 from %g", n, meanErr, prevErr)
		}
		prevErr = meanErr
	}
	if prevErr > 0.05 {
		t.Fatalf("marginal error at N=100000 still %g", prevErr)
	}
}

func TestMonteCarloNoFeasible(t *testing.T) {
	s, _ := space.New(20, 2, 2, []int{8, 16})
	cs := space.Constraints{space.MaxParams{Max: 10}}
	e, err := MonteCarlo(NewPolicy(s).Probs(), 50, Stream(1, "x", 0), feasibleOf(s, cs))
	if err != nil {
		t.Fatal(err)
	}
	if e.PV != 0 || e.Marginals != nil || e.Accepted != 0 {
		t.Fatalf("no feasible sample: got %+v", e)
	}
	c, _ := NewController(s, Config{})
	before := c.State()
	if c.Update(space.Arch{0, 0}, 1.0, &e) {
		t.Fatal("update applied without a feasible sample")
	}
	if !slices.Equal(before.Logits, c.State().Logits) || c.State().AdamT != 0 {
		t.Fatal("skipped update changed the state")
	}
}

// The corrected gradient onehot(y) − f is exactly ∇θ log p(y | V); check it against
// central finite differences of log p(y) − log P(V) computed by enumeration.
func TestCorrectionIsGradientOfConditionalLogProb(t *testing.T) {
	s, _ := space.New(6, 2, 3, []int{2, 4, 8, 16})
	rng := rand.New(rand.NewPCG(3, 4))
	p := randomPolicy(s, rng, 1)
	cs := space.Constraints{space.MaxParams{Max: 200}}
	f := feasibleOf(s, cs)
	logCond := func(p *Policy, y space.Arch) float64 {
		probs := p.Probs()
		e, _ := Enumerate(s, probs, f)
		return LogProb(probs, y) - math.Log(e.PV)
	}
	y := space.Arch{1, 2, 0}
	if ok, _ := f(y); !ok {
		t.Fatal("test setup: y must be feasible")
	}
	est, _ := DP(s, p.Probs(), space.MaxParams{Max: 200})
	const h = 1e-5
	for i := range p.Logits {
		for j := range p.Logits[i] {
			q := p.Clone()
			q.Logits[i][j] += h
			up := logCond(q, y)
			q.Logits[i][j] -= 2 * h
			down := logCond(q, y)
			fd := (up - down) / (2 * h)
			an := -est.Marginals[i][j]
			if y[i] == j {
				an++
			}
			if math.Abs(fd-an) > 1e-7 {
				t.Fatalf("∂/∂θ[%d][%d]: finite difference %.9f, onehot−f %.9f", i, j, fd, an)
			}
		}
	}
}

// Top-k by best-first search equals sorting the enumerated feasible set by probability.
func TestTopKFeasibleMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := 0; trial < 20; trial++ {
		L := 1 + trial%4
		s, _ := space.New(10, 3, L, []int{4, 8, 16, 32, 64})
		p := randomPolicy(s, rng, 2)
		probs := p.Probs()
		budget := int64(200 + rng.IntN(4000))
		cs := space.Constraints{space.MaxParams{Max: budget}}
		var all []Ranked
		for r := int64(0); r < s.Size(); r++ {
			a := s.Index(r)
			if ok, _ := cs.Feasible(s, a); ok {
				all = append(all, Ranked{Arch: a, LogProb: LogProb(probs, a)})
			}
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].LogProb > all[j].LogProb })
		k := 5
		top, err := TopKFeasible(s, probs, cs, k, rng)
		if err != nil {
			t.Fatal(err)
		}
		if !top.Exact {
			t.Fatal("small space should be exact")
		}
		if len(all) < k {
			k = len(all)
		}
		if len(top.Archs) != k {
			t.Fatalf("got %d archs, want %d", len(top.Archs), k)
		}
		for i := 0; i < k; i++ {
			if math.Abs(top.Archs[i].LogProb-all[i].LogProb) > 1e-12 {
				t.Fatalf("trial %d rank %d: log p %g, want %g", trial, i, top.Archs[i].LogProb, all[i].LogProb)
			}
			if ok, _ := cs.Feasible(s, top.Archs[i].Arch); !ok {
				t.Fatal("top-k returned an infeasible arch")
			}
		}
	}
}

// The answer is the most probable feasible architecture, not the per-layer argmax.
func TestMostProbableFeasibleIsNotArgmax(t *testing.T) {
	s, _ := space.New(2, 1, 2, []int{2, 3, 4})
	p := NewPolicy(s)
	p.Logits[0] = []float64{0, 1, 2}
	p.Logits[1] = []float64{0, 1, 2}
	cs := space.Constraints{space.MaxParams{Max: 25}}
	top, _ := TopKFeasible(s, p.Probs(), cs, 1, nil)
	am := Argmax(p.Probs())
	if s.Format(am) != "4-4" {
		t.Fatalf("argmax %s", s.Format(am))
	}
	got := s.Format(top.Archs[0].Arch)
	if got != "3-3" && got != "4-2" && got != "2-4" {
		t.Fatalf("most probable feasible = %s", got)
	}
	// log p(3-3) = 2·log σ(1) > log p(4-2) = log σ(2) + log σ(0) since 2 > 1+1? equal; accept either of the tie.
}

func TestBaselineAndAdvantage(t *testing.T) {
	s, _ := space.New(2, 1, 2, []int{2, 3, 4})
	c, _ := NewController(s, Config{})
	if a := c.Advantage(0.7); math.Abs(a) > 1e-15 {
		t.Fatalf("first advantage %g, want 0", a)
	}
	// num = .9·.07 + .1·.2 = .083, den = .19
	a := c.Advantage(0.2)
	if want := 0.2 - (0.9*0.07+0.02)/(0.9*0.1+0.1); math.Abs(a-want) > 1e-15 {
		t.Fatalf("second advantage %g, want %g", a, want)
	}
}

func TestRejectionCapError(t *testing.T) {
	s, _ := space.New(2, 1, 2, []int{2, 3, 4})
	cs := space.Constraints{space.MaxParams{Max: 10}}
	c, _ := NewController(s, Config{MaxTries: 50})
	_, tries, err := c.SampleCandidate(Stream(1, "rl", 0), feasibleOf(s, cs))
	if !errors.Is(err, ErrRejectionCap) || tries != 50 || !strings.Contains(err.Error(), "P(V)") {
		t.Fatalf("err = %v tries %d", err, tries)
	}
	if MinCost(space.MaxParams{Max: 10}, s) != 15 {
		t.Fatalf("MinCost = %g, want 15 (2-2)", MinCost(space.MaxParams{Max: 10}, s))
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Method: "nope"},
		{Method: AbsReward, Beta: 1, T0: 25},
		{Method: Mnas, Beta: -1},
		{Correction: "sometimes"},
		{LR: -1},
		{Samples: -2},
	}
	for _, b := range bad {
		if err := b.Defaults().Validate(); err == nil {
			t.Errorf("config %+v accepted", b)
		}
	}
}

func BenchmarkExactDP20pow5(b *testing.B) {
	s, _ := space.New(54, 7, 5, space.DefaultWidths)
	rng := rand.New(rand.NewPCG(1, 1))
	p := randomPolicy(s, rng, 1)
	probs := p.Probs()
	c := space.MaxParams{Max: 150000}
	e, _ := DP(s, probs, c)
	b.ReportMetric(e.PV, "P(V)")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		DP(s, probs, c)
	}
}

func BenchmarkMonteCarloN5(b *testing.B) {
	s, _ := space.New(54, 7, 3, space.DefaultWidths)
	cs := space.Constraints{space.MaxParams{Max: 50000}}
	probs := NewPolicy(s).Probs()
	rng := rand.New(rand.NewPCG(1, 1))
	f := feasibleOf(s, cs)
	for i := 0; i < b.N; i++ {
		MonteCarlo(probs, 5, rng, f)
	}
}

// The entropy bonus's gradient equals the finite differences of coef·Σ_i H_i(θ).
func TestEntropyGradientFiniteDifferences(t *testing.T) {
	s, err := space.New(3, 2, 2, []int{2, 4, 8})
	if err != nil {
		t.Fatal(err)
	}
	const coef = 0.3
	c, err := NewController(s, Config{Method: Reject, LR: 0.1, Entropy: coef})
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.flat {
		c.flat[i] = 0.37 * float64(i%5) * float64(1-2*(i%2))
	}
	before := slices.Clone(c.flat)
	entropy := func(flat []float64) float64 {
		var sum float64
		for _, pi := range fromFlat(s, flat).Probs() {
			for _, p := range pi {
				sum -= p * math.Log(p)
			}
		}
		return coef * sum
	}
	c.Update(space.Arch{0, 0}, 0, nil) // zero advantage: only the entropy term remains
	for i := range before {
		const h = 1e-6
		up, down := slices.Clone(before), slices.Clone(before)
		up[i] += h
		down[i] -= h
		fd := (entropy(up) - entropy(down)) / (2 * h)
		if math.Abs(fd-c.grad[i]) > 1e-7 {
			t.Errorf("logit %d: gradient %.9g, finite differences %.9g", i, c.grad[i], fd)
		}
	}
}
