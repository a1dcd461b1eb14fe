package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tabnas/tabnas/infra/natsx"
	"github.com/tabnas/tabnas/schemas"
)

// DefaultInlineMax is the largest float payload sent inside a message; larger ones go to
// the object store, well under the server's 1 MiB default max payload.
const DefaultInlineMax = 256 << 10

// OpenJetStream sets up (idempotently) every stream, consumer and bucket under prefix on
// nc's server and returns the bus over them. nc stays the caller's to close.
func OpenJetStream(ctx context.Context, nc *nats.Conn, prefix string, opts natsx.SetupOptions, log *slog.Logger) (*Bus, error) {
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
	j := &jsBus{nc: nc, js: js, res: res, names: names, log: log, inlineMax: DefaultInlineMax, pushed: map[string]*pushed{}}
	b := &Bus{Work: jsWork{j}, Results: jsResults{j}, Versions: jsVersions{j}, Sampler: jsSampler{j},
		Status: jsKV{res.Status}, Latency: jsKV{res.Latency}, Blobs: jsBlobs{res.Blobs}, Log: log, Kind: "jetstream"}
	b.closers = append(b.closers, j.close)
	return b.init(), nil
}

type jsBus struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	res       *natsx.Resources
	names     natsx.Names
	log       *slog.Logger
	inlineMax int

	mu     sync.Mutex
	pushed map[string]*pushed // SuperNet deltas pushed per run
}

func (j *jsBus) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, p := range j.pushed {
		if p.sub != nil {
			_ = p.sub.Unsubscribe()
		}
	}
	j.pushed = map[string]*pushed{}
}

func (j *jsBus) workSubject(run, kind string) string { return j.names.WorkSubject(run, kind) }
func (j *jsBus) resultSubject(run string) string     { return j.names.ResultSubject(run) }
func (j *jsBus) versionSubject(run string, v int64, snapshot bool) string {
	kind := "snet"
	if snapshot {
		kind = "snap"
	}
	return j.names.VersionSubject(run, kind, strconv.FormatInt(v, 10))
}
func (j *jsBus) samplerSubject(run, op string) string {
	return j.names.Prefix + ".sampler." + run + "." + op
}

func (j *jsBus) publish(ctx context.Context, subject string, m schemas.Message, msgID string) (int, error) {
	data, err := schemas.Encode(m)
	if err != nil {
		return 0, err
	}
	_, err = natsx.PublishRetry(ctx, j.js, subject, data, msgID)
	return len(data), err
}

// send publishes encoded data with retries: at once when done is nil, else in the
// background, reporting to done.
func (j *jsBus) send(ctx context.Context, subject string, data []byte, msgID string, done func(error)) error {
	if done == nil {
		_, err := natsx.PublishRetry(ctx, j.js, subject, data, msgID)
		return err
	}
	go func() {
		_, err := natsx.PublishRetry(ctx, j.js, subject, data, msgID)
		done(err)
	}()
	return nil
}

// putFloats returns v inline when small, else stores it as blob name and returns the name.
func (j *jsBus) putFloats(ctx context.Context, name string, v []float32) (inline []byte, blob string, err error) {
	data := schemas.Floats(v)
	if len(data) <= j.inlineMax {
		return data, "", nil
	}
	if _, err := j.res.Blobs.PutBytes(ctx, name, data); err != nil {
		return nil, "", fmt.Errorf("storing blob %s (%d bytes): %w", name, len(data), err)
	}
	return nil, name, nil
}

// getFloats reads a payload from inline data or a blob, checking its length.
func (j *jsBus) getFloats(ctx context.Context, inline []byte, blob string, n int, dst []float32) ([]float32, error) {
	data := inline
	if blob != "" {
		var err error
		if data, err = j.res.Blobs.GetBytes(ctx, blob); err != nil {
			return nil, fmt.Errorf("reading blob %s: %w", blob, mapNotFound(err))
		}
	}
	if len(data) != 4*n {
		return nil, fmt.Errorf("payload %q has %d bytes, want %d floats", blob, len(data), n)
	}
	return schemas.ParseFloats(data, dst)
}

