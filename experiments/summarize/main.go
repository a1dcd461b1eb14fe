// Command summarize turns the raw results of experiments/run.sh into the tables of
// EXPERIMENTS.md.
//
//	summarize budget DIR        best reference of the grid (DIR/grid-*.json) by validation loss: "ARCH PARAMS"
//	summarize field FILE KEY    a top-level value of a result JSON (e.g. seconds)
//	summarize report DIR        markdown tables for every dataset directory under DIR; also writes DIR/runs.csv
//
// Files of a dataset directory: grid-ARCH.json and ref-sK.json (tabnas train), tabnas-nN-sK.json
// and abs-bB-nN-sK.json (tabnas search with N steps), random-nN-sK.json (tabnas random with the
// wall-clock of tabnas-nN-sK), NAME.time ("wall user sys pull-errors load" of the process) and
// budget.txt ("ARCH PARAMS").
package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "summarize:", err)
		os.Exit(1)
	}
}

func run(args []string, w io.Writer) error {
	switch {
	case len(args) == 2 && args[0] == "budget":
		g, err := loadGrid(args[1])
		if err != nil {
			return err
		}
		b := g[0]
		fmt.Fprintf(w, "%s %d\n", b.Arch, b.Params)
		return nil
	case len(args) == 3 && args[0] == "field":
		var m map[string]any
		if err := readJSON(args[1], &m); err != nil {
			return err
		}
		v, ok := m[args[2]]
		if !ok {
			return fmt.Errorf("%s has no field %q", args[1], args[2])
		}
		fmt.Fprintln(w, v)
		return nil
	case len(args) == 2 && args[0] == "report":
		return report(args[1], w)
	}
	return errors.New("usage: summarize budget DIR | field FILE KEY | report DIR")
}

// result holds the fields shared by the JSON of train, search and random.
type result struct {
	Arch       string  `json:"arch"`
	Params     int64   `json:"params"`
	Feasible   *bool   `json:"feasible"`
	ValLoss    float64 `json:"val_loss"`
	TestLoss   float64 `json:"test_loss"`
	TestMetric float64 `json:"test_metric"`
	Metric     string  `json:"metric"`
	Seconds    float64 `json:"seconds"`
	Seed       uint64  `json:"seed"`
	Trials     []struct {
		Arch    string  `json:"arch"`
		Seconds float64 `json:"seconds"`
		Late    bool    `json:"late"`
	} `json:"trials"`
	TopK []struct {
		Arch     string `json:"arch"`
		Params   int64  `json:"params"`
		Feasible bool   `json:"feasible"`
	} `json:"top_k"`

	name string
	proc procTime
}

// procTime is what run.sh measured around the process.
type procTime struct {
	Wall, User, Sys float64
	Warnings        int
	Load            float64
	ok              bool
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func load(path string) (*result, error) {
	var r result
	if err := readJSON(path, &r); err != nil {
		return nil, err
	}
	r.name = strings.TrimSuffix(filepath.Base(path), ".json")
	if data, err := os.ReadFile(strings.TrimSuffix(path, ".json") + ".time"); err == nil {
		f := strings.Fields(string(data))
		if len(f) >= 4 {
			r.proc.Wall, _ = strconv.ParseFloat(f[0], 64)
			r.proc.User, _ = strconv.ParseFloat(f[1], 64)
			r.proc.Sys, _ = strconv.ParseFloat(f[2], 64)
			r.proc.Warnings, _ = strconv.Atoi(f[3])
			if len(f) >= 5 {
				r.proc.Load, _ = strconv.ParseFloat(f[4], 64)
			}
			r.proc.ok = true
		}
	}
	return &r, nil
}

// loadGrid returns the grid's trainings, best validation loss first.
func loadGrid(dir string) ([]*result, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, "grid-*.json"))
	if len(paths) == 0 {
		return nil, fmt.Errorf("no grid-*.json in %s", dir)
	}
	var out []*result
	for _, p := range paths {
		r, err := load(p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ValLoss < out[j].ValLoss })
	return out, nil
}

// group is one method's runs over seeds.
type group struct {
	key, label string
	runs       []*result
}

var (
	seedRe = regexp.MustCompile(`^(.*)-s(\d+)$`)
	keyRe  = regexp.MustCompile(`^(tabnas|random|abs-b(-?[0-9.]+))-n(\d+)$`)
)

