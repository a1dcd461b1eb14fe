// Package e2e runs the tabnas binary as separate processes against a real nats-server and
// an S3 server (versitygw), started by infra/scripts/with-servers.sh, and checks the
// pipeline's invariants across process boundaries: determinism against the one-process
// mode with 1 and 3 evaluators, an evaluator killed with SIGKILL, and a coordinator killed
// and resumed from its checkpoint.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tabnas/tabnas/infra/testenv"
	"github.com/tabnas/tabnas/pipeline"
)

const connect4 = "../../shared/datasets/connect4/connect4.csv.gz"

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tabnas-e2e-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "tabnas")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/tabnas")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tabnas:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// infra is the real servers plus a fresh namespace (stream prefix, store prefix) per test.
type infra struct {
	natsURL string
	store   string
	prefix  string
	env     []string
}

func servers(t testing.TB) *infra {
	t.Helper()
	if _, err := os.Stat(connect4); err != nil {
		t.Skipf("shared datasets not laid beside the repository: %v", err)
	}
	v := testenv.Lookup(t, testenv.NATSURL, testenv.S3Endpoint, testenv.S3AccessKey, testenv.S3SecretKey, testenv.S3Bucket)
	id := fmt.Sprintf("e2e%d", rand.Uint32())
	return &infra{natsURL: v[0], store: "s3://" + v[4] + "/" + id, prefix: id,
		env: append(os.Environ(), "TABNAS_S3_ENDPOINT="+v[1], "AWS_ACCESS_KEY_ID="+v[2], "AWS_SECRET_ACCESS_KEY="+v[3],
			"AWS_REGION=us-east-1", "TABNAS_ACK_WAIT=3s")}
}

var runArgs = []string{"--data", connect4, "--max-params", "15000", "--steps", "60", "--seed", "5", "--top-k", "2",
	"--trial-epochs", "2", "--trial-patience", "1", "--rows-per-shard", "16384", "--val-batch", "512", "--checkpoint-every", "20",
	"--json", "--quiet", "--progress", "none"}

func lastJSON(t *testing.T, out []byte) pipeline.Result {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r pipeline.Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last stdout line is not the result JSON: %v\n%s", err, out)
	}
	return r
}

var (
	baseOnce sync.Once
	base     pipeline.Result
	baseErr  error
)

// oneProcess is the reference: the same run in one process (embedded NATS, local store).
func oneProcess(t *testing.T) pipeline.Result {
	baseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tabnas-e2e-one-")
		if err != nil {
			baseErr = err
			return
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command(bin, append([]string{"search", "--out", dir, "--run", "reference"}, runArgs...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			baseErr = fmt.Errorf("one-process search: %v\n%s", err, stderr.String())
			return
		}
		json.Unmarshal([]byte(lastLine(out)), &base)
	})
	if baseErr != nil {
		t.Fatal(baseErr)
	}
	return base
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// proc is a service process whose logs go to the test log on failure.
type proc struct {
	cmd *exec.Cmd
	out bytes.Buffer
	mu  sync.Mutex
}

func (p *proc) Write(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return p.out.Write(b) }

func (in *infra) start(t testing.TB, role string, extra ...string) *proc {
	t.Helper()
	args := append([]string{role, "--nats", in.natsURL, "--store", in.store, "--prefix", in.prefix}, extra...)
	p := &proc{cmd: exec.Command(bin, args...)}
	p.cmd.Env = in.env
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("--- %s %s log:\n%s", role, strings.Join(extra, " "), p.out.String())
		}
	})
	return p
}

func (in *infra) coordinator(ctx context.Context, run string) *exec.Cmd {
	args := append([]string{"coordinator", "--nats", in.natsURL, "--store", in.store, "--prefix", in.prefix, "--run", run}, runArgs...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = in.env
	return cmd
}

func sameRun(t *testing.T, what string, got, want pipeline.Result) {
	t.Helper()
	if got.Trace != want.Trace || got.Arch != want.Arch || got.ValLoss != want.ValLoss || got.TestLoss != want.TestLoss || got.Params != want.Params {
		t.Fatalf("%s: trace %.12s arch %s val %v test %v; one-process: trace %.12s arch %s val %v test %v",
			what, got.Trace, got.Arch, got.ValLoss, got.TestLoss, want.Trace, want.Arch, want.ValLoss, want.TestLoss)
	}
	if !got.Feasible || got.Params > 15000 {
		t.Fatalf("%s: answer %s (%d params) is not feasible", what, got.Arch, got.Params)
	}
}

// Same seed, separate processes on real servers, 1 then 3 evaluators: the same sequence
// of sampled architectures (trace) and the same result as the one-process run.
func TestDistributedMatchesOneProcess(t *testing.T) {
	in := servers(t)
	want := oneProcess(t)
	in.start(t, "sampler")
	in.start(t, "evaluator", "--name", "ev1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := in.coordinator(ctx, "one-evaluator").Output()
	if err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	sameRun(t, "distributed, 1 evaluator", lastJSON(t, out), want)

	in.start(t, "evaluator", "--name", "ev2")
	in.start(t, "evaluator", "--name", "ev3")
	out, err = in.coordinator(ctx, "three-evaluators").Output()
	if err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	sameRun(t, "distributed, 3 evaluators", lastJSON(t, out), want)
}

// waitStep polls the run's status in the KV bucket until it reaches step.
func (in *infra) waitStep(t *testing.T, run string, step int64) {
	t.Helper()
	nc, err := nats.Connect(in.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(6 * time.Minute) // an ingest under the race detector on a loaded machine takes minutes
	for time.Now().Before(deadline) {
		kv, err := js.KeyValue(context.Background(), in.prefix+"_status")
		if err == nil {
			if e, err := kv.Get(context.Background(), run+".status"); err == nil {
				var st struct{ Step int64 }
				if json.Unmarshal(e.Value(), &st) == nil && st.Step >= step {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("run %s never reached step %d", run, step)
}

// An evaluator killed with SIGKILL mid-run: its items are redelivered and the run ends
// with the same result.
func TestDistributedEvaluatorKilled(t *testing.T) {
	in := servers(t)
	want := oneProcess(t)
	in.start(t, "sampler")
	victim := in.start(t, "evaluator", "--name", "victim")
	in.start(t, "evaluator", "--name", "survivor")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	coord := in.coordinator(ctx, "evaluator-killed")
	var stdout bytes.Buffer
	coord.Stdout = &stdout
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	in.waitStep(t, "evaluator-killed", 25)
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	if err := coord.Wait(); err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	sameRun(t, "evaluator killed", lastJSON(t, stdout.Bytes()), want)
}

// A coordinator killed with SIGKILL and resumed from its last checkpoint gives the same
// result as an uninterrupted run.
func TestDistributedCoordinatorKilledAndResumed(t *testing.T) {
	in := servers(t)
	want := oneProcess(t)
	in.start(t, "sampler")
	in.start(t, "evaluator", "--name", "ev1")
	in.start(t, "evaluator", "--name", "ev2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	coord := in.coordinator(ctx, "coordinator-killed")
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	in.waitStep(t, "coordinator-killed", 30)
	if err := coord.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	coord.Wait()
	resume := exec.CommandContext(ctx, bin, "resume", "--run", "coordinator-killed", "--nats", in.natsURL, "--store", in.store,
		"--prefix", in.prefix, "--json", "--quiet")
	resume.Env = in.env
	var stderr bytes.Buffer
	resume.Stderr = &stderr
	out, err := resume.Output()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, stderr.String())
	}
	sameRun(t, "coordinator killed and resumed", lastJSON(t, out), want)
}
