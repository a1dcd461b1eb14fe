package halving

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"
)

func cands(n int) [][]int {
	c := make([][]int, n)
	for i := range c {
		c[i] = []int{8 * (i + 1), 8}
	}
	return c
}

// fake is a train function with a fake clock: a batch of n candidates at e epochs costs
// ⌈n/workers⌉·e·perEpoch(call) seconds, and the loss comes from loss(i, e).
type fake struct {
	now      time.Time
	workers  int
	perEpoch func(call int) float64
	loss     func(i, e int) float64
	calls    []call
}

type call struct {
	rung   int
	idx    []int
	epochs int
}

func (f *fake) clock() time.Time { return f.now }

func (f *fake) train(_ context.Context, rung int, idx []int, epochs int) ([]float64, error) {
	c := len(f.calls)
	f.calls = append(f.calls, call{rung, idx, epochs})
	w := max(f.workers, 1)
	f.now = f.now.Add(time.Duration(float64((len(idx)+w-1)/w*epochs) * f.perEpoch(c) * float64(time.Second)))
	out := make([]float64, len(idx))
	for k, i := range idx {
		out[k] = f.loss(i, epochs)
	}
	return out, nil
}

// loss5 ranks by 5i mod 27 for short trainings and by −i from 9 epochs on.
func loss5(i, e int) float64 {
	if e >= 9 {
		return -float64(i)
	}
	return float64(i * 5 % 27)
}

func one(int) float64 { return 1 }

func TestLevelsAndPlan(t *testing.T) {
	for _, c := range []struct {
		eta, lo, hi int
		want        []int
	}{
		{3, 1, 27, []int{1, 3, 9, 27}},
		{3, 1, 60, []int{1, 3, 7, 20, 60}},
		{3, 2, 60, []int{3, 7, 20, 60}},
		{2, 4, 30, []int{4, 8, 15, 30}},
		{3, 5, 5, []int{5}},
	} {
		if got := Levels(c.eta, c.lo, c.hi); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Levels(%d, %d, %d) = %v, want %v", c.eta, c.lo, c.hi, got, c.want)
		}
	}
	lv := []int{1, 3, 9, 27}
	for _, c := range []struct {
		n             int
		sizes, epochs []int
	}{
		{27, []int{27, 9, 3, 1}, []int{1, 3, 9, 27}},
		{81, []int{81, 27, 9, 3}, []int{1, 3, 9, 27}},
		{10, []int{10, 3, 1}, []int{3, 9, 27}},
		{3, []int{3, 1}, []int{9, 27}},
		{2, []int{2}, []int{27}},
		{1, []int{1}, []int{27}},
	} {
		s, e := Plan(c.n, 3, lv)
		if !reflect.DeepEqual(s, c.sizes) || !reflect.DeepEqual(e, c.epochs) {
			t.Errorf("Plan(%d) = %v %v, want %v %v", c.n, s, e, c.sizes, c.epochs)
		}
	}
}

