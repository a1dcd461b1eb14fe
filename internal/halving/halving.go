// Package halving runs successive halving over a fixed list of candidates: every rung
// trains its candidates from scratch for η times the epochs of the rung before and
// promotes the best 1/η by validation loss; the last rung trains with the full recipe.
// Under a wall-clock deadline it decides how many candidates to start with from the
// measured cost of training, never starts a rung the deadline cannot finish, keeps the best
// finished result, and spends time left after a ladder on further ladders (brackets) of
// fresh candidates. It does no I/O: training is the caller's function.
package halving

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// TrainFunc trains candidates idx (indices into Config.Candidates) from scratch for epochs
// epochs at rung rung and returns their validation losses in the order of idx. The last
// rung is called with Config.MaxEpochs and is the full recipe (early stopping included).
// The function may spread the batch over workers.
type TrainFunc func(ctx context.Context, rung int, idx []int, epochs int) ([]float64, error)

// Config is one successive-halving run.
type Config struct {
	Candidates [][]int // architectures as hidden-layer widths, in the order to consider them
	Eta        int     // promotion ratio η ≥ 2 (default 3)
	MinEpochs  int     // epochs of the lowest possible rung (default 1)
	MaxEpochs  int     // epochs of the last rung, the full recipe (required)
	// Deadline, when set, is the wall-clock time by which the run must end.
	Deadline time.Time
	// Workers is how many candidates of a batch train at once (default 1); it shapes the
	// cost model: a batch of n costs ⌈n/Workers⌉ candidate-trainings.
	Workers int
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
}

// Rung is one rung of the ladder.
type Rung struct {
	Rung       int       `json:"rung"`
	Bracket    int       `json:"bracket"` // 0, then one more ladder after another while time is left
	Epochs     int       `json:"epochs"`
	Final      bool      `json:"final,omitempty"`    // trained with the full recipe
	Probe      bool      `json:"probe,omitempty"`    // a measuring batch outside the ladder
	Candidates []int     `json:"candidates"`         // indices trained, in training order
	Losses     []float64 `json:"losses"`             // validation loss of each, same order
	Promoted   []int     `json:"promoted,omitempty"` // indices promoted to the next rung, best first
	Seconds    float64   `json:"seconds"`            // wall-clock of the rung
	// Late marks a rung that ended after the deadline: it does not count for the answer
	// (unless nothing else finished).
	Late  bool    `json:"late,omitempty"`
	Archs [][]int `json:"archs,omitempty"` // the candidates' widths, same order
}

// Result is the ladder and its answer.
type Result struct {
	Rungs []Rung `json:"rungs"`
	// Planned are the rung sizes and epochs of the plan the run started with.
	PlannedSizes  []int `json:"planned_sizes"`
	PlannedEpochs []int `json:"planned_epochs"`
	// Best is the candidate with the lowest validation loss over the final rungs that
	// finished by the deadline, or without one in the highest rung that did (a probe only
	// when nothing else did; -1: none); BestRung is that rung's position in Rungs.
	Best     int     `json:"best"`
	BestRung int     `json:"best_rung"`
	BestLoss float64 `json:"best_loss"`
	// Complete is true when the first bracket's last rung, with the full recipe, finished
	// in time.
	Complete bool `json:"complete"`
	// Stopped says why the first bracket ended before its last rung ("" when complete).
	Stopped string `json:"stopped,omitempty"`
	// Brackets is the number of ladders run: after the first, another on fresh candidates
	// while the deadline leaves time for one.
	Brackets int `json:"brackets"`
	// The fitted cost of one training (per worker slot): a fixed part and a part per epoch.
	SecondsPerTraining float64 `json:"seconds_per_training"`
	SecondsPerEpoch    float64 `json:"seconds_per_epoch"`
}

func (c Config) withDefaults() (Config, error) {
	if c.Eta == 0 {
		c.Eta = 3
	}
	if c.MinEpochs == 0 {
		c.MinEpochs = 1
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case len(c.Candidates) == 0:
		return c, errors.New("halving: no candidates")
	case c.Eta < 2:
		return c, fmt.Errorf("halving: η = %d, want at least 2", c.Eta)
	case c.MinEpochs < 1 || c.MaxEpochs < c.MinEpochs:
		return c, fmt.Errorf("halving: epochs from %d to %d, want 1 ≤ min ≤ max", c.MinEpochs, c.MaxEpochs)
	case c.Workers < 1:
		return c, fmt.Errorf("halving: %d workers", c.Workers)
	}
	return c, nil
}