func report(root string, w io.Writer) error {
	dirs, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var rows [][]string
	rows = append(rows, []string{"dataset", "method", "seed", "arch", "params", "budget", "feasible", "val_loss", "test_loss", "test_metric",
		"seconds", "retrain_seconds", "trials", "process_wall", "process_cpu", "pull_errors", "load"})
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dsRows, err := reportDataset(filepath.Join(root, d.Name()), d.Name(), w)
		if err != nil {
			return fmt.Errorf("%s: %w", d.Name(), err)
		}
		rows = append(rows, dsRows...)
	}
	f, err := os.Create(filepath.Join(root, "runs.csv"))
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	if err := cw.WriteAll(rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func reportDataset(dir, ds string, w io.Writer) ([][]string, error) {
	grid, err := loadGrid(dir)
	if err != nil {
		return nil, err
	}
	var budget int64
	var refArch string
	if data, err := os.ReadFile(filepath.Join(dir, "budget.txt")); err == nil {
		f := strings.Fields(string(data))
		if len(f) == 2 {
			refArch = f[0]
			budget, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if budget == 0 {
		return nil, errors.New("no budget.txt")
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	groups := map[string]*group{}
	for _, p := range paths {
		base := strings.TrimSuffix(filepath.Base(p), ".json")
		m := seedRe.FindStringSubmatch(base)
		if m == nil {
			continue // grid
		}
		r, err := load(p)
		if err != nil {
			return nil, err
		}
		g := groups[m[1]]
		if g == nil {
			g = &group{key: m[1]}
			groups[m[1]] = g
		}
		g.runs = append(g.runs, r)
	}
	for _, g := range groups {
		sort.Slice(g.runs, func(i, j int) bool { return g.runs[i].Seed < g.runs[j].Seed })
	}
	ref := groups["ref"]
	if ref == nil {
		return nil, errors.New("no ref-sK.json")
	}
	refSecs := mean(collect(ref.runs, func(r *result) float64 { return r.Seconds }))

	// Order: reference, then per number of search steps: TabNAS, Abs Reward by β, random.
	var order []*group
	add := func(key, label string) {
		if g := groups[key]; g != nil {
			g.label = label
			order = append(order, g)
		}
	}
	add("ref", fmt.Sprintf("Reference %s (stand-alone)", refArch))
	stepSet := map[int]bool{}
	absKeys := map[int][]string{}
	for k := range groups {
		if m := keyRe.FindStringSubmatch(k); m != nil {
			n, _ := strconv.Atoi(m[3])
			stepSet[n] = true
			if m[2] != "" {
				absKeys[n] = append(absKeys[n], k)
			}
		}
	}
	var steps []int
	for n := range stepSet {
		steps = append(steps, n)
	}
	sort.Ints(steps)
	for _, n := range steps {
		add(fmt.Sprintf("tabnas-n%d", n), fmt.Sprintf("TabNAS, %d steps", n))
		keys := absKeys[n]
		sort.Slice(keys, func(i, j int) bool { return beta(keys[i]) > beta(keys[j]) })
		bestAbs, bestVal := "", math.Inf(1)
		for _, k := range keys {
			if v := mean(collect(groups[k].runs, func(r *result) float64 { return r.ValLoss })); v < bestVal {
				bestAbs, bestVal = k, v
			}
		}
		for _, k := range keys {
			label := fmt.Sprintf("Abs Reward β=%g, %d steps", beta(k), n)
			if k == bestAbs {
				label += " **(best β)**"
			}
			add(k, label)
		}
		add(fmt.Sprintf("random-n%d", n), fmt.Sprintf("Random search, wall-clock of TabNAS %d steps", n))
	}

	metric := grid[0].Metric
	fmt.Fprintf(w, "## %s\n\n", ds)
	fmt.Fprintf(w, "Reference grid (stand-alone, seed 1), best validation loss first; the best sets the budget.\n\n")
	fmt.Fprintf(w, "| arch | params | val loss | test loss | test %s | seconds |\n|---|---:|---:|---:|---:|---:|\n", metric)
	for _, g := range grid {
		fmt.Fprintf(w, "| %s | %d | %.4f | %.4f | %.4f | %.1f |\n", g.Arch, g.Params, g.ValLoss, g.TestLoss, g.TestMetric, g.Seconds)
	}
	fmt.Fprintf(w, "\nBudget: **%d parameters** (%s). One stand-alone training of the reference: %.1f s (mean over seeds).\n\n", budget, refArch, refSecs)

	fmt.Fprintf(w, "| method | answer per seed | params | feasible | test loss | test %s | val loss | wall-clock s | × ref training | CPU s | notes |\n", metric)
	fmt.Fprintf(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	var rows [][]string
	for _, g := range order {
		var archs, params, notes []string
		feas := 0
		for _, r := range g.runs {
			archs = append(archs, r.Arch)
			params = append(params, strconv.FormatInt(r.Params, 10))
			if feasible(r, budget) {
				feas++
			}
		}
		tl := collect(g.runs, func(r *result) float64 { return r.TestLoss })
		tm := collect(g.runs, func(r *result) float64 { return r.TestMetric })
		vl := collect(g.runs, func(r *result) float64 { return r.ValLoss })
		secs := collect(g.runs, func(r *result) float64 { return r.Seconds })
		cpu := collect(g.runs, func(r *result) float64 { return r.proc.User + r.proc.Sys })
		switch {
		case strings.HasPrefix(g.key, "random"):
			var n []string
			for _, r := range g.runs {
				counted, late := 0, 0
				for _, t := range r.Trials {
					if t.Late {
						late++
					} else {
						counted++
					}
				}
				s := strconv.Itoa(counted)
				if late > 0 {
					s += fmt.Sprintf(" (+%d late)", late)
				}
				n = append(n, s)
			}
			notes = append(notes, "trials per seed "+strings.Join(n, ", "))
		case g.key != "ref":
			var n []string
			inf, top1, cands := 0, 0, 0
			for _, r := range g.runs {
				n = append(n, strconv.Itoa(r.proc.Warnings))
				for i, c := range r.TopK {
					cands++
					if !c.Feasible {
						inf++
						if i == 0 {
							top1++
						}
					}
				}
			}
			if strings.Trim(strings.Join(n, ""), "0") != "" {
				notes = append(notes, "evaluator pull errors per seed "+strings.Join(n, ", "))
			}
			if inf > 0 {
				notes = append(notes, fmt.Sprintf("most probable arch infeasible in %d/%d runs; %d/%d top-k candidates infeasible", top1, len(g.runs), inf, cands))
			}
		}
		ratio := "—"
		if g.key != "ref" {
			ratio = fmt.Sprintf("%.1f", mean(secs)/refSecs)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d/%d | %s | %s | %.4f | %s | %s | %.0f | %s |\n", g.label, strings.Join(archs, ", "), strings.Join(params, ", "),
			feas, len(g.runs), pm(tl, 4), pm(tm, 4), mean(vl), pm(secs, 1), ratio, mean(cpu), strings.Join(notes, "; "))
		for _, r := range g.runs {
			retrain := 0.0
			if !strings.HasPrefix(g.key, "random") {
				for _, t := range r.Trials {
					retrain += t.Seconds
				}
			}
			rows = append(rows, []string{ds, g.key, strconv.FormatUint(r.Seed, 10), r.Arch, strconv.FormatInt(r.Params, 10), strconv.FormatInt(budget, 10),
				strconv.FormatBool(feasible(r, budget)), f6(r.ValLoss), f6(r.TestLoss), f6(r.TestMetric), f6(r.Seconds), f6(retrain),
				strconv.Itoa(len(r.Trials)), f6(r.proc.Wall), f6(r.proc.User + r.proc.Sys), strconv.Itoa(r.proc.Warnings), f6(r.proc.Load)})
		}
	}
	fmt.Fprintln(w)

	// Cost of the searches: whole run and search steps alone (the run minus its final retraining).
	fmt.Fprintf(w, "Search cost vs one stand-alone training of the reference (%.1f s):\n\n", refSecs)
	fmt.Fprintf(w, "| method | run wall-clock s | of which retraining top-k s | search steps only s | run × ref | steps only × ref |\n|---|---:|---:|---:|---:|---:|\n")
	for _, g := range order {
		if g.key == "ref" || strings.HasPrefix(g.key, "random") {
			continue
		}
		var run, re []float64
		for _, r := range g.runs {
			s := 0.0
			for _, t := range r.Trials {
				s += t.Seconds
			}
			run, re = append(run, r.Seconds), append(re, s)
		}
		steps := make([]float64, len(run))
		for i := range run {
			steps[i] = run[i] - re[i]
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %s | %.1f | %.1f |\n", g.label, pm(run, 1), mean(re), pm(steps, 1), mean(run)/refSecs, mean(steps)/refSecs)
	}
	fmt.Fprintln(w)

	// Per seed.
	fmt.Fprintf(w, "<details><summary>Per seed</summary>\n\n| method | seed | arch | params | feasible | val loss | test loss | test %s | seconds |\n|---|---:|---|---:|---|---:|---:|---:|---:|\n", metric)
	for _, g := range order {
		for _, r := range g.runs {
			fmt.Fprintf(w, "| %s | %d | %s | %d | %v | %.4f | %.4f | %.4f | %.1f |\n", g.key, r.Seed, r.Arch, r.Params, feasible(r, budget), r.ValLoss, r.TestLoss, r.TestMetric, r.Seconds)
		}
	}
	fmt.Fprintf(w, "\n</details>\n\n")
	return rows, nil
}

// feasible takes the run's own verdict when it has one and checks it against the budget.
func feasible(r *result, budget int64) bool {
	ok := r.Params <= budget
	if r.Feasible != nil && *r.Feasible != ok {
		fmt.Fprintf(os.Stderr, "summarize: %s says feasible=%v but has %d params for a budget of %d\n", r.name, *r.Feasible, r.Params, budget)
	}
	return ok
}

func beta(key string) float64 {
	m := keyRe.FindStringSubmatch(key)
	if m == nil {
		return math.NaN()
	}
	v, _ := strconv.ParseFloat(m[2], 64)
	return v
}

func collect(rs []*result, f func(*result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// std is the sample standard deviation (n−1).
func std(x []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	m := mean(x)
	s := 0.0
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return math.Sqrt(s / float64(len(x)-1))
}

func pm(x []float64, digits int) string {
	return fmt.Sprintf("%.*f ± %.*f", digits, mean(x), digits, std(x))
}

func f6(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