func TestNoDeadlineExactPromotions(t *testing.T) {
	f := &fake{perEpoch: one, loss: loss5}
	res, err := Run(context.Background(), Config{Candidates: cands(27), MaxEpochs: 27, Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{0, 11, 22, 6, 17, 1, 12, 23, 7}, {0, 11, 22}, {22}, nil}
	if len(res.Rungs) != 4 {
		t.Fatalf("%d rungs, want 4: %+v", len(res.Rungs), res.Rungs)
	}
	for r, w := range want {
		g := res.Rungs[r]
		if !reflect.DeepEqual(g.Promoted, w) || g.Epochs != []int{1, 3, 9, 27}[r] || g.Final != (r == 3) || g.Probe {
			t.Errorf("rung %d: epochs %d final %v promoted %v, want %v", r, g.Epochs, g.Final, g.Promoted, w)
		}
		if r > 0 && !reflect.DeepEqual(g.Candidates, want[r-1]) {
			t.Errorf("rung %d trained %v, want %v", r, g.Candidates, want[r-1])
		}
		if g.Rung != r || f.calls[r].rung != r || f.calls[r].epochs != g.Epochs {
			t.Errorf("rung %d numbered %d, called as %+v", r, g.Rung, f.calls[r])
		}
	}
	if len(res.Rungs[0].Candidates) != 27 || !reflect.DeepEqual(res.Rungs[0].Archs[3], []int{32, 8}) {
		t.Errorf("rung 0: %v / %v", res.Rungs[0].Candidates, res.Rungs[0].Archs)
	}
	if res.Best != 22 || res.BestRung != 3 || res.BestLoss != -22 || !res.Complete || res.Stopped != "" || res.Brackets != 1 {
		t.Errorf("answer %d at rung %d loss %g complete %v %q", res.Best, res.BestRung, res.BestLoss, res.Complete, res.Stopped)
	}
	if !reflect.DeepEqual(res.PlannedSizes, []int{27, 9, 3, 1}) || !reflect.DeepEqual(res.PlannedEpochs, []int{1, 3, 9, 27}) {
		t.Errorf("plan %v %v", res.PlannedSizes, res.PlannedEpochs)
	}
	// Same losses, same ladder.
	g := &fake{perEpoch: func(int) float64 { return 3 }, loss: loss5}
	again, err := Run(context.Background(), Config{Candidates: cands(27), MaxEpochs: 27, Now: g.clock}, g.train)
	if err != nil {
		t.Fatal(err)
	}
	again.SecondsPerEpoch, res.SecondsPerEpoch = 0, 0
	for i := range again.Rungs {
		again.Rungs[i].Seconds, res.Rungs[i].Seconds = 0, 0
	}
	if !reflect.DeepEqual(again, res) {
		t.Errorf("not deterministic:\n%+v\n%+v", again, res)
	}
}

func TestTiesAndNaN(t *testing.T) {
	f := &fake{perEpoch: one, loss: func(i, e int) float64 {
		switch {
		case e == 9:
			return []float64{math.NaN(), 0.5, 0.5, 0.1, math.NaN(), 0.5}[i]
		}
		return float64(i)
	}}
	res, err := Run(context.Background(), Config{Candidates: cands(6), MaxEpochs: 27, Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	// 6 candidates: rungs of 6 (9 epochs) and 2 (27 epochs).
	if p := res.Rungs[0].Promoted; !reflect.DeepEqual(p, []int{3, 1}) {
		t.Errorf("promoted %v, want [3 1] (lowest loss, ties to the earlier, NaN last)", p)
	}
	if res.Best != 1 || res.BestLoss != 1 {
		t.Errorf("answer %d loss %g, want 1 at loss 1", res.Best, res.BestLoss)
	}
}

func TestDeadlinePicksStart(t *testing.T) {
	// 1 s per candidate-epoch, 100 s. The probes (candidate 0 at 1 epoch, candidate 1 at 3)
	// end at 4 s and fit 0 s per training + 1 s per epoch. 27 candidates would need
	// 26 + 27 + 27 + 27 = 107 s; the largest start that fits the 96 s left is 12 on levels
	// 3, 9, 27: 11·3 (candidate 1 is already trained) + 4·9 + 27 = 96 s.
	start := time.Unix(1000, 0)
	f := &fake{now: start, perEpoch: one, loss: loss5}
	res, err := Run(context.Background(), Config{Candidates: cands(27), MaxEpochs: 27, Deadline: start.Add(100 * time.Second), Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.PlannedSizes, []int{12, 4, 1}) || !reflect.DeepEqual(res.PlannedEpochs, []int{3, 9, 27}) {
		t.Fatalf("plan %v %v, want [12 4 1] [3 9 27]", res.PlannedSizes, res.PlannedEpochs)
	}
	if len(res.Rungs) != 4 || !res.Rungs[0].Probe || res.Rungs[0].Epochs != 1 || !reflect.DeepEqual(res.Rungs[0].Candidates, []int{0}) {
		t.Fatalf("rungs %+v", res.Rungs)
	}
	r1 := res.Rungs[1] // the second probe, then the rest of the first rung
	if r1.Probe || r1.Epochs != 3 || !reflect.DeepEqual(r1.Candidates, []int{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("first rung %+v", r1)
	}
	// 3 epochs: loss 5i mod 27 over 0..11 → 0 (0), 11 (1), 6 (3), 1 (5).
	if !reflect.DeepEqual(r1.Promoted, []int{0, 11, 6, 1}) {
		t.Errorf("rung 1 promoted %v", r1.Promoted)
	}
	if p := res.Rungs[2].Promoted; !reflect.DeepEqual(p, []int{11}) {
		t.Errorf("rung 2 promoted %v", p)
	}
	if !res.Complete || res.Best != 11 || res.BestRung != 3 || !res.Rungs[3].Final {
		t.Errorf("answer %d at %d, complete %v", res.Best, res.BestRung, res.Complete)
	}
	if end := f.now.Sub(start); end != 100*time.Second {
		t.Errorf("ended after %v, want exactly the 100 s budget", end)
	}
	if res.Brackets != 1 || res.SecondsPerTraining != 0 || res.SecondsPerEpoch != 1 {
		t.Errorf("fitted %g + %g·epochs, want 0 + 1·epochs", res.SecondsPerTraining, res.SecondsPerEpoch)
	}
}

func TestDeadlineProbeIsRungZero(t *testing.T) {
	// 2 workers, 0.5 s per candidate-epoch slot, 30 s. Probes: 0 and 1 at 1 epoch (0.5 s),
	// 2 and 3 at 3 epochs (1.5 s); 28 s left. 27 candidates: 13·1 + 5·3 + 2·9 + 27 = 73
	// slot-epochs (36.5 s); 9: 4·3 + 2·9 + 27 = 57 (28.5 s); 8 and 7: 4·9 + 27 = 63;
	// 6: 3·9 + 27 = 54 (27 s) fits.
	start := time.Unix(0, 0)
	f := &fake{now: start, workers: 2, perEpoch: func(int) float64 { return 0.5 }, loss: loss5}
	res, err := Run(context.Background(), Config{Candidates: cands(27), MaxEpochs: 27, Workers: 2,
		Deadline: start.Add(30 * time.Second), Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.PlannedSizes, []int{6, 2}) || !res.Rungs[0].Probe || !res.Rungs[1].Probe || len(res.Rungs) != 4 {
		t.Fatalf("plan %v, rungs %+v", res.PlannedSizes, res.Rungs)
	}
	if p := res.Rungs[2].Promoted; !reflect.DeepEqual(p, []int{5, 4}) || res.Best != 5 || res.BestRung != 3 || !res.Complete {
		t.Fatalf("promoted %v, answer %d", p, res.Best)
	}
	if end := f.now.Sub(start); end != 29*time.Second {
		t.Errorf("ended at %v, want 29 s", end)
	}
	// With 40 s the whole 27 fit (36.5 s of the 38 s left), and the first probe's two
	// candidates are the first rung's first two.
	f = &fake{now: start, workers: 2, perEpoch: func(int) float64 { return 0.5 }, loss: loss5}
	res, err = Run(context.Background(), Config{Candidates: cands(27), MaxEpochs: 27, Workers: 2,
		Deadline: start.Add(40 * time.Second), Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	r0 := res.Rungs[0]
	// The rest of rung 0 trains in chunks of about a quarter of the rung in whole rounds of
	// the two workers: ⌈27/4⌉ = 7 → 8.
	if r0.Probe || len(r0.Candidates) != 27 || f.calls[2].rung != 0 || !reflect.DeepEqual(f.calls[2].idx, seq(2, 10)) || !reflect.DeepEqual(f.calls[5].idx, []int{26}) {
		t.Fatalf("rung 0 %+v, calls %+v", r0, f.calls)
	}
	if !reflect.DeepEqual(r0.Promoted, []int{0, 11, 22, 6, 17, 1, 12, 23, 7}) || res.Best != 22 || !res.Complete || !res.Rungs[1].Probe {
		t.Errorf("promoted %v, answer %d, complete %v", r0.Promoted, res.Best, res.Complete)
	}
}

func TestDeadlineCutOff(t *testing.T) {
	// The probes measure 1 s per epoch (they end at 4 s), but later trainings take 2 s per
	// epoch. The plan that fits the 56 s left is 3 candidates at 9 epochs then 1 at 27. The
	// rung trains one candidate at a time: after the first (18 s, at 22 s) the re-fitted
	// cost leaves no room for another, nor for the final 27 epochs. The run stops; the
	// answer is the one candidate trained for 9 epochs.
	start := time.Unix(0, 0)
	f := &fake{now: start, perEpoch: func(c int) float64 { return []float64{1, 1, 2}[min(c, 2)] }, loss: loss5}
	res, err := Run(context.Background(), Config{Candidates: cands(27), MaxEpochs: 27, Deadline: start.Add(60 * time.Second), Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.PlannedSizes, []int{3, 1}) || len(res.Rungs) != 3 || len(f.calls) != 3 || !reflect.DeepEqual(res.Rungs[2].Candidates, []int{0}) {
		t.Fatalf("plan %v, rungs %+v", res.PlannedSizes, res.Rungs)
	}
	if res.Complete || res.Stopped == "" || res.Best != 0 || res.BestRung != 2 || res.Rungs[2].Late {
		t.Errorf("complete %v (%q), answer %d at rung %d; want incomplete, 0 at rung 2", res.Complete, res.Stopped, res.Best, res.BestRung)
	}
	if f.now.Sub(start) != 22*time.Second {
		t.Errorf("ran until %v", f.now.Sub(start))
	}
}

func TestDeadlineShrinksRung(t *testing.T) {
	// The plan of TestDeadlinePicksStart (12 → 4 → 1 on levels 3, 9, 27, by 100 s), but
	// the first rung's trainings after the probes cost 1.25 s per epoch.
	start := time.Unix(0, 0)
	f := &fake{now: start, perEpoch: func(c int) float64 {
		if c >= 2 && c <= 5 {
			return 1.25
		}
		return 1
	}, loss: loss5}
	res, err := Run(context.Background(), Config{Candidates: cands(27), MaxEpochs: 27, Deadline: start.Add(100 * time.Second), Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	var trace []string
	for _, r := range res.Rungs {
		trace = append(trace, fmt.Sprintf("%d:%d×%d%s", r.Bracket, len(r.Candidates), r.Epochs, map[bool]string{true: "F", false: ""}[r.Final]))
	}
	// The first rung trains in chunks of 3; after two the re-fitted cost leaves room for 9
	// candidates in all, so the rung stops at 9 and promotes 3 (5i mod 27: 0, 6, 1); the
	// 9-epoch rung stops after 2 of them, and the better (6) takes the last rung.
	if want := []string{"0:1×1", "0:9×3", "0:2×9", "0:1×27F"}; !reflect.DeepEqual(trace, want) {
		t.Errorf("rungs %v, want %v", trace, want)
	}
	if p := res.Rungs[1].Promoted; !reflect.DeepEqual(p, []int{0, 6, 1}) || !reflect.DeepEqual(res.Rungs[2].Candidates, []int{0, 6}) {
		t.Errorf("promoted %v, then trained %v", p, res.Rungs[2].Candidates)
	}
	if len(f.calls) != 8 || !reflect.DeepEqual(f.calls[2].idx, []int{0, 2, 3}) || !reflect.DeepEqual(f.calls[4].idx, []int{7, 8}) {
		t.Errorf("calls %v", f.calls)
	}
	if !res.Complete || res.Best != 6 || f.now.Sub(start) != 81250*time.Millisecond {
		t.Errorf("complete %v, answer %d, ended %v", res.Complete, res.Best, f.now.Sub(start))
	}
	if f.now.Sub(start) > 100*time.Second || slices.ContainsFunc(res.Rungs, func(r Rung) bool { return r.Late }) {
		t.Fatalf("overran: %v", f.now.Sub(start))
	}
}

func TestNothingFitsAfterProbe(t *testing.T) {
	// The probes end at 4 s; the smallest ladder (one candidate, 27 epochs) needs 27 s of
	// the 6 s left. The answer is the longer probe's.
	start := time.Unix(0, 0)
	f := &fake{now: start, perEpoch: one, loss: loss5}
	res, err := Run(context.Background(), Config{Candidates: cands(5), MaxEpochs: 27, Deadline: start.Add(10 * time.Second), Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rungs) != 2 || !res.Rungs[0].Probe || !res.Rungs[1].Probe || res.Complete || res.Best != 1 || res.BestRung != 1 {
		t.Errorf("%+v", res)
	}
}

func TestErrors(t *testing.T) {
	f := &fake{perEpoch: one, loss: loss5}
	for _, c := range []Config{{MaxEpochs: 3}, {Candidates: cands(2)}, {Candidates: cands(2), MaxEpochs: 3, Eta: 1}, {Candidates: cands(2), MaxEpochs: 3, MinEpochs: 4}} {
		if _, err := Run(context.Background(), c, f.train); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	boom := errors.New("boom")
	_, err := Run(context.Background(), Config{Candidates: cands(3), MaxEpochs: 3}, func(context.Context, int, []int, int) ([]float64, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Errorf("error %v", err)
	}
	_, err = Run(context.Background(), Config{Candidates: cands(3), MaxEpochs: 3}, func(context.Context, int, []int, int) ([]float64, error) { return []float64{1}, nil })
	if err == nil {
		t.Error("short losses accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{Candidates: cands(3), MaxEpochs: 3}, f.train); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestLateRungDoesNotCount(t *testing.T) {
	// The plan of TestDeadlineCutOff (3 candidates at 9 epochs, then 1 at 27, by 60 s) at
	// 1 s per epoch (the 9-epoch rung one candidate at a time) until the final rung, which
	// takes 3 s per epoch and ends at 112 s: it
	// is late, and the answer is the best of the rung before.
	start := time.Unix(0, 0)
	f := &fake{now: start, perEpoch: func(c int) float64 { return []float64{1, 1, 1, 1, 1, 3}[c] }, loss: loss5}
	res, err := Run(context.Background(), Config{Candidates: cands(27), MaxEpochs: 27, Deadline: start.Add(60 * time.Second), Now: f.clock}, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rungs) != 4 || !res.Rungs[3].Late || res.Rungs[2].Late || !res.Rungs[3].Final {
		t.Fatalf("rungs %+v", res.Rungs)
	}
	if res.Complete || res.Best != 2 || res.BestRung != 2 {
		t.Errorf("complete %v (%q), answer %d at rung %d", res.Complete, res.Stopped, res.Best, res.BestRung)
	}
}

func TestFitCost(t *testing.T) {
	// Exact a + b·e data is recovered.
	obs := []observation{{1, 1, 0.5 + 0.25}, {2, 3, 2 * (0.5 + 0.75)}, {1, 9, 0.5 + 2.25}}
	if a, b := fitCost(obs); math.Abs(a-0.5) > 1e-12 || math.Abs(b-0.25) > 1e-12 {
		t.Errorf("fit %g + %g·e, want 0.5 + 0.25·e", a, b)
	}
	// One epoch count: all per epoch.
	if a, b := fitCost([]observation{{2, 3, 6}, {1, 3, 4}}); a != 0 || b != 10.0/9 {
		t.Errorf("fit %g + %g·e, want 0 + 10/9·e", a, b)
	}
	if a, b := fitCost(nil); a != 0 || b != 0 {
		t.Errorf("empty fit %g %g", a, b)
	}
}