func mapNotFound(err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%w (%v)", ErrNotFound, err)
	}
	return err
}

// ---- work queue ----

type jsWork struct{ j *jsBus }

func (w jsWork) Publish(ctx context.Context, items ...*schemas.WorkItem) error {
	if len(items) == 1 {
		_, err := w.j.publish(ctx, w.j.workSubject(items[0].Run, items[0].Kind), items[0], items[0].ID())
		return err
	}
	// Published concurrently: the acks' round trips overlap instead of adding up.
	errs := make(chan error, len(items))
	for _, it := range items {
		go func() {
			_, err := w.j.publish(ctx, w.j.workSubject(it.Run, it.Kind), it, it.ID())
			errs <- err
		}()
	}
	var first error
	for range items {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (w jsWork) PublishRaw(ctx context.Context, run, kind string, data []byte, id string) error {
	_, err := natsx.PublishRetry(ctx, w.j.js, w.j.workSubject(run, kind), data, id)
	return err
}

func (w jsWork) Next(ctx context.Context, wait time.Duration) (Delivery, error) {
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	batch, err := w.j.res.WorkConsumer.Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	for m := range batch.Messages() {
		return jsDelivery{m}, nil
	}
	if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		return nil, err
	}
	return nil, nil
}

type jsDelivery struct{ m jetstream.Msg }

func (d jsDelivery) Item() (*schemas.WorkItem, error) {
	return schemas.Decode[schemas.WorkItem](d.m.Data())
}
func (d jsDelivery) Subject() string               { return d.m.Subject() }
func (d jsDelivery) Ack() error                    { return d.m.Ack() }
func (d jsDelivery) Nak(delay time.Duration) error { return d.m.NakWithDelay(delay) }
func (d jsDelivery) Term() error                   { return d.m.Term() }
func (d jsDelivery) InProgress() error             { return d.m.InProgress() }

// ---- results ----

type jsResults struct{ j *jsBus }

func (rs jsResults) Publish(ctx context.Context, r *schemas.Result, grad []float32, done func(error)) error {
	c := *r
	if grad != nil {
		name := fmt.Sprintf("%s/grad/%d/%d/%d/%d", r.Run, r.Attempt, r.Seq, r.Step, r.Shard)
		var err error
		if c.Grad, c.GradBlob, err = rs.j.putFloats(ctx, name, grad); err != nil {
			return finish(done, err)
		}
	}
	data, err := schemas.Encode(&c)
	if err != nil {
		return err // invalid: refused at once
	}
	return rs.j.send(ctx, rs.j.resultSubject(r.Run), data, resultID(&c), done)
}

func (rs jsResults) PublishRaw(ctx context.Context, run string, data []byte, id string) error {
	_, err := natsx.PublishRetry(ctx, rs.j.js, rs.j.resultSubject(run), data, id)
	return err
}

func (rs jsResults) Subscribe(ctx context.Context, run string, h func(*schemas.Result, int, error)) (func(), error) {
	// An ordered consumer from "now": earlier results are not wanted, and it exists before
	// the subscriber publishes any work, so no wanted result can be missed.
	cons, err := rs.j.js.OrderedConsumer(ctx, rs.j.names.ResultsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{rs.j.resultSubject(run)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("results consumer for run %s: %w", run, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		r, err := schemas.Decode[schemas.Result](m.Data())
		if err != nil {
			err = fmt.Errorf("%s: %w", m.Subject(), err)
		}
		h(r, len(m.Data()), err)
	})
	if err != nil {
		return nil, fmt.Errorf("consuming results of run %s: %w", run, err)
	}
	return cc.Stop, nil
}

func (rs jsResults) Grad(ctx context.Context, r *schemas.Result, dst []float32) ([]float32, error) {
	out, err := rs.j.getFloats(ctx, r.Grad, r.GradBlob, r.GradLen, dst)
	if err != nil {
		return nil, err
	}
	if r.GradBlob != "" {
		if err := rs.j.res.Blobs.Delete(ctx, r.GradBlob); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			rs.j.log.Warn("deleting blob", "blob", r.GradBlob, "err", err)
		}
	}
	return out, nil
}

// ---- versions ----

type jsVersions struct{ j *jsBus }

func (vs jsVersions) Publish(ctx context.Context, m *schemas.SuperNetVersion, w []float32, done func(error)) error {
	c := *m
	kind := "snet"
	if c.Snapshot {
		kind = "snap"
	}
	var err error
	if c.Data, c.Blob, err = vs.j.putFloats(ctx, fmt.Sprintf("%s/%s/%d", c.Run, kind, c.Version), w); err != nil {
		return finish(done, err)
	}
	data, err := schemas.Encode(&c)
	if err != nil {
		return err
	}
	return vs.j.send(ctx, vs.j.versionSubject(c.Run, c.Version, c.Snapshot), data, fmt.Sprintf("%s.%s.%d", c.Run, kind, c.Version), done)
}

// maxPushed bounds the versions kept ahead of a replica.
const maxPushed = 64

// pushed holds the deltas of one run a plain subscription received as they were
// published, so the usual next version is at hand without a round trip to the stream.
type pushed struct {
	mu   sync.Mutex
	msgs map[int64][]byte
	sub  *nats.Subscription
}

func (p *pushed) push(m *nats.Msg) {
	i := strings.LastIndexByte(m.Subject, '.')
	v, err := strconv.ParseInt(m.Subject[i+1:], 10, 64)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.msgs) >= maxPushed {
		for k := range p.msgs { // drop the oldest: those are applied or will be fetched
			if k < v {
				delete(p.msgs, k)
			}
		}
		if len(p.msgs) >= maxPushed {
			return
		}
	}
	p.msgs[v] = m.Data
}

