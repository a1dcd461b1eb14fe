package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/schemas"
)

func stateKey(run string, step int64) string { return fmt.Sprintf("runs/%s/state-%08d.bin", run, step) }

// saveCheckpoint writes the SuperNet weights and Adam moments first, then the checkpoint
// document naming them: a crash between the two leaves the previous checkpoint in force.
func saveCheckpoint(ctx context.Context, store objstore.Store, spec *schemas.RunSpec, e *search.Engine) error {
	n := len(e.Net.Weights)
	state := make([]float32, 0, 4*n)
	state = append(append(append(state, e.Net.Weights...), e.Opt.M...), e.Opt.V...)
	// Per-weight Adam step counts, as floats: exact up to 2^24 steps.
	for _, c := range e.Opt.Counts {
		state = append(state, float32(c))
	}
	blob := schemas.Floats(state)
	sum := sha256.Sum256(blob)
	key := stateKey(spec.Run, e.Step)
	if err := store.Put(ctx, key, bytes.NewReader(blob), int64(len(blob))); err != nil {
		return fmt.Errorf("checkpoint state %s: %w", key, err)
	}
	ck := &schemas.Checkpoint{Envelope: schemas.NewEnvelope(schemas.TypeCheckpoint, spec.Run), Step: e.Step, Spec: *spec,
		Controller: e.Ctrl.State(), AdamT: e.Opt.T, WeightsKey: key, WeightsLen: len(state),
		WeightsSHA: hex.EncodeToString(sum[:]), History: e.Hist, Created: time.Now().UTC()}
	data, err := schemas.Encode(ck)
	if err != nil {
		return err
	}
	if err := store.Put(ctx, CheckpointKey(spec.Run), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("checkpoint %s: %w", CheckpointKey(spec.Run), err)
	}
	// Keep the state of the previous checkpoint too; older ones are garbage.
	old, err := store.List(ctx, "runs/"+spec.Run+"/state-")
	if err == nil && len(old) > 2 {
		for _, o := range old[:len(old)-2] {
			if o.Key != key && strings.HasSuffix(o.Key, ".bin") {
				_ = store.Delete(ctx, o.Key)
			}
		}
	}
	return nil
}

// LoadCheckpoint reads and validates a run's latest checkpoint.
func LoadCheckpoint(ctx context.Context, store objstore.Store, run string) (*schemas.Checkpoint, error) {
	if err := schemas.ValidRunID(run); err != nil {
		return nil, err
	}
	key := CheckpointKey(run)
	r, err := store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("no checkpoint for run %s in %s: %w", run, store.URL(), err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	ck, err := schemas.Decode[schemas.Checkpoint](data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s in %s: %w", key, store.URL(), err)
	}
	return ck, nil
}

// restore loads a checkpoint into a fresh engine built from the same spec.
func restore(ctx context.Context, store objstore.Store, ck *schemas.Checkpoint, e *search.Engine) error {
	r, err := store.Get(ctx, ck.WeightsKey)
	if err != nil {
		return fmt.Errorf("checkpoint state %s: %w", ck.WeightsKey, err)
	}
	defer r.Close()
	blob, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ck.WeightsKey, err)
	}
	sum := sha256.Sum256(blob)
	if hex.EncodeToString(sum[:]) != ck.WeightsSHA {
		return fmt.Errorf("checkpoint state %s is corrupt: sha256 mismatch", ck.WeightsKey)
	}
	state, err := schemas.ParseFloats(blob, nil)
	if err != nil {
		return fmt.Errorf("checkpoint state %s: %w", ck.WeightsKey, err)
	}
	n := len(e.Net.Weights)
	want := 3 * n
	if e.Opt.Counts != nil {
		want = 4 * n
	}
	if len(state) != want || ck.WeightsLen != want {
		return fmt.Errorf("checkpoint state %s has %d floats, the SuperNet and its optimizer need %d", ck.WeightsKey, len(state), want)
	}
	copy(e.Net.Weights, state[:n])
	copy(e.Opt.M, state[n:2*n])
	copy(e.Opt.V, state[2*n:3*n])
	for i := range e.Opt.Counts {
		e.Opt.Counts[i] = uint32(state[3*n+i])
	}
	e.Opt.T = ck.AdamT
	if err := e.Ctrl.Restore(ck.Controller); err != nil {
		return err
	}
	e.Step = ck.Step
	e.Hist = append([]search.Record(nil), ck.History...)
	e.Applied, e.Skipped = 0, 0
	for _, r := range e.Hist {
		switch {
		case r.Updated:
			e.Applied++
		case r.Candidate != "" && e.Ctrl.Cfg.Corrects():
			e.Skipped++
		}
	}
	return nil
}
