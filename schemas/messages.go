package schemas

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tabnas/tabnas/internal/policy"
	"github.com/tabnas/tabnas/internal/search"
)

// WireVersion is the schema version of every pipeline message. A receiver rejects any
// other version: there is no silent reinterpretation across versions.
const WireVersion = 1

// Message types, carried in every message's "type" field.
const (
	TypeWork         = "work"
	TypeResult       = "result"
	TypeSuperNet     = "supernet"
	TypeEstimateReq  = "estimate_request"
	TypeEstimate     = "estimate"
	TypeFeasibleReq  = "feasible_request"
	TypeFeasible     = "feasible"
	TypeRun          = "run"
	TypeStatus       = "status"
	TypeCheckpoint   = "checkpoint"
	TypeTrialOutcome = "trial"
)

// Work kinds.
const (
	KindTrain = "train" // gradient of a child on a training batch
	KindScore = "score" // validation loss of a candidate
	KindTrial = "trial" // stand-alone training of one architecture from scratch
)

// Message is implemented by every wire message.
type Message interface {
	Validate() error
}

// Envelope is the header every message starts with.
type Envelope struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	Run  string `json:"run"`
}

var runRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ValidRunID checks a run id: it is used in subjects and object keys.
func ValidRunID(run string) error {
	if !runRe.MatchString(run) {
		return fmt.Errorf("run id %q: want 1-64 letters, digits, '-' or '_', starting with a letter or digit", run)
	}
	return nil
}

func (e Envelope) check(typ string) error {
	if e.V != WireVersion {
		return fmt.Errorf("schema version %d, this build speaks %d", e.V, WireVersion)
	}
	if e.Type != typ {
		return fmt.Errorf("type %q, want %q", e.Type, typ)
	}
	if err := ValidRunID(e.Run); err != nil {
		return err
	}
	return nil
}

// NewEnvelope stamps the current version.
func NewEnvelope(typ, run string) Envelope { return Envelope{V: WireVersion, Type: typ, Run: run} }

func checkArch(field string, a []int, allowEmpty bool) error {
	if len(a) == 0 && !allowEmpty {
		return fmt.Errorf("%s: empty architecture", field)
	}
	if len(a) > 64 {
		return fmt.Errorf("%s: %d layers, at most 64", field, len(a))
	}
	for i, w := range a {
		if w < 1 || w > 1<<20 {
			return fmt.Errorf("%s: layer %d width %d out of range", field, i+1, w)
		}
	}
	return nil
}

// WorkItem asks an evaluator for one shard's part of a step.
type WorkItem struct {
	Envelope
	Attempt int64   `json:"attempt"` // coordinator incarnation: a resumed run republishes under a new one
	Seq     int64   `json:"seq,omitempty"` // the coordinator's request number in this incarnation: the item's identity
	Step    int64   `json:"step"`          // the data key: which batch rows (a score item may use a fixed negative key)
	Shard   int     `json:"shard"`
	Kind    string  `json:"kind"`
	Version int64   `json:"version"` // SuperNet version to compute at
	Arch    []int   `json:"arch"`
	Rows    int     `json:"rows"`            // batch rows taken from this shard
	Scale   float32 `json:"scale,omitempty"` // gradient scale, 1/(rows of the whole batch)
	Trial   *Trial  `json:"trial,omitempty"`
}

// Trial parameterizes a stand-alone training.
type Trial struct {
	Seed     uint64  `json:"seed"`
	Epochs   int     `json:"epochs"`
	Batch    int     `json:"batch"`
	LR       float64 `json:"lr"`
	Patience int     `json:"patience"`
	// The recipe's knobs; zero takes the trainer's default, and where zero is the default a
	// negative value switches the feature off (see nn.TrainConfig).
	Schedule        string  `json:"schedule,omitempty"`         // constant, cosine or plateau
	MinLRFactor     float64 `json:"min_lr_factor,omitempty"`    // floor of the schedule as a fraction of lr
	PlateauPatience int     `json:"plateau_patience,omitempty"` // plateau: epochs without improvement before a cut
	PlateauFactor   float64 `json:"plateau_factor,omitempty"`   // plateau: the cut's multiplier, below 1
	WeightDecay     float64 `json:"weight_decay,omitempty"`     // decoupled (AdamW) weight decay λ
	Refit           bool    `json:"refit,omitempty"`            // retrain on train + validation at the best epoch count
}

// ID names the item for deduplication: the same (run, attempt, seq, step, kind, shard,
// arch) is the same work.
func (w *WorkItem) ID() string {
	return fmt.Sprintf("%s.%d.%d.%d.%s.%d.%s", w.Run, w.Attempt, w.Seq, w.Step, w.Kind, w.Shard, archKey(w.Arch))
}

