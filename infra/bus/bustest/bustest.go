// Package bustest holds the conformance suite every bus implementation must pass: the
// in-memory bus and JetStream (embedded and on the real test server) behave the same for
// every seam the services use.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/schemas"
)

// NewBus returns a fresh bus (nothing shared with any other test) whose work items are
// handed out again after ackWait.
type NewBus func(t *testing.T, ackWait time.Duration) *bus.Bus

// Run runs the suite.
func Run(t *testing.T, newBus NewBus) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newBus NewBus)
	}{
		{"WorkOncePerItem", testWorkOnce},
		{"WorkDeduplicates", testWorkDedup},
		{"WorkRedelivery", testWorkRedelivery},
		{"WorkValidation", testWorkValidation},
		{"WorkNoAliasing", testWorkNoAliasing},
		{"Results", testResults},
		{"ResultsLargeGradient", testResultsLarge},
		{"ResultsValidation", testResultsValidation},
		{"Versions", testVersions},
		{"Sampler", testSampler},
		{"KV", testKV},
		{"Blobs", testBlobs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBus) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func item(run string, seq int64, shard int) *schemas.WorkItem {
	return &schemas.WorkItem{Envelope: schemas.NewEnvelope(schemas.TypeWork, run), Attempt: 1, Seq: seq, Step: 3,
		Shard: shard, Kind: schemas.KindTrain, Version: 3, Arch: []int{8, 16}, Rows: 10, Scale: 0.1}
}

func next(t *testing.T, b *bus.Bus, wait time.Duration) (bus.Delivery, *schemas.WorkItem) {
	t.Helper()
	d, err := b.Work.Next(ctxT(t), wait)
	if err != nil {
		t.Fatal(err)
	}
	if d == nil {
		return nil, nil
	}
	w, err := d.Item()
	if err != nil {
		t.Fatalf("item: %v", err)
	}
	return d, w
}

func testWorkOnce(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	if err := b.Work.Publish(ctx, item("r1", 1, 0), item("r1", 1, 1), item("r1", 1, 2)); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 3 {
		d, w := next(t, b, 5*time.Second)
		if d == nil {
			t.Fatalf("items missing; got %v", seen)
		}
		if seen[w.Shard] {
			t.Fatalf("shard %d handed out twice", w.Shard)
		}
		seen[w.Shard] = true
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if d, w := next(t, b, 200*time.Millisecond); d != nil {
		t.Fatalf("extra item %s", w.ID())
	}
}

func testWorkDedup(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	for range 2 {
		if err := b.Work.Publish(ctx, item("r1", 7, 0)); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := next(t, b, 5*time.Second)
	if d == nil {
		t.Fatal("no item")
	}
	d.Ack()
	if d, w := next(t, b, 200*time.Millisecond); d != nil {
		t.Fatalf("duplicate handed out: %s", w.ID())
	}
}

func testWorkRedelivery(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Second)
	ctx := ctxT(t)
	if err := b.Work.Publish(ctx, item("r1", 1, 0), item("r1", 1, 1), item("r1", 1, 2)); err != nil {
		t.Fatal(err)
	}
	got := map[int]bus.Delivery{}
	for range 3 {
		d, w := next(t, b, 5*time.Second)
		if d == nil {
			t.Fatal("items missing")
		}
		got[w.Shard] = d
	}
	// Shard 0 is dropped by its holder (never acked), 1 is nak'ed, 2 is terminated.
	if err := got[1].Nak(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := got[2].Term(); err != nil {
		t.Fatal(err)
	}
	again := map[int]int{}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && (again[0] == 0 || again[1] == 0) {
		d, w := next(t, b, time.Second)
		if d == nil {
			continue
		}
		again[w.Shard]++
		d.Ack()
	}
	if again[0] != 1 || again[1] != 1 || again[2] != 0 {
		t.Fatalf("handed out again: %v; want shards 0 and 1 once, 2 never", again)
	}
	// An item kept in progress is not handed out again.
	if err := b.Work.Publish(ctx, item("r1", 2, 0)); err != nil {
		t.Fatal(err)
	}
	d, _ := next(t, b, 5*time.Second)
	for range 4 {
		time.Sleep(400 * time.Millisecond)
		if err := d.InProgress(); err != nil {
			t.Fatal(err)
		}
	}
	if d2, w := next(t, b, 100*time.Millisecond); d2 != nil {
		t.Fatalf("item in progress handed out again: %s", w.ID())
	}
	d.Ack()
}

func testWorkValidation(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	bad := item("r1", 1, 0)
	bad.Kind = "dance"
	if err := b.Work.Publish(ctx, bad); err == nil {
		t.Fatal("an invalid item was sent")
	}
	for i, raw := range []string{"not json", `{"v":99,"type":"work","run":"r"}`, `{"v":1,"type":"work","run":"r","step":-1,"kind":"train","arch":[8]}`} {
		if err := b.Work.PublishRaw(ctx, "r1", "train", []byte(raw), fmt.Sprint("raw", i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		d, err := b.Work.Next(ctx, 5*time.Second)
		if err != nil || d == nil {
			t.Fatalf("raw item: %v %v", d, err)
		}
		if w, err := d.Item(); err == nil {
			t.Fatalf("garbage accepted as %+v", w)
		}
		d.Term()
	}
}

func testWorkNoAliasing(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Second)
	ctx := ctxT(t)
	w := item("r1", 1, 0)
	if err := b.Work.Publish(ctx, w); err != nil {
		t.Fatal(err)
	}
	w.Arch[0] = 999 // the producer reuses its buffers
	d, got := next(t, b, 5*time.Second)
	if got.Arch[0] != 8 {
		t.Fatalf("receiver sees the producer's later write: %v", got.Arch)
	}
	got.Arch[1] = 777 // the receiver scribbles on its copy and dies
	_ = d
	d2, again := next(t, b, 10*time.Second)
	if d2 == nil || !slices.Equal(again.Arch, []int{8, 16}) {
		t.Fatalf("redelivered item %v", again)
	}
	d2.Ack()
}

func result(run string, seq int64, shard int, grad []float32) *schemas.Result {
	return &schemas.Result{Envelope: schemas.NewEnvelope(schemas.TypeResult, run), Attempt: 1, Seq: seq, Step: 3, Shard: shard,
		Kind: schemas.KindTrain, Version: 3, Arch: []int{8, 16}, Rows: 10, LossSum: 1.5, GradLen: len(grad)}
}

type collected struct {
	mu   sync.Mutex
	res  []*schemas.Result
	errs []error
	ch   chan struct{}
}

func collect(t *testing.T, b *bus.Bus, run string) *collected {
	c := &collected{ch: make(chan struct{}, 1000)}
	stop, err := b.Results.Subscribe(ctxT(t), run, func(r *schemas.Result, size int, err error) {
		c.mu.Lock()
		if err != nil {
			c.errs = append(c.errs, err)
		} else {
			c.res = append(c.res, r)
		}
		c.mu.Unlock()
		c.ch <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return c
}

func (c *collected) wait(t *testing.T, n int) {
	t.Helper()
	for {
		c.mu.Lock()
		got := len(c.res) + len(c.errs)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d messages arrived", got, n)
		}
	}
}

func floats(n int, seed float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = seed + float32(i)*0.25
	}
	return v
}

func testResults(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	// Published before anyone listens: not delivered.
	if err := b.Results.Publish(ctx, result("r1", 1, 0, floats(4, 1)), floats(4, 1), nil); err != nil {
		t.Fatal(err)
	}
	c := collect(t, b, "r1")
	other := collect(t, b, "r2")
	g := floats(100, 2)
	want := slices.Clone(g)
	if err := b.Results.Publish(ctx, result("r1", 2, 0, g), g, nil); err != nil {
		t.Fatal(err)
	}
	g[0] = -1                                                                     // the producer reuses its buffer
	if err := b.Results.Publish(ctx, result("r1", 2, 0, g), g, nil); err != nil { // a retry: dropped
		t.Fatal(err)
	}
	score := &schemas.Result{Envelope: schemas.NewEnvelope(schemas.TypeResult, "r1"), Attempt: 1, Seq: 3, Step: -1, Kind: schemas.KindScore,
		Arch: []int{8}, Rows: 5, LossSum: 0.75}
	stored := make(chan error, 1)
	if err := b.Results.Publish(ctx, score, nil, func(err error) { stored <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-stored; err != nil {
		t.Fatal(err)
	}
	c.wait(t, 2)
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.res) != 2 || len(c.errs) != 0 {
		t.Fatalf("got %d results, %v errors; want 2 and none", len(c.res), c.errs)
	}
	r := c.res[0]
	if r.Seq != 2 || r.LossSum != 1.5 || r.GradLen != 100 {
		t.Fatalf("result %+v", r)
	}
	got, err := b.Results.Grad(ctx, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("gradient %v…, want %v…", got[:3], want[:3])
	}
	if s := c.res[1]; s.Kind != schemas.KindScore || s.Step != -1 || s.LossSum != 0.75 {
		t.Fatalf("score result %+v", s)
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if len(other.res) != 0 {
		t.Fatalf("another run's subscriber got %d results", len(other.res))
	}
}

func testResultsLarge(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	c := collect(t, b, "big")
	g := floats(300_000, 3) // 1.2 MB: over any message limit
	if err := b.Results.Publish(ctx, result("big", 1, 0, g), g, nil); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1)
	c.mu.Lock()
	r := c.res[0]
	c.mu.Unlock()
	got, err := b.Results.Grad(ctx, r, make([]float32, 10))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, g) {
		t.Fatal("large gradient differs")
	}
}

func testResultsValidation(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	c := collect(t, b, "r1")
	bad := result("r1", 1, 0, floats(3, 0))
	bad.Kind = "nap"
	if err := b.Results.Publish(ctx, bad, floats(3, 0), nil); err == nil {
		t.Fatal("an invalid result was sent")
	}
	short := result("r1", 1, 0, floats(3, 0))
	if err := b.Results.Publish(ctx, short, floats(2, 0), nil); err == nil {
		t.Fatal("a result with the wrong gradient length was sent")
	}
	for i, raw := range []string{"not json", `{"v":1,"type":"result","run":"bad","extra":1}`,
		`{"v":1,"type":"result","run":"r1","attempt":1,"step":0,"shard":0,"kind":"train","version":0,"arch":[8],"rows":1,"loss_sum":1,"grad_len":2,"inline":3}` + "\nabc"} {
		if err := b.Results.PublishRaw(ctx, "r1", []byte(raw), fmt.Sprint("raw", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.wait(t, 3)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) != 3 || len(c.res) != 0 {
		t.Fatalf("%d rejected, %d accepted; want 3 and 0", len(c.errs), len(c.res))
	}
}

func testVersions(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	if _, err := b.Versions.Get(ctx, "r1", 1, false, 0); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("missing version: %v, want ErrNotFound", err)
	}
	snap := floats(1000, 5)
	want := slices.Clone(snap)
	if err := b.Versions.Publish(ctx, &schemas.SuperNetVersion{Envelope: schemas.NewEnvelope(schemas.TypeSuperNet, "r1"), Version: 0, Snapshot: true, Len: len(snap)}, snap, nil); err != nil {
		t.Fatal(err)
	}
	snap[0] = 42
	m, err := b.Versions.Get(ctx, "r1", 0, true, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Versions.Weights(ctx, m, nil)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("snapshot weights differ (err %v)", err)
	}
	if _, err := b.Versions.Get(ctx, "r1", 0, false, 0); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("a snapshot answered for a delta: %v", err)
	}
	// A replica waiting for a version gets it when it is published.
	done := make(chan error, 1)
	var dm *schemas.SuperNetVersion
	go func() {
		var err error
		dm, err = b.Versions.Get(ctx, "r1", 1, false, 10*time.Second)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	delta := floats(30, 7)
	if err := b.Versions.Publish(ctx, &schemas.SuperNetVersion{Envelope: schemas.NewEnvelope(schemas.TypeSuperNet, "r1"), Version: 1, Arch: []int{2, 3}, Len: len(delta)}, delta, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if dm.Version != 1 || !slices.Equal(dm.Arch, []int{2, 3}) {
		t.Fatalf("delta %+v", dm)
	}
	dst := make([]float32, 5)
	got, err = b.Versions.Weights(ctx, dm, dst)
	if err != nil || !slices.Equal(got, delta) {
		t.Fatalf("delta weights differ (err %v)", err)
	}
	// Read twice (several replicas): still there.
	if got2, err := b.Versions.Weights(ctx, dm, nil); err != nil || !slices.Equal(got2, delta) {
		t.Fatalf("second read of a delta: %v", err)
	}
	bad := &schemas.SuperNetVersion{Envelope: schemas.NewEnvelope(schemas.TypeSuperNet, "r1"), Version: 2, Arch: []int{2}, Len: 4}
	if err := b.Versions.Publish(ctx, bad, floats(3, 0), nil); err == nil {
		t.Fatal("a version with the wrong length was sent")
	}
}

type handler struct{ calls atomic.Int32 }

func (h *handler) Feasible(_ context.Context, req *schemas.FeasibleRequest) *schemas.FeasibleReply {
	h.calls.Add(1)
	rep := &schemas.FeasibleReply{Envelope: schemas.NewEnvelope(schemas.TypeFeasible, req.Run), Arch: req.Arch,
		Feasible: req.Arch[0] < 100, Costs: map[string]float64{"params": float64(req.Arch[0]) * 10}}
	if req.Arch[0] == 13 {
		rep.Error = "unlucky"
	}
	return rep
}

func (h *handler) Estimate(_ context.Context, req *schemas.EstimateRequest) *schemas.EstimateReply {
	h.calls.Add(1)
	return &schemas.EstimateReply{Envelope: schemas.NewEnvelope(schemas.TypeEstimate, req.Run), Step: req.Step,
		Estimate: policy.Estimate{PV: 0.1 + 0.2, Marginals: [][]float64{{1.0 / 3, 2.0 / 3}}, Samples: 5, Accepted: 2}}
}

func testSampler(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	// A request made before any sampler serves waits for one.
	early := make(chan error, 1)
	go func() {
		rep, err := b.Sampler.Feasible(ctx, &schemas.FeasibleRequest{Envelope: schemas.NewEnvelope(schemas.TypeFeasibleReq, "r1"), Arch: []int{5}})
		if err == nil && !rep.Feasible {
			err = fmt.Errorf("reply %+v", rep)
		}
		early <- err
	}()
	time.Sleep(100 * time.Millisecond)
	sctx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	served := make(chan error, 1)
	h := &handler{}
	go func() { served <- b.Sampler.Serve(sctx, h, ready) }()
	<-ready
	if err := <-early; err != nil {
		t.Fatal(err)
	}
	rep, err := b.Sampler.Feasible(ctx, &schemas.FeasibleRequest{Envelope: schemas.NewEnvelope(schemas.TypeFeasibleReq, "r1"), Arch: []int{200, 3}})
	if err != nil || rep.Feasible || rep.Costs["params"] != 2000 || !slices.Equal(rep.Arch, []int{200, 3}) {
		t.Fatalf("feasible reply %+v, %v", rep, err)
	}
	if rep, err := b.Sampler.Feasible(ctx, &schemas.FeasibleRequest{Envelope: schemas.NewEnvelope(schemas.TypeFeasibleReq, "r1"), Arch: []int{13}}); err != nil || rep.Error != "unlucky" {
		t.Fatalf("reply with an error: %+v, %v", rep, err)
	}
	probs := [][]float64{{0.25, 0.75}}
	er, err := b.Sampler.Estimate(ctx, &schemas.EstimateRequest{Envelope: schemas.NewEnvelope(schemas.TypeEstimateReq, "r1"), Step: 9, Probs: probs})
	if err != nil || er.Step != 9 || er.Estimate.PV != 0.1+0.2 || er.Estimate.Marginals[0][0] != 1.0/3 {
		t.Fatalf("estimate reply %+v, %v", er, err)
	}
	if _, err := b.Sampler.Estimate(ctx, &schemas.EstimateRequest{Envelope: schemas.NewEnvelope(schemas.TypeEstimateReq, "r1"), Step: 9, Probs: [][]float64{{0.5, 0.6}}}); err == nil {
		t.Fatal("an invalid request was sent")
	}
	stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if h.calls.Load() != 4 {
		t.Fatalf("handler called %d times, want 4", h.calls.Load())
	}
}

func testKV(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	for _, kv := range []bus.KV{b.Status, b.Latency} {
		if _, _, err := kv.Get(ctx, "r1.x"); !errors.Is(err, bus.ErrNotFound) {
			t.Fatalf("missing key: %v", err)
		}
		if err := kv.Put(ctx, "r1.x", []byte("a")); err != nil {
			t.Fatal(err)
		}
		v, rev, err := kv.Get(ctx, "r1.x")
		if err != nil || string(v) != "a" {
			t.Fatalf("get: %q %v", v, err)
		}
		if err := kv.Create(ctx, "r1.x", []byte("b")); !errors.Is(err, bus.ErrExists) {
			t.Fatalf("create over a key: %v", err)
		}
		if err := kv.Update(ctx, "r1.x", []byte("c"), rev+100); !errors.Is(err, bus.ErrConflict) {
			t.Fatalf("update at a stale revision: %v", err)
		}
		if err := kv.Update(ctx, "r1.x", []byte("d"), rev); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := kv.Get(ctx, "r1.x"); string(v) != "d" {
			t.Fatalf("after update: %q", v)
		}
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := b.NextAttempt(ctx, "r9"); err != nil || n != want {
			t.Fatalf("attempt %d, %v; want %d", n, err, want)
		}
	}
	st := &schemas.RunStatus{Envelope: schemas.NewEnvelope(schemas.TypeStatus, "r9"), State: schemas.StateRunning, Step: 4, Steps: 10}
	if err := b.PutStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetStatus(ctx, "r9"); err != nil || got.Step != 4 {
		t.Fatalf("status %+v %v", got, err)
	}
	if _, err := b.GetSpec(ctx, "nobody"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("missing spec: %v", err)
	}
}

func testBlobs(t *testing.T, newBus NewBus) {
	b := newBus(t, time.Minute)
	ctx := ctxT(t)
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := b.Blobs.PutBytes(ctx, "r1/trial/0/8-8", data); err != nil {
		t.Fatal(err)
	}
	got, err := b.Blobs.GetBytes(ctx, "r1/trial/0/8-8")
	if err != nil || !slices.Equal(got, data) {
		t.Fatalf("blob differs (%d bytes, %v)", len(got), err)
	}
	if err := b.Blobs.Delete(ctx, "r1/trial/0/8-8"); err != nil {
		t.Fatal(err)
	}
	if err := b.Blobs.Delete(ctx, "r1/trial/0/8-8"); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	if _, err := b.Blobs.GetBytes(ctx, "r1/trial/0/8-8"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("deleted blob: %v", err)
	}
	if b.Res.Blobs == nil {
		t.Fatal("Res.Blobs is not set")
	}
}
