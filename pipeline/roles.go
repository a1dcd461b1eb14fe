package pipeline

import (
	"fmt"

	"github.com/tabnas/tabnas/evaluator"
	"github.com/tabnas/tabnas/sampler"
)

// EvaluatorOptions tune one evaluator.
type EvaluatorOptions struct {
	Name       string
	CacheBytes int64
}

// NewEvaluator builds an evaluator on env.
func NewEvaluator(env *Env, o EvaluatorOptions) *evaluator.Evaluator {
	if o.Name == "" {
		o.Name = "evaluator"
	}
	return evaluator.New(evaluator.Config{Bus: env.Bus, Store: env.Store, Log: env.Log, Name: o.Name, CacheBytes: o.CacheBytes})
}

// NewSampler builds a sampler on env.
func NewSampler(env *Env, name string) *sampler.Sampler {
	return sampler.New(sampler.Config{Bus: env.Bus, Log: env.Log, Name: name})
}

// EvaluatorName numbers in-process evaluators.
func EvaluatorName(i int) string { return fmt.Sprintf("evaluator-%d", i) }
