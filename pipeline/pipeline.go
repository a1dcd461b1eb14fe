// Package pipeline wires the services for the command layer: it opens the object store and
// the bus (in memory, an embedded JetStream server, or a nats:// URL), makes sure the dataset is
// ingested, builds the run spec, and starts the same coordinator, evaluator and sampler code
// either all in one process or one role per process. Only this wiring knows which.
package pipeline

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/infra/natsx"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/infra/redact"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
)

// DefaultPrefix names every stream and bucket of tabnas on a NATS server.
const DefaultPrefix = "tabnas"

// Bus choices besides a nats:// URL.
const (
	BusMemory   = "memory"   // channels and maps in this process, no server
	BusEmbedded = "embedded" // a JetStream server inside this process
)

// Env is an open connection to the infrastructure.
type Env struct {
	Store objstore.Store
	Bus   *bus.Bus // nil when opened without one
	Log   *slog.Logger

	srv *server.Server
	nc  *nats.Conn
}

// EnvOptions say where the infrastructure is.
type EnvOptions struct {
	StoreURL string // local directory, file:// or s3://bucket/prefix; empty: none
	// Bus is "memory", "embedded" or a nats:// URL (several comma-separated); empty: no bus
	// (a command that only reads and writes the store starts no server).
	Bus     string
	NatsDir string // JetStream storage of the embedded server ("" = temporary)
	Prefix  string // stream and bucket name prefix (default "tabnas")
	Name    string // client name
	Setup   natsx.SetupOptions
	S3      objstore.Options
	Log     *slog.Logger
}

// ValidBus checks a --bus value.
func ValidBus(s string) error {
	switch {
	case s == BusMemory, s == BusEmbedded, strings.Contains(s, ":"): // nats://host:port, tls://…, host:port
		return nil
	}
	return fmt.Errorf("bus %q: want memory, embedded or a nats:// URL", s)
}

// Open connects to (or starts) everything.
func Open(ctx context.Context, o EnvOptions) (*Env, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if v := os.Getenv("TABNAS_ACK_WAIT"); v != "" && o.Setup.WorkAckWait == 0 {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("TABNAS_ACK_WAIT=%q: want a positive duration such as 30s", v)
		}
		o.Setup.WorkAckWait = d
	}
	e := &Env{Log: o.Log}
	var err error
	if o.StoreURL != "" { // a status query needs no store
		if e.Store, err = objstore.Open(ctx, o.StoreURL, o.S3); err != nil {
			return nil, err
		}
	}
	switch o.Bus {
	case "":
		return e, nil
	case BusMemory:
		e.Bus = bus.NewMemory(o.Log, bus.MemoryOptions{WorkAckWait: o.Setup.WorkAckWait, DuplicateWindow: o.Setup.DuplicateWindow})
		return e, nil
	case BusEmbedded:
		// A throw-away embedded server keeps streams in memory: nothing outlives the process
		// anyway, and resuming needs only the checkpoint in the object store.
		if o.NatsDir == "" {
			o.Setup.Memory = true
		}
		e.srv, e.nc, err = natsx.StartEmbedded(o.NatsDir, natsx.EmbeddedOptions{ClientName: o.Name})
	default:
		if err := ValidBus(o.Bus); err != nil {
			return nil, err
		}
		e.nc, err = natsx.Connect(o.Bus, natsx.ConnectOptions{Name: o.Name, Logger: o.Log})
	}
	if err != nil {
		return nil, err
	}
	if e.Bus, err = bus.OpenJetStream(ctx, e.nc, o.Prefix, o.Setup, o.Log); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close disconnects (and stops an embedded server).
func (e *Env) Close() {
	if e.Bus != nil {
		e.Bus.Close()
	}
	if e.srv != nil {
		natsx.Shutdown(e.srv, e.nc)
		return
	}
	if e.nc != nil {
		e.nc.Close()
	}
}

// DatasetOptions say how to find or ingest the data.
type DatasetOptions struct {
	Data         string // CSV/Parquet file (path or s3://), or "dataset:PREFIX" for an ingested one
	Target       string
	SplitSeed    uint64
	RowsPerShard int
	// Column choices; Categorical ["*"] makes every input column of a CSV categorical.
	Task                         string
	Categorical, Numeric, Ignore []string
	Ingest                       dataset.Options
}

