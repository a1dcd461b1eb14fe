// Command proxy measures how well the shared-weight score ranks architectures: for a
// dataset and a parameter budget it trains a fixed set of feasible architectures
// stand-alone (cached), runs the in-process search engine under several proxy settings
// and seeds, and reports Kendall's τ and Spearman's ρ between each child's SuperNet
// validation loss and its stand-alone validation loss. It is the tool behind the proxy
// section of EXPERIMENTS.md.
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/rank"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

// setting is a named search configuration on top of the defaults.
type setting struct {
	Name string
	Cfg  func(c *search.Config)
}

var settings = []setting{
	{"old", func(c *search.Config) {
		c.Reward, c.Children, c.Sandwich, c.AdamCounts = search.RewardBatch, search.ChildrenPolicy, search.Off, search.CountsGlobal
		c.Policy.Correction, c.Policy.Samples = policy.MC, 5
	}},
	{"fixed", func(c *search.Config) {
		c.Children, c.Sandwich, c.AdamCounts = search.ChildrenPolicy, search.Off, search.CountsGlobal
	}},
	{"fixed+feasible", func(c *search.Config) { c.Sandwich, c.AdamCounts = search.Off, search.CountsGlobal }},
	{"fixed+feasible+counts", func(c *search.Config) { c.Sandwich = search.Off }},
	{"all+sandwich", func(c *search.Config) { c.Sandwich = search.On }},
	{"uniform+sandwich", func(c *search.Config) { c.Sandwich = search.On; c.Policy.LR = 1e-12 }},
}

type standalone struct {
	Arch    string  `json:"arch"`
	ValLoss float64 `json:"val_loss"`
	Test    float64 `json:"test_loss"`
	Secs    float64 `json:"seconds"`
}

func main() {
	data := flag.String("data", "", "CSV(.gz) file")
	cats := flag.String("categorical", "", "categorical columns, comma-separated, or * for all")
	budget := flag.Int64("max-params", 0, "parameter budget")
	steps := flag.Int("steps", 1000, "search steps")
	seeds := flag.Int("seeds", 3, "search seeds")
	m := flag.Int("archs", 30, "architectures drawn uniformly from the feasible set")
	only := flag.String("settings", "", "comma-separated setting names (default all)")
	cache := flag.String("cache", filepath.Join(os.TempDir(), "tabnas-proxy"), "cache directory (ingested data, stand-alone results)")
	valBatch := flag.Int("val-batch", 0, "validation rows of the reward (0: default)")
	flag.Parse()
	if *data == "" || *budget <= 0 {
		log.Fatal("need --data and --max-params")
	}
	ctx := context.Background()
	name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(*data), ".gz"), ".csv")
	store, err := objstore.NewLocal(filepath.Join(*cache, "store"))
	if err != nil {
		log.Fatal(err)
	}
	ds, err := dataset.OpenDataset(ctx, store, "datasets/"+name)
	if err != nil {
		opts := dataset.Options{}
		if *cats == "*" {
			hdr, err := header(*data)
			if err != nil {
				log.Fatal(err)
			}
			opts.Categorical = slices.DeleteFunc(hdr, func(s string) bool { return s == "target" })
		} else if *cats != "" {
			opts.Categorical = strings.Split(*cats, ",")
		}
		if _, err := dataset.Ingest(ctx, *data, store, "datasets/"+name, opts); err != nil {
			log.Fatal(err)
		}
		if ds, err = dataset.OpenDataset(ctx, store, "datasets/"+name); err != nil {
			log.Fatal(err)
		}
	}
	mf := ds.Manifest
	load := func(split string) nn.Data {
		x, y, err := ds.ReadSplit(ctx, split, nil)
		if err != nil {
			log.Fatal(err)
		}
		return nn.Data{X: x, Y: y, Cols: mf.FeatureWidth}
	}
	train, val, test := load(schemas.SplitTrain), load(schemas.SplitVal), load(schemas.SplitTest)
	task := taskOf(mf)
	s, err := space.New(mf.FeatureWidth, task.Outputs(), 3, space.DefaultWidths)
	if err != nil {
		log.Fatal(err)
	}
	cons := space.Constraints{space.MaxParams{Max: *budget}}
	archs, err := uniformFeasible(s, cons, *m)
	if err != nil {
		log.Fatal(err)
	}

	// Stand-alone validation losses, cached per (dataset, arch).
	cacheFile := filepath.Join(*cache, name+"-standalone.json")
	known := map[string]standalone{}
	if b, err := os.ReadFile(cacheFile); err == nil {
		_ = json.Unmarshal(b, &known)
	}
	sa := make([]float64, len(archs))
	for i, a := range archs {
		key := s.Format(a)
		r, ok := known[key]
		if !ok {
			start := time.Now()
			model, h, err := nn.TrainStandalone(nn.Arch(s.ArchWidths(a)), task, train, val, nn.TrainConfig{Seed: 1})
			if err != nil {
				log.Fatal(err)
			}
			ws := model.NewWorkspace(1024)
			r = standalone{Arch: key, ValLoss: h.BestValLoss, Test: model.Evaluate(test, ws).Loss, Secs: time.Since(start).Seconds()}
			known[key] = r
			b, _ := json.MarshalIndent(known, "", " ")
			_ = os.WriteFile(cacheFile, b, 0o644)
			fmt.Fprintf(os.Stderr, "stand-alone %-12s params %6d val %.4f test %.4f (%.1fs)\n", key, s.Params(a), r.ValLoss, r.Test, r.Secs)
		}
		sa[i] = r.ValLoss
	}

	fmt.Printf("dataset %s  budget %d  archs %d  steps %d  stand-alone val loss range %.4f–%.4f\n", name, *budget, len(archs), *steps, slices.Min(sa), slices.Max(sa))
	fmt.Printf("%-24s %5s %8s %8s %8s %8s %8s %8s\n", "setting", "seed", "tau_full", "rho_full", "tau_rew", "top1p", "skipped", "secs")
	for _, st := range settings {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), st.Name) {
			continue
		}
		var taus []float64
		for seed := 1; seed <= *seeds; seed++ {
			cfg := search.Config{Steps: *steps, Seed: uint64(seed), ValBatch: *valBatch}
			st.Cfg(&cfg)
			cfg = cfg.Defaults()
			m, err := measure(ctx, s, cons, task, train, val, archs, sa, cfg)
			if err != nil {
				log.Fatal(err)
			}
			eng, secs, tf, rf, tr := m.eng, m.secs, m.tauFull, m.rhoFull, m.tauRew
			top := 1.0
			for _, p := range eng.Ctrl.Policy.Probs() {
				top *= slices.Max(p)
			}
			taus = append(taus, tf)
			fmt.Printf("%-24s %5d %8.3f %8.3f %8.3f %8.3f %8d %8.1f\n", st.Name, seed, tf, rf, tr, top, eng.Skipped, secs)
		}
		fmt.Printf("%-24s  mean τ %.3f ± %.3f\n", st.Name, mean(taus), sd(taus))
	}
}

