package sampler

// Latency constraints: the inference time and the training-step time of a child network,
// measured on the sampler's own hardware and cached per architecture, or estimated as a
// calibrated sum of per-layer times, which is additive, so that the exact dynamic program of
// the P(V) correction still applies.
//
// Times are taken with the sampler's own thread settings (GOMAXPROCS and gemm.SetThreads at
// the time of the call), never pinned here: a limit only means something on the hardware
// and settings that timed it, so the sampler that decides feasibility is the one that times.
// Each time is the median of Runs timed runs after Warmup untimed ones. Several things timed
// together (the layers of the space, a batch of children) run interleaved, one run of each
// per round, so that a burst of load from elsewhere spoils a few runs of many measurements
// rather than every run of one.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tabnas/tabnas/internal/gemm"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/optim"
	"github.com/tabnas/tabnas/internal/space"
)

// Measurement defaults. A batch of 256 rows is the search's default training batch, and it
// keeps the timing of a typical child to a few milliseconds (the largest 512-512-512 child
// takes about 20 ms per training step on two cores).
const (
	DefaultLatencyBatch  = 256
	DefaultLatencyRuns   = 7
	DefaultLatencyWarmup = 2
)

// LatencyKind says which time is measured.
type LatencyKind string

const (
	// LatencyInference is the time of one prediction pass (forward and softmax/sigmoid) on a
	// batch.
	LatencyInference LatencyKind = "infer"
	// LatencyTrain is the time of one training step on a batch: forward, backward and an
	// Adam update of the child's slice.
	LatencyTrain LatencyKind = "train"
)

// ConstraintName is the name of the constraint on this kind of time.
func (k LatencyKind) ConstraintName() string {
	if k == LatencyTrain {
		return "train_step_ms"
	}
	return "latency_ms"
}

func (k LatencyKind) valid() error {
	if k != LatencyInference && k != LatencyTrain {
		return fmt.Errorf("sampler: unknown latency kind %q (want %q or %q)", string(k), LatencyInference, LatencyTrain)
	}
	return nil
}

// LatencyCache stores measured times in milliseconds by key. The in-process search uses
// MemCache; the sampler service stores them in a KV bucket so that a resumed run measures
// nothing twice.
type LatencyCache interface {
	Get(key string) (ms float64, ok bool, err error)
	Put(key string, ms float64) error
}

// MemCache is a LatencyCache in memory, safe for concurrent use.
type MemCache struct {
	mu sync.Mutex
	m  map[string]float64
}

// NewMemCache returns an empty cache.
func NewMemCache() *MemCache { return &MemCache{m: make(map[string]float64)} }

// Get returns the time stored under key.
func (c *MemCache) Get(key string) (float64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok, nil
}

// Put stores a time under key.
func (c *MemCache) Put(key string, ms float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = ms
	return nil
}