func archKey(a []int) string {
	parts := make([]string, len(a))
	for i, x := range a {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, "-")
}

// Validate implements Message.
func (w *WorkItem) Validate() error {
	if err := w.check(TypeWork); err != nil {
		return err
	}
	switch {
	case (w.Step < 0 && w.Kind != KindScore) || w.Attempt < 0 || w.Seq < 0:
		return fmt.Errorf("step %d, attempt %d or seq %d is negative", w.Step, w.Attempt, w.Seq)
	case w.Shard < 0:
		return fmt.Errorf("shard %d is negative", w.Shard)
	case w.Version < 0:
		return fmt.Errorf("version %d is negative", w.Version)
	case w.Rows < 0:
		return fmt.Errorf("rows %d is negative", w.Rows)
	case math.IsNaN(float64(w.Scale)) || math.IsInf(float64(w.Scale), 0) || w.Scale < 0:
		return fmt.Errorf("scale %g is not a finite non-negative number", w.Scale)
	}
	switch w.Kind {
	case KindTrain:
		if !(w.Scale > 0) {
			return errors.New("train item needs a positive scale")
		}
	case KindScore:
	case KindTrial:
		if w.Trial == nil {
			return errors.New("trial item without trial parameters")
		}
		if err := w.Trial.Validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("kind %q: want train, score or trial", w.Kind)
	}
	return checkArch("arch", w.Arch, false)
}

// Result is an evaluator's answer to a WorkItem.
type Result struct {
	Envelope
	Attempt   int64   `json:"attempt"`
	Seq       int64   `json:"seq,omitempty"`
	Step      int64   `json:"step"`
	Shard     int     `json:"shard"`
	Kind      string  `json:"kind"`
	Version   int64   `json:"version"`
	Arch      []int   `json:"arch"`
	Rows      int     `json:"rows"`
	LossSum   float64 `json:"loss_sum"`
	Grad      []byte  `json:"-"`                   // float32 little-endian, the child slice (frame payload)
	Inline    int     `json:"inline,omitempty"`    // bytes of the frame payload
	GradBlob  string  `json:"grad_blob,omitempty"` // object name when too large to inline
	GradLen   int     `json:"grad_len,omitempty"`  // float32 count of the gradient
	Evaluator string  `json:"evaluator,omitempty"`
	// Error is a deterministic failure (a corrupt shard): retrying elsewhere would fail too.
	Error string        `json:"error,omitempty"`
	Trial *TrialOutcome `json:"trial,omitempty"`
}

// Key identifies the result for the coordinator's duplicate check: its work item's
// identity within the attempt.
func (r *Result) Key() string {
	return fmt.Sprintf("%d.%d.%s.%d.%s", r.Seq, r.Step, r.Kind, r.Shard, archKey(r.Arch))
}

// Validate implements Message.
func (r *Result) Validate() error {
	if err := r.check(TypeResult); err != nil {
		return err
	}
	if (r.Step < 0 && r.Kind != KindScore) || r.Seq < 0 || r.Shard < 0 || r.Version < 0 || r.Rows < 0 {
		return fmt.Errorf("negative step/seq/shard/version/rows (%d/%d/%d/%d/%d)", r.Step, r.Seq, r.Shard, r.Version, r.Rows)
	}
	if r.Kind != KindTrain && r.Kind != KindScore && r.Kind != KindTrial {
		return fmt.Errorf("kind %q: want train, score or trial", r.Kind)
	}
	if err := checkArch("arch", r.Arch, false); err != nil {
		return err
	}
	if r.Error != "" {
		return nil
	}
	if math.IsInf(r.LossSum, 0) {
		return fmt.Errorf("loss_sum is infinite")
	}
	if r.Kind == KindTrain {
		if r.Grad != nil && r.GradBlob != "" {
			return errors.New("both grad and grad_blob are set")
		}
		if r.GradLen <= 0 {
			return fmt.Errorf("train result with grad_len %d", r.GradLen)
		}
		if r.GradBlob == "" && len(r.Grad) != 4*r.GradLen {
			return fmt.Errorf("grad has %d bytes, grad_len %d needs %d", len(r.Grad), r.GradLen, 4*r.GradLen)
		}
	}
	if r.Kind == KindTrial && r.Trial == nil {
		return errors.New("trial result without its outcome")
	}
	return nil
}

// TrialOutcome is the stand-alone training of one architecture.
type TrialOutcome struct {
	Arch        string    `json:"arch"`
	Params      int64     `json:"params"`
	Epochs      int       `json:"epochs"`
	BestEpoch   int       `json:"best_epoch"`
	ValLoss     float64   `json:"val_loss"`
	ValMetric   float64   `json:"val_metric"`
	TestLoss    float64   `json:"test_loss"`
	TestMetric  float64   `json:"test_metric"`
	Metric      string    `json:"metric"` // "accuracy" or "rmse"
	WeightsBlob string    `json:"weights_blob"`
	Seconds     float64   `json:"seconds"`
	ValCurve    []float64 `json:"val_curve,omitempty"`
}

