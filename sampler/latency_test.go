package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/space"
)

// testMeter is a cheap meter: tiny batch and few runs, since the tests check bookkeeping,
// never speed.
func testMeter(t *testing.T, s *space.Space, prefix string, cache LatencyCache, count *int) *Meter {
	t.Helper()
	var mu sync.Mutex
	cfg := MeterConfig{Space: s, Task: nn.MulticlassTask(s.Out), Batch: 16, Runs: 3, Warmup: 1,
		Cache: cache, Prefix: prefix, Seed: 1}
	if count != nil {
		cfg.OnMeasure = func(string, float64) { mu.Lock(); *count++; mu.Unlock() }
	}
	m, err := NewMeter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func smallSpace(t *testing.T, layers int, widths []int) *space.Space {
	t.Helper()
	s, err := space.New(5, 3, layers, widths)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLatencyCostMeasuredOnce(t *testing.T) {
	ctx := context.Background()
	s := smallSpace(t, 2, []int{4, 8, 16})
	cache := NewMemCache()
	n := 0
	m := testMeter(t, s, "run1", cache, &n)
	c, err := NewLatencyConstraint(ctx, m, LatencyInference, 10)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Parse("8-16")
	v1, err := c.Cost(s, a)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.Cost(s, a)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || v1 != v2 || !(v1 > 0) {
		t.Fatalf("two Cost calls: %d measurements, %g then %g ms", n, v1, v2)
	}

	// A resumed run (new meter, same run id, same cache) measures nothing again.
	n2 := 0
	m2 := testMeter(t, s, "run1", cache, &n2)
	c2, _ := NewLatencyConstraint(ctx, m2, LatencyInference, 10)
	if v, err := c2.Cost(s, a); err != nil || v != v1 || n2 != 0 {
		t.Fatalf("resumed Cost = %g, %v after %d measurements; want %g from the cache", v, err, n2, v1)
	}

	// Concurrent callers of one new architecture share one measurement.
	b, _ := s.Parse("16-4")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := c.Cost(s, b); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n != 2 {
		t.Fatalf("8 concurrent Cost calls of a new architecture: %d measurements in all, want 2", n)
	}

	// A batch measures each new child once, repeated or not, and reads the cached ones.
	got, err := m.MeasureAll(ctx, LatencyInference, [][]int{{8, 16}, {4, 4}, {16, 4}, {4, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || got[0] != v1 || got[1] != got[3] || !(got[1] > 0) {
		t.Fatalf("MeasureAll = %v after %d measurements in all, want 3", got, n)
	}
	if v, _ := m.Inference(ctx, []int{4, 4}); v != got[1] || n != 3 {
		t.Fatalf("Inference after MeasureAll = %g (%d measurements), want cached %g", v, n, got[1])
	}
}

func TestLatencyKeysPerRunAndKind(t *testing.T) {
	ctx := context.Background()
	s := smallSpace(t, 2, []int{4, 8})
	cache := NewMemCache()
	n := 0
	ma := testMeter(t, s, "runA", cache, &n)
	mb := testMeter(t, s, "runB", cache, &n)
	w := []int{8, 4}
	for _, m := range []*Meter{ma, mb} {
		if _, err := m.Inference(ctx, w); err != nil {
			t.Fatal(err)
		}
		if _, err := m.TrainStep(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if n != 4 {
		t.Fatalf("2 runs × 2 kinds: %d measurements, want 4", n)
	}
	want := []string{"runA.infer.b16.8-4", "runA.train.b16.8-4", "runB.infer.b16.8-4", "runB.train.b16.8-4"}
	if got := cache.Keys(); !slices.Equal(got, want) {
		t.Fatalf("keys %q, want %q", got, want)
	}
	// Edges have their own keys, distinct from whole networks and between kinds.
	if _, err := ma.EdgeInference(ctx, 1, 8, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := ma.EdgeTrain(ctx, 1, 8, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := ma.EdgeTrain(ctx, 2, 4, 3); err != nil {
		t.Fatal(err)
	}
	keys := cache.Keys()
	for _, k := range []string{"runA.infer.b16.edge.hidden.8-4.ld8", "runA.train.b16.edge.hidden.8-4.ld8", "runA.train.b16.edge.out.4-3.ld3"} {
		if !slices.Contains(keys, k) {
			t.Errorf("key %s missing from %q", k, keys)
		}
	}
	if n != 7 {
		t.Fatalf("%d measurements after 3 edges, want 7", n)
	}
}

// limitBetween returns a limit halfway between two neighbouring distinct costs near the
// given quantile, so that rounding in a different summation order cannot move any
// architecture across it.
func limitBetween(t *testing.T, c space.Constraint, s *space.Space, q float64) float64 {
	t.Helper()
	var costs []float64
	for r := int64(0); r < s.Size(); r++ {
		v, err := c.Cost(s, s.Index(r))
		if err != nil {
			t.Fatal(err)
		}
		costs = append(costs, v)
	}
	slices.Sort(costs)
	for k := int(q * float64(len(costs))); k+1 < len(costs); k++ {
		if costs[k+1]-costs[k] > 1e-9*costs[k+1] {
			return (costs[k] + costs[k+1]) / 2
		}
	}
	t.Fatal("no gap between costs")
	return 0
}

func TestLatencyEstimateDPEqualsEnumerate(t *testing.T) {
	ctx := context.Background()
	s := smallSpace(t, 3, []int{2, 4, 8, 16})
	m := testMeter(t, s, "dp", nil, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, kind := range []LatencyKind{LatencyInference, LatencyTrain} {
		est, err := NewEstimatedLatency(ctx, m, kind, 1)
		if err != nil {
			t.Fatal(err)
		}
		var c space.Constraint = est
		if _, ok := c.(space.Additive); !ok {
			t.Fatal("the estimate is not additive")
		}
		if c.Name() != kind.ConstraintName() {
			t.Errorf("name %s, want %s", c.Name(), kind.ConstraintName())
		}
		for _, q := range []float64{0.2, 0.5, 0.8} {
			limit := limitBetween(t, est, s, q)
			lim, err := NewEstimatedLatency(ctx, m, kind, limit) // edges from the cache
			if err != nil {
				t.Fatal(err)
			}
			probs := make([][]float64, s.Layers())
			for i := range probs {
				probs[i] = make([]float64, len(s.Widths[i]))
				var z float64
				for j := range probs[i] {
					probs[i][j] = 0.1 + rng.Float64()
					z += probs[i][j]
				}
				for j := range probs[i] {
					probs[i][j] /= z
				}
			}
			dp, err := policy.DP(s, probs, lim)
			if err != nil {
				t.Fatal(err)
			}
			cs := space.Constraints{lim}
			en, err := policy.Enumerate(s, probs, func(a space.Arch) (bool, error) { return cs.Feasible(s, a) })
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(dp.PV-en.PV) > 1e-12 || dp.PV <= 0 || dp.PV >= 1 {
				t.Fatalf("%s q=%g: P(V) DP %g, enumeration %g", kind, q, dp.PV, en.PV)
			}
			for i := range en.Marginals {
				for j := range en.Marginals[i] {
					if d := math.Abs(dp.Marginals[i][j] - en.Marginals[i][j]); d > 1e-12 {
						t.Fatalf("%s q=%g: marginal [%d][%d] DP %g, enumeration %g", kind, q, i, j, dp.Marginals[i][j], en.Marginals[i][j])
					}
				}
			}
		}
	}
	// Measuring whole networks is not additive: DP must not be offered it.
	var whole space.Constraint
	whole, _ = NewLatencyConstraint(ctx, m, LatencyInference, 1)
	if _, ok := whole.(space.Additive); ok {
		t.Fatal("the whole-network constraint claims to be additive")
	}
}

func TestLatencyEstimateIsSumOfCachedEdges(t *testing.T) {
	ctx := context.Background()
	s := smallSpace(t, 3, []int{4, 8, 16})
	cache := NewMemCache()
	n := 0
	m := testMeter(t, s, "sum", cache, &n)
	get := func(key string) float64 {
		v, ok, err := cache.Get(key)
		if err != nil || !ok {
			t.Fatalf("cache has no %s (%v)", key, err)
		}
		return v
	}
	for _, kind := range []LatencyKind{LatencyInference, LatencyTrain} {
		est, err := NewEstimatedLatency(ctx, m, kind, 100)
		if err != nil {
			t.Fatal(err)
		}
		measured := n
		pre := fmt.Sprintf("sum.%s.b16", kind)
		layers := func(w []int) float64 {
			return get(fmt.Sprintf("%s.edge.in.5-%d.ld16", pre, w[0])) +
				get(fmt.Sprintf("%s.edge.hidden.%d-%d.ld16", pre, w[0], w[1])) +
				get(fmt.Sprintf("%s.edge.hidden.%d-%d.ld16", pre, w[1], w[2])) +
				get(fmt.Sprintf("%s.edge.out.%d-3.ld3", pre, w[2]))
		}
		// The calibration is fitted on cached times of its children only.
		var cl, cw []float64
		for _, w := range m.calibrationArchs() {
			cl = append(cl, layers(w))
			cw = append(cw, get(fmt.Sprintf("%s.%s", pre, space.FormatWidths(w))))
		}
		cal := est.Calibration()
		if want := fitCalibration(cl, cw, true); cal != want || cal.Children != calibrationChildren || !(cal.Scale > 0) || cal.Overhead < 0 {
			t.Fatalf("%s calibration %+v, refitted from the cache %+v", kind, cal, want)
		}
		for _, arch := range []string{"4-4-4", "16-8-4", "8-16-16"} {
			a, _ := s.Parse(arch)
			w := s.ArchWidths(a)
			want := cal.Apply(layers(w))
			got, err := est.Cost(s, a)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-want) > 1e-12*want {
				t.Errorf("%s %s: estimate %g, calibrated sum of cached edges %g", kind, arch, got, want)
			}
			viaMeter, err := m.Estimate(ctx, kind, w)
			if err != nil || math.Abs(viaMeter-want) > 1e-12*want {
				t.Errorf("%s %s: Meter.Estimate %g (%v), want %g", kind, arch, viaMeter, err, want)
			}
		}
		if n != measured {
			t.Errorf("%s: %d measurements after the edge table was built", kind, n-measured)
		}
		if v := est.EdgeCost(1, 4, 5); !math.IsInf(v, 1) {
			t.Errorf("edge of a width outside the space costs %g, want +Inf", v)
		}
	}
}

func TestLatencyCalibrationFit(t *testing.T) {
	cases := []struct {
		name          string
		layers, whole []float64
		scaled        bool
		want          Calibration
	}{
		{"exact line", []float64{1, 2, 4, 8}, []float64{1.35, 2.65, 5.25, 10.45}, true, Calibration{1.3, 0.05, 4}},
		{"one child timed under load", []float64{1, 2, 4, 8, 16}, []float64{1.35, 2.65, 5.25, 30, 20.85}, true, Calibration{1.3, 0.05, 5}},
		{"negative intercept", []float64{1, 2, 4}, []float64{1.9, 3.9, 7.9}, true, Calibration{2, 0, 3}},
		{"falling line", []float64{1, 2}, []float64{2, 1}, true, Calibration{1, 0, 2}},
		{"one child", []float64{3}, []float64{4}, true, Calibration{1, 1, 1}},
		{"scale 1", []float64{1, 2, 3}, []float64{1.5, 2.5, 9}, false, Calibration{1, 0.5, 3}},
		{"scale 1, faster whole", []float64{2, 4}, []float64{1, 2}, false, Calibration{1, 0, 2}},
	}
	for _, c := range cases {
		got := fitCalibration(c.layers, c.whole, c.scaled)
		if math.Abs(got.Scale-c.want.Scale) > 1e-9 || math.Abs(got.Overhead-c.want.Overhead) > 1e-9 || got.Children != c.want.Children {
			t.Errorf("%s: fit %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestLatencyLargerChildIsSlower compares children whose work differs by a factor of
// thousands, so no scheduling noise can flip the order.
func TestLatencyLargerChildIsSlower(t *testing.T) {
	ctx := context.Background()
	s, err := space.New(54, 7, 3, []int{8, 512})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMeter(MeterConfig{Space: s, Task: nn.MulticlassTask(7), Runs: 3, Warmup: 1, Prefix: "mono"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []LatencyKind{LatencyInference, LatencyTrain} {
		small, err := m.Measure(ctx, kind, []int{8, 8, 8})
		if err != nil {
			t.Fatal(err)
		}
		big, err := m.Measure(ctx, kind, []int{512, 512, 512})
		if err != nil {
			t.Fatal(err)
		}
		if !(big > 2*small) || !(small > 0) {
			t.Errorf("%s: 512-512-512 %g ms, 8-8-8 %g ms", kind, big, small)
		}
		es, _ := m.Edge(ctx, kind, 1, 8, 8)
		eb, _ := m.Edge(ctx, kind, 1, 512, 512)
		if !(eb > 2*es) {
			t.Errorf("%s: layer 512→512 %g ms, 8→8 %g ms", kind, eb, es)
		}
	}
}

type failingCache struct{ get, put error }

func (f failingCache) Get(string) (float64, bool, error) { return 0, false, f.get }
func (f failingCache) Put(string, float64) error         { return f.put }

func TestLatencyErrors(t *testing.T) {
	ctx := context.Background()
	s := smallSpace(t, 2, []int{4, 8})
	cache := NewMemCache()
	n := 0
	m := testMeter(t, s, "err", cache, &n)
	bad := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, want)
		}
	}
	_, err := m.Inference(ctx, []int{4})
	bad("one layer of two", err, "has 1 hidden layers")
	_, err = m.TrainStep(ctx, []int{4, 0})
	bad("width 0", err, "at least 1")
	_, err = m.Inference(ctx, []int{4, 9})
	bad("width above the maximum", err, "exceeds the maximum 8")
	_, err = m.Measure(ctx, "gpu", []int{4, 4})
	bad("unknown kind", err, "unknown latency kind")
	_, err = m.EdgeInference(ctx, 3, 4, 3)
	bad("layer 3 of 0..2", err, "layers 0..2")
	_, err = m.EdgeInference(ctx, 0, 6, 4)
	bad("first layer not from the input", err, "input width 5")
	_, err = m.EdgeTrain(ctx, 2, 4, 2)
	bad("output layer of the wrong width", err, "output layer has width 3")
	_, err = m.EdgeTrain(ctx, 1, 16, 4)
	bad("input wider than the previous layer", err, "exceeds the maximum 8")
	_, err = m.EdgeTrain(ctx, 1, 4, -1)
	bad("negative width", err, "at least 1")
	if n != 0 {
		t.Errorf("%d measurements of bad input", n)
	}

	c, _ := NewLatencyConstraint(ctx, m, LatencyTrain, 5)
	_, err = c.Cost(s, space.Arch{0, 2})
	bad("choice out of range", err, "choice 2 outside 0..1")
	other := smallSpace(t, 2, []int{4, 16})
	_, err = c.Cost(other, space.Arch{0, 0})
	bad("another space", err, "another search space")
	est, err := NewEstimatedLatency(ctx, m, LatencyInference, 5)
	if err != nil {
		t.Fatal(err)
	}
	_, err = est.Cost(s, space.Arch{0})
	bad("estimate of a short arch", err, "has 1 layers")

	_, err = NewLatencyConstraint(ctx, m, LatencyTrain, 0)
	bad("zero limit", err, "positive number")
	_, err = NewEstimatedLatency(ctx, m, LatencyTrain, math.NaN())
	bad("NaN limit", err, "positive number")
	_, err = NewMeter(MeterConfig{Space: s, Task: nn.MulticlassTask(4), Prefix: "x"})
	bad("task of another output width", err, "output width 3")
	_, err = NewMeter(MeterConfig{Space: s, Task: nn.MulticlassTask(3), Prefix: "run 1"})
	bad("prefix with a space", err, "prefix")
	_, err = NewMeter(MeterConfig{Space: s, Task: nn.MulticlassTask(3), Prefix: ""})
	bad("empty prefix", err, "prefix")
	_, err = NewMeter(MeterConfig{Space: s, Task: nn.MulticlassTask(3), Prefix: "x", Runs: -1})
	bad("negative runs", err, "negative")
	_, err = NewMeter(MeterConfig{Task: nn.MulticlassTask(3), Prefix: "x"})
	bad("no space", err, "search space")

	if err := cache.Put("err.infer.b16.4-4", math.NaN()); err != nil {
		t.Fatal(err)
	}
	_, err = m.Inference(ctx, []int{4, 4})
	bad("corrupt cache entry", err, "not a time")

	boom := errors.New("bucket gone")
	mg := testMeter(t, s, "err", failingCache{get: boom}, nil)
	_, err = mg.Inference(ctx, []int{4, 4})
	if !errors.Is(err, boom) {
		t.Errorf("cache get failure: err = %v", err)
	}
	mp := testMeter(t, s, "err", failingCache{put: boom}, nil)
	_, err = mp.Inference(ctx, []int{4, 4})
	if !errors.Is(err, boom) {
		t.Errorf("cache put failure: err = %v", err)
	}
}

func TestLatencyAbort(t *testing.T) {
	s := smallSpace(t, 2, []int{4, 8})
	cache := NewMemCache()
	n := 0
	m := testMeter(t, s, "abort", cache, &n)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.TrainStep(ctx, []int{8, 8}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled measurement: err = %v", err)
	}
	if _, err := NewEstimatedLatency(ctx, m, LatencyInference, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled estimate: err = %v", err)
	}
	if n != 0 || len(cache.Keys()) != 0 {
		t.Fatalf("an aborted measurement was recorded: %d measurements, keys %q", n, cache.Keys())
	}
}

func TestLatencySpearman(t *testing.T) {
	cases := []struct {
		x, y []float64
		want float64
	}{
		{[]float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}, 1},
		{[]float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, -1},
		{[]float64{1, 2, 3, 4, 5}, []float64{2, 1, 4, 3, 5}, 0.8},
		// Ties take mean ranks: x ranks 1.5 1.5 3, y ranks 1 2 3.
		{[]float64{1, 1, 2}, []float64{1, 2, 3}, math.Sqrt(3) / 2},
	}
	for _, c := range cases {
		if got := Spearman(c.x, c.y); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Spearman(%v, %v) = %g, want %g", c.x, c.y, got, c.want)
		}
	}
	if !math.IsNaN(Spearman([]float64{1}, []float64{2})) || !math.IsNaN(Spearman([]float64{1, 1}, []float64{1, 2})) {
		t.Error("Spearman of one point or a constant series is not NaN")
	}
}

func TestLatencyEstimateErrorReport(t *testing.T) {
	ctx := context.Background()
	s := smallSpace(t, 2, []int{4, 8, 16})
	m := testMeter(t, s, "rep", nil, nil)
	var sample []space.Arch
	for r := int64(0); r < s.Size(); r++ {
		sample = append(sample, s.Index(r))
	}
	rep, err := EstimateError(ctx, m, s, sample)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []EstimateStats{rep.Inference, rep.Train} {
		if len(st.Rows) != len(sample) || st.RowsPerPass != 16 {
			t.Fatalf("%s: %d rows, batch %d", st.Kind, len(st.Rows), st.RowsPerPass)
		}
		if !(st.MeanRelErr >= 0 && st.MaxRelErr >= st.MeanRelErr) || st.Spearman < -1 || st.Spearman > 1 {
			t.Errorf("%s: mean %g max %g spearman %g", st.Kind, st.MeanRelErr, st.MaxRelErr, st.Spearman)
		}
		// The space has 9 children, fewer than a calibration takes: all of them are used.
		if st.Calibration.Children != 9 || !(st.UnscaledMeanRelErr >= 0) {
			t.Errorf("%s: calibration %+v, unscaled error %g", st.Kind, st.Calibration, st.UnscaledMeanRelErr)
		}
		for _, r := range st.Rows {
			if got := st.Calibration.Apply(r.LayersMs); math.Abs(got-r.EstimateMs) > 1e-12*got {
				t.Errorf("%s %s: estimate %g, calibrated layers %g", st.Kind, r.Arch, r.EstimateMs, got)
			}
		}
	}
	if !strings.Contains(rep.String(), "spearman") {
		t.Errorf("summary %q", rep.String())
	}
	if _, err := EstimateError(ctx, m, s, nil); err == nil {
		t.Error("empty sample accepted")
	}
}
