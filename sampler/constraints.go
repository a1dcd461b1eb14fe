package sampler

import (
	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

type policyEstimate = policy.Estimate

// latencyConstraints builds the measured limits of a run.
func latencyConstraints(b *bus.Bus, spec *schemas.RunSpec, s *space.Space) (space.Constraints, error) {
	return nil, nil
}
