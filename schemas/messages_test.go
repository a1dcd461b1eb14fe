package schemas

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/search"
)

var update = flag.Bool("update", false, "rewrite the golden wire files")

func goldenMessages() map[string]Message {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	spec := &RunSpec{Envelope: NewEnvelope(TypeRun, "nightly-42"), Dataset: DatasetRef{Prefix: "datasets/connect4-abc", TrainRows: []int{16384, 16384, 16384, 6894}, ValRows: []int{6755}, TestRows: []int{6739}},
		Task: TaskMulticlass, Classes: 3, In: 126, Out: 3, Widths: [][]int{{8, 16, 32}, {8, 16, 32}}, Constraints: Constraints{MaxParams: 20000},
		Search: search.Config{Steps: 500, Seed: 1}.Defaults(), CheckpointEvery: 100, Trial: Trial{Seed: 1, Epochs: 60, Batch: 256, LR: 0.001, Patience: 6}, Created: t0}
	return map[string]Message{
		"work_train": &WorkItem{Envelope: NewEnvelope(TypeWork, "nightly-42"), Attempt: 2, Step: 7, Shard: 1, Kind: KindTrain, Version: 7, Arch: []int{32, 16}, Rows: 64, Scale: 1.0 / 256},
		"work_trial": &WorkItem{Envelope: NewEnvelope(TypeWork, "nightly-42"), Attempt: 2, Step: 500, Shard: 0, Kind: KindTrial, Arch: []int{32, 16}, Trial: &Trial{Seed: 1, Epochs: 60, Batch: 256, LR: 0.001, Patience: 6}},
		"result_train": &Result{Envelope: NewEnvelope(TypeResult, "nightly-42"), Attempt: 2, Step: 7, Shard: 1, Kind: KindTrain, Version: 7, Arch: []int{1, 1},
			Rows: 64, LossSum: 70.25, Grad: Floats([]float32{0.5, -1, 2, 0.25, 0, 1.5, -0.125}), GradLen: 7, Evaluator: "ev1"},
		"result_blob": &Result{Envelope: NewEnvelope(TypeResult, "nightly-42"), Attempt: 2, Step: 8, Shard: 0, Kind: KindTrain, Version: 8, Arch: []int{512, 512},
			Rows: 256, LossSum: 281.5, GradBlob: "nightly-42/grad/2/8/0", GradLen: 330243, Evaluator: "ev2"},
		"result_score":      &Result{Envelope: NewEnvelope(TypeResult, "nightly-42"), Attempt: 2, Step: 7, Shard: 0, Kind: KindScore, Version: 8, Arch: []int{32, 16}, Rows: 1024, LossSum: 512.75},
		"supernet_delta":    &SuperNetVersion{Envelope: NewEnvelope(TypeSuperNet, "nightly-42"), Version: 8, Arch: []int{1, 1}, Data: Floats([]float32{1, 2, 3, 4, 5, 6, 7}), Len: 7},
		"supernet_snapshot": &SuperNetVersion{Envelope: NewEnvelope(TypeSuperNet, "nightly-42"), Version: 100, Snapshot: true, Blob: "nightly-42/snap/100", Len: 5187},
		"estimate_request":  &EstimateRequest{Envelope: NewEnvelope(TypeEstimateReq, "nightly-42"), Step: 9, Probs: [][]float64{{0.25, 0.5, 0.25}, {0.125, 0.375, 0.5}}},
		"estimate_reply": &EstimateReply{Envelope: NewEnvelope(TypeEstimate, "nightly-42"), Step: 9,
			Estimate: policy.Estimate{PV: 0.6, Marginals: [][]float64{{0.5, 0.5, 0}, {0, 1, 0}}, Samples: 5, Accepted: 3}},
		"feasible_request": &FeasibleRequest{Envelope: NewEnvelope(TypeFeasibleReq, "nightly-42"), Arch: []int{32, 16}},
		"feasible_reply":   &FeasibleReply{Envelope: NewEnvelope(TypeFeasible, "nightly-42"), Arch: []int{32, 16}, Feasible: true, Costs: map[string]float64{"params": 4643, "latency_ms": 0.0875}},
		"status":           &RunStatus{Envelope: NewEnvelope(TypeStatus, "nightly-42"), State: StateRunning, Step: 250, Steps: 500, PV: 0.8, Baseline: 0.44, Updated: t0},
		"run_spec":         spec,
		"checkpoint": &Checkpoint{Envelope: NewEnvelope(TypeCheckpoint, "nightly-42"), Step: 1, Spec: *spec, Controller: policy.State{Logits: []float64{0, 0.1, -0.1, 0, 0, 0},
			AdamM: make([]float64, 6), AdamV: make([]float64, 6)}, AdamT: 1, WeightsKey: "runs/nightly-42/state-00000001.bin", WeightsLen: 15561,
			WeightsSHA: strings.Repeat("ab", 32), History: []search.Record{{Step: 0, Warmup: true, Child: "32-32", TrainLoss: 1.1}}, Created: t0},
	}
}

