package model

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/infra/objstore/objstoretest"
	"github.com/tabnas/tabnas/internal/nn"
)

// faultStore records operations and can fail chosen Puts.
type faultStore struct {
	objstore.Store
	mu      sync.Mutex
	ops     []string
	failPut func(key string) error
}

func (s *faultStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	s.mu.Lock()
	s.ops = append(s.ops, "put "+key)
	fail := s.failPut
	s.mu.Unlock()
	if fail != nil {
		if err := fail(key); err != nil {
			io.Copy(io.Discard, io.LimitReader(r, 100)) // a partial upload that then breaks
			return err
		}
	}
	return s.Store.Put(ctx, key, r, size)
}

func (s *faultStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	s.ops = append(s.ops, "delete "+key)
	s.mu.Unlock()
	return s.Store.Delete(ctx, key)
}

func newLocal(t *testing.T) *objstore.Local {
	t.Helper()
	st, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// smallArtifact is a randomly initialized network on the california manifest: cheap, and
// every store test gets its own copy.
func smallArtifact(t *testing.T) *Artifact {
	t.Helper()
	f := getFixture(t, "california")
	net, err := nn.NewStandalone(f.ds.Manifest.FeatureWidth, nn.Arch{8, 4}, nn.RegressionTask(), rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(net, f.ds.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	a.Metrics = Metrics{ValLoss: 0.5, TestLoss: 0.6, TestMetric: 70000, MetricName: MetricRMSE}
	a.Run = json.RawMessage(`{"steps": 10}`)
	return a
}

func TestSaveWritesWeightsFirst(t *testing.T) {
	st := &faultStore{Store: newLocal(t)}
	if err := Save(context.Background(), st, "runs/r1/model/", smallArtifact(t)); err != nil {
		t.Fatal(err)
	}
	want := []string{"delete runs/r1/model/model.json", "put runs/r1/model/weights.bin", "put runs/r1/model/model.json"}
	if !slices.Equal(st.ops, want) {
		t.Fatalf("operations %q, want %q", st.ops, want)
	}
	if _, err := Load(context.Background(), st, "runs/r1/model"); err != nil {
		t.Fatal(err)
	}
}

// TestSaveFailureLeavesNoModel: whichever Put fails, nothing loadable is left, and an older
// model at the same prefix is never paired with the new weights.
func TestSaveFailureLeavesNoModel(t *testing.T) {
	ctx := context.Background()
	for _, failing := range []string{WeightsFile, ModelFile} {
		t.Run(failing, func(t *testing.T) {
			local := newLocal(t)
			st := &faultStore{Store: local}
			old := smallArtifact(t)
			if err := Save(ctx, st, "m", old); err != nil {
				t.Fatal(err)
			}
			st.failPut = func(key string) error {
				if key == "m/"+failing {
					return errors.New("injected: connection reset")
				}
				return nil
			}
			a := smallArtifact(t)
			a.Weights[0] += 1
			err := Save(ctx, st, "m", a)
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("Save with failing %s: %v", failing, err)
			}
			if _, err := local.Stat(ctx, "m/"+ModelFile); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("model.json after a failed save: %v", err)
			}
			_, err = Load(ctx, local, "m")
			if !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "model.json missing") {
				t.Fatalf("Load after a failed save: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestLoadRejectsDamage corrupts a saved model in many ways; each must fail with an error
// naming the object and the field.
func TestLoadRejectsDamage(t *testing.T) {
	editJSON := func(edit func(m map[string]any)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, "m", ModelFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	editFile := func(name string, edit func(b []byte) []byte) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, "m", name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, edit(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"weights bit flip", editFile(WeightsFile, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }),
			[]string{"m/weights.bin", "corrupt", "SHA-256", `"weights.sha256"`}},
		{"weights truncated", editFile(WeightsFile, func(b []byte) []byte { return b[:len(b)-4] }),
			[]string{"m/weights.bin", "corrupt", `"weights.bytes"`}},
		{"weights too long", editFile(WeightsFile, func(b []byte) []byte { return append(b, 0, 0, 0, 0) }),
			[]string{"m/weights.bin", `"weights.bytes"`}},
		{"weights missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "m", WeightsFile)) },
			[]string{"m/weights.bin", "not found"}},
		{"model.json truncated", editFile(ModelFile, func(b []byte) []byte { return b[:len(b)/2] }),
			[]string{"m/model.json", "not valid JSON"}},
		{"model.json empty", editFile(ModelFile, func(b []byte) []byte { return nil }),
			[]string{"m/model.json", "not valid JSON"}},
		{"wrong version", editJSON(func(m map[string]any) { m["format_version"] = 99 }),
			[]string{"m/model.json", `"format_version"`, "got 99", "reads 1"}},
		{"no version", editJSON(func(m map[string]any) { delete(m, "format_version") }),
			[]string{"m/model.json", `"format_version"`, "missing"}},
		{"widths disagree", editJSON(func(m map[string]any) { m["widths"] = []int{8, 5} }),
			[]string{"m/model.json", `"widths"`, "8-4"}},
		{"arch changed", editJSON(func(m map[string]any) { m["arch"] = "8-5"; m["widths"] = []int{8, 5} }),
			[]string{"m/model.json", `"params"`}},
		{"bad arch", editJSON(func(m map[string]any) { m["arch"] = "8-x" }),
			[]string{"m/model.json", `"arch"`}},
		{"input width", editJSON(func(m map[string]any) { m["input_width"] = 3 }),
			[]string{"m/model.json", `"input_width"`}},
		{"task", editJSON(func(m map[string]any) { m["task"] = "binary" }),
			[]string{"m/model.json", `"task"`}},
		{"outputs", editJSON(func(m map[string]any) { m["outputs"] = 2 }),
			[]string{"m/model.json", `"outputs"`}},
		{"weights count", editJSON(func(m map[string]any) { m["weights"].(map[string]any)["count"] = 7 }),
			[]string{"m/model.json", `"weights.count"`}},
		{"weights dtype", editJSON(func(m map[string]any) { m["weights"].(map[string]any)["dtype"] = "float16" }),
			[]string{"m/model.json", `"weights.dtype"`}},
		{"weights checksum field", editJSON(func(m map[string]any) { m["weights"].(map[string]any)["sha256"] = "abc" }),
			[]string{"m/model.json", `"weights.sha256"`}},
		{"manifest broken", editJSON(func(m map[string]any) { m["manifest"].(map[string]any)["feature_width"] = 1 }),
			[]string{"m/model.json", `"manifest"`, "feature_width"}},
		{"manifest missing", editJSON(func(m map[string]any) { delete(m, "manifest") }),
			[]string{"m/model.json", `"manifest"`, "missing"}},
		{"unknown field", editJSON(func(m map[string]any) { m["surprise"] = 1 }),
			[]string{"m/model.json", "unknown field", "surprise"}},
		{"metric name", editJSON(func(m map[string]any) { m["metrics"].(map[string]any)["test_metric_name"] = "accuracy" }),
			[]string{"m/model.json", "metrics.test_metric_name"}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newLocal(t)
			if err := Save(ctx, st, "m", smallArtifact(t)); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, st.Root())
			_, err := Load(ctx, st, "m")
			if err == nil {
				t.Fatal("damaged model loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(context.Background(), newLocal(t), "nothing/here")
	if !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "no model at") {
		t.Fatalf("Load of an empty prefix: %v", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	a := smallArtifact(t)
	if err := Save(ctx, st, "models/best", a); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(st.Root(), "models", "best")
	for _, loc := range []string{dir, dir + "/", "file://" + filepath.ToSlash(dir), dir + "/" + ModelFile} {
		got, err := Open(ctx, loc)
		if err != nil {
			t.Fatalf("Open(%q): %v", loc, err)
		}
		if !slices.Equal(got.Weights, a.Weights) {
			t.Fatalf("Open(%q): weights differ", loc)
		}
	}
	missing := filepath.Join(st.Root(), "absent")
	if _, err := Open(ctx, missing); err == nil {
		t.Fatal("Open of a missing directory succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created the missing directory: %v", err)
	}
	for _, bad := range []string{"", "http://example.com/m", "file://host/dir"} {
		if _, err := Open(ctx, bad); err == nil {
			t.Fatalf("Open(%q) succeeded", bad)
		}
	}
	// A directory without model.json: not found.
	if _, err := Open(ctx, st.Root()); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Open of a directory without a model: %v", err)
	}
}

// TestOpenS3 saves to and opens from a real S3 server (skipped loudly when none is configured).
func TestOpenS3(t *testing.T) {
	s3 := objstoretest.NewS3(t)
	_, opts := objstoretest.S3Options(t)
	ctx := context.Background()
	a := smallArtifact(t)
	if err := Save(ctx, s3, "models/best", a); err != nil {
		t.Fatal(err)
	}
	got, err := OpenWith(ctx, s3.URL()+"/models/best", opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Weights, a.Weights) || got.Arch.String() != a.Arch.String() {
		t.Fatal("model read back from S3 differs")
	}
	if _, err := OpenWith(ctx, s3.URL()+"/models/none", opts); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("missing S3 model: %v", err)
	}
}

func TestValidate(t *testing.T) {
	f := getFixture(t, "california")
	ctx := context.Background()
	cases := []struct {
		name string
		edit func(a *Artifact)
		want string
	}{
		{"input width", func(a *Artifact) { a.In++ }, "input_width"},
		{"task", func(a *Artifact) { a.Task = nn.BinaryTask() }, "task"},
		{"weights", func(a *Artifact) { a.Weights = a.Weights[1:] }, "weights"},
		{"NaN weight", func(a *Artifact) { a.Weights[3] = float32(math.NaN()) }, "weights: value 3 is NaN"},
		{"NaN loss", func(a *Artifact) { a.Metrics.ValLoss = math.NaN() }, "metrics.val_loss"},
		{"metric name", func(a *Artifact) { a.Metrics.MetricName = MetricAccuracy }, "metrics.test_metric_name"},
		{"run", func(a *Artifact) { a.Run = []byte("{") }, "run"},
		{"manifest", func(a *Artifact) { a.Manifest = nil }, "manifest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := smallArtifact(t)
			m := *f.ds.Manifest
			a.Manifest = &m
			tc.edit(a)
			err := Save(ctx, newLocal(t), "m", a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Save: %v, want an error about %s", err, tc.want)
			}
		})
	}
	// A network trained on california does not fit connect4's preprocessing.
	if _, err := New(f.net, getFixture(t, "connect4").ds.Manifest); err == nil {
		t.Fatal("New accepted a network trained on another dataset")
	} else {
		t.Log(err)
	}
}
