package model

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/schemas"
)

// Values of the weights description in model.json.
const (
	DTypeFloat32  = "float32"
	LittleEndian  = "little-endian"
	WeightsLayout = "per layer: W (in x out, row-major), then b (out); hidden layers in order, then the output layer"
)

// maxModelJSON bounds the model.json read (the manifest inside carries the vocabularies).
const maxModelJSON = 256 << 20

// document is the stored form of model.json.
type document struct {
	FormatVersion int             `json:"format_version"`
	Arch          string          `json:"arch"`
	Widths        []int           `json:"widths"`
	Task          string          `json:"task"`
	Outputs       int             `json:"outputs"`
	InputWidth    int             `json:"input_width"`
	Params        int             `json:"params"`
	Weights       weightsDoc      `json:"weights"`
	Metrics       Metrics         `json:"metrics"`
	Seed          uint64          `json:"seed"`
	Created       time.Time       `json:"created"`
	Run           json.RawMessage `json:"run,omitempty"`
	Manifest      json.RawMessage `json:"manifest"`
}

type weightsDoc struct {
	File      string `json:"file"`
	DType     string `json:"dtype"`
	ByteOrder string `json:"byte_order"`
	Layout    string `json:"layout"`
	Count     int    `json:"count"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// objURL names a key (or a prefix, "" for the store's root) in errors.
func objURL(store objstore.Store, key string) string {
	if key == "" {
		return store.URL()
	}
	return strings.TrimSuffix(store.URL(), "/") + "/" + key
}

func cleanPrefix(p string) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", nil
	}
	if err := objstore.ValidateKey(p); err != nil {
		return "", fmt.Errorf("model: prefix: %w", err)
	}
	return p, nil
}

func encodeWeights(w []float32) []byte {
	b := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func decodeWeights(b []byte) []float32 {
	w := make([]float32, len(b)/4)
	for i := range w {
		w[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return w
}

// Save stores a under prefix (see the package comment for the layout and write order). An
// existing model at prefix is replaced.
func Save(ctx context.Context, store objstore.Store, prefix string, a *Artifact) error {
	p, err := cleanPrefix(prefix)
	if err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return err
	}
	man, err := a.Manifest.Encode()
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	wb := encodeWeights(a.Weights)
	sum := sha256.Sum256(wb)
	doc := document{
		FormatVersion: FormatVersion,
		Arch:          a.Arch.String(),
		Widths:        append([]int{}, a.Arch...),
		Task:          taskName(a.Task),
		Outputs:       a.Outputs(),
		InputWidth:    a.In,
		Params:        a.Params(),
		Weights: weightsDoc{File: WeightsFile, DType: DTypeFloat32, ByteOrder: LittleEndian, Layout: WeightsLayout,
			Count: len(a.Weights), Bytes: int64(len(wb)), SHA256: hex.EncodeToString(sum[:])},
		Metrics:  a.Metrics,
		Seed:     a.Seed,
		Created:  a.Created.UTC(),
		Run:      a.Run,
		Manifest: man,
	}
	data, err := json.MarshalIndent(&doc, "", "  ")
	if err != nil {
		return fmt.Errorf("model: encoding %s: %w", ModelFile, err)
	}
	data = append(data, '\n')

	mkey, wkey := joinKey(p, ModelFile), joinKey(p, WeightsFile)
	where := objURL(store, p)
	// Drop an older model.json first: until the new one lands nothing here is loadable, so a
	// failure can never pair the old metadata with the new weights.
	if err := store.Delete(ctx, mkey); err != nil {
		return fmt.Errorf("model: save %s: removing the old %s: %w", where, ModelFile, err)
	}
	if err := store.Put(ctx, wkey, bytes.NewReader(wb), int64(len(wb))); err != nil {
		return fmt.Errorf("model: save %s: %w", where, err)
	}
	if err := store.Put(ctx, mkey, bytes.NewReader(data), int64(len(data))); err != nil {
		// Best effort: weights without a model.json are never loaded, just stray bytes.
		_ = store.Delete(context.WithoutCancel(ctx), wkey)
		return fmt.Errorf("model: save %s: %w", where, err)
	}
	return nil
}

// Load reads and verifies the model under prefix. A prefix without model.json (never saved,
// or a save that did not finish) is reported as not found (errors.Is(err, objstore.ErrNotFound)).
func Load(ctx context.Context, store objstore.Store, prefix string) (*Artifact, error) {
	p, err := cleanPrefix(prefix)
	if err != nil {
		return nil, err
	}
	mkey, wkey := joinKey(p, ModelFile), joinKey(p, WeightsFile)
	murl, wurl := objURL(store, mkey), objURL(store, wkey)
	data, err := readAll(ctx, store, mkey, maxModelJSON)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, fmt.Errorf("model: no model at %s (%s missing: never saved, or the save did not finish): %w",
				objURL(store, p), ModelFile, err)
		}
		return nil, fmt.Errorf("model: reading %s: %w", murl, err)
	}
	doc, err := decodeDocument(data)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", murl, err)
	}
	a, err := doc.artifact()
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", murl, err)
	}

	wb, err := readAll(ctx, store, wkey, doc.Weights.Bytes+1)
	if err != nil {
		return nil, fmt.Errorf("model: reading %s: %w", wurl, err)
	}
	if int64(len(wb)) != doc.Weights.Bytes {
		return nil, fmt.Errorf("model: %s: corrupt: %d bytes, %s field \"weights.bytes\" says %d",
			wurl, len(wb), ModelFile, doc.Weights.Bytes)
	}
	if sum := sha256.Sum256(wb); hex.EncodeToString(sum[:]) != doc.Weights.SHA256 {
		return nil, fmt.Errorf("model: %s: corrupt: SHA-256 %x does not match %s field \"weights.sha256\" %s",
			wurl, sum, ModelFile, doc.Weights.SHA256)
	}
	a.Weights = decodeWeights(wb)
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", murl, err)
	}
	return a, nil
}

func readAll(ctx context.Context, store objstore.Store, key string, limit int64) ([]byte, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// decodeDocument parses model.json strictly: the version first, so that a model of another
// format is refused before any field is interpreted, then no unknown fields.
func decodeDocument(data []byte) (*document, error) {
	var head struct {
		FormatVersion *int `json:"format_version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("not valid JSON (truncated or corrupt?): %w", err)
	}
	if head.FormatVersion == nil {
		return nil, fmt.Errorf("field \"format_version\": missing")
	}
	if *head.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("field \"format_version\": got %d, this build reads %d", *head.FormatVersion, FormatVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc document
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	return &doc, nil
}

