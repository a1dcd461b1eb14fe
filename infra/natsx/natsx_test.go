package natsx_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tabnas/tabnas/infra/natsx"
	"github.com/tabnas/tabnas/infra/natsx/natstest"
)

// connectFn opens one more client, as another process would.
type connectFn func(t *testing.T) (*nats.Conn, jetstream.JetStream)

// onBoth runs fn against an embedded server and against the real nats-server binary.
func onBoth(t *testing.T, fn func(t *testing.T, connect connectFn)) {
	t.Run("embedded", func(t *testing.T) {
		s, _, _ := natstest.Embedded(t)
		fn(t, func(t *testing.T) (*nats.Conn, jetstream.JetStream) {
			nc, err := natsx.ConnectEmbedded(s, "test")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			return nc, js
		})
	})
	t.Run("real", func(t *testing.T) {
		natstest.URL(t)
		fn(t, func(t *testing.T) (*nats.Conn, jetstream.JetStream) { return natstest.Real(t) })
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestSetupIdempotent(t *testing.T) {
	onBoth(t, func(t *testing.T, connect connectFn) {
		ctx := testCtx(t)
		_, js := connect(t)
		names := natstest.Names(t, js)
		opts := natsx.SetupOptions{WorkAckWait: 3 * time.Second}
		if _, err := natsx.Setup(ctx, js, names, opts); err != nil {
			t.Fatal(err)
		}
		r, err := natsx.Setup(ctx, js, names, opts) // again: no error, same things
		if err != nil {
			t.Fatalf("second Setup: %v", err)
		}
		wi, err := r.Work.Info(ctx)
		if err != nil || wi.Config.Retention != jetstream.WorkQueuePolicy || wi.Config.Subjects[0] != names.WorkSubjects {
			t.Errorf("work stream = %+v, %v", wi, err)
		}
		ci, err := r.WorkConsumer.Info(ctx)
		if err != nil || ci.Config.Durable != names.WorkConsumer || ci.Config.AckWait != 3*time.Second || ci.Config.AckPolicy != jetstream.AckExplicitPolicy {
			t.Errorf("work consumer = %+v, %v", ci, err)
		}
		ri, err := r.Results.Info(ctx)
		if err != nil || ri.Config.Retention != jetstream.LimitsPolicy {
			t.Errorf("results stream = %+v, %v", ri, err)
		}
		vi, err := r.Versions.Info(ctx)
		if err != nil || vi.Config.MaxMsgsPerSubject != 4 {
			t.Errorf("versions stream = %+v, %v", vi, err)
		}
		if r.Status.Bucket() != names.StatusBucket || r.Latency.Bucket() != names.LatencyBucket {
			t.Errorf("kv buckets %s %s", r.Status.Bucket(), r.Latency.Bucket())
		}
		// Changing a mutable setting updates in place.
		r, err = natsx.Setup(ctx, js, names, natsx.SetupOptions{WorkAckWait: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if ci, _ := r.WorkConsumer.Info(ctx); ci == nil || ci.Config.AckWait != 5*time.Second {
			t.Errorf("ack wait not updated: %+v", ci)
		}
		// An existing stream of the wrong kind is reported by name, not silently reused.
		other := natstest.Names(t, js)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: other.WorkStream, Subjects: []string{other.WorkSubjects}}); err != nil {
			t.Fatal(err)
		}
		if _, err := natsx.Setup(ctx, js, other, natsx.SetupOptions{}); err == nil || !strings.Contains(err.Error(), other.WorkStream) {
			t.Errorf("setup over a limits stream: %v", err)
		}
	})
}

// TestWorkQueueRedelivery: an evaluator that takes an item and dies without acking loses it
// to another evaluator after AckWait; acked items leave the stream.
func TestWorkQueueRedelivery(t *testing.T) {
	onBoth(t, func(t *testing.T, connect connectFn) {
		ctx := testCtx(t)
		_, js := connect(t)
		names := natstest.Names(t, js)
		const ackWait = time.Second
		r, err := natsx.Setup(ctx, js, names, natsx.SetupOptions{WorkAckWait: ackWait, Memory: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			id := fmt.Sprintf("r1/7/shard-%d/train", i)
			if _, err := natsx.PublishRetry(ctx, js, names.WorkSubject("r1", "7", fmt.Sprint(i), "train"), []byte(id), id); err != nil {
				t.Fatal(err)
			}
		}

		ncA, jsA := connect(t)
		consA, err := jsA.Consumer(ctx, names.WorkStream, names.WorkConsumer)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := consA.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got []jetstream.Msg
		for m := range batch.Messages() {
			got = append(got, m)
		}
		if len(got) != 3 {
			t.Fatalf("evaluator A got %d items, want 3 (%v)", len(got), batch.Error())
		}
		taken := time.Now()
		for _, m := range got[:2] {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		lost := string(got[2].Data())
		ncA.Close() // evaluator A dies holding item 3

		_, jsB := connect(t)
		consB, err := jsB.Consumer(ctx, names.WorkStream, names.WorkConsumer)
		if err != nil {
			t.Fatal(err)
		}
		batch, err = consB.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var redelivered []jetstream.Msg
		for m := range batch.Messages() {
			redelivered = append(redelivered, m)
		}
		if len(redelivered) != 1 || string(redelivered[0].Data()) != lost {
			t.Fatalf("evaluator B got %d items, want the lost %q (%v)", len(redelivered), lost, batch.Error())
		}
		if waited := time.Since(taken); waited < ackWait-100*time.Millisecond {
			t.Errorf("redelivered after %v, before AckWait %v", waited, ackWait)
		}
		md, err := redelivered[0].Metadata()
		if err != nil || md.NumDelivered != 2 {
			t.Errorf("metadata = %+v, %v; want NumDelivered 2", md, err)
		}
		if err := redelivered[0].DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		// Work-queue retention: acked items are gone.
		deadline := time.Now().Add(5 * time.Second)
		for {
			info, err := r.Work.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("work stream still holds %d messages after all acks", info.State.Msgs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestPublishDedup(t *testing.T) {
	onBoth(t, func(t *testing.T, connect connectFn) {
		ctx := testCtx(t)
		_, js := connect(t)
		names := natstest.Names(t, js)
		r, err := natsx.Setup(ctx, js, names, natsx.SetupOptions{Memory: true})
		if err != nil {
			t.Fatal(err)
		}
		subj := names.ResultSubject("r1", "3", "0", "score")
		a1, err := natsx.PublishRetry(ctx, js, subj, []byte("loss=0.5"), "r1/3/0/score")
		if err != nil {
			t.Fatal(err)
		}
		a2, err := natsx.PublishRetry(ctx, js, subj, []byte("loss=0.5"), "r1/3/0/score")
		if err != nil {
			t.Fatal(err)
		}
		if a1.Duplicate || !a2.Duplicate || a1.Sequence != a2.Sequence {
			t.Errorf("acks %+v then %+v; want the second flagged duplicate of the first", a1, a2)
		}
		if _, err := natsx.PublishRetry(ctx, js, subj, []byte("loss=0.4"), "r1/3/1/score"); err != nil {
			t.Fatal(err)
		}
		info, err := r.Results.Info(ctx)
		if err != nil || info.State.Msgs != 2 {
			t.Fatalf("results hold %d messages, want 2 (%v)", info.State.Msgs, err)
		}
	})
}

func TestKVCompareAndSet(t *testing.T) {
	onBoth(t, func(t *testing.T, connect connectFn) {
		ctx := testCtx(t)
		_, js := connect(t)
		names := natstest.Names(t, js)
		r, err := natsx.Setup(ctx, js, names, natsx.SetupOptions{Memory: true})
		if err != nil {
			t.Fatal(err)
		}
		kv := r.Status
		rev, err := kv.Create(ctx, "run.r1", []byte("0"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Create(ctx, "run.r1", []byte("x")); !errors.Is(err, jetstream.ErrKeyExists) {
			t.Errorf("second Create: %v, want ErrKeyExists", err)
		}
		if _, err := kv.Update(ctx, "run.r1", []byte("1"), rev); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Update(ctx, "run.r1", []byte("stale"), rev); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			t.Errorf("stale Update: %v, want ErrKeyRevisionMismatch", err)
		}
		// Concurrent read-modify-write with CAS loses no increment.
		const workers, each = 4, 15
		var wg sync.WaitGroup
		var conflicts atomic.Int64
		for range workers {
			_, wjs := connect(t) // one client per worker, made here: connect may t.Fatal
			wkv, err := wjs.KeyValue(ctx, names.StatusBucket)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					for {
						e, err := wkv.Get(ctx, "run.r1")
						if err != nil {
							t.Error(err)
							return
						}
						var n int
						fmt.Sscan(string(e.Value()), &n)
						_, err = wkv.Update(ctx, "run.r1", []byte(fmt.Sprint(n+1)), e.Revision())
						if err == nil {
							break
						}
						if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
							t.Error(err)
							return
						}
						conflicts.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		e, err := kv.Get(ctx, "run.r1")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(1 + workers*each); string(e.Value()) != want {
			t.Fatalf("counter = %s, want %s (%d conflicts retried)", e.Value(), want, conflicts.Load())
		}
		t.Logf("%d CAS conflicts retried", conflicts.Load())
	})
}

// TestObjectStoreLargeBlob: a blob far over max payload goes through the object store intact.
func TestObjectStoreLargeBlob(t *testing.T) {
	onBoth(t, func(t *testing.T, connect connectFn) {
		ctx := testCtx(t)
		nc, js := connect(t)
		names := natstest.Names(t, js)
		r, err := natsx.Setup(ctx, js, names, natsx.SetupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		blob := make([]byte, 20<<20)
		rand.Read(blob)
		if int64(len(blob)) <= nc.MaxPayload() {
			t.Fatalf("blob %d bytes not above max payload %d", len(blob), nc.MaxPayload())
		}
		if _, err := js.Publish(ctx, names.VersionSubject("big"), blob); !errors.Is(err, nats.ErrMaxPayload) {
			t.Errorf("plain publish of 20 MiB: %v, want ErrMaxPayload", err)
		}
		info, err := r.Blobs.Put(ctx, jetstream.ObjectMeta{Name: "supernet/v1"}, bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != uint64(len(blob)) {
			t.Errorf("stored size %d", info.Size)
		}
		_, js2 := connect(t)
		obs, err := js2.ObjectStore(ctx, names.BlobBucket)
		if err != nil {
			t.Fatal(err)
		}
		res, err := obs.Get(ctx, "supernet/v1")
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, res)
		res.Close()
		if err != nil || n != int64(len(blob)) || [32]byte(h.Sum(nil)) != sha256.Sum256(blob) {
			t.Fatalf("read back %d bytes, err %v, or hash mismatch", n, err)
		}
	})
}

func TestPublishRetryWaitsForStream(t *testing.T) {
	onBoth(t, func(t *testing.T, connect connectFn) {
		ctx := testCtx(t)
		_, js := connect(t)
		names := natstest.Names(t, js)
		done := make(chan struct{})
		defer func() { <-done }() // Setup must finish before the connection closes
		go func() {
			defer close(done)
			time.Sleep(500 * time.Millisecond)
			if _, err := natsx.Setup(context.Background(), js, names, natsx.SetupOptions{Memory: true}); err != nil {
				t.Error(err)
			}
		}()
		start := time.Now()
		ack, err := natsx.PublishRetry(ctx, js, names.WorkSubject("x"), []byte("item"), "x-1")
		if err != nil {
			t.Fatal(err)
		}
		if ack.Stream != names.WorkStream || time.Since(start) < 400*time.Millisecond {
			t.Errorf("ack %+v after %v", ack, time.Since(start))
		}
	})
}

// fakeStream answers JetStream publishes on subj like a stream leader would, but drops the
// first `drop` requests as a dying leader does. It records the msg ids it saw.
func fakeStream(t *testing.T, nc *nats.Conn, subj string, drop int) (seen func() []string) {
	var mu sync.Mutex
	ids := []string{}
	n := 0
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
		n++
		if n > drop {
			m.Respond([]byte(`{"stream":"FAKE","seq":7}`))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	t.Cleanup(func() { sub.Unsubscribe() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
}

func TestPublishRetryAfterTimeouts(t *testing.T) {
	onBoth(t, func(t *testing.T, connect connectFn) {
		ctx := testCtx(t)
		nc, js := connect(t)
		subj := natstest.Prefix(t) + ".fake"
		seen := fakeStream(t, nc, subj, 2)
		p := natsx.Publisher{JS: js, AttemptTimeout: 300 * time.Millisecond}
		ack, err := p.Publish(ctx, subj, []byte("x"), "run/1/0/train")
		if err != nil {
			t.Fatal(err)
		}
		// At least 3: under load an answered attempt can still time out first.
		ids := seen()
		if ack.Sequence != 7 || len(ids) < 3 {
			t.Fatalf("ack %+v after %d attempts, want seq 7 after at least 3", ack, len(ids))
		}
		for _, id := range ids {
			if id != "run/1/0/train" {
				t.Errorf("attempt carried msg id %q", id)
			}
		}
		// A leader that never answers: give up when ctx ends, saying so.
		silent := natstest.Prefix(t) + ".silent"
		fakeStream(t, nc, silent, 1<<30)
		sctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		defer cancel()
		_, err = p.Publish(sctx, silent, []byte("x"), "id")
		if err == nil || !strings.Contains(err.Error(), "gave up after") || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("silent leader: %v", err)
		}
	})
}

func TestPublishRetryPermanentErrors(t *testing.T) {
	_, nc, js := natstest.Embedded(t)
	ctx := testCtx(t)
	names := natstest.Names(t, js)
	if _, err := natsx.Setup(ctx, js, names, natsx.SetupOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.PublishRetry(ctx, js, names.WorkSubject("a"), []byte("x"), ""); err == nil {
		t.Error("empty msg id accepted")
	}
	start := time.Now()
	_, err := natsx.PublishRetry(ctx, js, names.WorkSubject("a"), make([]byte, nc.MaxPayload()+1), "big")
	if !errors.Is(err, nats.ErrMaxPayload) || time.Since(start) > time.Second {
		t.Errorf("oversized publish: %v after %v, want ErrMaxPayload at once", err, time.Since(start))
	}
}

func TestEmbeddedLifecycle(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	s, nc, err := natsx.StartEmbedded(dir, natsx.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	names, _ := natsx.NewNames("keep")
	if _, err := natsx.Setup(ctx, js, names, natsx.SetupOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.PublishRetry(ctx, js, names.ResultSubject("a"), []byte("x"), "a"); err != nil {
		t.Fatal(err)
	}
	natsx.Shutdown(s, nc)
	if !nc.IsClosed() || s.Running() {
		t.Fatal("Shutdown left the server or connection up")
	}

	// Same dir: the data is still there (resume after a restart).
	s, nc, err = natsx.StartEmbedded(dir, natsx.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	js, _ = jetstream.New(nc)
	st, err := js.Stream(ctx, names.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(ctx); info == nil || info.State.Msgs != 1 {
		t.Fatalf("after restart: %+v", info)
	}
	natsx.Shutdown(s, nc)

	// No dir: a temp dir, removed by Shutdown. With Listen, TCP clients can attach.
	s, nc, err = natsx.StartEmbedded("", natsx.EmbeddedOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	store := s.StoreDir()
	if _, err := os.Stat(store); err != nil {
		t.Fatalf("store dir %q: %v", store, err)
	}
	tcp, err := natsx.Connect(s.ClientURL(), natsx.ConnectOptions{Name: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tcp.Publish("hello", nil); err != nil {
		t.Fatal(err)
	}
	tcp.Close()
	natsx.Shutdown(s, nc)
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Errorf("temp store dir %q survived Shutdown: %v", store, err)
	}
}

func TestConnectErrorNamesURL(t *testing.T) {
	_, err := natsx.Connect("nats://127.0.0.1:1", natsx.ConnectOptions{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "nats://127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
}

func TestNames(t *testing.T) {
	for _, p := range []string{"", "a.b", "a b", "a*", "x>", strings.Repeat("a", 49)} {
		if _, err := natsx.NewNames(p); err == nil {
			t.Errorf("NewNames(%q) accepted", p)
		}
	}
	n, err := natsx.NewNames("tabnas")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.WorkSubject("r1", "12", "3", "train"); got != "tabnas.work.r1.12.3.train" {
		t.Errorf("WorkSubject = %q", got)
	}
	if n.WorkStream != "tabnas_work" || n.StatusBucket != "tabnas_status" || n.BlobBucket != "tabnas_blobs" {
		t.Errorf("names = %+v", n)
	}
	if natsx.ValidateToken("a.b") == nil || natsx.ValidateToken("") == nil || natsx.ValidateToken("shard-3") != nil {
		t.Error("ValidateToken")
	}
}
