package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tabnas/tabnas/pipeline"
)

// BenchmarkEvaluatorProcesses: search steps per second of a distributed run on the real
// servers with 1 and 2 evaluator processes (connect4 one-hot, 4 training shards, batch
// 2,048 and validation batch 4,096 per step, 200 steps), from the coordinator's
// search_seconds (retraining excluded).
func BenchmarkEvaluatorProcesses(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("evaluators-%d", n), func(b *testing.B) {
			in := servers(b)
			in.start(b, "sampler")
			for i := 0; i < n; i++ {
				in.start(b, "evaluator", "--name", fmt.Sprintf("ev%d", i))
			}
			var steps int
			var secs float64
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				args := []string{"coordinator", "--nats", in.natsURL, "--store", in.store, "--prefix", in.prefix,
					"--run", fmt.Sprintf("bench-%d-%d", n, i), "--data", connect4, "--categorical", "*", "--max-params", "20000",
					"--steps", "200", "--warmup", "0.05", "--batch", "2048", "--val-batch", "4096", "--rows-per-shard", "16384",
					"--top-k", "1", "--trial-epochs", "1", "--trial-patience", "1", "--json", "--quiet", "--progress", "none"}
				cmd := exec.CommandContext(ctx, bin, args...)
				cmd.Env = in.env
				out, err := cmd.Output()
				cancel()
				if err != nil {
					b.Fatalf("coordinator: %v", err)
				}
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				var r pipeline.Result
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
					b.Fatal(err)
				}
				steps += r.Steps
				secs += r.SearchSecs
			}
			b.ReportMetric(float64(steps)/secs, "steps/s")
		})
	}
}