func decodeAs(name string, data []byte) (Message, error) {
	switch {
	case strings.HasPrefix(name, "work"):
		return Decode[WorkItem](data)
	case strings.HasPrefix(name, "result"):
		return Decode[Result](data)
	case strings.HasPrefix(name, "supernet"):
		return Decode[SuperNetVersion](data)
	case name == "estimate_request":
		return Decode[EstimateRequest](data)
	case name == "estimate_reply":
		return Decode[EstimateReply](data)
	case name == "feasible_request":
		return Decode[FeasibleRequest](data)
	case name == "feasible_reply":
		return Decode[FeasibleReply](data)
	case name == "status":
		return Decode[RunStatus](data)
	case name == "run_spec":
		return Decode[RunSpec](data)
	}
	return Decode[Checkpoint](data)
}

// Every message encodes to its golden bytes, and the golden bytes decode, validate and
// re-encode identically: a change of the wire format cannot go unnoticed.
func TestWireGolden(t *testing.T) {
	for name, m := range goldenMessages() {
		path := filepath.Join("testdata", "wire", name+".msg")
		got, err := Encode(m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if *update {
			os.WriteFile(path, got, 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run go test ./schemas -update once)", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding changed:\n got %q\nwant %q", name, got, want)
			continue
		}
		back, err := decodeAs(name, want)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, err := Encode(back)
		if err != nil || !bytes.Equal(again, want) {
			t.Errorf("%s: decode+encode differs (%v)", name, err)
		}
	}
}

// A frame's payload is raw bytes after the header.
func TestFramedPayload(t *testing.T) {
	m := goldenMessages()["result_train"].(*Result)
	data, _ := Encode(m)
	i := bytes.IndexByte(data, '\n')
	if i < 0 || !bytes.Equal(data[i+1:], m.Grad) || bytes.Contains(data[:i], []byte(`"grad"`)) {
		t.Fatalf("frame %q", data)
	}
	r, err := Decode[Result](data)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := ParseFloats(r.Grad, nil)
	if len(f) != 7 || f[2] != 2 || f[6] != -0.125 {
		t.Fatalf("payload floats %v", f)
	}
}

// Foreign, truncated, wrong-version and inconsistent messages are rejected with a reason.
func TestWireRejects(t *testing.T) {
	good, _ := Encode(goldenMessages()["result_train"])
	head := good[:bytes.IndexByte(good, '\n')]
	cases := map[string]struct {
		data []byte
		want string
	}{
		"not json":          {[]byte("hello"), "invalid character"},
		"empty":             {nil, "EOF"},
		"other version":     {bytes.Replace(good, []byte(`"v":1`), []byte(`"v":2`), 1), "schema version 2"},
		"other type":        {bytes.Replace(good, []byte(`"type":"result"`), []byte(`"type":"work"`), 1), `type "work"`},
		"unknown field":     {bytes.Replace(good, []byte(`{"v":1`), []byte(`{"x":0,"v":1`), 1), "unknown field"},
		"short payload":     {good[:len(good)-3], "payload of"},
		"no payload":        {head, "payload of 0 bytes"},
		"bad run id":        {bytes.Replace(good, []byte(`"run":"nightly-42"`), []byte(`"run":"a.b"`), 1), "run id"},
		"negative step":     {bytes.Replace(good, []byte(`"step":7`), []byte(`"step":-7`), 1), "negative"},
		"grad length lie":   {bytes.Replace(good, []byte(`"grad_len":7`), []byte(`"grad_len":8`), 1), "grad_len 8"},
		"bad kind":          {bytes.Replace(good, []byte(`"kind":"train"`), []byte(`"kind":"bake"`), 1), "kind"},
		"zero width layer":  {bytes.Replace(good, []byte(`"arch":[1,1]`), []byte(`"arch":[1,0]`), 1), "width 0"},
		"infinite loss sum": {bytes.Replace(good, []byte(`"loss_sum":70.25`), []byte(`"loss_sum":1e999`), 1), "loss_sum"},
	}
	for name, c := range cases {
		_, err := Decode[Result](c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to mention %q", name, err, c.want)
		}
	}
	// Requests with a payload attached, and probabilities that are not a distribution.
	if _, err := Decode[FeasibleRequest](append([]byte(`{"v":1,"type":"feasible_request","run":"r","arch":[8]}`), "\nxx"...)); err == nil {
		t.Error("feasibility request with trailing bytes accepted")
	}
	if _, err := Decode[EstimateRequest]([]byte(`{"v":1,"type":"estimate_request","run":"r","step":1,"probs":[[0.5,0.6]]}`)); err == nil || !strings.Contains(err.Error(), "sum") {
		t.Errorf("bad distribution: %v", err)
	}
	// An invalid message is never sent.
	if _, err := Encode(&WorkItem{Envelope: NewEnvelope(TypeWork, "r"), Kind: KindTrain, Arch: []int{8}}); err == nil {
		t.Error("train item without scale encoded")
	}
	var js map[string]any
	if err := json.Unmarshal(head, &js); err != nil {
		t.Fatal(err)
	}
}
