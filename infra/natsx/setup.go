package natsx

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names derives every stream, subject, consumer and bucket name from one prefix, so several
// runs (or test cases) can share a server without colliding. Streams bind "<Prefix>.<kind>.>".
type Names struct {
	Prefix string

	WorkStream   string // work queue: one message per (run, step, shard, kind) item
	WorkSubjects string
	WorkConsumer string // the durable pull consumer all evaluators share

	ResultsStream   string // evaluator results, limits retention
	ResultsSubjects string

	VersionsStream   string // broadcast SuperNet/policy versions, last few per subject
	VersionsSubjects string

	StatusBucket  string // KV: run status
	LatencyBucket string // KV: measured latency per architecture
	BlobBucket    string // object store: weights, gradients, anything over max payload
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,48}$`)

// NewNames checks prefix (letters, digits, '-' and '_': it appears in stream and bucket
// names, which allow nothing else) and derives the names.
func NewNames(prefix string) (Names, error) {
	if !prefixRE.MatchString(prefix) {
		return Names{}, fmt.Errorf("natsx: bad name prefix %q: want 1-48 of [A-Za-z0-9_-]", prefix)
	}
	return Names{
		Prefix:           prefix,
		WorkStream:       prefix + "_work",
		WorkSubjects:     prefix + ".work.>",
		WorkConsumer:     prefix + "_evaluators",
		ResultsStream:    prefix + "_results",
		ResultsSubjects:  prefix + ".results.>",
		VersionsStream:   prefix + "_versions",
		VersionsSubjects: prefix + ".versions.>",
		StatusBucket:     prefix + "_status",
		LatencyBucket:    prefix + "_latency",
		BlobBucket:       prefix + "_blobs",
	}, nil
}

// WorkSubject is "<Prefix>.work.<tokens...>"; tokens must pass ValidateToken.
func (n Names) WorkSubject(tokens ...string) string { return subject(n.Prefix, "work", tokens) }

// ResultSubject is "<Prefix>.results.<tokens...>".
func (n Names) ResultSubject(tokens ...string) string { return subject(n.Prefix, "results", tokens) }

// VersionSubject is "<Prefix>.versions.<tokens...>".
func (n Names) VersionSubject(tokens ...string) string {
	return subject(n.Prefix, "versions", tokens)
}

func subject(prefix, kind string, tokens []string) string {
	return strings.Join(append([]string{prefix, kind}, tokens...), ".")
}

// ValidateToken reports whether s can be one subject token (no dots, wildcards or spaces).
func ValidateToken(s string) error {
	if s == "" || strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("natsx: bad subject token %q", s)
	}
	return nil
}

// SetupOptions tune Setup. Zero values pick the defaults noted on each field.
type SetupOptions struct {
	// Replicas for every stream and bucket; default 1. Use 3 on a 3-node cluster.
	Replicas int
	// Memory stores everything in memory instead of files (tests, throw-away runs).
	Memory bool
	// WorkAckWait is how long an evaluator may hold an item before it is redelivered to
	// another one; default 30 s. Long items should call Msg.InProgress to extend it.
	WorkAckWait time.Duration
	// WorkMaxDeliver caps deliveries of one item; default -1 (unlimited: at-least-once).
	WorkMaxDeliver int
	// DuplicateWindow for msg-id dedup on the work and results streams; default 2 min.
	DuplicateWindow time.Duration
	// ResultsMaxAge drops old results; default 24 h.
	ResultsMaxAge time.Duration
	// VersionsPerSubject keeps the last N messages per version subject; default 4.
	VersionsPerSubject int64
	// BlobTTL expires blobs; default none.
	BlobTTL time.Duration
}

func (o SetupOptions) withDefaults() SetupOptions {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.WorkAckWait <= 0 {
		o.WorkAckWait = 30 * time.Second
	}
	if o.WorkMaxDeliver == 0 {
		o.WorkMaxDeliver = -1
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	if o.ResultsMaxAge <= 0 {
		o.ResultsMaxAge = 24 * time.Hour
	}
	if o.VersionsPerSubject <= 0 {
		o.VersionsPerSubject = 4
	}
	return o
}

func (o SetupOptions) storage() jetstream.StorageType {
	if o.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Resources are the handles Setup created or found.
type Resources struct {
	Names        Names
	Work         jetstream.Stream
	WorkConsumer jetstream.Consumer
	Results      jetstream.Stream
	Versions     jetstream.Stream
	Status       jetstream.KeyValue
	Latency      jetstream.KeyValue
	Blobs        jetstream.ObjectStore
}

// Setup creates or updates everything the services use. It is idempotent: every service may
// call it at start, in any order, and a second call with the same options changes nothing.
func Setup(ctx context.Context, js jetstream.JetStream, names Names, opts SetupOptions) (*Resources, error) {
	opts = opts.withDefaults()
	r := &Resources{Names: names}
	var err error
	if r.Work, r.WorkConsumer, err = EnsureWorkQueue(ctx, js, names.WorkStream, names.WorkSubjects, names.WorkConsumer, opts); err != nil {
		return nil, err
	}
	if r.Results, err = EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:        names.ResultsStream,
		Description: "tabnas evaluator results",
		Subjects:    []string{names.ResultsSubjects},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      opts.ResultsMaxAge,
		Duplicates:  opts.DuplicateWindow,
		Storage:     opts.storage(),
		Replicas:    opts.Replicas,
	}); err != nil {
		return nil, err
	}
	if r.Versions, err = EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:              names.VersionsStream,
		Description:       "tabnas SuperNet and policy versions",
		Subjects:          []string{names.VersionsSubjects},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: opts.VersionsPerSubject,
		Duplicates:        opts.DuplicateWindow,
		AllowDirect:       true, // cheap "latest version" reads
		Storage:           opts.storage(),
		Replicas:          opts.Replicas,
	}); err != nil {
		return nil, err
	}
	if r.Status, err = EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: names.StatusBucket, Description: "tabnas run status", History: 8,
		Storage: opts.storage(), Replicas: opts.Replicas,
	}); err != nil {
		return nil, err
	}
	if r.Latency, err = EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: names.LatencyBucket, Description: "tabnas latency cache", History: 1,
		Storage: opts.storage(), Replicas: opts.Replicas,
	}); err != nil {
		return nil, err
	}
	if r.Blobs, err = EnsureObjectStore(ctx, js, jetstream.ObjectStoreConfig{
		Bucket: names.BlobBucket, Description: "tabnas blobs", TTL: opts.BlobTTL,
		Storage: opts.storage(), Replicas: opts.Replicas,
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// EnsureWorkQueue creates or updates a work-queue stream (each message removed once acked)
// and the durable pull consumer that hands its items out, one evaluator at a time, with
// redelivery after opts.WorkAckWait. Only WorkAckWait, WorkMaxDeliver, DuplicateWindow,
// Replicas and Memory are read from opts. A work-queue stream accepts only consumers with
// non-overlapping filters, so this unfiltered consumer must be its only one.
func EnsureWorkQueue(ctx context.Context, js jetstream.JetStream, stream, subjects, consumer string, opts SetupOptions) (jetstream.Stream, jetstream.Consumer, error) {
	opts = opts.withDefaults()
	st, err := EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:        stream,
		Description: "tabnas work items",
		Subjects:    []string{subjects},
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  opts.DuplicateWindow,
		Storage:     opts.storage(),
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, nil, err
	}
	c, err := EnsureConsumer(ctx, js, stream, jetstream.ConsumerConfig{
		Durable:       consumer,
		Description:   "tabnas evaluators",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.WorkAckWait,
		MaxDeliver:    opts.WorkMaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      0, // inherit the stream's
	})
	if err != nil {
		return nil, nil, err
	}
	return st, c, nil
}

// EnsureStream is CreateOrUpdateStream with an error that names the stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("natsx: create or update stream %s (subjects %v): %w", cfg.Name, cfg.Subjects, err)
	}
	return s, nil
}

// EnsureConsumer is CreateOrUpdateConsumer with an error that names the consumer.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("natsx: create or update consumer %s on stream %s: %w", cfg.Durable+cfg.Name, stream, err)
	}
	return c, nil
}

// EnsureKV is CreateOrUpdateKeyValue with an error that names the bucket.
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("natsx: create or update KV bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// EnsureObjectStore is CreateOrUpdateObjectStore with an error that names the bucket.
func EnsureObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("natsx: create or update object store %s: %w", cfg.Bucket, err)
	}
	return obs, nil
}

// Teardown deletes every stream and bucket named by names; missing ones are fine.
func Teardown(ctx context.Context, js jetstream.JetStream, names Names) error {
	var errs []error
	for _, s := range []string{names.WorkStream, names.ResultsStream, names.VersionsStream} {
		if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", s, err))
		}
	}
	for _, b := range []string{names.StatusBucket, names.LatencyBucket} {
		if err := js.DeleteKeyValue(ctx, b); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete KV %s: %w", b, err))
		}
	}
	if err := js.DeleteObjectStore(ctx, names.BlobBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		errs = append(errs, fmt.Errorf("delete object store %s: %w", names.BlobBucket, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("natsx: teardown %s: %w", names.Prefix, errors.Join(errs...))
	}
	return nil
}