// SuperNetVersion moves the replicas to Version. A delta carries the new weights of one
// child's slice (Arch); a snapshot (Snapshot true, Arch empty) carries every weight.
type SuperNetVersion struct {
	Envelope
	Version  int64  `json:"version"`
	Arch     []int  `json:"arch,omitempty"`
	Snapshot bool   `json:"snapshot,omitempty"`
	Data     []byte `json:"-"`                // float32 little-endian (frame payload)
	Inline   int    `json:"inline,omitempty"` // bytes of the frame payload
	Blob     string `json:"blob,omitempty"`
	Len      int    `json:"len"`
}

// Validate implements Message.
func (s *SuperNetVersion) Validate() error {
	if err := s.check(TypeSuperNet); err != nil {
		return err
	}
	if s.Version < 0 {
		return fmt.Errorf("version %d is negative", s.Version)
	}
	if err := checkArch("arch", s.Arch, s.Snapshot); err != nil {
		return err
	}
	if s.Snapshot && len(s.Arch) > 0 {
		return errors.New("a snapshot carries no arch")
	}
	if s.Len <= 0 {
		return fmt.Errorf("len %d", s.Len)
	}
	if (s.Data == nil) == (s.Blob == "") {
		return errors.New("exactly one of data and blob must be set")
	}
	if s.Data != nil && len(s.Data) != 4*s.Len {
		return fmt.Errorf("data has %d bytes, len %d needs %d", len(s.Data), s.Len, 4*s.Len)
	}
	return nil
}

// EstimateRequest asks the sampler for P(V) and the marginals of p(·|V) at a step, for
// the policy's per-layer probabilities (float64 survives JSON exactly).
type EstimateRequest struct {
	Envelope
	Step  int64       `json:"step"`
	Probs [][]float64 `json:"probs"`
}

// Validate implements Message.
func (e *EstimateRequest) Validate() error {
	if err := e.check(TypeEstimateReq); err != nil {
		return err
	}
	if e.Step < 0 {
		return fmt.Errorf("step %d is negative", e.Step)
	}
	if len(e.Probs) == 0 {
		return errors.New("no probabilities")
	}
	for i, l := range e.Probs {
		if len(l) == 0 {
			return fmt.Errorf("probabilities of layer %d are empty", i+1)
		}
		var sum float64
		for j, v := range l {
			if !(v >= 0 && v <= 1) {
				return fmt.Errorf("probability [%d][%d] = %g outside [0, 1]", i+1, j, v)
			}
			sum += v
		}
		if math.Abs(sum-1) > 1e-6 {
			return fmt.Errorf("probabilities of layer %d sum to %g", i+1, sum)
		}
	}
	return nil
}

// EstimateReply answers an EstimateRequest.
type EstimateReply struct {
	Envelope
	Step     int64           `json:"step"`
	Estimate policy.Estimate `json:"estimate"`
	Error    string          `json:"error,omitempty"`
}

// Validate implements Message.
func (e *EstimateReply) Validate() error {
	if err := e.check(TypeEstimate); err != nil {
		return err
	}
	if e.Error != "" {
		return nil
	}
	if p := e.Estimate.PV; math.IsNaN(p) || p < 0 || p > 1+1e-9 {
		return fmt.Errorf("pv %g outside [0, 1]", p)
	}
	return nil
}

// FeasibleRequest asks the sampler whether an architecture (widths) meets every limit.
type FeasibleRequest struct {
	Envelope
	Arch []int `json:"arch"`
}

// Validate implements Message.
func (f *FeasibleRequest) Validate() error {
	if err := f.check(TypeFeasibleReq); err != nil {
		return err
	}
	return checkArch("arch", f.Arch, false)
}

// FeasibleReply answers a FeasibleRequest with the measured or computed costs.
type FeasibleReply struct {
	Envelope
	Arch     []int              `json:"arch"`
	Feasible bool               `json:"feasible"`
	Costs    map[string]float64 `json:"costs,omitempty"`
	Error    string             `json:"error,omitempty"`
}

// Validate implements Message.
func (f *FeasibleReply) Validate() error {
	if err := f.check(TypeFeasible); err != nil {
		return err
	}
	return checkArch("arch", f.Arch, false)
}

