// Package bus is how the tabnas services talk, as six small seams: the work queue, the
// results, the SuperNet versions, request-reply to the sampler, the run KV and blobs.
// Coordinator, evaluator and sampler receive a *Bus and never a connection, so the same
// service code runs over either implementation:
//
//   - NewMemory: channels and maps inside one process, no server at all. Messages are
//     handed over decoded and float payloads as slices (copied once, so a consumer never
//     aliases a buffer its producer reuses), but every message is still validated on the
//     way, exactly as a decoded one would be.
//   - OpenJetStream: NATS JetStream (an embedded server or real ones) for many processes:
//     validated, framed messages with retries, payloads over the inline limit in the
//     object store.
//
// bustest holds the conformance suite both pass.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/tabnas/tabnas/schemas"
)

// Errors the implementations share.
var (
	ErrNotFound = errors.New("bus: not found")
	ErrExists   = errors.New("bus: key exists")
	ErrConflict = errors.New("bus: revision conflict")
)

// WorkQueue hands each work item to one evaluator at a time and hands it out again when
// it is not acknowledged in time (at-least-once). An item whose ID() was published within
// the duplicate window is dropped, so a retried publish never doubles work.
type WorkQueue interface {
	// Publish validates and queues items (several at once: their round trips overlap).
	Publish(ctx context.Context, items ...*schemas.WorkItem) error
	// Next waits at most wait for an item; (nil, nil) when none came.
	Next(ctx context.Context, wait time.Duration) (Delivery, error)
	// PublishRaw queues bytes as they are, as a foreign or broken producer would (tests of
	// rejection).
	PublishRaw(ctx context.Context, run, kind string, data []byte, id string) error
}

// Delivery is one handing-out of a work item.
type Delivery interface {
	// Item is the validated item (a copy the receiver owns), or why it was rejected.
	Item() (*schemas.WorkItem, error)
	// Subject names where the item came from, for logs.
	Subject() string
	Ack() error
	// Nak hands the item out again after delay.
	Nak(delay time.Duration) error
	// Term drops an item that can never be processed.
	Term() error
	// InProgress extends the time the receiver may hold the item.
	InProgress() error
}

// Results carries evaluator results to the coordinator of their run.
type Results interface {
	// Publish validates and sends a result with its gradient (nil unless a train result).
	// A result with the same identity published within the duplicate window is dropped.
	// With done nil it returns once the result is stored; otherwise it may return before
	// (grad is no longer read by then) and done reports the outcome, so the receiver can
	// acknowledge its work item while it already computes the next one.
	Publish(ctx context.Context, r *schemas.Result, grad []float32, done func(error)) error
	// Subscribe calls h with every result of run published from now on (or the reason a
	// message was rejected) until stop is called. size is what the message moved, in bytes.
	// h must not block.
	Subscribe(ctx context.Context, run string, h func(r *schemas.Result, size int, err error)) (stop func(), err error)
	// Grad reads the gradient of a received train result, into dst when it must copy,
	// and releases what held it. The slice returned is the caller's.
	Grad(ctx context.Context, r *schemas.Result, dst []float32) ([]float32, error)
	// PublishRaw sends bytes as they are on run's result subject (tests of rejection).
	PublishRaw(ctx context.Context, run string, data []byte, id string) error
}

// Versions broadcasts SuperNet versions: deltas (the new weights of one child's slice)
// and snapshots (every weight), each kept for replicas that come later.
type Versions interface {
	// Publish validates and stores version m (m.Snapshot says which kind) with weights w.
	// done works as in Results.Publish: a publisher need not wait for the store's answer
	// before it hands out the work that needs the version (replicas wait for it).
	Publish(ctx context.Context, m *schemas.SuperNetVersion, w []float32, done func(error)) error
	// Get returns the delta (or snapshot) of run at version v, waiting up to wait for it
	// to appear; ErrNotFound after that.
	Get(ctx context.Context, run string, v int64, snapshot bool, wait time.Duration) (*schemas.SuperNetVersion, error)
	// Weights copies the weights of a version got from Get into dst (grown as needed).
	Weights(ctx context.Context, m *schemas.SuperNetVersion, dst []float32) ([]float32, error)
}

// SamplerHandler answers sampler requests; replies carry their errors.
type SamplerHandler interface {
	Feasible(ctx context.Context, req *schemas.FeasibleRequest) *schemas.FeasibleReply
	Estimate(ctx context.Context, req *schemas.EstimateRequest) *schemas.EstimateReply
}

// Sampler is request-reply to the sampler services (any number; each request is answered
// by one). Requests wait, retrying, while no sampler is there yet, until ctx ends.
type Sampler interface {
	Feasible(ctx context.Context, req *schemas.FeasibleRequest) (*schemas.FeasibleReply, error)
	Estimate(ctx context.Context, req *schemas.EstimateRequest) (*schemas.EstimateReply, error)
	// Serve answers requests with h until ctx ends; ready (may be nil) is closed once
	// requests reach it.
	Serve(ctx context.Context, h SamplerHandler, ready chan<- struct{}) error
}

