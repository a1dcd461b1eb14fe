package bus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tabnas/tabnas/schemas"
)

// MemoryOptions tune NewMemory. Zero values pick the defaults noted on each field.
type MemoryOptions struct {
	// WorkAckWait is how long a receiver may hold a work item before it is handed out
	// again; default 30 s.
	WorkAckWait time.Duration
	// DuplicateWindow for work item and result identities; default 2 min.
	DuplicateWindow time.Duration
}

// NewMemory returns a bus that lives in this process: every service of the process shares
// it. Nothing is serialized; messages are copied and validated on the way.
func NewMemory(log *slog.Logger, o MemoryOptions) *Bus {
	if o.WorkAckWait <= 0 {
		o.WorkAckWait = 30 * time.Second
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	m := &memory{opts: o, floats: map[string][]float32{}}
	m.work.init(o)
	m.results.subs = map[string][]*memSub{}
	m.results.seen = dedup{window: o.DuplicateWindow}
	m.results.m = m
	m.versions.m = m
	m.versions.msgs = map[string]*schemas.SuperNetVersion{}
	m.versions.changed = make(chan struct{})
	m.sampler.log = log
	b := &Bus{Work: &m.work, Results: &m.results, Versions: &m.versions, Sampler: &m.sampler,
		Status: newMemKV(), Latency: newMemKV(), Blobs: newMemBlobs(), Log: log, Kind: "memory"}
	return b.init()
}

type memory struct {
	opts     MemoryOptions
	work     memWork
	results  memResults
	versions memVersions
	sampler  memSampler

	mu     sync.Mutex
	seq    int64
	floats map[string][]float32 // float payloads handed over by name, never serialized
}

// putFloats keeps a private copy of v under a fresh name.
func (m *memory) putFloats(prefix string, v []float32) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	name := prefix + "#" + strconv.FormatInt(m.seq, 10)
	m.floats[name] = slices.Clone(v)
	return name
}

func (m *memory) getFloats(name string, take bool) ([]float32, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.floats[name]
	if take {
		delete(m.floats, name)
	}
	return v, ok
}

// dedup remembers identities for a window.
type dedup struct {
	window time.Duration
	seen   map[string]time.Time
	last   time.Time
}

// fresh reports whether id is new, and remembers it. The caller holds the lock.
func (d *dedup) fresh(id string) bool {
	now := time.Now()
	if d.seen == nil {
		d.seen = map[string]time.Time{}
	}
	if now.Sub(d.last) > d.window/4 { // prune now and then
		for k, t := range d.seen {
			if now.Sub(t) > d.window {
				delete(d.seen, k)
			}
		}
		d.last = now
	}
	if t, ok := d.seen[id]; ok && now.Sub(t) <= d.window {
		return false
	}
	d.seen[id] = now
	return true
}

// ---- work queue ----

type memWork struct {
	opts    MemoryOptions
	mu      sync.Mutex
	ready   []*memEntry
	seen    dedup
	changed chan struct{}
}

type memEntry struct {
	item    *schemas.WorkItem // validated copy, or nil for raw bytes
	raw     []byte
	subject string
	token   int64 // the current delivery; older ones cannot ack
	held    bool
	timer   *time.Timer
}

func (w *memWork) init(o MemoryOptions) {
	w.opts = o
	w.seen = dedup{window: o.DuplicateWindow}
	w.changed = make(chan struct{})
}

func cloneItem(w *schemas.WorkItem) *schemas.WorkItem {
	c := *w
	c.Arch = slices.Clone(w.Arch)
	if w.Trial != nil {
		t := *w.Trial
		c.Trial = &t
	}
	return &c
}

