package evaluator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

// replica is an evaluator's copy of one run's SuperNet with its per-run buffers.
type replica struct {
	mu      sync.Mutex
	spec    *schemas.RunSpec
	ds      *dataset.Dataset
	net     *nn.SuperNet
	version int64 // -1: nothing loaded
	worker  *search.Worker
	grads   *nn.Grads
	buf     []float32
	yScale  float64
	resyncs int

	// Versions pushed by a plain subscription as the coordinator publishes them, so the
	// usual next version is at hand without a round trip to the stream.
	pushMu sync.Mutex
	pushed map[int64][]byte
	sub    *nats.Subscription
}

// maxPushed bounds the versions kept ahead of the replica.
const maxPushed = 64

func (rp *replica) push(m *nats.Msg) {
	i := strings.LastIndexByte(m.Subject, '.')
	v, err := strconv.ParseInt(m.Subject[i+1:], 10, 64)
	if err != nil {
		return
	}
	rp.pushMu.Lock()
	defer rp.pushMu.Unlock()
	if len(rp.pushed) >= maxPushed {
		for k := range rp.pushed { // drop the oldest: those are applied or will be fetched
			if k < v {
				delete(rp.pushed, k)
			}
		}
		if len(rp.pushed) >= maxPushed {
			return
		}
	}
	rp.pushed[v] = m.Data
}

// takePushed returns and forgets a pushed version, dropping older ones.
func (rp *replica) takePushed(v int64) []byte {
	rp.pushMu.Lock()
	defer rp.pushMu.Unlock()
	data := rp.pushed[v]
	for k := range rp.pushed {
		if k <= v {
			delete(rp.pushed, k)
		}
	}
	return data
}

func (e *Evaluator) replicaFor(ctx context.Context, run string) (*replica, error) {
	e.mu.Lock()
	rp := e.runs[run]
	e.mu.Unlock()
	if rp != nil {
		return rp, nil
	}
	spec, err := e.cfg.Bus.GetSpec(ctx, run)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, permanent(fmt.Errorf("run %s is unknown (no spec in the status bucket)", run))
		}
		return nil, err
	}
	ds, err := dataset.OpenDataset(ctx, e.cfg.Store, spec.Dataset.Prefix)
	if err != nil {
		return nil, permanent(err)
	}
	if ds.Manifest.FeatureWidth != spec.In {
		return nil, permanent(fmt.Errorf("run %s: dataset %s has %d features, the run expects %d", run, spec.Dataset.Prefix, ds.Manifest.FeatureWidth, spec.In))
	}
	s, err := spec.SpaceOf()
	if err != nil {
		return nil, permanent(err)
	}
	// Zero weights of the right shape; the first sync loads a snapshot over them.
	net, err := nn.LoadSuperNet(s.In, s.MaxWidths(), spec.NNTask(), make([]float32, nn.ParamCount(s.In, s.MaxWidths(), s.Out)))
	if err != nil {
		return nil, permanent(err)
	}
	rows := max(spec.Search.Batch, spec.Search.ValBatch)
	rp = &replica{spec: spec, ds: ds, net: net, version: -1, worker: search.NewWorker(net, rows), grads: net.NewGrads(), yScale: 1}
	if pre, err := ds.Preprocessor(); err == nil && spec.Task == schemas.TaskRegression {
		rp.yScale = pre.DecodeRegression(1) - pre.DecodeRegression(0)
	}
	rp.pushed = map[int64][]byte{}
	e.mu.Lock()
	if old := e.runs[run]; old != nil {
		rp = old
	} else {
		e.runs[run] = rp
		b := e.cfg.Bus
		if rp.sub, err = b.NC.Subscribe(b.Names.VersionSubject(run, "snet", "*"), rp.push); err != nil {
			e.log.Warn("no push of SuperNet versions; fetching each", "run", run, "err", err)
		}
	}
	e.mu.Unlock()
	return rp, nil
}

// sync brings the replica to version v: forward by applying deltas, or, when it is ahead
// (a resumed coordinator replays steps), from the latest snapshot at or before v.
func (rp *replica) sync(ctx context.Context, b *bus.Bus, v int64) error {
	if rp.version == v {
		return nil
	}
	if rp.version < 0 || rp.version > v {
		if err := rp.loadSnapshot(ctx, b, v); err != nil {
			return err
		}
	}
	for u := rp.version + 1; u <= v; u++ {
		var msg *schemas.SuperNetVersion
		var err error
		if data := rp.takePushed(u); data != nil {
			msg, err = schemas.Decode[schemas.SuperNetVersion](data)
		}
		if msg == nil || err != nil { // not pushed (or mangled): read it from the stream
			msg, err = getVersion(ctx, b, b.SuperNetSubject(rp.spec.Run, u))
		}
		if err != nil {
			return fmt.Errorf("SuperNet version %d of run %s: %w", u, rp.spec.Run, err)
		}
		child := nn.Arch(msg.Arch)
		if err := rp.net.CheckArch(child); err != nil || rp.net.SliceLen(child) != msg.Len {
			return permanent(fmt.Errorf("SuperNet version %d of run %s does not fit the replica", u, rp.spec.Run))
		}
		if rp.buf, err = b.GetFloats(ctx, msg.Data, msg.Blob, msg.Len, rp.buf); err != nil {
			return err
		}
		rp.net.UnpackSlice(child, rp.buf)
		rp.version = u
	}
	return nil
}

func (rp *replica) loadSnapshot(ctx context.Context, b *bus.Bus, v int64) error {
	k := int64(rp.spec.CheckpointEvery)
	for c := (v / k) * k; c >= 0; c -= k {
		msg, err := getVersionOnce(ctx, b, b.SnapshotSubject(rp.spec.Run, c))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			if c == 0 {
				break
			}
			continue
		}
		if err != nil {
			return err
		}
		if msg.Len != len(rp.net.Weights) {
			return permanent(fmt.Errorf("snapshot %d of run %s has %d weights, the replica %d", c, rp.spec.Run, msg.Len, len(rp.net.Weights)))
		}
		if _, err := b.GetFloats(ctx, msg.Data, msg.Blob, msg.Len, rp.net.Weights); err != nil {
			return err
		}
		rp.version = c
		rp.resyncs++
		return nil
	}
	// Version 0 is published before any work item; wait for it briefly.
	msg, err := getVersion(ctx, b, b.SnapshotSubject(rp.spec.Run, 0))
	if err != nil {
		return fmt.Errorf("initial SuperNet of run %s: %w", rp.spec.Run, err)
	}
	if _, err := b.GetFloats(ctx, msg.Data, msg.Blob, msg.Len, rp.net.Weights); err != nil {
		return err
	}
	rp.version = 0
	return nil
}

func getVersionOnce(ctx context.Context, b *bus.Bus, subject string) (*schemas.SuperNetVersion, error) {
	raw, err := b.Res.Versions.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return nil, err
	}
	return schemas.Decode[schemas.SuperNetVersion](raw.Data)
}

// getVersion waits for a version message that the coordinator publishes before the work
// that needs it; a short wait covers replication lag on a cluster.
func getVersion(ctx context.Context, b *bus.Bus, subject string) (*schemas.SuperNetVersion, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg, err := getVersionOnce(ctx, b, subject)
		if err == nil || !errors.Is(err, jetstream.ErrMsgNotFound) || time.Now().After(deadline) {
			return msg, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