type measured struct {
	eng                      *search.Engine
	secs                     float64
	tauFull, rhoFull, tauRew float64
}

// measure runs the in-process search with cfg and correlates the SuperNet validation loss
// of archs (on the whole split, and on the reward's rows) with their stand-alone losses sa.
func measure(ctx context.Context, s *space.Space, cons space.Constraints, task nn.Task, train, val nn.Data, archs []space.Arch, sa []float64, cfg search.Config) (measured, error) {
	var m measured
	net, err := nn.NewSuperNet(s.In, s.MaxWidths(), task, policy.Stream(cfg.Seed, "init", 0))
	if err != nil {
		return m, err
	}
	valShard := []search.Shard{{X: val.X, Y: val.Y, Rows: val.Rows()}}
	trainShard := []search.Shard{{X: train.X, Y: train.Y, Rows: train.Rows()}}
	b, err := search.NewLocal(net, trainShard, valShard, cfg)
	if err != nil {
		return m, err
	}
	if m.eng, err = search.New(cfg, s, cons, net, b, &search.LocalEstimator{Space: s, Cons: cons, Cfg: cfg.Policy, Seed: cfg.Seed}); err != nil {
		return m, err
	}
	start := time.Now()
	if err := m.eng.Run(ctx, nil); err != nil {
		return m, err
	}
	m.secs = time.Since(start).Seconds()
	full, rew := make([]float64, len(archs)), make([]float64, len(archs))
	w := search.NewWorker(net, val.Rows())
	for i, a := range archs {
		child := nn.Arch(s.ArchWidths(a))
		full[i] = w.Loss(net, valShard[0], cfg.Seed, 0, 0, val.Rows(), child) / float64(val.Rows())
		if rew[i], err = b.ValLoss(ctx, int64(cfg.Steps), child); err != nil {
			return m, err
		}
	}
	m.tauFull, _ = rank.KendallTau(full, sa)
	m.rhoFull, _ = rank.Spearman(full, sa)
	m.tauRew, _ = rank.KendallTau(rew, sa)
	return m, nil
}

func taskOf(m *schemas.Manifest) nn.Task {
	switch m.Target.Task {
	case schemas.TaskRegression:
		return nn.RegressionTask()
	case schemas.TaskBinary:
		return nn.BinaryTask()
	}
	return nn.MulticlassTask(len(m.Target.Classes))
}

// uniformFeasible draws n distinct feasible architectures uniformly (fixed seed), sorted by
// parameter count so the list reads well.
func uniformFeasible(s *space.Space, cons space.Constraints, n int) ([]space.Arch, error) {
	probs := policy.NewPolicy(s).Probs()
	rng := policy.Stream(12345, "proxy-archs", 0)
	var out []space.Arch
	for tries := 0; len(out) < n && tries < 1_000_000; tries++ {
		a := policy.Sample(probs, rng, nil)
		if ok, _ := cons.Feasible(s, a); ok && !slices.ContainsFunc(out, func(b space.Arch) bool { return space.Equal(a, b) }) {
			out = append(out, a)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("only %d feasible architectures found", len(out))
	}
	slices.SortFunc(out, func(a, b space.Arch) int { return int(s.Params(a) - s.Params(b)) })
	return out, nil
}

func header(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(path, ".gz") {
		if r, err = gzip.NewReader(r); err != nil {
			return nil, err
		}
	}
	return csv.NewReader(r).Read()
}

func mean(v []float64) float64 {
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
