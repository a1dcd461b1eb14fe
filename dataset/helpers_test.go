package dataset

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/schemas"
)

// sharedDatasets is where CI lays out shared/ beside the repository.
const sharedDatasets = "../../shared/datasets"

func datasetPath(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(sharedDatasets, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("SKIPPING: shared dataset %s not found (%v); lay out shared/ beside the repository to run this test", p, err)
	}
	return p
}

func localStore(t testing.TB) *objstore.Local {
	t.Helper()
	st, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// eachSourceRow streams a (possibly gzipped) CSV independently of the package's reader.
func eachSourceRow(t testing.TB, path string, fn func(row int64, rec []string) bool) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer gz.Close()
		r = gz
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	hdr, err := cr.Read()
	if err != nil {
		t.Fatal(err)
	}
	hdr = append([]string(nil), hdr...)
	for row := int64(0); ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fn(row, rec) {
			break
		}
	}
	return hdr
}

// readAll loads every shard of every split.
func readAll(t testing.TB, d *Dataset) [3][]*ShardData {
	t.Helper()
	var out [3][]*ShardData
	for k, name := range schemas.SplitNames {
		for _, sh := range d.Shards(name) {
			sd, err := d.ReadShard(context.Background(), sh)
			if err != nil {
				t.Fatal(err)
			}
			out[k] = append(out[k], sd)
		}
	}
	return out
}

// refFeatures is the documented preprocessing, written out independently of Preprocessor.
func refFeatures(t testing.TB, m *schemas.Manifest, hdr, rec []string) []float64 {
	t.Helper()
	at := map[string]int{}
	for i, h := range hdr {
		at[h] = i
	}
	out := make([]float64, m.FeatureWidth)
	for _, in := range m.Inputs {
		cell := strings.TrimSpace(rec[at[in.Name]])
		switch in.Kind {
		case schemas.KindNumeric:
			n := in.Numeric
			if cell == "" {
				out[in.Offset] = 0
				if n.MissingIndicator {
					out[in.Offset+1] = 1
				}
				continue
			}
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				t.Fatalf("reference: %s=%q: %v", in.Name, cell, err)
			}
			std := n.Std
			if std == 0 {
				std = 1
			}
			out[in.Offset] = (v - n.Mean) / std
		case schemas.KindCategorical:
			c := in.Categorical
			if cell == "" {
				if c.MissingSlot {
					out[in.Offset+len(c.Vocab)] = 1
				}
				continue
			}
			key := cell
			if c.Order == schemas.OrderNumeric {
				v, err := strconv.ParseFloat(cell, 64)
				if err != nil {
					continue
				}
				key = strconv.FormatFloat(v, 'f', -1, 64)
			}
			for k, v := range c.Vocab {
				if v == key {
					out[in.Offset+k] = 1
				}
			}
		}
	}
	return out
}

func refLabel(t testing.TB, m *schemas.Manifest, cell string) float64 {
	t.Helper()
	cell = strings.TrimSpace(cell)
	if m.Target.Task == schemas.TaskRegression {
		v, err := strconv.ParseFloat(cell, 64)
		if err != nil {
			t.Fatal(err)
		}
		std := m.Target.Std
		if std == 0 {
			std = 1
		}
		return (v - m.Target.Mean) / std
	}
	key := cell
	if m.Target.ClassOrder == schemas.OrderNumeric {
		v, _ := strconv.ParseFloat(cell, 64)
		key = strconv.FormatFloat(v, 'f', -1, 64)
	}
	for k, c := range m.Target.Classes {
		if c == key {
			return float64(k)
		}
	}
	t.Fatalf("reference: label %q not in classes %v", cell, m.Target.Classes)
	return 0
}

func close32(got float32, want float64) bool {
	return math.Abs(float64(got)-want) <= 1e-5*math.Max(1, math.Abs(want))
}

// sortedVocab applies the documented vocabulary order to a set of raw values.
func sortedVocab(set map[string]bool) []string {
	var vals []string
	allNum := len(set) > 0
	nums := map[float64]bool{}
	for v := range set {
		vals = append(vals, v)
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			allNum = false
		}
		nums[x] = true
	}
	if !allNum {
		sort.Strings(vals)
		return vals
	}
	var xs []float64
	for x := range nums {
		xs = append(xs, x)
	}
	sort.Float64s(xs)
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strconv.FormatFloat(x, 'f', -1, 64)
	}
	return out
}

// writeFile writes a temp file and returns its path.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gzipBytes(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}
