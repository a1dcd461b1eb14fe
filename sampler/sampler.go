// Package sampler is the service that knows the constraints: it answers feasibility checks
// for rejection (analytic parameter counts, latencies measured on its own hardware and
// cached per architecture) and, for each policy version, computes P̂(V) and the layer
// marginals of p(·|V) by Monte Carlo or exactly, for the coordinator's correction.
package sampler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

// Config wires a sampler.
type Config struct {
	Bus  *bus.Bus
	Log  *slog.Logger
	Name string
}

// Sampler serves requests until its context ends.
type Sampler struct {
	cfg  Config
	log  *slog.Logger
	mu   sync.Mutex
	runs map[string]*runState
}

type runState struct {
	spec  *schemas.RunSpec
	space *space.Space
	cons  space.Constraints
	est   *search.LocalEstimator
}

// New builds a sampler.
func New(cfg Config) *Sampler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Name == "" {
		cfg.Name = "sampler"
	}
	return &Sampler{cfg: cfg, log: cfg.Log.With("sampler", cfg.Name), runs: map[string]*runState{}}
}

// Run serves requests (several samplers share the load) until ctx ends. ready, when
// non-nil, is closed once requests reach this sampler.
func (s *Sampler) Run(ctx context.Context, ready chan<- struct{}) error {
	return s.cfg.Bus.Sampler.Serve(ctx, handler{s}, ready)
}

// handler answers the bus's sampler requests; errors travel in the replies.
type handler struct{ s *Sampler }

func (h handler) Feasible(ctx context.Context, req *schemas.FeasibleRequest) *schemas.FeasibleReply {
	rep := &schemas.FeasibleReply{Envelope: schemas.NewEnvelope(schemas.TypeFeasible, req.Run), Arch: req.Arch}
	if err := h.s.feasible(ctx, req, rep); err != nil {
		rep.Error = err.Error()
	}
	return rep
}

func (h handler) Estimate(ctx context.Context, req *schemas.EstimateRequest) *schemas.EstimateReply {
	rep := &schemas.EstimateReply{Envelope: schemas.NewEnvelope(schemas.TypeEstimate, req.Run), Step: req.Step}
	if e, err := h.s.estimate(ctx, req); err != nil {
		rep.Error = err.Error()
	} else {
		rep.Estimate = e
	}
	return rep
}

func (s *Sampler) state(ctx context.Context, run string) (*runState, error) {
	s.mu.Lock()
	st := s.runs[run]
	s.mu.Unlock()
	if st != nil {
		return st, nil
	}
	spec, err := s.cfg.Bus.GetSpec(ctx, run)
	if err != nil {
		return nil, err
	}
	sp, err := spec.SpaceOf()
	if err != nil {
		return nil, err
	}
	cons := spec.ParamsConstraint()
	lat, err := latencyConstraints(ctx, s.cfg.Bus, spec, sp)
	if err != nil {
		return nil, err
	}
	cons = append(cons, lat...)
	st = &runState{spec: spec, space: sp, cons: cons,
		est: &search.LocalEstimator{Space: sp, Cons: cons, Cfg: spec.Search.Policy, Seed: spec.Search.Seed}}
	s.mu.Lock()
	if old := s.runs[run]; old != nil {
		st = old
	} else {
		s.runs[run] = st
	}
	s.mu.Unlock()
	return st, nil
}

func (s *Sampler) feasible(ctx context.Context, req *schemas.FeasibleRequest, rep *schemas.FeasibleReply) error {
	st, err := s.state(ctx, req.Run)
	if err != nil {
		return err
	}
	a, err := st.space.FromWidths(req.Arch)
	if err != nil {
		return err
	}
	if rep.Costs, err = st.cons.Costs(st.space, a); err != nil {
		return err
	}
	rep.Feasible, err = st.est.Feasible(ctx, a)
	return err
}

func (s *Sampler) estimate(ctx context.Context, req *schemas.EstimateRequest) (est policyEstimate, err error) {
	st, err := s.state(ctx, req.Run)
	if err != nil {
		return est, err
	}
	if len(req.Probs) != st.space.Layers() {
		return est, fmt.Errorf("probabilities for %d layers, the run has %d", len(req.Probs), st.space.Layers())
	}
	for i, p := range req.Probs {
		if len(p) != len(st.space.Widths[i]) {
			return est, fmt.Errorf("layer %d has %d probabilities, the run has %d widths", i+1, len(p), len(st.space.Widths[i]))
		}
	}
	return st.est.Estimate(ctx, req.Step, req.Probs)
}
