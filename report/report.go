// Package report renders one search run as a single self-contained HTML page: a summary,
// charts of the search (reward and baseline, per-layer width probabilities, P̂(V) and the
// acceptance rate, the retrained candidates against the budget) and the tables behind them.
// The page has no external assets and no JavaScript: inline CSS and inline SVG drawn here.
package report

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
)

// Input is everything the page shows about one run. Only History and Space are needed
// for the search charts; every other part may be empty and is then shown as absent.
type Input struct {
	RunID   string `json:"run_id"`
	Dataset string `json:"dataset"`
	// Task as nn.Task prints it: "binary", "multiclass(10)" or "regression".
	Task string `json:"task"`
	// Method of the controller (policy.Method): "tabnas" (the default when empty),
	// "reject", "abs" or "mnas". Only "tabnas" estimates P(V) at every RL step.
	Method      string             `json:"method,omitempty"`
	Seed        uint64             `json:"seed"`
	Space       space.Space        `json:"space"`
	Constraints []Constraint       `json:"constraints,omitempty"`
	Config      []KV               `json:"config,omitempty"`    // search configuration, in display order
	History     []search.Record    `json:"history"`             // one record per step
	Selection   []search.Candidate `json:"selection,omitempty"` // top-k by probability
	Trials      []Trial            `json:"trials,omitempty"`    // stand-alone retraining of the selection
	Result      *Result            `json:"result,omitempty"`    // the chosen answer
	Proxy       *Proxy             `json:"proxy,omitempty"`     // the proxy check, when run
	Timings     []Timing           `json:"timings,omitempty"`   // phases, in display order
	// Wall is the run's wall-clock time; when zero, the sum of Timings is shown.
	Wall    time.Duration `json:"wall,omitempty"`
	Created time.Time     `json:"created,omitzero"` // shown when set
}

// Constraint is one resource limit as the page shows it.
type Constraint struct {
	Name  string  `json:"name"`  // "params" is drawn as the budget line of the scatter plot
	Limit float64 `json:"limit"` // numeric budget
	Text  string  `json:"text"`  // e.g. "params ≤ 41153"; Name ≤ Limit when empty
}

// KV is one configuration entry.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Trial is one architecture retrained stand-alone from scratch.
type Trial struct {
	Arch       string  `json:"arch"`
	Params     int64   `json:"params"`
	ValLoss    float64 `json:"val_loss"`
	TestLoss   float64 `json:"test_loss"`
	MetricName string  `json:"metric_name,omitempty"` // e.g. "accuracy", "rmse"
	Metric     float64 `json:"metric"`
	Epochs     int     `json:"epochs"`
	Seconds    float64 `json:"seconds"`
}

// Result is the chosen answer: the retrained trial with the best validation loss.
type Result struct {
	Trial
	Feasible bool `json:"feasible"`
}

// Timing is the duration of one phase of the run.
type Timing struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration"`
}

// FromEngine fills the parts of an Input that the engine knows after its search and
// selection: method, seed, space, constraints, configuration, history and selection. The
// caller adds the run id, dataset, task, trials, result and timings.
func FromEngine(e *search.Engine, sel search.Selection) Input {
	return Input{
		Method:      string(e.Ctrl.Cfg.Method),
		Seed:        e.Cfg.Seed,
		Space:       *e.Space,
		Constraints: Constraints(e.Cons),
		Config:      ConfigKV(e.Cfg),
		History:     slices.Clone(e.Hist),
		Selection:   slices.Clone(sel.Candidates),
	}
}

// Constraints converts the search constraints for the page.
func Constraints(cs space.Constraints) []Constraint {
	out := make([]Constraint, len(cs))
	for i, c := range cs {
		out[i] = Constraint{Name: c.Name(), Limit: c.Limit(), Text: fmt.Sprintf("%s ≤ %g", c.Name(), c.Limit())}
	}
	return out
}

// ConfigKV lists a search configuration (defaults filled) as key/values.
func ConfigKV(c search.Config) []KV {
	c = c.Defaults()
	p := c.Policy
	kv := []KV{
		{"method", string(p.Method)},
		{"steps", strconv.Itoa(c.Steps)},
		{"warmup", fmt.Sprintf("%g (%d steps)", c.Warmup, c.WarmupSteps())},
		{"seed", strconv.FormatUint(c.Seed, 10)},
		{"batch", strconv.Itoa(c.Batch)},
		{"val_batch", strconv.Itoa(c.ValBatch)},
		{"weight_lr", fmt.Sprintf("%g", c.WeightLR)},
		{"rl_lr", fmt.Sprintf("%g", p.LR)},
	}
	if p.Corrects() {
		kv = append(kv, KV{"correction", string(p.Correction)})
		if p.Correction != policy.ExactCorr {
			kv = append(kv, KV{"mc_samples", strconv.Itoa(p.Samples)})
		}
	}
	if p.Rejects() {
		kv = append(kv, KV{"max_tries", strconv.Itoa(p.MaxTries)})
	} else {
		kv = append(kv, KV{"beta", fmt.Sprintf("%g", p.Beta)}, KV{"t0", fmt.Sprintf("%g", p.T0)})
	}
	if p.Entropy > 0 {
		kv = append(kv, KV{"entropy", fmt.Sprintf("%g", p.Entropy)})
	}
	kv = append(kv, KV{"reward", c.Reward}, KV{"children", c.Children}, KV{"sandwich", c.Sandwich}, KV{"adam_counts", c.AdamCounts})
	return append(kv, KV{"top_k", strconv.Itoa(c.TopK)})
}

// Write renders the page for in to w.
func Write(w io.Writer, in Input) error {
	if w == nil {
		return errors.New("report: nil writer")
	}
	pg := build(in)
	if err := pageTmpl.Execute(w, pg); err != nil {
		return fmt.Errorf("report: writing page for run %q: %w", in.RunID, err)
	}
	return nil
}

// estimatesPV reports whether the run's records carry P̂(V).
func (in Input) estimatesPV() bool {
	return in.Method == "" || in.Method == string(policy.TabNAS)
}

// regression reports whether the task is regression (losses are MSE, not log loss).
func (in Input) regression() bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(in.Task)), "regression")
}

// budget is the numeric parameter budget, if any.
func (in Input) budget() (float64, bool) {
	for _, c := range in.Constraints {
		if c.Name == "params" && finite(c.Limit) {
			return c.Limit, true
		}
	}
	return 0, false
}

func (c Constraint) label() string {
	if c.Text != "" {
		return c.Text
	}
	return fmt.Sprintf("%s ≤ %g", c.Name, c.Limit)
}

// lossName names the loss of the task.
func (in Input) lossName() string {
	if in.regression() {
		return "MSE"
	}
	if in.Task == "" {
		return "loss"
	}
	return "log loss"
}

// fmtInt writes n with thousands separators.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtNum writes a measured value with 4 significant decimals, NaN and Inf spelled out.
func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "−Inf"
	case v != 0 && (math.Abs(v) >= 1e5 || math.Abs(v) < 1e-3):
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// fmtProb writes a probability.
func fmtProb(p float64) string {
	if !finite(p) {
		return fmtNum(p)
	}
	if p != 0 && p < 1e-4 {
		return strconv.FormatFloat(p, 'e', 2, 64)
	}
	return strconv.FormatFloat(p, 'f', 4, 64)
}

// fmtDur writes a duration rounded for reading.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0 s"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
}
