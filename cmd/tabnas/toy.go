package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/toy"
)

func cmdToy(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("toy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	seeds := fs.Int("seeds", 200, "independent runs per method")
	steps := fs.Int("steps", 500, "RL steps per run")
	n := fs.Int("samples", 5, "Monte Carlo samples N")
	lr := fs.Float64("lr", 0.1, "RL learning rate with rejection")
	absLR := fs.Float64("abs-lr", 0.05, "RL learning rate for Abs Reward")
	seed0 := fs.Uint64("seed", 0, "first seed")
	jsonOut := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return err
		}
		return bad(err)
	}
	if *seeds < 1 || *steps < 1 {
		return bad(fmt.Errorf("--seeds and --steps must be ≥ 1"))
	}
	type entry struct {
		key string
		cfg policy.Config
	}
	runs := []entry{
		{"tabnas", policy.Config{Method: policy.TabNAS, Correction: policy.MC, LR: *lr, Samples: *n}},
		{"tabnas_exact", policy.Config{Method: policy.TabNAS, Correction: policy.ExactCorr, LR: *lr}},
		{"reject", policy.Config{Method: policy.Reject, LR: *lr}},
	}
	betas := []float64{0.5, 1, 2, 3, 5}
	for _, b := range betas {
		runs = append(runs, entry{fmt.Sprintf("abs_beta_%g", b), policy.Config{Method: policy.AbsReward, LR: *absLR, Beta: -b, T0: toy.Budget}})
	}
	out := map[string]any{}
	details := map[string]toy.Summary{}
	bestAbs := 0.0
	for _, r := range runs {
		s, err := toy.Study(r.key, r.cfg, *steps, *seeds, *seed0)
		if err != nil {
			return err
		}
		details[r.key] = s
		if r.cfg.Method == policy.AbsReward {
			bestAbs = max(bestAbs, s.Success)
		} else {
			out[r.key] = s.Success
		}
	}
	out["abs"] = bestAbs
	out["details"] = details
	out["seeds"], out["steps"] = *seeds, *steps
	if *jsonOut {
		data, _ := json.Marshal(out)
		fmt.Println(string(data))
		return nil
	}
	fmt.Printf("toy study: %d seeds × %d steps, widths {2,3,4}², budget 25 params, best feasible 4-2\n\n", *seeds, *steps)
	fmt.Printf("%-14s %8s %11s %22s   answers\n", "method", "→ 4-2", "infeasible", "most probable feasible=4-2")
	for _, r := range runs {
		s := details[r.key]
		fmt.Printf("%-14s %8.3f %11.3f %22.3f   %v\n", r.key, s.Success, s.Infeasible, s.BestFeasible, s.Answers)
	}
	return nil
}
