package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/internal/halving"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

// Result is what a finished search reports (the JSON of `tabnas search --json`).
type Result struct {
	Run         string                  `json:"run"`
	Arch        string                  `json:"arch"`
	Params      int64                   `json:"params"`
	Feasible    bool                    `json:"feasible"`
	ValLoss     float64                 `json:"val_loss"`
	TestLoss    float64                 `json:"test_loss"`
	TestMetric  float64                 `json:"test_metric"`
	Metric      string                  `json:"metric"`
	Steps       int                     `json:"steps"`
	Seed        uint64                  `json:"seed"`
	Method      string                  `json:"method"`
	Constraints schemas.Constraints     `json:"constraints"`
	TopK        []search.Candidate      `json:"top_k"`
	Trials      []schemas.TrialOutcome  `json:"trials"`
	FinalPV     float64                 `json:"final_pv"`
	Trace       string                  `json:"trace"`          // digest of every step's sampled architectures and rewards
	Seconds     float64                 `json:"seconds"`        // the whole run (this incarnation)
	SearchSecs  float64                 `json:"search_seconds"` // the search steps, without retraining
	Model       string                  `json:"model,omitempty"`
	Report      string                  `json:"report,omitempty"`
	Stats       coordinator.Stats       `json:"bus"`
	StepsRun    int64                   `json:"steps_run"`
	Applied     int64                   `json:"applied_updates"`
	Skipped     int64                   `json:"skipped_updates"`
	Pool        []search.PoolEntry      `json:"pool,omitempty"`
	Ladder      *halving.Result         `json:"ladder,omitempty"`
	Proxy       *coordinator.ProxyCheck `json:"proxy,omitempty"`
}

// Trace digests the sequence of sampled architectures, losses and rewards: two runs with
// the same trace made the same decisions with bit-identical numbers.
func Trace(hist []search.Record) string {
	h := sha256.New()
	for _, r := range hist {
		fmt.Fprintf(h, "%d %s %x %s %d %x %x %x %v\n", r.Step, r.Child, math.Float64bits(r.TrainLoss), r.Candidate, r.Tries,
			math.Float64bits(r.ValLoss), math.Float64bits(r.Reward), math.Float64bits(r.PV), r.Updated)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Summarize turns a coordinator outcome into the reported result.
func Summarize(out *coordinator.Outcome) Result {
	r := Result{Run: out.Run, Steps: out.Spec.Search.Steps, Seed: out.Spec.Search.Seed, Method: string(out.Spec.Search.Policy.Method),
		Constraints: out.Spec.Constraints, TopK: out.Selection.Candidates, Trials: out.Trials, Trace: Trace(out.History),
		Seconds: out.Seconds, SearchSecs: out.Search, Stats: out.Stats, StepsRun: out.StepsRun, Applied: out.Applied, Skipped: out.Skipped,
		Pool: out.Pool, Ladder: out.Ladder, Proxy: out.Proxy}
	if b := out.Best; b != nil {
		r.Arch, r.Params, r.ValLoss, r.TestLoss, r.TestMetric, r.Metric = b.Arch, b.Params, b.ValLoss, b.TestLoss, b.TestMetric, b.Metric
		r.Feasible = out.Feasible(b.Arch)
	}
	r.FinalPV = coordinator.LastPV(out.History)
	return r
}
