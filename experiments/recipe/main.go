// Command recipe measures stand-alone training recipes side by side: for every dataset,
// architecture and seed it trains each recipe in turn (interleaved, so machine load hits
// them alike) and prints the test loss and seconds per run, then a summary per dataset.
//
//	go run ./experiments/recipe -shared ../shared/datasets -store /tmp/recipe-store -seeds 3 -recipes old,cos,plat
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/model"
	"github.com/tabnas/tabnas/pipeline"
	"github.com/tabnas/tabnas/schemas"
)

// recipes are the candidates; "old" is the retraining recipe before the schedule and decay.
var recipes = map[string]nn.TrainConfig{
	"old":             {Epochs: 60, Patience: 6, Schedule: nn.ScheduleConstant, WeightDecay: -1},
	"p12":             {Epochs: 60, Patience: 12, Schedule: nn.ScheduleConstant, WeightDecay: -1},
	"cos":             {Epochs: 60, Patience: 12, Schedule: nn.ScheduleCosine, WeightDecay: -1},
	"cos40":           {Epochs: 40, Patience: 10, Schedule: nn.ScheduleCosine, WeightDecay: -1},
	"cos30":           {Epochs: 30, Patience: 8, Schedule: nn.ScheduleCosine, WeightDecay: -1},
	"plat":            {Epochs: 60, Patience: 10, Schedule: nn.SchedulePlateau, PlateauPatience: 3, WeightDecay: -1},
	"plat2":           {Epochs: 60, Patience: 8, Schedule: nn.SchedulePlateau, PlateauPatience: 2, WeightDecay: -1},
	"plat-wd01":       {Epochs: 60, Patience: 10, Schedule: nn.SchedulePlateau, PlateauPatience: 3, WeightDecay: 0.1},
	"plat-wd1":        {Epochs: 60, Patience: 10, Schedule: nn.SchedulePlateau, PlateauPatience: 3, WeightDecay: 1},
	"plat2-wd01":      {Epochs: 60, Patience: 8, Schedule: nn.SchedulePlateau, PlateauPatience: 2, WeightDecay: 0.1},
	"cos40-wd01":      {Epochs: 40, Patience: 10, Schedule: nn.ScheduleCosine, WeightDecay: 0.1},
	"old-wd01":        {Epochs: 60, Patience: 6, Schedule: nn.ScheduleConstant, WeightDecay: 0.1},
	"plat-refit":      {Epochs: 60, Patience: 10, Schedule: nn.SchedulePlateau, PlateauPatience: 3, WeightDecay: -1, Refit: true},
	"cos-wd01":        {Epochs: 60, Patience: 12, Schedule: nn.ScheduleCosine, WeightDecay: 0.1},
	"plat-wd03":       {Epochs: 60, Patience: 10, Schedule: nn.SchedulePlateau, PlateauPatience: 3, WeightDecay: 0.3},
	"old-wd03":        {Epochs: 60, Patience: 6, Schedule: nn.ScheduleConstant, WeightDecay: 0.3},
	"plat-wd01-refit": {Epochs: 60, Patience: 10, Schedule: nn.SchedulePlateau, PlateauPatience: 3, WeightDecay: 0.1, Refit: true},
	"lr2-plat-wd01":   {Epochs: 60, Patience: 10, LR: 2e-3, Schedule: nn.SchedulePlateau, PlateauPatience: 3, WeightDecay: 0.1},
	"plat2-wd03":      {Epochs: 60, Patience: 8, Schedule: nn.SchedulePlateau, PlateauPatience: 2, WeightDecay: 0.3},
	"lr2-plat2-wd03":  {Epochs: 60, Patience: 8, LR: 2e-3, Schedule: nn.SchedulePlateau, PlateauPatience: 2, WeightDecay: 0.3},
	"lr2-plat2-wd01":  {Epochs: 60, Patience: 8, LR: 2e-3, Schedule: nn.SchedulePlateau, PlateauPatience: 2, WeightDecay: 0.1},
	"default":         {Epochs: 60},
}

type dataSpec struct {
	name, file  string
	categorical []string
}

var datasets = []dataSpec{
	{"connect4", "connect4/connect4.csv.gz", []string{"*"}},
	{"higgs", "higgs/higgs_26k.csv.gz", nil},
	{"adult", "adult/adult.csv.gz", []string{"workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"}},
}

