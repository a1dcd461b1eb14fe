// Command compare prints the tables of the equal-wall-clock comparison run by
// experiments/compare.sh: per case, each method's answers and test loss (mean ± sd over
// seeds), the paired win/tie/loss of TabNAS against each baseline, and the proxy's τ.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// tieBand is the paired test-loss difference below which two answers tie: the seed noise
// of one fixed architecture is 0.005–0.007 on Connect-4, so this is well inside it.
const tieBand = 0.002

type result struct {
	Arch     string  `json:"arch"`
	Params   int64   `json:"params"`
	Feasible bool    `json:"feasible"`
	ValLoss  float64 `json:"val_loss"`
	TestLoss float64 `json:"test_loss"`
	Metric   float64 `json:"test_metric"`
	Name     string  `json:"metric"`
	Seconds  float64 `json:"seconds"`
	Steps    int64   `json:"steps_run"`
	Proxy    *struct {
		RungTau *float64 `json:"rung_tau"`
		Tau     *float64 `json:"kendall_tau"`
	} `json:"proxy"`
	Trials []json.RawMessage `json:"trials"`
	Wall   float64
}

var methods = []string{"tabnas", "random", "halving"}
var label = map[string]string{"tabnas": "TabNAS (defaults)", "random": "random search", "halving": "successive-halving random search"}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compare RESULTS_DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	cases, err := os.ReadDir(dir)
	if err != nil {
		fail(err)
	}
	name := regexp.MustCompile(`^(\w+)-s(\d+)\.json$`)
	fmt.Println("# Equal wall-clock comparison")
	fmt.Println()
	fmt.Printf("Ties: paired |Δ test loss| < %g. Δ = TabNAS − baseline (negative: TabNAS better).\n\n", tieBand)
	var overview []string
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		runs := map[string]map[int]*result{}
		files, _ := os.ReadDir(filepath.Join(dir, c.Name()))
		for _, f := range files {
			m := name.FindStringSubmatch(f.Name())
			if m == nil {
				continue
			}
			seed, _ := strconv.Atoi(m[2])
			r, err := load(filepath.Join(dir, c.Name(), f.Name()))
			if err != nil {
				fail(fmt.Errorf("%s/%s: %w", c.Name(), f.Name(), err))
			}
			if runs[m[1]] == nil {
				runs[m[1]] = map[int]*result{}
			}
			runs[m[1]][seed] = r
		}
		fmt.Printf("## %s\n\n", c.Name())
		fmt.Println("| method | seeds | test loss | test metric | val loss | feasible | params | wall s | trained | answers |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
		means := map[string]float64{}
		for _, m := range methods {
			rs := runs[m]
			if len(rs) == 0 {
				continue
			}
			var tl, tm, vl, wall, trained []float64
			var archs []string
			feas := 0
			var params []float64
			metric := ""
			for _, s := range sortedSeeds(rs) {
				r := rs[s]
				tl, tm, vl = append(tl, r.TestLoss), append(tm, r.Metric), append(vl, r.ValLoss)
				wall, trained = append(wall, r.Wall), append(trained, float64(len(r.Trials)))
				params = append(params, float64(r.Params))
				archs = append(archs, r.Arch)
				metric = r.Name
				if r.Feasible {
					feas++
				}
			}
			means[m] = mean(tl)
			fmt.Printf("| %s | %d | %.4f ± %.4f | %s %.4f | %.4f | %d/%d | %.0f | %.1f | %.0f | %s |\n", label[m], len(tl), mean(tl), sd(tl),
				metric, mean(tm), mean(vl), feas, len(tl), mean(params), mean(wall), mean(trained), strings.Join(archs, ", "))
		}
		fmt.Println()
		for _, b := range methods[1:] {
			var d []float64
			w, t, l := 0, 0, 0
			for s, r := range runs["tabnas"] {
				o := runs[b][s]
				if o == nil {
					continue
				}
				x := r.TestLoss - o.TestLoss
				d = append(d, x)
				switch {
				case math.Abs(x) < tieBand:
					t++
				case x < 0:
					w++
				default:
					l++
				}
			}
			if len(d) == 0 {
				continue
			}
			fmt.Printf("- TabNAS vs %s: %d win / %d tie / %d loss over %d paired seeds; mean Δ %+.4f ± %.4f (sd of Δ)\n", label[b], w, t, l, len(d), mean(d), sd(d))
			overview = append(overview, fmt.Sprintf("| %s | %s | %d/%d/%d | %+.4f | %s |", c.Name(), label[b], w, t, l, mean(d), verdict(means["tabnas"], means[b], sd(d))))
		}
		var taus []float64
		for _, r := range runs["tabnas"] {
			if r.Proxy != nil && r.Proxy.RungTau != nil {
				taus = append(taus, *r.Proxy.RungTau)
			}
		}
		if len(taus) > 0 {
			fmt.Printf("- proxy τ against the finish's first rung: %.2f ± %.2f over %d runs\n", mean(taus), sd(taus), len(taus))
		}
		fmt.Println()
	}
	fmt.Println("## Overview")
	fmt.Println()
	fmt.Println("| case | baseline | W/T/L | mean Δ test loss | verdict on the means |")
	fmt.Println("|---|---|---:|---:|---|")
	for _, o := range overview {
		fmt.Println(o)
	}
}

// verdict compares mean test losses with the noise of the paired differences.
func verdict(ours, theirs, noise float64) string {
	d := ours - theirs
	switch {
	case math.Abs(d) < tieBand:
		return "tie"
	case d < 0:
		return "TabNAS better"
	case d <= noise:
		return "TabNAS worse, within the seed noise"
	}
	return "TabNAS worse"
}

func load(path string) (*result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if t, err := os.ReadFile(strings.TrimSuffix(path, ".json") + ".time"); err == nil {
		var tm struct{ Wall float64 }
		if json.Unmarshal(t, &tm) == nil {
			r.Wall = tm.Wall
		}
	}
	return &r, nil
}

func sortedSeeds(m map[int]*result) []int {
	var s []int
	for k := range m {
		s = append(s, k)
	}
	sort.Ints(s)
	return s
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func sd(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	m := mean(v)
	var s float64
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(v)-1))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}