// Levels are the epochs of the rungs of the tallest ladder, lowest first: the last is
// MaxEpochs and each one below is ⌈MaxEpochs/η^j⌉, as long as that is at least MinEpochs
// and below the level above.
func Levels(eta, minEpochs, maxEpochs int) []int {
	lv := []int{maxEpochs}
	for d := eta; ; d *= eta {
		e := (maxEpochs + d - 1) / d
		if e < minEpochs || e >= lv[0] {
			break
		}
		lv = slices.Insert(lv, 0, e)
		if d > math.MaxInt/eta {
			break
		}
	}
	return lv
}

// Plan is the ladder for n starting candidates: sizes ⌊n/η^r⌋ over the top levels, as many
// rungs as keep at least one candidate in the last (at most len(levels)).
func Plan(n, eta int, levels []int) (sizes, epochs []int) {
	rungs := 1
	for k := n; k >= eta && rungs < len(levels); k /= eta {
		rungs++
	}
	epochs = levels[len(levels)-rungs:]
	for r, k := 0, n; r < rungs; r, k = r+1, k/eta {
		sizes = append(sizes, k)
	}
	return sizes, epochs
}

// observation is one trained batch: worker slots (⌈n/Workers⌉), epochs, seconds.
type observation struct{ slots, epochs, seconds float64 }

// fitCost fits seconds per slot = a + b·epochs to the observations by least squares
// weighted by slots. With a single epoch count, or a fit that is not increasing, all the
// cost is per epoch (a = 0); a fixed part is never negative.
func fitCost(obs []observation) (a, b float64) {
	var w, sx, sy, sxx, sxy, sec, units float64
	for _, o := range obs {
		y := o.seconds / o.slots
		w += o.slots
		sx += o.slots * o.epochs
		sy += o.slots * y
		sxx += o.slots * o.epochs * o.epochs
		sxy += o.slots * o.epochs * y
		sec += o.seconds
		units += o.slots * o.epochs
	}
	if units == 0 {
		return 0, 0
	}
	mx, my := sx/w, sy/w
	if v := sxx/w - mx*mx; v > 1e-12*mx*mx {
		b = (sxy/w - mx*my) / v
		a = my - b*mx
		if b > 0 && a >= 0 {
			return a, b
		}
		if b > 0 { // negative fixed part: all per epoch, through the origin
			return 0, sxy / sxx
		}
	}
	return 0, sec / units
}

// tail is what the ladder from rung r of the plan (sizes, epochs) becomes when rung r
// trains k candidates: each rung above keeps at most ⌊k/η^j⌋ (at least one) of the plan's
// size, and once one candidate is left the next rung is the last.
func tail(sizes, epochs []int, r, k, eta int) (sz, ep []int) {
	last := len(sizes) - 1
	for {
		if k == 1 && r < last {
			r = last
		}
		sz, ep = append(sz, k), append(ep, epochs[r])
		if r == last {
			return sz, ep
		}
		r++
		k = max(1, min(sizes[r], k/eta))
	}
}