// enqueue adds e to the ready items (the caller holds the lock).
func (w *memWork) enqueue(e *memEntry, front bool) {
	if front {
		w.ready = append([]*memEntry{e}, w.ready...)
	} else {
		w.ready = append(w.ready, e)
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *memWork) Publish(_ context.Context, items ...*schemas.WorkItem) error {
	clones := make([]*schemas.WorkItem, len(items))
	for i, it := range items {
		if err := it.Validate(); err != nil {
			return fmt.Errorf("refusing to send invalid work item: %w", err)
		}
		clones[i] = cloneItem(it)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range clones {
		if w.seen.fresh(c.ID()) {
			w.enqueue(&memEntry{item: c, subject: "memory.work." + c.Run + "." + c.Kind}, false)
		}
	}
	return nil
}

func (w *memWork) PublishRaw(_ context.Context, run, kind string, data []byte, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen.fresh(id) {
		w.enqueue(&memEntry{raw: slices.Clone(data), subject: "memory.work." + run + "." + kind}, false)
	}
	return nil
}

func (w *memWork) Next(ctx context.Context, wait time.Duration) (Delivery, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		w.mu.Lock()
		if len(w.ready) > 0 {
			e := w.ready[0]
			w.ready[0] = nil
			w.ready = w.ready[1:]
			e.token++
			e.held = true
			tok := e.token
			e.timer = time.AfterFunc(w.opts.WorkAckWait, func() { w.expire(e, tok) })
			w.mu.Unlock()
			return &memDelivery{w: w, e: e, token: tok}, nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
			return nil, nil
		case <-ch:
		}
	}
}

// expire hands out an item again whose receiver did not answer in time.
func (w *memWork) expire(e *memEntry, tok int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.held && e.token == tok {
		e.held = false
		w.enqueue(e, true)
	}
}

type memDelivery struct {
	w     *memWork
	e     *memEntry
	token int64
}

func (d *memDelivery) Item() (*schemas.WorkItem, error) {
	if d.e.item == nil {
		return schemas.Decode[schemas.WorkItem](d.e.raw)
	}
	return cloneItem(d.e.item), nil
}

func (d *memDelivery) Subject() string { return d.e.subject }

// settle ends the delivery if it is still the current one; requeue after delay when asked.
func (d *memDelivery) settle(requeue bool, delay time.Duration) error {
	w := d.w
	w.mu.Lock()
	defer w.mu.Unlock()
	e := d.e
	if !e.held || e.token != d.token {
		return nil // handed out again meanwhile: the new receiver owns it
	}
	e.held = false
	e.timer.Stop()
	if requeue {
		e.token++ // nobody holds it while it waits
		tok := e.token
		time.AfterFunc(delay, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if e.token == tok && !e.held {
				w.enqueue(e, false)
			}
		})
	}
	return nil
}

func (d *memDelivery) Ack() error                    { return d.settle(false, 0) }
func (d *memDelivery) Term() error                   { return d.settle(false, 0) }
func (d *memDelivery) Nak(delay time.Duration) error { return d.settle(true, delay) }

func (d *memDelivery) InProgress() error {
	w := d.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if d.e.held && d.e.token == d.token {
		d.e.timer.Reset(w.opts.WorkAckWait)
	}
	return nil
}

// ---- results ----

type memResults struct {
	m    *memory
	mu   sync.Mutex
	subs map[string][]*memSub
	seen dedup
}

type memSub struct {
	h       func(*schemas.Result, int, error)
	stopped atomic.Bool
}

func cloneResult(r *schemas.Result) *schemas.Result {
	c := *r
	c.Arch = slices.Clone(r.Arch)
	c.Grad = slices.Clone(r.Grad)
	if r.Trial != nil {
		t := *r.Trial
		t.ValCurve = slices.Clone(r.Trial.ValCurve)
		c.Trial = &t
	}
	return &c
}

const memPrefix = "mem:"

func (rs *memResults) Publish(ctx context.Context, r *schemas.Result, grad []float32, done func(error)) error {
	if err := rs.publish(ctx, r, grad); err != nil {
		return err // invalid: refused at once
	}
	return finish(done, nil)
}

func (rs *memResults) publish(_ context.Context, r *schemas.Result, grad []float32) error {
	c := cloneResult(r)
	size := len(c.Grad)
	if grad != nil {
		if c.GradLen != len(grad) {
			return fmt.Errorf("refusing to send invalid result: grad_len %d for %d floats", c.GradLen, len(grad))
		}
		c.Grad, c.Inline = nil, 0
		c.GradBlob = rs.m.putFloats(memPrefix+"grad", grad)
		size += 4 * len(grad)
	}
	if err := c.Validate(); err != nil {
		if grad != nil {
			rs.m.getFloats(c.GradBlob, true)
		}
		return fmt.Errorf("refusing to send invalid result: %w", err)
	}
	rs.mu.Lock()
	fresh := rs.seen.fresh(resultID(c))
	subs := slices.Clone(rs.subs[c.Run])
	rs.mu.Unlock()
	if !fresh {
		if grad != nil {
			rs.m.getFloats(c.GradBlob, true)
		}
		return nil
	}
	for i, s := range subs {
		if i > 0 { // each subscriber owns its copy
			c = cloneResult(c)
			if grad != nil {
				c.GradBlob = rs.m.putFloats(memPrefix+"grad", grad)
			}
		}
		s.deliver(c, size, nil)
	}
	if len(subs) == 0 && grad != nil {
		rs.m.getFloats(c.GradBlob, true)
	}
	return nil
}

func (s *memSub) deliver(r *schemas.Result, size int, err error) {
	if !s.stopped.Load() {
		s.h(r, size, err)
	}
}