// EnsureDataset returns the ingested dataset for the data, ingesting it into
// datasets/<name>-<hash> of the store unless a complete ingest of the same version of the
// data (and the same options) is already there. A local file's version is its content; an
// s3:// object's is its ETag, size and last-modified time, so an object replaced at the same
// key is ingested afresh. The log says which happened, with the version.
func EnsureDataset(ctx context.Context, env *Env, o DatasetOptions) (*dataset.Dataset, error) {
	if p, ok := strings.CutPrefix(o.Data, "dataset:"); ok {
		return dataset.OpenDataset(ctx, env.Store, p)
	}
	if o.Data == "" {
		return nil, errors.New("no data given (--data FILE.csv[.gz]|FILE.parquet|s3://bucket/key)")
	}
	open := o.Ingest.OpenStore
	if open == nil {
		sopts := o.Ingest.StoreOptions
		open = func(ctx context.Context, url string) (objstore.Store, error) {
			return objstore.Open(ctx, url, sopts)
		}
	}
	h := sha256.New()
	ver, err := readSourceVersion(ctx, o.Data, open, h)
	if err != nil {
		return nil, err
	}
	name := path.Base(o.Data)
	if !ver.s3 {
		name = filepath.Base(o.Data)
	}
	fmt.Fprintf(h, "|%s|%d|%d|%s|%q|%q|%q", o.Target, o.SplitSeed, o.RowsPerShard, o.Task, o.Categorical, o.Numeric, o.Ignore)
	for _, ext := range []string{".gz", ".csv", ".parquet", ".tsv"} {
		name = strings.TrimSuffix(name, ext)
	}
	name = sanitize(name)
	prefix := fmt.Sprintf("datasets/%s-%s", name, hex.EncodeToString(h.Sum(nil))[:12])
	if ds, err := dataset.OpenDataset(ctx, env.Store, prefix); err == nil {
		env.Log.Info("dataset reused", "data", redact.URL(o.Data), "source", ver, "dataset", env.Store.URL()+"/"+prefix,
			"rows", ds.Manifest.Source.Rows)
		return ds, nil
	} else if !errors.Is(err, objstore.ErrNotFound) {
		return nil, err
	}
	io := o.Ingest
	io.Target, io.Seed, io.RowsPerShard, io.Overwrite = o.Target, o.SplitSeed, o.RowsPerShard, true
	io.Task, io.Numeric, io.Ignore = o.Task, o.Numeric, o.Ignore
	io.Categorical = o.Categorical
	if len(o.Categorical) == 1 && o.Categorical[0] == "*" {
		cols, err := csvHeader(o.Data)
		if err != nil {
			return nil, fmt.Errorf("--categorical '*': %w", err)
		}
		target := o.Target
		if target == "" {
			target = dataset.DefaultTarget
		}
		io.Categorical = nil
		for _, c := range cols {
			if c != target && !slices.Contains(o.Ignore, c) && !slices.Contains(o.Numeric, c) {
				io.Categorical = append(io.Categorical, c)
			}
		}
	}
	io.OpenStore = open
	env.Log.Info("ingesting", "data", redact.URL(o.Data), "source", ver, "into", env.Store.URL()+"/"+prefix,
		"reason", "no dataset of this version of the data yet")
	m, err := dataset.Ingest(ctx, o.Data, env.Store, prefix, io)
	if err != nil {
		return nil, err
	}
	if ver.s3 {
		// The object may have been replaced while it was read: then the dataset could mix
		// versions, under a name that says it is the old one. Drop its manifest (so it is
		// never reused) and say so; the next run ingests the new version.
		now, err := statS3Source(ctx, o.Data, open)
		if err != nil {
			return nil, err
		}
		if now.info.ETag != ver.info.ETag || now.info.Size != ver.info.Size || !now.info.ModTime.Equal(ver.info.ModTime) {
			if err := env.Store.Delete(ctx, dataset.ManifestKey(prefix)); err != nil {
				env.Log.Warn("could not drop the manifest of a dataset ingested from a changing source", "dataset", prefix, "err", err)
			}
			return nil, fmt.Errorf("data %s changed while it was ingested (%s, now %s): run again", redact.URL(o.Data), ver, now)
		}
	}
	env.Log.Info("dataset ingested", "data", redact.URL(o.Data), "source", ver, "dataset", env.Store.URL()+"/"+prefix,
		"rows", m.Source.Rows)
	return dataset.OpenDataset(ctx, env.Store, prefix)
}