func main() {
	shared := flag.String("shared", "../shared/datasets", "directory of the shared datasets")
	store := flag.String("store", filepath.Join(os.TempDir(), "tabnas-recipe-store"), "object store for the ingested data")
	seeds := flag.Int("seeds", 3, "seeds per architecture")
	names := flag.String("recipes", "old,cos,plat", "comma-separated recipes ("+strings.Join(keys(), ",")+")")
	archs := flag.String("archs", "64-64-64,192-128-64,8-112-8", "comma-separated architectures")
	only := flag.String("datasets", "connect4,higgs,adult", "comma-separated datasets")
	flag.Parse()
	if err := run(*shared, *store, *seeds, strings.Split(*names, ","), strings.Split(*archs, ","), strings.Split(*only, ",")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func keys() []string {
	var k []string
	for n := range recipes {
		k = append(k, n)
	}
	return k
}

func run(shared, store string, seeds int, names, archs, only []string) error {
	ctx := context.Background()
	for _, n := range names {
		if _, ok := recipes[n]; !ok {
			return fmt.Errorf("unknown recipe %q", n)
		}
	}
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	env, err := pipeline.Open(ctx, pipeline.EnvOptions{StoreURL: store, Log: slog.New(slog.DiscardHandler), Name: "recipe"})
	if err != nil {
		return err
	}
	defer env.Close()
	type key struct{ ds, recipe string }
	loss, secs, epochs := map[key][]float64{}, map[key][]float64{}, map[key][]float64{}
	fmt.Println("dataset\tarch\tseed\trecipe\ttest_loss\tval_loss\tepochs\tbest_epoch\tseconds")
	for _, d := range datasets {
		if !contains(only, d.name) {
			continue
		}
		ds, err := pipeline.EnsureDataset(ctx, env, pipeline.DatasetOptions{Data: filepath.Join(shared, d.file), Categorical: d.categorical})
		if err != nil {
			return err
		}
		task, err := model.TaskOf(ds.Manifest)
		if err != nil {
			return err
		}
		load := func(split string) (nn.Data, error) {
			x, y, err := ds.ReadSplit(ctx, split, nil)
			return nn.Data{X: x, Y: y, Cols: ds.Manifest.FeatureWidth}, err
		}
		train, err := load(schemas.SplitTrain)
		if err != nil {
			return err
		}
		val, err := load(schemas.SplitVal)
		if err != nil {
			return err
		}
		test, err := load(schemas.SplitTest)
		if err != nil {
			return err
		}
		for _, a := range archs {
			widths, err := space.ParseWidths(a)
			if err != nil {
				return err
			}
			for s := 1; s <= seeds; s++ {
				for _, n := range names {
					cfg := recipes[n]
					cfg.Seed = uint64(s)
					t0 := time.Now()
					net, h, err := nn.TrainStandalone(nn.Arch(widths), task, train, val, cfg)
					if err != nil {
						return err
					}
					sec := time.Since(t0).Seconds()
					ws := net.NewWorkspace(1024)
					tl := net.Evaluate(test, ws).Loss
					fmt.Printf("%s\t%s\t%d\t%s\t%.4f\t%.4f\t%d\t%d\t%.2f\n", d.name, a, s, n, tl, h.BestValLoss, len(h.Epochs), h.BestEpoch, sec)
					k := key{d.name, n}
					loss[k] = append(loss[k], tl)
					secs[k] = append(secs[k], sec)
					epochs[k] = append(epochs[k], float64(len(h.Epochs)))
				}
			}
		}
	}
	fmt.Println("\n| dataset | recipe | mean test loss | Δ vs " + names[0] + " | lower in | mean epochs | mean seconds | × " + names[0] + " time |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, d := range datasets {
		if !contains(only, d.name) {
			continue
		}
		base := key{d.name, names[0]}
		for _, n := range names {
			k := key{d.name, n}
			wins := 0
			for i := range loss[k] {
				if loss[k][i] < loss[base][i] {
					wins++
				}
			}
			fmt.Printf("| %s | %s | %.4f | %+.4f | %d/%d | %.1f | %.2f | %.2f |\n", d.name, n, mean(loss[k]), mean(loss[k])-mean(loss[base]),
				wins, len(loss[k]), mean(epochs[k]), mean(secs[k]), mean(secs[k])/mean(secs[base]))
		}
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
