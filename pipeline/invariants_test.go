package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/infra/natsx"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

// fixture is one embedded server and local store holding an ingested connect4.
type fixture struct {
	env  *Env
	spec func(run string) *schemas.RunSpec
}

// buses are the bus implementations every invariant is checked on.
var buses = []string{BusMemory, BusEmbedded}

// eachBus runs f as a subtest per bus implementation.
func eachBus(t *testing.T, f func(t *testing.T, kind string)) {
	for _, k := range buses {
		t.Run(k, func(t *testing.T) { f(t, k) })
	}
}

func newFixture(t *testing.T, ackWait time.Duration, busKind string) *fixture {
	t.Helper()
	needData(t, connect4)
	ctx := context.Background()
	env, err := Open(ctx, EnvOptions{StoreURL: t.TempDir(), Bus: busKind, Log: testLog(t), Setup: natsx.SetupOptions{WorkAckWait: ackWait}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	ds, err := EnsureDataset(ctx, env, DatasetOptions{Data: connect4, RowsPerShard: 16384})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, spec: func(run string) *schemas.RunSpec {
		spec, err := BuildSpec(ds, SpecOptions{Run: run, Constraints: schemas.Constraints{MaxParams: 15000},
			Search: search.Config{Steps: 50, Seed: 7, TopK: 2, ValBatch: 512}, CheckpointEvery: 20, Trial: quickTrial})
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}}
}

var quickTrial = schemas.Trial{Seed: 1, Epochs: 2, Batch: 512, LR: 1e-3, Patience: 1}

func (f *fixture) run(t *testing.T, spec *schemas.RunSpec, evaluators int) (*coordinator.Outcome, *Services) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	svc, err := StartServices(context.Background(), f.env, evaluators, true, func(i int) EvaluatorOptions {
		return EvaluatorOptions{Name: EvaluatorName(i)}
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := coordinator.Run(ctx, coordinator.Config{Bus: f.env.Bus, Store: f.env.Store, Log: f.env.Log, Spec: spec})
	svc.Stop()
	if err != nil {
		t.Fatal(err)
	}
	return out, svc
}

// Work is split by shard, never by evaluator: 1 or 3 evaluators give the same run, on
// either bus, and the same as the direct loop.
func TestDeterministicAcrossEvaluatorCounts(t *testing.T) {
	var first *Result
	eachBus(t, func(t *testing.T, kind string) {
		f := newFixture(t, 0, kind)
		if n := len(f.spec("x").Dataset.TrainRows); n < 2 {
			t.Fatalf("test needs several training shards, got %d", n)
		}
		a, _ := f.run(t, f.spec("one"), 1)
		b, _ := f.run(t, f.spec("three"), 3)
		ra, rb := Summarize(a), Summarize(b)
		if ra.Trace != rb.Trace || ra.Arch != rb.Arch || ra.ValLoss != rb.ValLoss {
			t.Fatalf("1 evaluator: %s %s %v; 3 evaluators: %s %s %v", ra.Trace[:12], ra.Arch, ra.ValLoss, rb.Trace[:12], rb.Arch, rb.ValLoss)
		}
		// And the same as the direct in-process loop of the core over the same shards.
		if got := directTrace(t, f, f.spec("direct")); got != ra.Trace {
			t.Fatalf("pipeline trace %s differs from the direct loop's %s", ra.Trace[:12], got[:12])
		}
		if first == nil {
			first = &ra
		} else if first.Trace != ra.Trace || first.Arch != ra.Arch || first.ValLoss != ra.ValLoss || first.TestLoss != ra.TestLoss {
			t.Fatalf("%s bus: %s %s %v %v; %s bus: %s %s %v %v", buses[0], first.Trace[:12], first.Arch, first.ValLoss, first.TestLoss,
				kind, ra.Trace[:12], ra.Arch, ra.ValLoss, ra.TestLoss)
		}
	})
}

// directTrace runs internal/search with the Local backend on the same shards.
func directTrace(t *testing.T, f *fixture, spec *schemas.RunSpec) string {
	t.Helper()
	e, err := DirectEngine(context.Background(), f.env.Store, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return Trace(e.Hist)
}

// A coordinator that dies mid-run (no final checkpoint) and is resumed from its last
// checkpoint ends with the same result as an uninterrupted run, although the evaluators
// are ahead of the checkpoint and must rebuild their replicas from a snapshot.
func TestCoordinatorCrashAndResume(t *testing.T) { eachBus(t, testCoordinatorCrashAndResume) }

func testCoordinatorCrashAndResume(t *testing.T, kind string) {
	f := newFixture(t, 0, kind)
	want, _ := f.run(t, f.spec("straight"), 2)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	svc, err := StartServices(ctx, f.env, 2, true, func(i int) EvaluatorOptions { return EvaluatorOptions{Name: EvaluatorName(i)} })
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	spec := f.spec("crashy")
	_, err = coordinator.Run(ctx, coordinator.Config{Bus: f.env.Bus, Store: f.env.Store, Log: f.env.Log, Spec: spec, StopAfter: 33})
	if !errors.Is(err, coordinator.ErrStopped) {
		t.Fatalf("first incarnation: %v", err)
	}
	ck, err := coordinator.LoadCheckpoint(ctx, f.env.Store, "crashy")
	if err != nil || ck.Step != 20 {
		t.Fatalf("checkpoint after crash: step %v err %v (want 20)", ck, err)
	}
	got, err := coordinator.Run(ctx, coordinator.Config{Bus: f.env.Bus, Store: f.env.Store, Log: f.env.Log, Resume: true, ResumeRun: "crashy"})
	if err != nil {
		t.Fatal(err)
	}
	rw, rg := Summarize(want), Summarize(got)
	if rw.Trace != rg.Trace || rw.Arch != rg.Arch || rw.ValLoss != rg.ValLoss || rw.TestLoss != rg.TestLoss {
		t.Fatalf("uninterrupted %s %s %v; resumed %s %s %v", rw.Trace[:12], rw.Arch, rw.ValLoss, rg.Trace[:12], rg.Arch, rg.ValLoss)
	}
}

// Garbage and foreign messages on the work and result subjects are rejected with a logged
// reason; no service stops and the run ends normally.
func TestBadMessagesAreRejected(t *testing.T) { eachBus(t, testBadMessagesAreRejected) }

func testBadMessagesAreRejected(t *testing.T, kind string) {
	f := newFixture(t, 0, kind)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := f.env.Bus
	ev := NewEvaluator(f.env, EvaluatorOptions{Name: "victim"})
	evCtx, evStop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ev.Run(evCtx) }()
	svc, err := StartServices(ctx, f.env, 0, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	bad := [][]byte{
		[]byte("not json"),
		[]byte(`{"v":99,"type":"work","run":"r"}`),
		[]byte(`{"v":1,"type":"work","run":"r","step":-1,"kind":"train","arch":[8]}`),
		[]byte(`{"v":1,"type":"result","run":"bad","extra":1}`),
		[]byte(`{"v":1,"type":"work","run":"ghost","step":0,"shard":0,"kind":"score","version":0,"arch":[8,8,8],"rows":1}`),
	}
	for i, m := range bad {
		if err := b.Work.PublishRaw(ctx, "r", "train", m, "bad-work-"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	spec := f.spec("amid-noise")
	runDone := make(chan error, 1)
	started := make(chan struct{})
	var out *coordinator.Outcome
	go func() {
		var err error
		out, err = coordinator.Run(ctx, coordinator.Config{Bus: b, Store: f.env.Store, Log: f.env.Log, Spec: spec,
			OnStep: func(r search.Record, _ *search.Engine) {
				if r.Step == 3 {
					close(started)
				}
			}})
		runDone <- err
	}()
	<-started
	// Noise on the run's result subject while it runs.
	for i, m := range append(bad, []byte(`{"v":1,"type":"result","run":"amid-noise","attempt":1,"step":0,"shard":0,"kind":"train","version":0,"arch":[8],"rows":1,"loss_sum":1,"grad_len":2,"inline":3}`+"\nabc")) {
		if err := b.Results.PublishRaw(ctx, "amid-noise", m, "bad-result-"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	evStop()
	if err := <-done; err != nil {
		t.Fatalf("evaluator stopped with %v", err)
	}
	if st := ev.Stats(); st.Rejected < 4 || st.Items == 0 {
		t.Fatalf("evaluator stats %+v: want ≥ 4 rejected and work done", st)
	}
	if out.Stats.Rejected < len(bad) {
		t.Fatalf("coordinator rejected %d result messages, want ≥ %d", out.Stats.Rejected, len(bad))
	}
}

// An evaluator that dies holding an item (it never acks) has the item redelivered to
// another one after the ack wait; the run ends with the same result.
func TestEvaluatorDeathRedelivers(t *testing.T) { eachBus(t, testEvaluatorDeathRedelivers) }

func testEvaluatorDeathRedelivers(t *testing.T, kind string) {
	f := newFixture(t, 2*time.Second, kind)
	want, _ := f.run(t, f.spec("calm"), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	svc, err := StartServices(ctx, f.env, 1, true, func(i int) EvaluatorOptions { return EvaluatorOptions{Name: "survivor"} })
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	// A worker that takes one item and dies without acking it.
	spec := f.spec("stormy")
	runDone := make(chan error, 1)
	var got *coordinator.Outcome
	go func() {
		var err error
		got, err = coordinator.Run(ctx, coordinator.Config{Bus: f.env.Bus, Store: f.env.Store, Log: f.env.Log, Spec: spec})
		runDone <- err
	}()
	d, err := f.env.Bus.Work.Next(ctx, 10*time.Second)
	if err != nil || d == nil {
		t.Fatalf("took no item: %v", err)
	}
	t.Logf("dead evaluator holds %s", d.Subject())
	t0 := time.Now()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("run finished %v after the item was taken", time.Since(t0))
	if Summarize(got).Trace != Summarize(want).Trace {
		t.Fatal("run with a dead evaluator differs from a calm run")
	}
}

// A corrupt shard fails the run with an error naming the shard (not a hang, not a crash);
// a corrupt manifest is reported naming the manifest.
func TestCorruptDataIsNamed(t *testing.T) {
	f := newFixture(t, 0, BusMemory)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec := f.spec("corrupt")
	ds, err := EnsureDataset(ctx, f.env, DatasetOptions{Data: connect4, RowsPerShard: 16384})
	if err != nil {
		t.Fatal(err)
	}
	root := f.env.Store.URL()[len("file://"):]
	key := ds.Shards(schemas.SplitTrain)[1].Key
	p := filepath.Join(root, filepath.FromSlash(key))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := StartServices(ctx, f.env, 1, true, func(i int) EvaluatorOptions { return EvaluatorOptions{Name: EvaluatorName(i)} })
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	_, err = coordinator.Run(ctx, coordinator.Config{Bus: f.env.Bus, Store: f.env.Store, Log: f.env.Log, Spec: spec})
	if err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("run over a corrupt shard: %v (want the error to name %s)", err, key)
	}
	mkey := ds.Prefix + "/manifest.json"
	if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(mkey)), []byte(`{"format_version":1,`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDataset(ctx, f.env, DatasetOptions{Data: connect4, RowsPerShard: 16384}); err == nil || !strings.Contains(err.Error(), "manifest.json") {
		t.Fatalf("corrupt manifest: %v", err)
	}
}