// csvHeader reads the column names of a local CSV file, plain or gzip.
func csvHeader(path string) ([]string, error) {
	if strings.HasPrefix(path, "s3://") {
		return nil, fmt.Errorf("needs a local CSV file to read the header of, got %s", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gz
	}
	h, err := csv.NewReader(r).Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the header: %w", path, err)
	}
	return h, nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "data"
	}
	return b.String()
}

// SpecOptions are the run's choices beyond the data.
type SpecOptions struct {
	Run             string
	Layers          int
	Widths          []int
	Constraints     schemas.Constraints
	Search          search.Config
	CheckpointEvery int
	Trial           schemas.Trial // zero fields take DefaultTrial's
	Finish          schemas.Finish
}

// DefaultTrial is the final stand-alone retraining unless the run says otherwise: AdamW
// at 2e-3 halved after 2 epochs without improvement, weight decay 0.3, early stopping after
// 8 (EXPERIMENTS.md, "Stand-alone recipe").
func DefaultTrial(seed uint64) schemas.Trial {
	return schemas.Trial{Seed: seed, Epochs: 60, Batch: 256, LR: 2e-3, Patience: 8,
		Schedule: "plateau", PlateauPatience: 2, PlateauFactor: 0.5, WeightDecay: 0.3}
}

// BuildSpec derives the run spec from the dataset's manifest.
func BuildSpec(ds *dataset.Dataset, o SpecOptions) (*schemas.RunSpec, error) {
	m := ds.Manifest
	if o.Run == "" {
		o.Run = NewRunID()
	}
	if err := schemas.ValidRunID(o.Run); err != nil {
		return nil, err
	}
	if o.Layers == 0 {
		o.Layers = 3
	}
	if len(o.Widths) == 0 {
		o.Widths = space.DefaultWidths
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 100
	}
	out, classes := 1, 0
	if m.Target.Task == schemas.TaskMulticlass {
		classes = len(m.Target.Classes)
		out = classes
	}
	sp, err := space.New(m.FeatureWidth, out, o.Layers, o.Widths)
	if err != nil {
		return nil, err
	}
	spec := &schemas.RunSpec{Envelope: schemas.NewEnvelope(schemas.TypeRun, o.Run), Task: m.Target.Task, Classes: classes,
		In: m.FeatureWidth, Out: out, Widths: sp.Widths, Constraints: o.Constraints, Search: o.Search.Defaults(),
		CheckpointEvery: o.CheckpointEvery, Finish: o.Finish.Defaults(), Created: time.Now().UTC()}
	spec.Trial = DefaultTrial(spec.Search.Seed)
	spec.Trial = MergeTrial(spec.Trial, o.Trial) // every knob the run spec or flags set
	spec.Dataset.Prefix = ds.Prefix
	for _, sh := range ds.Shards(schemas.SplitTrain) {
		spec.Dataset.TrainRows = append(spec.Dataset.TrainRows, int(sh.Rows))
	}
	for _, sh := range ds.Shards(schemas.SplitVal) {
		spec.Dataset.ValRows = append(spec.Dataset.ValRows, int(sh.Rows))
	}
	for _, sh := range ds.Shards(schemas.SplitTest) {
		spec.Dataset.TestRows = append(spec.Dataset.TestRows, int(sh.Rows))
	}
	p := &spec.Search.Policy
	if (p.Method == "abs" || p.Method == "mnas") && p.T0 == 0 {
		p.T0 = float64(o.Constraints.MaxParams)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	cons := spec.ParamsConstraint()
	if err := search.CheckBudget(sp, cons); err != nil {
		return nil, err
	}
	return spec, nil
}

// NewRunID is a sortable, unique run id.
func NewRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Services runs evaluators and a sampler in this process until Stop.
type Services struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartServices starts n evaluators and (when sampler) a sampler on env, returning once
// the sampler listens.
func StartServices(ctx context.Context, env *Env, evaluators int, withSampler bool, evalOpts func(i int) EvaluatorOptions) (*Services, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &Services{cancel: cancel}
	if withSampler {
		ready := make(chan struct{})
		errc := make(chan error, 1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			errc <- NewSampler(env, "sampler").Run(ctx, ready)
		}()
		select {
		case <-ready:
		case err := <-errc:
			cancel()
			return nil, err
		}
	}
	for i := 0; i < evaluators; i++ {
		ev := NewEvaluator(env, evalOpts(i))
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := ev.Run(ctx); err != nil {
				env.Log.Error("evaluator stopped", "err", err)
			}
		}()
	}
	return s, nil
}

// Stop ends the services and waits for them.
func (s *Services) Stop() {
	s.cancel()
	s.wg.Wait()
}