// Run runs successive halving. Without a deadline it starts with every candidate. With one
// it first trains probe batches (Workers candidates at the lowest level, and the next
// Workers at the level above) to measure the cost of a training as a fixed part plus a part
// per epoch, then starts with the most candidates whose whole ladder fits in the time left
// (a probe batch at the level of the ladder's first rung becomes part of that rung). Every
// rung trains in chunks of about a quarter; before every chunk and rung it re-fits the cost
// and trains only as many candidates as the rest of the ladder can finish, going straight to the last rung once one candidate is left, and
// stops when not even that fits. The answer is the best of the highest rung that finished
// in time. The outcome depends only on train's losses and, under a deadline, on the clock.
func Run(ctx context.Context, cfg Config, train TrainFunc) (*Result, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	levels := Levels(c.Eta, c.MinEpochs, c.MaxEpochs)
	res := &Result{Best: -1, BestRung: -1, BestLoss: math.NaN()}
	var obs []observation
	bracket := 0 // the ladder being run: 0, then more while time is left
	fits := func(sz, ep []int) bool {
		if c.Deadline.IsZero() {
			return true
		}
		a, b := fitCost(obs)
		need := 0.0
		for r := range sz {
			need += float64((sz[r]+c.Workers-1)/c.Workers) * (a + b*float64(ep[r]))
		}
		return need <= c.Deadline.Sub(c.Now()).Seconds()
	}
	// train a batch at rung position pos (appending to it when it exists).
	batch := func(pos int, idx []int, epochs int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := c.Now()
		losses, err := train(ctx, pos, slices.Clone(idx), epochs)
		if err != nil {
			return err
		}
		if len(losses) != len(idx) {
			return fmt.Errorf("halving: %d losses for %d candidates", len(losses), len(idx))
		}
		sec := c.Now().Sub(t0).Seconds()
		obs = append(obs, observation{slots: float64((len(idx) + c.Workers - 1) / c.Workers), epochs: float64(epochs), seconds: sec})
		if pos == len(res.Rungs) {
			res.Rungs = append(res.Rungs, Rung{Rung: pos, Bracket: bracket, Epochs: epochs, Candidates: []int{}, Losses: []float64{}})
		}
		r := &res.Rungs[pos]
		r.Candidates = append(r.Candidates, idx...)
		r.Losses = append(r.Losses, losses...)
		for _, i := range idx {
			r.Archs = append(r.Archs, slices.Clone(c.Candidates[i]))
		}
		r.Seconds += sec
		r.Late = r.Late || (!c.Deadline.IsZero() && c.Now().After(c.Deadline))
		return nil
	}
	// chunked trains want, more candidates of rung pos (which already has have) at rung r
	// of the plan (sizes, epochs). Under a deadline it trains in chunks, re-fits the cost
	// after each and trains only as many more as the rest of the ladder can still finish.
	// It returns how many of want it trained.
	chunked := func(pos, have int, want, sizes, epochs []int, r int) (int, error) {
		if c.Deadline.IsZero() {
			return len(want), batch(pos, want, epochs[r])
		}
		// About a quarter of the rung, in whole rounds of the workers.
		chunk := c.Workers * max(1, ((have+len(want)+3)/4+c.Workers-1)/c.Workers)
		done := 0
		for done < len(want) {
			if done > 0 {
				k := have + len(want)
				for ; k > have+done; k-- {
					sz, ep := tail(sizes, epochs, r, k, c.Eta)
					sz[0] = k - have - done
					if fits(sz, ep) {
						break
					}
				}
				want = want[:k-have]
				if done == len(want) {
					break
				}
			}
			ch := min(chunk, len(want)-done)
			if err := batch(pos, want[done:done+ch], epochs[r]); err != nil {
				return 0, err
			}
			done += ch
		}
		return done, nil
	}
	finish := func(stopped string) (*Result, error) {
		res.Stopped = stopped
		res.Complete = stopped == ""
		res.Brackets = bracket + 1
		res.SecondsPerTraining, res.SecondsPerEpoch = fitCost(obs)
		// The answer: the best of every final rung that finished in time; without one, the
		// best of the highest rung that finished in time (a probe only when nothing else did).
		var cands []int
		var losses []float64
		var where []int
		for i, r := range res.Rungs {
			if r.Final && !r.Late && !r.Probe {
				cands, losses = append(cands, r.Candidates...), append(losses, r.Losses...)
				for range r.Candidates {
					where = append(where, i)
				}
			}
		}
		if len(cands) == 0 {
			counted := func(r Rung) bool { return !r.Probe && !r.Late }
			if !slices.ContainsFunc(res.Rungs, counted) {
				counted = func(r Rung) bool { return !r.Late }
				if !slices.ContainsFunc(res.Rungs, counted) {
					counted = func(Rung) bool { return true }
				}
			}
			for i := len(res.Rungs) - 1; i >= 0; i-- {
				if r := res.Rungs[i]; counted(r) {
					cands, losses = r.Candidates, r.Losses
					where = slices.Repeat([]int{i}, len(cands))
					break
				}
			}
		}
		if len(cands) > 0 {
			o := order(cands, losses)
			res.Best, res.BestRung, res.BestLoss = cands[o[0]], where[o[0]], losses[o[0]]
		}
		if res.Complete && !slices.ContainsFunc(res.Rungs, func(r Rung) bool { return r.Bracket == 0 && r.Final && !r.Late }) {
			res.Complete, res.Stopped = false, "the last rung ended after the deadline"
		}
		return res, nil
	}

	n := len(c.Candidates)
	sizes, epochs := Plan(n, c.Eta, levels)
	var idx []int // candidates of the next rung
	r := 0        // the next rung's position in the plan
	firstDone := false
	if c.Deadline.IsZero() {
		idx = seq(0, n)
	} else {
		// Probes: the first p candidates at the lowest level, the next p (or the same ones
		// when there are no others) at the level above.
		p := min(c.Workers, n)
		if err := batch(0, seq(0, p), levels[0]); err != nil {
			return nil, err
		}
		if len(levels) > 1 {
			b := seq(p, min(2*p, n))
			if len(b) == 0 {
				b = seq(0, p)
			}
			if err := batch(1, b, levels[1]); err != nil {
				return nil, err
			}
		}
		for i := range res.Rungs {
			res.Rungs[i].Probe = true
		}
		// The largest start whose ladder fits; a probe at the first rung's level is part
		// of that rung, so it is not paid for again.
		probeAt := func(level int) *Rung {
			for i := range res.Rungs {
				if res.Rungs[i].Epochs == level {
					return &res.Rungs[i]
				}
			}
			return nil
		}
		k := n
		for ; k >= 1; k-- {
			sizes, epochs = Plan(k, c.Eta, levels)
			sz := slices.Clone(sizes)
			if q := probeAt(epochs[0]); q != nil {
				sz[0] = max(0, sz[0]-len(q.Candidates))
			}
			if fits(sz, epochs) {
				break
			}
		}
		if k == 0 {
			res.PlannedSizes, res.PlannedEpochs = []int{}, []int{}
			return finish("the deadline leaves no time for a ladder after the probes")
		}
		res.PlannedSizes, res.PlannedEpochs = sizes, epochs
		idx = seq(0, k)
		if q := probeAt(epochs[0]); q != nil {
			// The first rung is the probe's batch and the first candidates not in it.
			q.Probe = false
			var more []int
			for i := 0; i < n && len(q.Candidates)+len(more) < k; i++ {
				if !slices.Contains(q.Candidates, i) {
					more = append(more, i)
				}
			}
			if len(more) > 0 {
				if _, err := chunked(q.Rung, len(q.Candidates), more, sizes, epochs, 0); err != nil {
					return nil, err
				}
			}
			if len(sizes) == 1 {
				q.Final, firstDone = true, true
			} else {
				idx, r = promote(q, next(tail(sizes, epochs, 0, len(q.Candidates), c.Eta))), 1
			}
		}
	}
	res.PlannedSizes, res.PlannedEpochs = sizes, epochs
	// ladder runs the rungs from r of the plan (sizes, epochs) on idx, shrinking each rung to
	// what the rest of the ladder can finish in the time left; it says why it stopped short.
	ladder := func(sizes, epochs, idx []int, r int) (string, error) {
		for {
			k := len(idx)
			for ; k >= 1; k-- {
				if fits(tail(sizes, epochs, r, k, c.Eta)) {
					break
				}
			}
			if k == 0 {
				return fmt.Sprintf("the deadline leaves no time for rung %d (%d candidates × %d epochs)", r, len(idx), epochs[r]), nil
			}
			if k == 1 {
				r = len(sizes) - 1 // one candidate left: straight to the full recipe
			}
			pos := len(res.Rungs)
			got, err := chunked(pos, 0, idx[:k], sizes, epochs, r)
			if err != nil {
				return "", err
			}
			if r == len(sizes)-1 {
				res.Rungs[pos].Final = true
				return "", nil
			}
			idx = promote(&res.Rungs[pos], next(tail(sizes, epochs, r, got, c.Eta)))
			r++
		}
	}
	if !firstDone {
		stopped, err := ladder(sizes, epochs, idx, r)
		if err != nil {
			return nil, err
		}
		if stopped != "" {
			return finish(stopped)
		}
	}
	// Time left after the first bracket: further brackets on candidates not trained yet,
	// each as large as the time left can finish.
	for !c.Deadline.IsZero() && !res.Rungs[len(res.Rungs)-1].Late {
		var unused []int
		for i := range n {
			if !slices.ContainsFunc(res.Rungs, func(r Rung) bool { return slices.Contains(r.Candidates, i) }) {
				unused = append(unused, i)
			}
		}
		k := len(unused)
		for ; k >= 1; k-- {
			if sizes, epochs = Plan(k, c.Eta, levels); fits(sizes, epochs) {
				break
			}
		}
		if k == 0 {
			break
		}
		bracket++
		stopped, err := ladder(sizes, epochs, unused[:k], 0)
		if err != nil {
			return nil, err
		}
		if stopped != "" {
			break
		}
	}
	return finish("")
}

// next is the size of the rung after the first of a tail (1 when the tail is one rung).
func next(sz, _ []int) int {
	if len(sz) > 1 {
		return sz[1]
	}
	return 1
}

// promote records and returns the best k of rung r: lowest loss first, NaN last, ties to
// the earlier candidate.
func promote(r *Rung, k int) []int {
	o := order(r.Candidates, r.Losses)
	k = min(k, len(o))
	r.Promoted = make([]int, k)
	for j := range k {
		r.Promoted[j] = r.Candidates[o[j]]
	}
	return slices.Clone(r.Promoted)
}

// order sorts positions by loss (NaN last), then by candidate index.
func order(cands []int, losses []float64) []int {
	o := seq(0, len(cands))
	slices.SortStableFunc(o, func(a, b int) int {
		la, lb := losses[a], losses[b]
		if na, nb := math.IsNaN(la), math.IsNaN(lb); na || nb {
			if na && nb {
				return cmp.Compare(cands[a], cands[b])
			}
			if na {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(la, lb); c != 0 {
			return c
		}
		return cmp.Compare(cands[a], cands[b])
	})
	return o
}

func seq(lo, hi int) []int {
	s := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}
