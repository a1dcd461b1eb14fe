// Package bus is how the tabnas services talk: subjects of a run, validated message
// publishing with retries, float payloads inlined or moved to the JetStream object store
// when they exceed the inline limit, the run spec and status in KV, and request-reply to
// the sampler. Coordinator, evaluator and sampler share it, in one process or many.
package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tabnas/tabnas/infra/natsx"
	"github.com/tabnas/tabnas/schemas"
)

// DefaultInlineMax is the largest float payload sent inside a message; larger ones go to
// the object store, well under the server's 1 MiB default max payload.
const DefaultInlineMax = 256 << 10

// Bus is one service's connection to the pipeline.
type Bus struct {
	NC        *nats.Conn
	JS        jetstream.JetStream
	Res       *natsx.Resources
	Names     natsx.Names
	Log       *slog.Logger
	InlineMax int
}

// Open sets up (idempotently) every stream, consumer and bucket under prefix.
func Open(ctx context.Context, nc *nats.Conn, prefix string, opts natsx.SetupOptions, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.Default()
	}
	names, err := natsx.NewNames(prefix)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	res, err := natsx.Setup(ctx, js, names, opts)
	if err != nil {
		return nil, err
	}
	return &Bus{NC: nc, JS: js, Res: res, Names: names, Log: log, InlineMax: DefaultInlineMax}, nil
}

// WorkSubject is where a run's work items go.
func (b *Bus) WorkSubject(run, kind string) string { return b.Names.WorkSubject(run, kind) }

// ResultSubject is where a run's results go.
func (b *Bus) ResultSubject(run string) string { return b.Names.ResultSubject(run) }

// SuperNetSubject holds the SuperNet version v of a run (one message per subject).
func (b *Bus) SuperNetSubject(run string, v int64) string {
	return b.Names.VersionSubject(run, "snet", strconv.FormatInt(v, 10))
}

// SnapshotSubject holds a full snapshot at version v (checkpoints and version 0).
func (b *Bus) SnapshotSubject(run string, v int64) string {
	return b.Names.VersionSubject(run, "snap", strconv.FormatInt(v, 10))
}

// SamplerSubject is the request subject of a sampler operation ("feasible", "estimate").
func (b *Bus) SamplerSubject(run, op string) string {
	return b.Names.Prefix + ".sampler." + run + "." + op
}

// SamplerWildcard matches every sampler request.
func (b *Bus) SamplerWildcard() string { return b.Names.Prefix + ".sampler.*.*" }

// Publish validates, encodes and publishes m with retries, deduplicated by msgID.
func (b *Bus) Publish(ctx context.Context, subject string, m schemas.Message, msgID string) error {
	data, err := schemas.Encode(m)
	if err != nil {
		return err
	}
	_, err = natsx.PublishRetry(ctx, b.JS, subject, data, msgID)
	return err
}

// PutFloats returns v inline when small, else stores it as blob name and returns the name.
func (b *Bus) PutFloats(ctx context.Context, name string, v []float32) (inline []byte, blob string, err error) {
	data := schemas.Floats(v)
	if len(data) <= b.InlineMax {
		return data, "", nil
	}
	if _, err := b.Res.Blobs.PutBytes(ctx, name, data); err != nil {
		return nil, "", fmt.Errorf("storing blob %s (%d bytes): %w", name, len(data), err)
	}
	return nil, name, nil
}

// GetFloats reads a payload from inline data or a blob, checking its length.
func (b *Bus) GetFloats(ctx context.Context, inline []byte, blob string, n int, dst []float32) ([]float32, error) {
	data := inline
	if blob != "" {
		var err error
		if data, err = b.Res.Blobs.GetBytes(ctx, blob); err != nil {
			return nil, fmt.Errorf("reading blob %s: %w", blob, err)
		}
	}
	if len(data) != 4*n {
		return nil, fmt.Errorf("payload %q has %d bytes, want %d floats", blob, len(data), n)
	}
	return schemas.ParseFloats(data, dst)
}

// DeleteBlob removes a blob; a missing one is fine.
func (b *Bus) DeleteBlob(ctx context.Context, name string) {
	if err := b.Res.Blobs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		b.Log.Warn("deleting blob", "blob", name, "err", err)
	}
}

// PutJSON stores a KV entry.
func (b *Bus) PutJSON(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = b.Res.Status.Put(ctx, key, data)
	return err
}

// SpecKey and StatusKey name a run's entries in the status bucket.
func SpecKey(run string) string    { return run + ".spec" }
func StatusKey(run string) string  { return run + ".status" }
func AttemptKey(run string) string { return run + ".attempt" }

// PutSpec publishes the run spec for the services.
func (b *Bus) PutSpec(ctx context.Context, spec *schemas.RunSpec) error {
	data, err := schemas.Encode(spec)
	if err != nil {
		return err
	}
	_, err = b.Res.Status.Put(ctx, SpecKey(spec.Run), data)
	return err
}

// GetSpec reads and validates a run's spec.
func (b *Bus) GetSpec(ctx context.Context, run string) (*schemas.RunSpec, error) {
	e, err := b.Res.Status.Get(ctx, SpecKey(run))
	if err != nil {
		return nil, fmt.Errorf("run %s: spec: %w", run, err)
	}
	return schemas.Decode[schemas.RunSpec](e.Value())
}

// PutStatus records the run status.
func (b *Bus) PutStatus(ctx context.Context, st *schemas.RunStatus) error {
	data, err := schemas.Encode(st)
	if err != nil {
		return err
	}
	_, err = b.Res.Status.Put(ctx, StatusKey(st.Run), data)
	return err
}

// GetStatus reads a run status.
func (b *Bus) GetStatus(ctx context.Context, run string) (*schemas.RunStatus, error) {
	e, err := b.Res.Status.Get(ctx, StatusKey(run))
	if err != nil {
		return nil, fmt.Errorf("run %s: status: %w", run, err)
	}
	return schemas.Decode[schemas.RunStatus](e.Value())
}

// NextAttempt increments the run's coordinator incarnation with compare-and-set.
func (b *Bus) NextAttempt(ctx context.Context, run string) (int64, error) {
	for {
		e, err := b.Res.Status.Get(ctx, AttemptKey(run))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err := b.Res.Status.Create(ctx, AttemptKey(run), []byte("1")); err == nil {
				return 1, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(string(e.Value()), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("attempt counter of run %s is %q: %w", run, e.Value(), err)
		}
		if _, err := b.Res.Status.Update(ctx, AttemptKey(run), []byte(strconv.FormatInt(n+1, 10)), e.Revision()); err == nil {
			return n + 1, nil
		}
	}
}

// Request sends a validated request and returns the raw reply, retrying while no sampler
// answers (it may still be starting) until ctx ends.
func (b *Bus) Request(ctx context.Context, subject string, m schemas.Message, timeout time.Duration) ([]byte, error) {
	data, err := schemas.Encode(m)
	if err != nil {
		return nil, err
	}
	backoff := 20 * time.Millisecond
	warned := time.Now()
	for {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		msg, err := b.NC.RequestWithContext(rctx, subject, data)
		cancel()
		if err == nil {
			return msg.Data, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("request %s: %w (last error: %v)", subject, ctx.Err(), err)
		}
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("request %s: %w", subject, err)
		}
		if time.Since(warned) > 10*time.Second {
			b.Log.Warn("no answer yet; is a sampler running?", "subject", subject, "err", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// ReadAll is io.ReadAll for object store readers, bounded by max bytes.
func ReadAll(r io.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("object larger than %d bytes", max)
	}
	return buf.Bytes(), nil
}