// RunStatus is the run's entry in the status KV bucket.
type RunStatus struct {
	Envelope
	State    string    `json:"state"` // running, selecting, retraining, done, failed
	Step     int64     `json:"step"`
	Steps    int       `json:"steps"`
	PV       float64   `json:"pv"`
	Baseline float64   `json:"baseline"`
	Best     string    `json:"best,omitempty"` // current most probable feasible architecture
	Result   string    `json:"result,omitempty"`
	Error    string    `json:"error,omitempty"`
	Updated  time.Time `json:"updated"`
}

// Run states.
const (
	StateRunning    = "running"
	StateRetraining = "retraining"
	StateDone       = "done"
	StateFailed     = "failed"
)

// Validate implements Message.
func (s *RunStatus) Validate() error {
	if err := s.check(TypeStatus); err != nil {
		return err
	}
	switch s.State {
	case StateRunning, StateRetraining, StateDone, StateFailed:
	default:
		return fmt.Errorf("state %q", s.State)
	}
	if s.Step < 0 || s.Steps < 0 {
		return fmt.Errorf("negative step %d or steps %d", s.Step, s.Steps)
	}
	return nil
}

// Checkpoint is the coordinator's whole state after Step steps. The SuperNet weights and
// their Adam moments are stored beside it (WeightsKey), as raw float32.
type Checkpoint struct {
	Envelope
	Step       int64           `json:"step"`
	Spec       RunSpec         `json:"spec"`
	Controller policy.State    `json:"controller"`
	AdamT      int             `json:"adam_t"`
	WeightsKey string          `json:"weights_key"`
	WeightsLen int             `json:"weights_len"`
	WeightsSHA string          `json:"weights_sha256"`
	History    []search.Record `json:"history"`
	Created    time.Time       `json:"created"`
}

// Validate implements Message.
func (c *Checkpoint) Validate() error {
	if err := c.check(TypeCheckpoint); err != nil {
		return err
	}
	if c.Step < 0 {
		return fmt.Errorf("step %d is negative", c.Step)
	}
	if int64(len(c.History)) != c.Step {
		return fmt.Errorf("history has %d records for %d steps", len(c.History), c.Step)
	}
	if c.WeightsKey == "" || c.WeightsLen <= 0 {
		return errors.New("weights_key and weights_len are required")
	}
	if c.Spec.Run != c.Run {
		return fmt.Errorf("spec is for run %q, checkpoint for %q", c.Spec.Run, c.Run)
	}
	return c.Spec.Validate()
}

// payloader is a message that carries raw bytes after its JSON header. Float payloads go
// as bytes, not base64 in JSON: decoding base64 strings cost more than the arithmetic of a
// small child's step.
type payloader interface {
	payload() []byte
	setPayload([]byte)
	inline() *int // the header field that states the payload's length
}

func (r *Result) payload() []byte              { return r.Grad }
func (r *Result) setPayload(b []byte)          { r.Grad = b }
func (s *SuperNetVersion) payload() []byte     { return s.Data }
func (s *SuperNetVersion) setPayload(b []byte) { s.Data = b }
func (r *Result) inline() *int                 { return &r.Inline }
func (s *SuperNetVersion) inline() *int        { return &s.Inline }

// Decode parses a message strictly (unknown fields are an error) and validates it. A
// message is its JSON header, then, for messages with a payload, a newline and the raw
// payload bytes, whose length the header states.
func Decode[T any, PT interface {
	*T
	Message
}](data []byte) (PT, error) {
	var v T
	p := PT(&v)
	var rest []byte
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data, rest = data[:i], data[i+1:]
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding %T: %w", v, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decoding %T: trailing data", v)
	}
	if pl, ok := any(p).(payloader); ok {
		n := *pl.inline()
		if len(rest) != n {
			return nil, fmt.Errorf("decoding %T: payload of %d bytes, header says %d", v, len(rest), n)
		}
		if n > 0 {
			pl.setPayload(rest)
		}
	} else if rest != nil {
		return nil, fmt.Errorf("decoding %T: unexpected data after the header", v)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("invalid %T: %w", v, err)
	}
	return p, nil
}

// Encode marshals a message after validating it, so a bad message never leaves a process.
func Encode(m Message) ([]byte, error) {
	pl, framed := m.(payloader)
	if framed {
		*pl.inline() = len(pl.payload())
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("refusing to send invalid %T: %w", m, err)
	}
	head, err := json.Marshal(m)
	if err != nil || !framed || len(pl.payload()) == 0 {
		return head, err
	}
	out := make([]byte, 0, len(head)+1+len(pl.payload()))
	return append(append(append(out, head...), '\n'), pl.payload()...), nil
}

// Floats encodes float32s little-endian.
func Floats(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// ParseFloats decodes little-endian float32s into dst (grown as needed).
func ParseFloats(b []byte, dst []float32) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("float32 payload of %d bytes is not a multiple of 4", len(b))
	}
	n := len(b) / 4
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return dst, nil
}