// take returns and forgets a pushed version, dropping older ones.
func (p *pushed) take(v int64) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	data := p.msgs[v]
	for k := range p.msgs {
		if k <= v {
			delete(p.msgs, k)
		}
	}
	return data
}

func (j *jsBus) pushedFor(run string) *pushed {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.pushed[run]
	if p == nil {
		p = &pushed{msgs: map[int64][]byte{}}
		var err error
		if p.sub, err = j.nc.Subscribe(j.names.VersionSubject(run, "snet", "*"), p.push); err != nil {
			j.log.Warn("no push of SuperNet versions; fetching each", "run", run, "err", err)
		}
		j.pushed[run] = p
	}
	return p
}

func (vs jsVersions) Get(ctx context.Context, run string, v int64, snapshot bool, wait time.Duration) (*schemas.SuperNetVersion, error) {
	if !snapshot {
		if data := vs.j.pushedFor(run).take(v); data != nil {
			if m, err := schemas.Decode[schemas.SuperNetVersion](data); err == nil {
				return m, nil
			}
			// mangled: read it from the stream
		}
	}
	subject := vs.j.versionSubject(run, v, snapshot)
	deadline := time.Now().Add(wait)
	for {
		raw, err := vs.j.res.Versions.GetLastMsgForSubject(ctx, subject)
		if err == nil {
			return schemas.Decode[schemas.SuperNetVersion](raw.Data)
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, err
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%s: %w", subject, ErrNotFound)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (vs jsVersions) Weights(ctx context.Context, m *schemas.SuperNetVersion, dst []float32) ([]float32, error) {
	return vs.j.getFloats(ctx, m.Data, m.Blob, m.Len, dst)
}

// ---- sampler ----

type jsSampler struct{ j *jsBus }

const requestTimeout = 30 * time.Second

func noResponders(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// request sends a validated request and returns the raw reply, retrying while no sampler
// answers (it may still be starting) until ctx ends.
func (s jsSampler) request(ctx context.Context, subject string, m schemas.Message) ([]byte, error) {
	data, err := schemas.Encode(m)
	if err != nil {
		return nil, err
	}
	return retryWhileAbsent(ctx, s.j.log, subject, noResponders, func() ([]byte, error) {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		msg, err := s.j.nc.RequestWithContext(rctx, subject, data)
		if err != nil {
			if ctx.Err() == nil && !noResponders(err) {
				return nil, fmt.Errorf("request %s: %w", subject, err)
			}
			return nil, err
		}
		return msg.Data, nil
	})
}

func (s jsSampler) Feasible(ctx context.Context, req *schemas.FeasibleRequest) (*schemas.FeasibleReply, error) {
	data, err := s.request(ctx, s.j.samplerSubject(req.Run, "feasible"), req)
	if err != nil {
		return nil, err
	}
	r, err := schemas.Decode[schemas.FeasibleReply](data)
	if err != nil {
		return nil, fmt.Errorf("sampler reply: %w", err)
	}
	return r, nil
}

func (s jsSampler) Estimate(ctx context.Context, req *schemas.EstimateRequest) (*schemas.EstimateReply, error) {
	data, err := s.request(ctx, s.j.samplerSubject(req.Run, "estimate"), req)
	if err != nil {
		return nil, err
	}
	r, err := schemas.Decode[schemas.EstimateReply](data)
	if err != nil {
		return nil, fmt.Errorf("sampler reply: %w", err)
	}
	return r, nil
}

// Serve subscribes in the "samplers" queue group, so several samplers share the load.
func (s jsSampler) Serve(ctx context.Context, h SamplerHandler, ready chan<- struct{}) error {
	log := s.j.log
	reply := func(m *nats.Msg, msg schemas.Message) {
		if m.Reply == "" {
			return
		}
		data, err := schemas.Encode(msg)
		if err != nil {
			log.Error("encoding reply", "err", err)
			return
		}
		if err := m.Respond(data); err != nil {
			log.Warn("replying", "err", err)
		}
	}
	sub, err := s.j.nc.QueueSubscribe(s.j.names.Prefix+".sampler.*.*", "samplers", func(m *nats.Msg) {
		op := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		switch op {
		case "feasible":
			req, err := schemas.Decode[schemas.FeasibleRequest](m.Data)
			if err != nil {
				log.Warn("rejected feasibility request", "subject", m.Subject, "reason", err)
				return
			}
			reply(m, h.Feasible(ctx, req))
		case "estimate":
			req, err := schemas.Decode[schemas.EstimateRequest](m.Data)
			if err != nil {
				log.Warn("rejected estimate request", "subject", m.Subject, "reason", err)
				return
			}
			reply(m, h.Estimate(ctx, req))
		default:
			log.Warn("rejected sampler message", "subject", m.Subject, "reason", "unknown operation "+op)
		}
	})
	if err != nil {
		return fmt.Errorf("sampler: subscribing: %w", err)
	}
	if err := s.j.nc.Flush(); err != nil {
		return fmt.Errorf("sampler: %w", err)
	}
	if ready != nil {
		close(ready)
	}
	<-ctx.Done()
	return sub.Drain()
}

// ---- KV and blobs ----

type jsKV struct{ kv jetstream.KeyValue }

func (k jsKV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return nil, 0, mapNotFound(err)
	}
	return e.Value(), e.Revision(), nil
}

func (k jsKV) Put(ctx context.Context, key string, v []byte) error {
	_, err := k.kv.Put(ctx, key, v)
	return err
}

func (k jsKV) Create(ctx context.Context, key string, v []byte) error {
	_, err := k.kv.Create(ctx, key, v)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("key %s: %w", key, ErrExists)
	}
	return err
}

func (k jsKV) Update(ctx context.Context, key string, v []byte, rev uint64) error {
	_, err := k.kv.Update(ctx, key, v, rev)
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)) {
		return fmt.Errorf("key %s at revision %d: %w", key, rev, ErrConflict)
	}
	return err
}

type jsBlobs struct{ obs jetstream.ObjectStore }

func (b jsBlobs) PutBytes(ctx context.Context, name string, data []byte) error {
	_, err := b.obs.PutBytes(ctx, name, data)
	return err
}

func (b jsBlobs) GetBytes(ctx context.Context, name string) ([]byte, error) {
	data, err := b.obs.GetBytes(ctx, name)
	return data, mapNotFound(err)
}

func (b jsBlobs) Delete(ctx context.Context, name string) error {
	if err := b.obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	return nil
}
