package model

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/schemas"
)

// datasetsDir is where the shared real datasets live, relative to this package.
const datasetsDir = "../../shared/datasets/"

// spec describes one real dataset and the small network trained on it.
type spec struct {
	name   string
	file   string // under datasetsDir
	opts   dataset.Options
	arch   string
	epochs int
}

var specs = map[string]spec{
	// Integer-coded categorical columns, binary target.
	"adult": {name: "adult", file: "adult/adult.csv.gz", arch: "16-8", epochs: 3, opts: dataset.Options{
		Categorical: []string{"workclass", "education", "marital-status", "occupation", "relationship",
			"race", "sex", "native-country"}}},
	// Regression with missing values (total_bedrooms) and a string category.
	"california": {name: "california", file: "california_housing/california_housing.csv.gz", arch: "32-16", epochs: 4},
	// 42 categorical board cells, 3 classes.
	"connect4": {name: "connect4", file: "connect4/connect4.csv.gz", arch: "32", epochs: 2, opts: dataset.Options{
		Categorical: connect4Columns(), RowLimit: 30000}},
}

func connect4Columns() []string {
	var cols []string
	for _, c := range "abcdefg" {
		for i := 1; i <= 6; i++ {
			cols = append(cols, fmt.Sprintf("%c%d", c, i))
		}
	}
	return cols
}

// fixture is a dataset ingested into a temp store plus a network trained on it.
type fixture struct {
	spec
	src        string
	ds         *dataset.Dataset
	art        *Artifact
	net        *nn.Standalone
	train, val nn.Data
	test       nn.Data
	testShards []*dataset.ShardData
	testEval   nn.Metrics
}

var (
	fixMu    sync.Mutex
	fixtures = map[string]*fixture{}
	fixErrs  = map[string]error{}
)

// requireFile skips (loudly) when a shared dataset is absent.
func requireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("real-data test NOT RUN: %s unavailable (%v)", path, err)
		fmt.Fprintln(os.Stderr, "!!! "+t.Name()+": "+msg)
		t.Skip("!!! " + msg)
	}
}

// getFixture ingests and trains once per dataset for the whole test binary.
func getFixture(t testing.TB, name string) *fixture {
	t.Helper()
	sp := specs[name]
	requireFile(t, datasetsDir+sp.file)
	fixMu.Lock()
	defer fixMu.Unlock()
	if f, ok := fixtures[name]; ok {
		return f
	}
	if err, ok := fixErrs[name]; ok {
		t.Fatalf("fixture %s: %v", name, err)
	}
	f, err := buildFixture(sp)
	if err != nil {
		fixErrs[name] = err
		t.Fatalf("fixture %s: %v", name, err)
	}
	fixtures[name] = f
	return f
}

// fixtureDir holds every fixture's store; removed by TestMain.
var fixtureDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "model-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildFixture(sp spec) (*fixture, error) {
	ctx := context.Background()
	store, err := objstore.NewLocal(fixtureDir + "/" + sp.name)
	if err != nil {
		return nil, err
	}
	f := &fixture{spec: sp, src: datasetsDir + sp.file}
	opts := sp.opts
	opts.Seed = 7
	opts.Now = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }
	if _, err := dataset.Ingest(ctx, f.src, store, "ds", opts); err != nil {
		return nil, err
	}
	if f.ds, err = dataset.OpenDataset(ctx, store, "ds"); err != nil {
		return nil, err
	}
	var shards [3][]*dataset.ShardData
	var data [3]nn.Data
	for k, split := range schemas.SplitNames {
		data[k].Cols = f.ds.Manifest.FeatureWidth
		for _, sh := range f.ds.Shards(split) {
			d, err := f.ds.ReadShard(ctx, sh)
			if err != nil {
				return nil, err
			}
			shards[k] = append(shards[k], d)
			data[k].X = append(data[k].X, d.X...)
			data[k].Y = append(data[k].Y, d.Y...)
		}
	}
	f.train, f.val, f.test, f.testShards = data[0], data[1], data[2], shards[2]
	task, err := TaskOf(f.ds.Manifest)
	if err != nil {
		return nil, err
	}
	arch, err := nn.ParseArch(sp.arch)
	if err != nil {
		return nil, err
	}
	net, _, err := nn.TrainStandalone(arch, task, f.train, f.val, nn.TrainConfig{Epochs: sp.epochs, Seed: 3})
	if err != nil {
		return nil, err
	}
	f.net = net
	ws := net.NewWorkspace(4096)
	valEval := net.Evaluate(f.val, ws)
	f.testEval = net.Evaluate(f.test, ws)
	if f.art, err = New(net, f.ds.Manifest); err != nil {
		return nil, err
	}
	f.art.Metrics = NewMetrics(f.ds.Manifest, valEval, f.testEval)
	f.art.Seed = 3
	f.art.Run = json.RawMessage(`{"dataset":"` + sp.name + `","arch":"` + sp.arch + `"}`)
	return f, nil
}

// rawSplit returns the header and the raw CSV rows of one split, in source order,
// recomputed from the manifest's split rule.
func (f *fixture) rawSplit(t testing.TB, split int) (header []string, rows [][]string) {
	t.Helper()
	fh, err := os.Open(f.src)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(gz)
	header, err = cr.Read()
	if err != nil {
		t.Fatal(err)
	}
	m := f.ds.Manifest
	for i := int64(0); ; i++ {
		rec, err := cr.Read()
		if err == io.EOF || (m.Source.RowLimit > 0 && i == m.Source.RowLimit) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if dataset.SplitOf(m.Split.Seed, m.Split.Fractions, i) == split {
			rows = append(rows, rec)
		}
	}
	return header, rows
}

// csvBytes renders a header and rows as CSV, optionally without the named column.
func csvBytes(t testing.TB, header []string, rows [][]string, drop string) []byte {
	t.Helper()
	skip := -1
	for i, h := range header {
		if h == drop {
			skip = i
		}
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	write := func(rec []string) {
		out := make([]string, 0, len(rec))
		for i, c := range rec {
			if i != skip {
				out = append(out, c)
			}
		}
		if err := w.Write(out); err != nil {
			t.Fatal(err)
		}
	}
	write(header)
	for _, r := range rows {
		write(r)
	}
	w.Flush()
	return b.Bytes()
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
