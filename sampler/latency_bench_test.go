package sampler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/space"
)

// BenchmarkLatencyEstimate measures how far the per-layer estimate is from whole-network
// measurements on 50 random children of the default 3-layer, 20-width space with 54 inputs
// and 7 classes (Covertype's shape), for inference and training steps, at the default batch
// and runs. It also reports how long measuring every layer of the space (and the children of
// the calibration) takes, which is the set-up cost of the estimate mode.
func BenchmarkLatencyEstimate(b *testing.B) {
	const archs = 50
	s, err := space.New(54, 7, 3, space.DefaultWidths)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 54))
	sample := make([]space.Arch, archs)
	for k := range sample {
		sample[k] = s.Index(rng.Int64N(s.Size()))
	}
	ctx := context.Background()
	var rep EstimateReport
	var tableSec [2]float64
	iter := 0
	for b.Loop() {
		m, err := NewMeter(MeterConfig{Space: s, Task: nn.MulticlassTask(7), Prefix: fmt.Sprintf("bench%d", iter)})
		if err != nil {
			b.Fatal(err)
		}
		iter++
		// The table first, as the estimate mode builds it; the report then reads its layers
		// from the cache and times only the whole children.
		for k, kind := range []LatencyKind{LatencyInference, LatencyTrain} {
			t0 := time.Now()
			if _, err := NewEstimatedLatency(ctx, m, kind, 1); err != nil {
				b.Fatal(err)
			}
			tableSec[k] = time.Since(t0).Seconds()
		}
		if rep, err = EstimateError(ctx, m, s, sample); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100*rep.Inference.MeanRelErr, "infer_err_%")
	b.ReportMetric(100*rep.Inference.MaxRelErr, "infer_maxerr_%")
	b.ReportMetric(rep.Inference.Spearman, "infer_rho")
	b.ReportMetric(100*rep.Train.MeanRelErr, "train_err_%")
	b.ReportMetric(100*rep.Train.MaxRelErr, "train_maxerr_%")
	b.ReportMetric(rep.Train.Spearman, "train_rho")
	b.ReportMetric(100*rep.Inference.UnscaledMeanRelErr, "infer_unscaled_err_%")
	b.ReportMetric(100*rep.Train.UnscaledMeanRelErr, "train_unscaled_err_%")
	b.ReportMetric(tableSec[0]+tableSec[1], "edge_table_s")

	// The testing package keeps only the first 10 lines of a benchmark's log.
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d children, batch %d, median of %d runs; edge table %.1f s\n", archs, rep.Inference.RowsPerPass, DefaultLatencyRuns, tableSec[0]+tableSec[1])
	sb.WriteString(rep.String())
	fmt.Fprintf(&sb, "%-12s %9s %9s %7s %9s %9s %7s\n", "arch", "infer ms", "estimate", "err", "train ms", "estimate", "err")
	for k := range min(5, archs) {
		in, tr := rep.Inference.Rows[k], rep.Train.Rows[k]
		fmt.Fprintf(&sb, "%-12s %9.3f %9.3f %6.1f%% %9.3f %9.3f %6.1f%%\n",
			in.Arch, in.WholeMs, in.EstimateMs, 100*in.RelErr(), tr.WholeMs, tr.EstimateMs, 100*tr.RelErr())
	}
	b.Log(strings.TrimSuffix(sb.String(), "\n"))
}