func (rs *memResults) PublishRaw(_ context.Context, run string, data []byte, id string) error {
	rs.mu.Lock()
	fresh := rs.seen.fresh(id)
	subs := slices.Clone(rs.subs[run])
	rs.mu.Unlock()
	if !fresh {
		return nil
	}
	for _, s := range subs {
		r, err := schemas.Decode[schemas.Result](slices.Clone(data))
		s.deliver(r, len(data), err)
	}
	return nil
}

func (rs *memResults) Subscribe(_ context.Context, run string, h func(*schemas.Result, int, error)) (func(), error) {
	s := &memSub{h: h}
	rs.mu.Lock()
	rs.subs[run] = append(rs.subs[run], s)
	rs.mu.Unlock()
	return func() {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		s.stopped.Store(true)
		rs.subs[run] = slices.DeleteFunc(rs.subs[run], func(x *memSub) bool { return x == s })
		if len(rs.subs[run]) == 0 {
			delete(rs.subs, run)
		}
	}, nil
}

func (rs *memResults) Grad(_ context.Context, r *schemas.Result, dst []float32) ([]float32, error) {
	if r.GradBlob == "" {
		if len(r.Grad) != 4*r.GradLen {
			return nil, fmt.Errorf("result %s: gradient of %d bytes, want %d floats", r.Key(), len(r.Grad), r.GradLen)
		}
		return schemas.ParseFloats(r.Grad, dst)
	}
	v, ok := rs.m.getFloats(r.GradBlob, true)
	if !ok {
		return nil, fmt.Errorf("result %s: gradient %s: %w", r.Key(), r.GradBlob, ErrNotFound)
	}
	if len(v) != r.GradLen {
		return nil, fmt.Errorf("result %s: gradient of %d floats, want %d", r.Key(), len(v), r.GradLen)
	}
	return v, nil // a private copy: it is the caller's now
}

// ---- versions ----

type memVersions struct {
	m       *memory
	mu      sync.Mutex
	msgs    map[string]*schemas.SuperNetVersion
	changed chan struct{}
}

func versionKey(run string, v int64, snapshot bool) string {
	kind := "snet"
	if snapshot {
		kind = "snap"
	}
	return run + "." + kind + "." + strconv.FormatInt(v, 10)
}

func (vs *memVersions) Publish(ctx context.Context, m *schemas.SuperNetVersion, w []float32, done func(error)) error {
	if err := vs.publish(ctx, m, w); err != nil {
		return err
	}
	return finish(done, nil)
}

func (vs *memVersions) publish(_ context.Context, m *schemas.SuperNetVersion, w []float32) error {
	c := *m
	c.Arch = slices.Clone(m.Arch)
	c.Data, c.Inline = nil, 0
	if len(w) != c.Len {
		return fmt.Errorf("refusing to send invalid SuperNet version %d: len %d for %d floats", c.Version, c.Len, len(w))
	}
	c.Blob = vs.m.putFloats(memPrefix+"version", w)
	if err := c.Validate(); err != nil {
		vs.m.getFloats(c.Blob, true)
		return fmt.Errorf("refusing to send invalid SuperNet version: %w", err)
	}
	key := versionKey(c.Run, c.Version, c.Snapshot)
	vs.mu.Lock()
	if old := vs.msgs[key]; old != nil {
		vs.m.getFloats(old.Blob, true)
	}
	vs.msgs[key] = &c
	close(vs.changed)
	vs.changed = make(chan struct{})
	vs.mu.Unlock()
	return nil
}

func (vs *memVersions) Get(ctx context.Context, run string, v int64, snapshot bool, wait time.Duration) (*schemas.SuperNetVersion, error) {
	key := versionKey(run, v, snapshot)
	var deadline <-chan time.Time
	for {
		vs.mu.Lock()
		m := vs.msgs[key]
		ch := vs.changed
		vs.mu.Unlock()
		if m != nil {
			c := *m
			c.Arch = slices.Clone(m.Arch)
			return &c, nil
		}
		if wait <= 0 {
			return nil, fmt.Errorf("SuperNet version %s: %w", key, ErrNotFound)
		}
		if deadline == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("SuperNet version %s: %w", key, ErrNotFound)
		case <-ch:
		}
	}
}

func (vs *memVersions) Weights(_ context.Context, m *schemas.SuperNetVersion, dst []float32) ([]float32, error) {
	v, ok := vs.m.getFloats(m.Blob, false)
	if !ok {
		return nil, fmt.Errorf("SuperNet version %d: weights %s: %w", m.Version, m.Blob, ErrNotFound)
	}
	if len(v) != m.Len {
		return nil, fmt.Errorf("SuperNet version %d: %d floats, want %d", m.Version, len(v), m.Len)
	}
	if cap(dst) < len(v) {
		dst = make([]float32, len(v))
	}
	dst = dst[:len(v)]
	copy(dst, v)
	return dst, nil
}