// artifact checks the fields of doc against each other and builds the artifact (without
// the weights, which the caller reads next).
func (doc *document) artifact() (*Artifact, error) {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("field %q: %s", field, fmt.Sprintf(format, args...))
	}
	if len(doc.Manifest) == 0 {
		return nil, bad("manifest", "missing")
	}
	m, err := schemas.DecodeManifest(doc.Manifest)
	if err != nil {
		return nil, bad("manifest", "%v", err)
	}
	arch, err := nn.ParseArch(doc.Arch)
	if err != nil {
		return nil, bad("arch", "%v", err)
	}
	if !slices.Equal([]int(arch), doc.Widths) {
		return nil, bad("widths", "%v does not match arch %q", doc.Widths, doc.Arch)
	}
	task, err := TaskOf(m)
	if err != nil {
		return nil, bad("manifest", "%v", err)
	}
	if doc.Task != taskName(task) {
		return nil, bad("task", "%q, but the manifest's target is %s", doc.Task, m.Target.Task)
	}
	if doc.Outputs != task.Outputs() {
		return nil, bad("outputs", "%d, task %s has %d", doc.Outputs, task, task.Outputs())
	}
	if doc.InputWidth != m.FeatureWidth {
		return nil, bad("input_width", "%d, the manifest's preprocessing yields %d features", doc.InputWidth, m.FeatureWidth)
	}
	if doc.InputWidth < 1 {
		return nil, bad("input_width", "%d must be at least 1", doc.InputWidth)
	}
	params := nn.ParamCount(doc.InputWidth, arch, task.Outputs())
	if doc.Params != params {
		return nil, bad("params", "%d, architecture %s with %d inputs and %d outputs has %d",
			doc.Params, arch, doc.InputWidth, task.Outputs(), params)
	}
	w := doc.Weights
	switch {
	case w.File != WeightsFile:
		return nil, bad("weights.file", "%q, want %q", w.File, WeightsFile)
	case w.DType != DTypeFloat32:
		return nil, bad("weights.dtype", "%q, want %q", w.DType, DTypeFloat32)
	case w.ByteOrder != LittleEndian:
		return nil, bad("weights.byte_order", "%q, want %q", w.ByteOrder, LittleEndian)
	case w.Count != params:
		return nil, bad("weights.count", "%d, the architecture has %d parameters", w.Count, params)
	case w.Bytes != 4*int64(params):
		return nil, bad("weights.bytes", "%d, want %d (4 per parameter)", w.Bytes, 4*int64(params))
	case !isSHA256(w.SHA256):
		return nil, bad("weights.sha256", "%q is not 64 lowercase hex digits", w.SHA256)
	case doc.Created.IsZero():
		return nil, bad("created", "missing")
	}
	if len(doc.Run) > 0 && string(doc.Run) == "null" {
		doc.Run = nil
	}
	return &Artifact{Arch: arch, Task: task, In: doc.InputWidth, Manifest: m, Metrics: doc.Metrics,
		Run: doc.Run, Seed: doc.Seed, Created: doc.Created}, nil
}

func isSHA256(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Open loads the model at a local directory path, a file:///dir URL or an s3://bucket/prefix
// URL; S3 endpoint and credentials come from the environment (see objstore.Options).
func Open(ctx context.Context, pathOrURL string) (*Artifact, error) {
	return OpenWith(ctx, pathOrURL, objstore.Options{})
}

// OpenWith is Open with explicit object-store options for s3:// URLs. A location ending in
// /model.json names the same model as its directory.
func OpenWith(ctx context.Context, pathOrURL string, opts objstore.Options) (*Artifact, error) {
	loc := strings.TrimSuffix(strings.TrimSuffix(pathOrURL, "/"+ModelFile), "/")
	if pathOrURL == ModelFile {
		loc = "."
	}
	switch {
	case loc == "":
		return nil, fmt.Errorf("model: empty model location (want a directory, file:///dir or s3://bucket/prefix)")
	case strings.HasPrefix(loc, "s3://"):
		store, err := objstore.Open(ctx, loc, opts)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		return Load(ctx, store, "")
	case strings.HasPrefix(loc, "file://"):
		u, err := url.Parse(loc)
		if err != nil {
			return nil, fmt.Errorf("model: bad location %q: %w", pathOrURL, err)
		}
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return nil, fmt.Errorf("model: bad location %q: want file:///absolute/dir", pathOrURL)
		}
		loc = u.Path
	case strings.Contains(loc, "://"):
		return nil, fmt.Errorf("model: unsupported location %q (want a directory, file:///dir or s3://bucket/prefix)", pathOrURL)
	}
	// Check first: the local store would create a missing directory, and reading must not.
	st, err := os.Stat(loc)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("model: %s is not a model directory", pathOrURL)
	}
	store, err := objstore.NewLocal(filepath.Clean(loc))
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return Load(ctx, store, "")
}
