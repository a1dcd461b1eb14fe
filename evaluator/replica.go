package evaluator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
		if errors.Is(err, bus.ErrNotFound) {
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
	e.mu.Lock()
	if old := e.runs[run]; old != nil {
		rp = old
	} else {
		e.runs[run] = rp
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
		// Versions are published before the work that needs them; a short wait covers
		// replication lag on a cluster.
		msg, err := b.Versions.Get(ctx, rp.spec.Run, u, false, versionWait)
		if err != nil {
			return fmt.Errorf("SuperNet version %d of run %s: %w", u, rp.spec.Run, err)
		}
		child := nn.Arch(msg.Arch)
		if err := rp.net.CheckArch(child); err != nil || rp.net.SliceLen(child) != msg.Len {
			return permanent(fmt.Errorf("SuperNet version %d of run %s does not fit the replica", u, rp.spec.Run))
		}
		if rp.buf, err = b.Versions.Weights(ctx, msg, rp.buf); err != nil {
			return err
		}
		rp.net.UnpackSlice(child, rp.buf)
		rp.version = u
	}
	return nil
}

const versionWait = 30 * time.Second

func (rp *replica) loadSnapshot(ctx context.Context, b *bus.Bus, v int64) error {
	k := int64(rp.spec.CheckpointEvery)
	for c := (v / k) * k; c >= 0; c -= k {
		msg, err := b.Versions.Get(ctx, rp.spec.Run, c, true, 0)
		if errors.Is(err, bus.ErrNotFound) {
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
		if _, err := b.Versions.Weights(ctx, msg, rp.net.Weights); err != nil {
			return err
		}
		rp.version = c
		rp.resyncs++
		return nil
	}
	// Version 0 is published before any work item; wait for it briefly.
	msg, err := b.Versions.Get(ctx, rp.spec.Run, 0, true, versionWait)
	if err != nil {
		return fmt.Errorf("initial SuperNet of run %s: %w", rp.spec.Run, err)
	}
	if _, err := b.Versions.Weights(ctx, msg, rp.net.Weights); err != nil {
		return err
	}
	rp.version = 0
	return nil
}