// ---- sampler ----

type memSampler struct {
	log      *slog.Logger
	mu       sync.Mutex
	handlers []SamplerHandler
	next     int
}

var errNoSampler = fmt.Errorf("no sampler serves requests: %w", ErrNotFound)

func (s *memSampler) pick() (SamplerHandler, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.handlers) == 0 {
		return nil, errNoSampler
	}
	s.next = (s.next + 1) % len(s.handlers)
	return s.handlers[s.next], nil
}

func isNoSampler(err error) bool { return err == errNoSampler }

func (s *memSampler) Feasible(ctx context.Context, req *schemas.FeasibleRequest) (*schemas.FeasibleReply, error) {
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("refusing to send invalid feasibility request: %w", err)
	}
	h, err := retryWhileAbsent(ctx, s.log, "feasible", isNoSampler, s.pick)
	if err != nil {
		return nil, err
	}
	c := *req
	c.Arch = slices.Clone(req.Arch)
	rep := h.Feasible(ctx, &c)
	out := *rep
	out.Arch = slices.Clone(rep.Arch)
	if rep.Costs != nil {
		out.Costs = make(map[string]float64, len(rep.Costs))
		for k, v := range rep.Costs {
			out.Costs[k] = v
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("sampler reply: %w", err)
	}
	return &out, nil
}

func cloneProbs(p [][]float64) [][]float64 {
	if p == nil {
		return nil
	}
	out := make([][]float64, len(p))
	for i, l := range p {
		out[i] = slices.Clone(l)
	}
	return out
}

func (s *memSampler) Estimate(ctx context.Context, req *schemas.EstimateRequest) (*schemas.EstimateReply, error) {
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("refusing to send invalid estimate request: %w", err)
	}
	h, err := retryWhileAbsent(ctx, s.log, "estimate", isNoSampler, s.pick)
	if err != nil {
		return nil, err
	}
	c := *req
	c.Probs = cloneProbs(req.Probs)
	rep := h.Estimate(ctx, &c)
	out := *rep
	out.Estimate.Marginals = cloneProbs(rep.Estimate.Marginals)
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("sampler reply: %w", err)
	}
	return &out, nil
}

func (s *memSampler) Serve(ctx context.Context, h SamplerHandler, ready chan<- struct{}) error {
	s.mu.Lock()
	s.handlers = append(s.handlers, h)
	s.mu.Unlock()
	if ready != nil {
		close(ready)
	}
	<-ctx.Done()
	s.mu.Lock()
	for i, x := range s.handlers {
		if x == h {
			s.handlers = slices.Delete(s.handlers, i, i+1)
			break
		}
	}
	s.mu.Unlock()
	return nil
}

// ---- KV and blobs ----

type memKV struct {
	mu  sync.Mutex
	rev uint64
	m   map[string]memValue
}

type memValue struct {
	v   []byte
	rev uint64
}

func newMemKV() *memKV { return &memKV{m: map[string]memValue{}} }

func (k *memKV) Get(_ context.Context, key string) ([]byte, uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.m[key]
	if !ok {
		return nil, 0, fmt.Errorf("key %s: %w", key, ErrNotFound)
	}
	return slices.Clone(e.v), e.rev, nil
}

func (k *memKV) set(key string, v []byte) {
	k.rev++
	k.m[key] = memValue{v: slices.Clone(v), rev: k.rev}
}

func (k *memKV) Put(_ context.Context, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.set(key, v)
	return nil
}

func (k *memKV) Create(_ context.Context, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.m[key]; ok {
		return fmt.Errorf("key %s: %w", key, ErrExists)
	}
	k.set(key, v)
	return nil
}

func (k *memKV) Update(_ context.Context, key string, v []byte, rev uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.m[key]; !ok || e.rev != rev {
		return fmt.Errorf("key %s at revision %d: %w", key, rev, ErrConflict)
	}
	k.set(key, v)
	return nil
}

type memBlobs struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemBlobs() *memBlobs { return &memBlobs{m: map[string][]byte{}} }

func (b *memBlobs) PutBytes(_ context.Context, name string, data []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[name] = slices.Clone(data)
	return nil
}

func (b *memBlobs) GetBytes(_ context.Context, name string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[name]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", name, ErrNotFound)
	}
	return slices.Clone(v), nil
}

func (b *memBlobs) Delete(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, name)
	return nil
}