// Keys lists the stored keys in order.
func (c *MemCache) Keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MeterConfig builds a Meter. Zero numeric fields take the defaults.
type MeterConfig struct {
	Space *space.Space
	Task  nn.Task // its output width must be Space.Out
	// Batch is the number of rows of every timed pass (default 256).
	Batch int
	// Runs is the number of timed runs; the median is kept (default 7).
	Runs int
	// Warmup is the number of untimed runs before them (default 2), which fault in buffers
	// and wake the GEMM workers.
	Warmup int
	// Cache defaults to a new MemCache.
	Cache LatencyCache
	// Prefix starts every cache key, normally the run id, so that runs sharing a bucket
	// never reuse each other's times. Letters, digits and - _ = / separated by dots.
	Prefix string
	// Seed draws the weights and the batch (their values do not change the time).
	Seed uint64
	// OnMeasure, if set, is called after every actual measurement (never on a cache hit),
	// while the meter is locked: it must not call the meter.
	OnMeasure func(key string, ms float64)
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_=/-]+(\.[A-Za-z0-9_=/-]+)*$`)

// Meter times children of one search space and caches the times. Measurements are
// serialized: two at once would slow each other down.
type Meter struct {
	s                   *space.Space
	task                nn.Task
	batch, runs, warmup int
	cache               LatencyCache
	prefix              string
	onMeasure           func(string, float64)
	maxW                []int

	calMu sync.Mutex
	cal   map[LatencyKind]Calibration

	mu sync.Mutex // guards everything below and serializes measurements
	// Whole-network state: a SuperNet at the space's maximum widths, as in the search.
	net   *nn.SuperNet
	ws    *nn.Workspace
	grads *nn.Grads
	opt   *optim.Adam32
	x, y  []float32
	pred  []float32
	layer layerScratch
}

// layerScratch holds the buffers that time one layer alone. w holds W (rows with stride ld)
// followed by the bias at offset bias, like a layer of the SuperNet.
type layerScratch struct {
	act, z, dz, dh, dbPrev []float32
	w, g                   []float32
	bias                   int
	opt                    *optim.Adam32
	spans                  []optim.Span
}

// NewMeter checks the configuration and allocates the buffers of the largest child.
func NewMeter(cfg MeterConfig) (*Meter, error) {
	s := cfg.Space
	if s == nil {
		return nil, errors.New("sampler: latency meter needs a search space")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Task.Validate(); err != nil {
		return nil, err
	}
	if cfg.Task.Outputs() != s.Out {
		return nil, fmt.Errorf("sampler: task %s has %d outputs, the space has output width %d", cfg.Task, cfg.Task.Outputs(), s.Out)
	}
	if cfg.Batch < 0 || cfg.Runs < 0 || cfg.Warmup < 0 {
		return nil, fmt.Errorf("sampler: latency batch %d, runs %d and warmup %d must not be negative", cfg.Batch, cfg.Runs, cfg.Warmup)
	}
	if !prefixRE.MatchString(cfg.Prefix) {
		return nil, fmt.Errorf("sampler: latency cache prefix %q: want letters, digits and - _ = / separated by dots", cfg.Prefix)
	}
	m := &Meter{
		s:         &space.Space{In: s.In, Out: s.Out, Widths: make([][]int, len(s.Widths))},
		task:      cfg.Task,
		batch:     cmp0(cfg.Batch, DefaultLatencyBatch),
		runs:      cmp0(cfg.Runs, DefaultLatencyRuns),
		warmup:    cmp0(cfg.Warmup, DefaultLatencyWarmup),
		cache:     cfg.Cache,
		prefix:    cfg.Prefix,
		onMeasure: cfg.OnMeasure,
		cal:       make(map[LatencyKind]Calibration),
	}
	for i, ws := range s.Widths {
		m.s.Widths[i] = slices.Clone(ws) // the space must not change under the cache keys
	}
	if m.cache == nil {
		m.cache = NewMemCache()
	}
	m.maxW = m.s.MaxWidths()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6c6174656e6379))
	net, err := nn.NewSuperNet(s.In, m.maxW, cfg.Task, rng)
	if err != nil {
		return nil, err
	}
	m.net = net
	m.ws = nn.NewWorkspace(net, m.batch)
	m.grads = net.NewGrads()
	m.opt = timingAdam(len(net.Weights))
	m.x = normals(rng, m.batch*s.In, 1)
	m.y = make([]float32, m.batch)
	for r := range m.y {
		switch cfg.Task.Kind {
		case nn.Regression:
			m.y[r] = float32(rng.NormFloat64())
		case nn.Binary:
			m.y[r] = float32(rng.IntN(2))
		default:
			m.y[r] = float32(rng.IntN(cfg.Task.Classes))
		}
	}
	m.pred = make([]float32, m.batch*s.Out)

	f, ld := s.In, s.Out
	for _, w := range m.maxW {
		f, ld = max(f, w), max(ld, w)
	}
	ls := &m.layer
	ls.act = normals(rng, m.batch*f, 1)
	for i, v := range ls.act {
		ls.act[i] = max(v, 0) // post-ReLU, as a hidden layer sees it
	}
	ls.z = make([]float32, m.batch*ld)
	ls.dz = normals(rng, m.batch*ld, 1e-3)
	ls.dh = make([]float32, m.batch*f)
	ls.dbPrev = make([]float32, f)
	ls.bias = f * ld
	ls.w = normals(rng, f*ld+ld, math.Sqrt(2/float64(f)))
	ls.g = make([]float32, len(ls.w))
	ls.opt = timingAdam(len(ls.w))
	ls.spans = make([]optim.Span, 0, f+1)
	return m, nil
}

// timingAdam does all the arithmetic of a real Adam step, but with learning rate 0 the
// weights stay put and with both betas 0 the moments keep no history, so thousands of timed
// runs cannot drift the workload (say, moments decaying into slow denormal floats).
func timingAdam(n int) *optim.Adam32 {
	a := optim.NewAdam32(n, 0)
	a.Beta1, a.Beta2 = 0, 0
	return a
}

func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func normals(rng *rand.Rand, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * std)
	}
	return x
}

// Space is the meter's search space (a copy; do not modify).
func (m *Meter) Space() *space.Space { return m.s }

// Batch is the number of rows of every timed pass.
func (m *Meter) Batch() int { return m.batch }

// Runs is the number of timed runs of every measurement.
func (m *Meter) Runs() int { return m.runs }

// Inference is the median time in ms of one prediction pass of child widths on a batch.
func (m *Meter) Inference(ctx context.Context, widths []int) (float64, error) {
	return m.Measure(ctx, LatencyInference, widths)
}

// TrainStep is the median time in ms of one training step of child widths on a batch.
func (m *Meter) TrainStep(ctx context.Context, widths []int) (float64, error) {
	return m.Measure(ctx, LatencyTrain, widths)
}

// Measure times the whole child network (or returns the cached time).
func (m *Meter) Measure(ctx context.Context, kind LatencyKind, widths []int) (float64, error) {
	j, err := m.wholeJob(kind, widths)
	if err != nil {
		return 0, err
	}
	v, err := m.measure(ctx, []job{j})
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// MeasureAll times many whole children (or returns their cached times), their runs
// interleaved: the sturdier way to time, say, the Monte Carlo samples of a step.
func (m *Meter) MeasureAll(ctx context.Context, kind LatencyKind, widths [][]int) ([]float64, error) {
	jobs := make([]job, len(widths))
	for k, w := range widths {
		var err error
		if jobs[k], err = m.wholeJob(kind, w); err != nil {
			return nil, err
		}
	}
	return m.measure(ctx, jobs)
}

// job is one thing to time: its cache key and one run of it.
type job struct {
	key string
	run func()
}

func (m *Meter) wholeJob(kind LatencyKind, widths []int) (job, error) {
	if err := kind.valid(); err != nil {
		return job{}, err
	}
	arch := nn.Arch(widths)
	if err := m.net.CheckArch(arch); err != nil {
		return job{}, fmt.Errorf("sampler: %s latency: %w", kind, err)
	}
	arch = slices.Clone(arch)
	j := job{key: fmt.Sprintf("%s.%s.b%d.%s", m.prefix, kind, m.batch, arch)}
	j.run = func() { m.net.Predict(arch, m.x, m.batch, m.ws, m.pred) }
	if kind == LatencyTrain {
		j.run = func() { m.net.TrainStep(arch, m.x, m.y, m.batch, m.ws, m.grads, m.opt) }
	}
	return j, nil
}

// EdgeInference is the median time in ms of the layer into hidden layer i (i = Layers() is
// the output layer) from width from to width to, alone: GEMM, bias and ReLU (no ReLU on
// the output layer).
func (m *Meter) EdgeInference(ctx context.Context, i, from, to int) (float64, error) {
	return m.Edge(ctx, LatencyInference, i, from, to)
}

// EdgeTrain is the median time in ms of the share of a training step that belongs to the
// layer into hidden layer i, alone: zeroing its gradient, its forward GEMM, bias and ReLU,
// its weight-gradient GEMM, the gradient with respect to its input through the previous
// ReLU (except for the first layer, whose input is data) and Adam on its weights.
func (m *Meter) EdgeTrain(ctx context.Context, i, from, to int) (float64, error) {
	return m.Edge(ctx, LatencyTrain, i, from, to)
}

// Edge times one layer alone (see EdgeInference and EdgeTrain). The layer reads its weights
// with the stride of the SuperNet's layer, as the whole child does.
func (m *Meter) Edge(ctx context.Context, kind LatencyKind, i, from, to int) (float64, error) {
	j, err := m.edgeJob(kind, i, from, to)
	if err != nil {
		return 0, err
	}
	v, err := m.measure(ctx, []job{j})
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (m *Meter) edgeJob(kind LatencyKind, i, from, to int) (job, error) {
	if err := kind.valid(); err != nil {
		return job{}, err
	}
	role, ld, err := m.edgeShape(i, from, to)
	if err != nil {
		return job{}, err
	}
	j := job{key: fmt.Sprintf("%s.%s.b%d.edge.%s.%d-%d.ld%d", m.prefix, kind, m.batch, role, from, to, ld)}
	out, first := role == "out", role == "in"
	j.run = func() { m.layerForward(from, to, ld, out) }
	if kind == LatencyTrain {
		j.run = func() { m.layerTrain(from, to, ld, out, first) }
	}
	return j, nil
}

// edgeShape checks an edge and returns its role (in, hidden, out) and weight stride.
func (m *Meter) edgeShape(i, from, to int) (string, int, error) {
	L := len(m.maxW)
	bad := func(why string) (string, int, error) {
		return "", 0, fmt.Errorf("sampler: layer %d from width %d to width %d: %s", i, from, to, why)
	}
	switch {
	case i < 0 || i > L:
		return bad(fmt.Sprintf("the network has layers 0..%d", L))
	case from < 1 || to < 1:
		return bad("widths must be at least 1")
	case i == 0 && from != m.s.In:
		return bad(fmt.Sprintf("the first layer reads the input width %d", m.s.In))
	case i > 0 && from > m.maxW[i-1]:
		return bad(fmt.Sprintf("input width exceeds the maximum %d", m.maxW[i-1]))
	case i == L && to != m.s.Out:
		return bad(fmt.Sprintf("the output layer has width %d", m.s.Out))
	case i < L && to > m.maxW[i]:
		return bad(fmt.Sprintf("width exceeds the maximum %d", m.maxW[i]))
	}
	switch {
	case i == L:
		return "out", m.s.Out, nil
	case i == 0:
		return "in", m.maxW[0], nil
	}
	return "hidden", m.maxW[i], nil
}

// measure returns the time of every job: from the cache, or else timed now and stored.
// Uncached jobs get their warmup runs, then Runs rounds of one timed run each.
func (m *Meter) measure(ctx context.Context, jobs []job) ([]float64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]float64, len(jobs))
	var todo []job
	where := make(map[string][]int) // key → indices in jobs (a key may repeat)
	for k, j := range jobs {
		if idx, seen := where[j.key]; seen {
			where[j.key] = append(idx, k)
			continue
		}
		v, ok, err := m.cache.Get(j.key)
		if err != nil {
			return nil, fmt.Errorf("sampler: latency cache get %s: %w", j.key, err)
		}
		if ok && (math.IsNaN(v) || math.IsInf(v, 0) || v < 0) {
			return nil, fmt.Errorf("sampler: latency cache entry %s is %v, not a time in ms", j.key, v)
		}
		where[j.key] = []int{k}
		if ok {
			out[k] = v
			continue
		}
		todo = append(todo, j)
	}
	if len(todo) == 0 {
		return fill(out, where), nil
	}
	times := make([][]float64, len(todo))
	for t, j := range todo {
		times[t] = make([]float64, m.runs)
		for range m.warmup {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("sampler: measuring %s: %w", j.key, err)
			}
			j.run()
		}
	}
	for r := range m.runs {
		for t, j := range todo {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("sampler: measuring %s: %w", j.key, err)
			}
			t0 := time.Now()
			j.run()
			times[t][r] = float64(time.Since(t0).Nanoseconds()) / 1e6
		}
	}
	for t, j := range todo {
		v := median(times[t])
		if err := m.cache.Put(j.key, v); err != nil {
			return nil, fmt.Errorf("sampler: latency cache put %s: %w", j.key, err)
		}
		if m.onMeasure != nil {
			m.onMeasure(j.key, v)
		}
		out[where[j.key][0]] = v
	}
	return fill(out, where), nil
}

// fill copies each key's time to its repeated positions.
func fill(out []float64, where map[string][]int) []float64 {
	for _, idx := range where {
		for _, k := range idx[1:] {
			out[k] = out[idx[0]]
		}
	}
	return out
}

// median sorts x in place.
func median(x []float64) float64 {
	slices.Sort(x)
	n := len(x)
	if n%2 == 1 {
		return x[n/2]
	}
	return (x[n/2-1] + x[n/2]) / 2
}

// layerForward is one layer's share of SuperNet.forward.
func (m *Meter) layerForward(from, to, ld int, out bool) {
	ls, B := &m.layer, m.batch
	gemm.Sgemm(false, false, B, to, from, 1, ls.act, from, ls.w, ld, 0, ls.z, to)
	b := ls.w[ls.bias : ls.bias+to]
	if out {
		nn.AddBias(ls.z, b, B, to)
	} else {
		nn.BiasReLU(ls.z, b, B, to)
	}
}

// layerTrain is one layer's share of SuperNet.TrainStep (Grads.Zero, forward, gradient,
// Apply). The loss and its gradient are shared by all children and left to the overhead.
func (m *Meter) layerTrain(from, to, ld int, out, first bool) {
	ls, B := &m.layer, m.batch
	for r := 0; r < from; r++ {
		clear(ls.g[r*ld : r*ld+to])
	}
	clear(ls.g[ls.bias : ls.bias+to])
	m.layerForward(from, to, ld, out)
	gemm.Sgemm(true, false, from, to, B, 1, ls.act, from, ls.dz, to, 1, ls.g, ld)
	if !first {
		gemm.Sgemm(false, true, B, from, to, 1, ls.dz, to, ls.w, ld, 0, ls.dh, from)
		nn.ReLUBackward(ls.dh, ls.act, ls.dbPrev, B, from)
	}
	sp := ls.spans[:0]
	if to == ld {
		sp = append(sp, optim.Span{Lo: 0, Hi: from * ld})
	} else {
		for r := 0; r < from; r++ {
			sp = append(sp, optim.Span{Lo: r * ld, Hi: r*ld + to})
		}
	}
	sp = append(sp, optim.Span{Lo: ls.bias, Hi: ls.bias + to})
	ls.opt.Step(ls.w, ls.g, sp)
	ls.spans = sp
}

// Calibration maps the sum of a child's layer times to its whole time:
// whole ≈ Scale·Σ layers + Overhead. The overhead is what no layer accounts for (the loss or
// the softmax, per-call costs). The scale corrects what timing a layer alone misses: inside a
// network the layers' weights and activations compete for the CPU caches that a layer timed
// alone has to itself, so whole children run slower than their layers' sum (by 5-30%).
type Calibration struct {
	Scale    float64 `json:"scale"`
	Overhead float64 `json:"overhead_ms"`
	Children int     `json:"children"` // whole children it was fitted on
}

// Apply is the estimate of a child whose layers sum to layers ms.
func (c Calibration) Apply(layers float64) float64 { return c.Scale*layers + c.Overhead }

// calibrationChildren is how many children are timed whole to fit a Calibration.
const calibrationChildren = 12

// calibrationArchs are the smallest and the largest child and random others, drawn from a
// fixed stream so that a resumed run finds them all in the cache.
func (m *Meter) calibrationArchs() [][]int {
	s := m.s
	if s.Size() <= calibrationChildren {
		out := make([][]int, 0, s.Size())
		for r := int64(0); r < s.Size(); r++ {
			out = append(out, s.ArchWidths(s.Index(r)))
		}
		return out
	}
	out := [][]int{m.smallest(), slices.Clone(m.maxW)}
	rng := rand.New(rand.NewPCG(0x63616c6962, uint64(s.Size())))
	for len(out) < calibrationChildren {
		w := s.ArchWidths(s.Index(rng.Int64N(s.Size())))
		if !slices.ContainsFunc(out, func(o []int) bool { return slices.Equal(o, w) }) {
			out = append(out, w)
		}
	}
	return out
}

// calibrationJobs lists, for each child, its layers then its whole network.
func (m *Meter) calibrationJobs(kind LatencyKind, archs [][]int) ([]job, error) {
	var jobs []job
	for _, w := range archs {
		ej, err := m.edgeJobs(kind, w)
		if err != nil {
			return nil, err
		}
		wj, err := m.wholeJob(kind, w)
		if err != nil {
			return nil, err
		}
		jobs = append(append(jobs, ej...), wj)
	}
	return jobs, nil
}

// Calibrate fits the Calibration of a kind of time on calibrationChildren children timed
// whole and by layers. Everything comes from (or goes to) the cache, so a run fits the
// same calibration every time.
func (m *Meter) Calibrate(ctx context.Context, kind LatencyKind) (Calibration, error) {
	if err := kind.valid(); err != nil {
		return Calibration{}, err
	}
	m.calMu.Lock()
	c, ok := m.cal[kind]
	m.calMu.Unlock()
	if ok {
		return c, nil // its inputs are cached and never change: skip the cache round trips
	}
	archs := m.calibrationArchs()
	jobs, err := m.calibrationJobs(kind, archs)
	if err != nil {
		return Calibration{}, err
	}
	v, err := m.measure(ctx, jobs)
	if err != nil {
		return Calibration{}, err
	}
	per := len(m.maxW) + 2 // L+1 layers, then the whole
	layers, whole := make([]float64, len(archs)), make([]float64, len(archs))
	for k := range archs {
		for _, e := range v[k*per : k*per+per-1] {
			layers[k] += e
		}
		whole[k] = v[k*per+per-1]
	}
	c = fitCalibration(layers, whole, true)
	m.calMu.Lock()
	m.cal[kind] = c
	m.calMu.Unlock()
	return c, nil
}

// fitCalibration fits whole ≈ scale·layers + overhead robustly (Theil–Sen: the scale is
// the median slope over pairs of children, the overhead the median residual), so that one
// child timed during a burst of load elsewhere cannot bend the fit. Scale stays positive and
// overhead non-negative, which keeps every edge cost ≥ 0 as the DP needs. With scaled
// false the scale is 1.
func fitCalibration(layers, whole []float64, scaled bool) Calibration {
	c := Calibration{Scale: 1, Children: len(layers)}
	if scaled {
		var slopes []float64
		for p := range layers {
			for q := p + 1; q < len(layers); q++ {
				if d := layers[q] - layers[p]; math.Abs(d) > 1e-9*max(layers[p], layers[q]) {
					slopes = append(slopes, (whole[q]-whole[p])/d)
				}
			}
		}
		if len(slopes) > 0 {
			if sc := median(slopes); sc > 0 {
				c.Scale = sc
			}
		}
	}
	res := make([]float64, len(layers))
	for k := range layers {
		res[k] = whole[k] - c.Scale*layers[k]
	}
	if len(res) > 0 {
		c.Overhead = max(0, median(res))
	}
	return c
}

func (m *Meter) smallest() []int {
	w := make([]int, len(m.s.Widths))
	for i, ws := range m.s.Widths {
		w[i] = ws[0]
	}
	return w
}

// Estimate is the per-layer estimate of child widths: the calibrated sum of its layers
// timed alone.
func (m *Meter) Estimate(ctx context.Context, kind LatencyKind, widths []int) (float64, error) {
	sum, err := m.layerSum(ctx, kind, widths)
	if err != nil {
		return 0, err
	}
	cal, err := m.Calibrate(ctx, kind)
	if err != nil {
		return 0, err
	}
	return cal.Apply(sum), nil
}

// layerSum is the sum of the times of the layers of child widths, each timed alone.
func (m *Meter) layerSum(ctx context.Context, kind LatencyKind, widths []int) (float64, error) {
	jobs, err := m.edgeJobs(kind, widths)
	if err != nil {
		return 0, fmt.Errorf("sampler: %s latency estimate: %w", kind, err)
	}
	v, err := m.measure(ctx, jobs)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, e := range v {
		sum += e
	}
	return sum, nil
}

// edgeJobs lists the layers of child widths, input first.
func (m *Meter) edgeJobs(kind LatencyKind, widths []int) ([]job, error) {
	if err := m.net.CheckArch(nn.Arch(widths)); err != nil {
		return nil, err
	}
	jobs := make([]job, 0, len(widths)+1)
	prev := m.s.In
	for i, w := range append(slices.Clone(widths), m.s.Out) {
		j, err := m.edgeJob(kind, i, prev, w)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
		prev = w
	}
	return jobs, nil
}

// widthsOf maps an architecture of s to widths, checking s has the meter's shape.
func (m *Meter) widthsOf(s *space.Space, a space.Arch) ([]int, error) { return archWidths(m.s, s, a) }

// archWidths maps an architecture of s, which must equal own, to widths.
func archWidths(own, s *space.Space, a space.Arch) ([]int, error) {
	if s != own && !sameSpace(s, own) {
		return nil, errors.New("sampler: architecture of another search space than the latency meter's")
	}
	if len(a) != len(s.Widths) {
		return nil, fmt.Errorf("sampler: architecture has %d layers, the space has %d", len(a), len(s.Widths))
	}
	for i, c := range a {
		if c < 0 || c >= len(s.Widths[i]) {
			return nil, fmt.Errorf("sampler: layer %d choice %d outside 0..%d", i+1, c, len(s.Widths[i])-1)
		}
	}
	return s.ArchWidths(a), nil
}

func sameSpace(a, b *space.Space) bool {
	if a == nil || a.In != b.In || a.Out != b.Out || len(a.Widths) != len(b.Widths) {
		return false
	}
	for i := range a.Widths {
		if !slices.Equal(a.Widths[i], b.Widths[i]) {
			return false
		}
	}
	return true
}

func checkLimit(kind LatencyKind, limit float64) error {
	if err := kind.valid(); err != nil {
		return err
	}
	if !(limit > 0) || math.IsInf(limit, 0) {
		return fmt.Errorf("sampler: %s limit %g must be a positive number of ms", kind.ConstraintName(), limit)
	}
	return nil
}

// LatencyConstraint limits the measured time of the whole child network. It is not
// additive, so the exact correction falls back to enumeration (or Monte Carlo).
type LatencyConstraint struct {
	m     *Meter
	kind  LatencyKind
	limit float64
	ctx   context.Context
}

// NewLatencyConstraint limits the kind of time to limit ms. space.Constraint.Cost has no
// context, so measurements use ctx (normally the run's) to abort.
func NewLatencyConstraint(ctx context.Context, m *Meter, kind LatencyKind, limit float64) (*LatencyConstraint, error) {
	if err := checkLimit(kind, limit); err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	return &LatencyConstraint{m: m, kind: kind, limit: limit, ctx: ctx}, nil
}

// Name is "latency_ms" or "train_step_ms".
func (c *LatencyConstraint) Name() string { return c.kind.ConstraintName() }

// Limit is the limit in ms.
func (c *LatencyConstraint) Limit() float64 { return c.limit }

// Cost measures the child (once per run; later calls read the cache).
func (c *LatencyConstraint) Cost(s *space.Space, a space.Arch) (float64, error) {
	w, err := c.m.widthsOf(s, a)
	if err != nil {
		return 0, err
	}
	return c.m.Measure(c.ctx, c.kind, w)
}

// edgeID names one edge of the space for EstimatedLatency's table.
type edgeID struct{ i, from, to int }

// EstimatedLatency limits the per-layer estimate of a time. It is additive, so the exact
// dynamic program computes P(V) and the marginals under it.
type EstimatedLatency struct {
	kind  LatencyKind
	limit float64
	s     *space.Space
	edges map[edgeID]float64
	cal   Calibration
}

// NewEstimatedLatency measures every layer occurring in the meter's space (input to each
// first-layer width, each width pair of consecutive layers, each last-layer width to the
// output) and the children of the calibration, and limits the calibrated sum to limit ms.
func NewEstimatedLatency(ctx context.Context, m *Meter, kind LatencyKind, limit float64) (*EstimatedLatency, error) {
	if err := checkLimit(kind, limit); err != nil {
		return nil, err
	}
	s := m.s
	L := s.Layers()
	c := &EstimatedLatency{kind: kind, limit: limit, s: s, edges: make(map[edgeID]float64)}
	var ids []edgeID
	var jobs []job
	for i := 0; i <= L; i++ {
		froms, tos := []int{s.In}, []int{s.Out}
		if i > 0 {
			froms = s.Widths[i-1]
		}
		if i < L {
			tos = s.Widths[i]
		}
		for _, f := range froms {
			for _, t := range tos {
				j, err := m.edgeJob(kind, i, f, t)
				if err != nil {
					return nil, err
				}
				ids, jobs = append(ids, edgeID{i, f, t}), append(jobs, j)
			}
		}
	}
	// The calibration's children join the same rounds.
	cj, err := m.calibrationJobs(kind, m.calibrationArchs())
	if err != nil {
		return nil, err
	}
	v, err := m.measure(ctx, append(jobs, cj...))
	if err != nil {
		return nil, err
	}
	for k, id := range ids {
		c.edges[id] = v[k]
	}
	if c.cal, err = m.Calibrate(ctx, kind); err != nil {
		return nil, err
	}
	return c, nil
}

// Name is "latency_ms" or "train_step_ms".
func (c *EstimatedLatency) Name() string { return c.kind.ConstraintName() }

// Limit is the limit in ms.
func (c *EstimatedLatency) Limit() float64 { return c.limit }

// Calibration is the scale applied to every layer and the overhead folded into the output
// layer's cost.
func (c *EstimatedLatency) Calibration() Calibration { return c.cal }

// EdgeCost is the scaled measured time of the layer into hidden layer i (the output layer,
// plus the overhead, when i = Layers()), +Inf for a layer that does not occur in the space.
func (c *EstimatedLatency) EdgeCost(i, from, to int) float64 {
	v, ok := c.edges[edgeID{i, from, to}]
	if !ok {
		return math.Inf(1)
	}
	v *= c.cal.Scale
	if i == c.s.Layers() {
		v += c.cal.Overhead
	}
	return v
}

// Cost is the sum of the edge costs of the child.
func (c *EstimatedLatency) Cost(s *space.Space, a space.Arch) (float64, error) {
	if _, err := archWidths(c.s, s, a); err != nil {
		return 0, err
	}
	return space.AdditiveCost(c, s, a), nil
}

// EstimateRow compares the estimate of one child with its whole measurement.
type EstimateRow struct {
	Arch       string  `json:"arch"`
	WholeMs    float64 `json:"whole_ms"`
	EstimateMs float64 `json:"estimate_ms"`
	LayersMs   float64 `json:"layers_ms"` // sum of its layers timed alone, before calibration
}

// RelErr is |estimate − whole| / whole.
func (r EstimateRow) RelErr() float64 { return math.Abs(r.EstimateMs-r.WholeMs) / r.WholeMs }

// EstimateStats summarizes how far the per-layer estimate is from whole measurements.
type EstimateStats struct {
	Kind        LatencyKind   `json:"kind"`
	Rows        []EstimateRow `json:"rows"`
	MeanRelErr  float64       `json:"mean_rel_err"`
	MaxRelErr   float64       `json:"max_rel_err"`
	MeanBias    float64       `json:"mean_bias"` // mean (estimate − whole) / whole: > 0 overestimates
	Spearman    float64       `json:"spearman"`  // rank correlation of estimate and whole
	Calibration Calibration   `json:"calibration"`
	// UnscaledMeanRelErr is the mean relative error of the plain sum of layers plus a fitted
	// constant overhead (scale 1): what the scale buys.
	UnscaledMeanRelErr float64 `json:"unscaled_mean_rel_err"`
	RowsPerPass        int     `json:"rows_per_pass"`
}

// EstimateReport holds the comparison for both kinds of time.
type EstimateReport struct {
	Inference EstimateStats `json:"inference"`
	Train     EstimateStats `json:"train"`
}

// EstimateError measures every child of sample (architectures of s, the meter's space)
// whole and by the per-layer estimate, for inference and for training steps.
func EstimateError(ctx context.Context, m *Meter, s *space.Space, sample []space.Arch) (EstimateReport, error) {
	if len(sample) == 0 {
		return EstimateReport{}, errors.New("sampler: latency estimate error needs at least one architecture")
	}
	widths := make([][]int, len(sample))
	for k, a := range sample {
		var err error
		if widths[k], err = m.widthsOf(s, a); err != nil {
			return EstimateReport{}, err
		}
	}
	var rep EstimateReport
	for _, kind := range []LatencyKind{LatencyInference, LatencyTrain} {
		// Time everything the report needs in one interleaved batch.
		jobs, err := m.calibrationJobs(kind, append(m.calibrationArchs(), widths...))
		if err != nil {
			return EstimateReport{}, err
		}
		if _, err := m.measure(ctx, jobs); err != nil {
			return EstimateReport{}, err
		}
		cal, err := m.Calibrate(ctx, kind)
		if err != nil {
			return EstimateReport{}, err
		}
		st := EstimateStats{Kind: kind, RowsPerPass: m.batch, Calibration: cal}
		n := float64(len(sample))
		whole, est, layers := make([]float64, len(sample)), make([]float64, len(sample)), make([]float64, len(sample))
		for k, w := range widths {
			if whole[k], err = m.Measure(ctx, kind, w); err != nil {
				return EstimateReport{}, err
			}
			if layers[k], err = m.layerSum(ctx, kind, w); err != nil {
				return EstimateReport{}, err
			}
			est[k] = cal.Apply(layers[k])
			r := EstimateRow{Arch: space.FormatWidths(w), WholeMs: whole[k], EstimateMs: est[k], LayersMs: layers[k]}
			st.Rows = append(st.Rows, r)
			e := r.RelErr()
			st.MeanRelErr += e / n
			st.MaxRelErr = max(st.MaxRelErr, e)
			st.MeanBias += (r.EstimateMs - r.WholeMs) / r.WholeMs / n
		}
		st.Spearman = Spearman(est, whole)
		// The unscaled model, fitted on the same calibration children.
		cl, cw := make([]float64, 0, calibrationChildren), make([]float64, 0, calibrationChildren)
		for _, w := range m.calibrationArchs() {
			e, err := m.layerSum(ctx, kind, w)
			if err != nil {
				return EstimateReport{}, err
			}
			wh, err := m.Measure(ctx, kind, w)
			if err != nil {
				return EstimateReport{}, err
			}
			cl, cw = append(cl, e), append(cw, wh)
		}
		flat := fitCalibration(cl, cw, false)
		for k := range widths {
			st.UnscaledMeanRelErr += math.Abs(flat.Apply(layers[k])-whole[k]) / whole[k] / n
		}
		if kind == LatencyInference {
			rep.Inference = st
		} else {
			rep.Train = st
		}
	}
	return rep, nil
}

// String is a one-line summary per kind.
func (r EstimateReport) String() string {
	var sb strings.Builder
	for _, st := range []EstimateStats{r.Inference, r.Train} {
		fmt.Fprintf(&sb, "%s: %d archs, mean rel err %.1f%% (%.1f%% unscaled), max %.1f%%, bias %+.1f%%, spearman %.3f, scale %.3f, overhead %.3f ms\n",
			st.Kind, len(st.Rows), 100*st.MeanRelErr, 100*st.UnscaledMeanRelErr, 100*st.MaxRelErr, 100*st.MeanBias, st.Spearman,
			st.Calibration.Scale, st.Calibration.Overhead)
	}
	return sb.String()
}

// Spearman is the rank correlation of x and y (ties share their mean rank); NaN for fewer
// than two points or a constant series.
func Spearman(x, y []float64) float64 {
	if len(x) != len(y) || len(x) < 2 {
		return math.NaN()
	}
	rx, ry := ranks(x), ranks(y)
	var mx, my float64
	for i := range rx {
		mx += rx[i]
		my += ry[i]
	}
	n := float64(len(rx))
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range rx {
		dx, dy := rx[i]-mx, ry[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

func ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && x[idx[j+1]] == x[idx[i]] {
			j++
		}
		mean := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = mean
		}
		i = j + 1
	}
	return r
}
