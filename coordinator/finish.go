package coordinator

import (
	"context"

	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

// retrain trains every selected architecture stand-alone from scratch, as trial work
// items spread over the evaluators, and returns the outcomes in selection order.
func retrain(ctx context.Context, rb *remote, sel search.Selection, t schemas.Trial) ([]schemas.TrialOutcome, error) {
	reqs := make([]trialRequest, len(sel.Candidates))
	for i, c := range sel.Candidates {
		reqs[i] = trialRequest{Arch: c.Widths, Trial: t}
	}
	return rb.trials(ctx, int64(rb.spec.Search.Steps), reqs)
}