// KV is a bucket of small values with revisions (run spec, status, attempt counter;
// measured latencies).
type KV interface {
	// Get returns ErrNotFound for a missing key.
	Get(ctx context.Context, key string) (value []byte, rev uint64, err error)
	Put(ctx context.Context, key string, value []byte) error
	// Create fails with ErrExists when the key is there.
	Create(ctx context.Context, key string, value []byte) error
	// Update fails with ErrConflict unless rev is the key's latest revision.
	Update(ctx context.Context, key string, value []byte, rev uint64) error
}

// Blobs holds large payloads by name: trial weights, and whatever exceeds a message.
type Blobs interface {
	PutBytes(ctx context.Context, name string, data []byte) error
	// GetBytes returns ErrNotFound for a missing name.
	GetBytes(ctx context.Context, name string) ([]byte, error)
	// Delete removes a blob; a missing one is fine.
	Delete(ctx context.Context, name string) error
}

// Bus is one service's view of the pipeline.
type Bus struct {
	Work     WorkQueue
	Results  Results
	Versions Versions
	Sampler  Sampler
	Status   KV // run spec, status and attempt counter
	Latency  KV // measured latency per architecture
	Blobs    Blobs
	Log      *slog.Logger
	// Kind is "memory" or "jetstream".
	Kind string
	// Res offers Blobs under the path env.Bus.Res.Blobs as well.
	Res struct{ Blobs Blobs }

	closers []func()
}

func (b *Bus) init() *Bus {
	if b.Log == nil {
		b.Log = slog.Default()
	}
	b.Res.Blobs = b.Blobs
	return b
}

// Close releases what the bus holds (subscriptions); it never closes a connection it was
// given.
func (b *Bus) Close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// SpecKey, StatusKey and AttemptKey name a run's entries in the status bucket.
func SpecKey(run string) string    { return run + ".spec" }
func StatusKey(run string) string  { return run + ".status" }
func AttemptKey(run string) string { return run + ".attempt" }

// PutSpec publishes the run spec for the services.
func (b *Bus) PutSpec(ctx context.Context, spec *schemas.RunSpec) error {
	data, err := schemas.Encode(spec)
	if err != nil {
		return err
	}
	return b.Status.Put(ctx, SpecKey(spec.Run), data)
}

// GetSpec reads and validates a run's spec; a missing one is ErrNotFound.
func (b *Bus) GetSpec(ctx context.Context, run string) (*schemas.RunSpec, error) {
	data, _, err := b.Status.Get(ctx, SpecKey(run))
	if err != nil {
		return nil, fmt.Errorf("run %s: spec: %w", run, err)
	}
	return schemas.Decode[schemas.RunSpec](data)
}

// PutStatus records the run status.
func (b *Bus) PutStatus(ctx context.Context, st *schemas.RunStatus) error {
	data, err := schemas.Encode(st)
	if err != nil {
		return err
	}
	return b.Status.Put(ctx, StatusKey(st.Run), data)
}

// GetStatus reads a run status.
func (b *Bus) GetStatus(ctx context.Context, run string) (*schemas.RunStatus, error) {
	data, _, err := b.Status.Get(ctx, StatusKey(run))
	if err != nil {
		return nil, fmt.Errorf("run %s: status: %w", run, err)
	}
	return schemas.Decode[schemas.RunStatus](data)
}

// PutJSON stores any value as JSON in the status bucket.
func (b *Bus) PutJSON(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Status.Put(ctx, key, data)
}

// NextAttempt increments the run's coordinator incarnation with compare-and-set.
func (b *Bus) NextAttempt(ctx context.Context, run string) (int64, error) {
	for {
		data, rev, err := b.Status.Get(ctx, AttemptKey(run))
		if errors.Is(err, ErrNotFound) {
			if err := b.Status.Create(ctx, AttemptKey(run), []byte("1")); err == nil {
				return 1, nil
			} else if !errors.Is(err, ErrExists) {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(string(data), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("attempt counter of run %s is %q: %w", run, data, err)
		}
		if err := b.Status.Update(ctx, AttemptKey(run), []byte(strconv.FormatInt(n+1, 10)), rev); err == nil {
			return n + 1, nil
		} else if !errors.Is(err, ErrConflict) {
			return 0, err
		}
	}
}

// finish reports err to done, or returns it when there is no done.
func finish(done func(error), err error) error {
	if done == nil {
		return err
	}
	done(err)
	return nil
}

// resultID identifies a result for deduplication: the identity of its work item.
func resultID(r *schemas.Result) string {
	return fmt.Sprintf("r.%s.%d.%s", r.Run, r.Attempt, r.Key())
}

// retryWhileAbsent calls f until it succeeds, fails otherwise than with errAbsent, or ctx
// ends, backing off and warning every 10 s (a sampler may still be starting).
func retryWhileAbsent[T any](ctx context.Context, log *slog.Logger, what string, absent func(error) bool, f func() (T, error)) (T, error) {
	backoff := 5 * time.Millisecond
	warned := time.Now()
	for {
		v, err := f()
		if err == nil || !absent(err) {
			return v, err
		}
		if ctx.Err() != nil {
			return v, fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
		if time.Since(warned) > 10*time.Second {
			log.Warn("no answer yet; is a sampler running?", "request", what, "err", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
