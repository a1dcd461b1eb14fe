package dataset

import (
	"context"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/schemas"
)

type datasetCase struct {
	name     string
	file     string
	rows     int64
	task     string
	classes  []string // nil for regression
	opts     Options
	maxCheck int // compare about this many rows feature by feature
	check    func(t *testing.T, m *schemas.Manifest)
}

func inputByName(m *schemas.Manifest, name string) *schemas.Input {
	for i := range m.Inputs {
		if m.Inputs[i].Name == name {
			return &m.Inputs[i]
		}
	}
	return nil
}

func datasetCases() []datasetCase {
	adultCat := []string{"workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"}
	var connect4Cat []string
	for _, c := range "abcdefg" {
		for r := 1; r <= 6; r++ {
			connect4Cat = append(connect4Cat, string(c)+strconv.Itoa(r))
		}
	}
	return []datasetCase{
		{
			name: "california_housing", file: "california_housing/california_housing.csv.gz", rows: 20640,
			task: schemas.TaskRegression, maxCheck: 30000,
			check: func(t *testing.T, m *schemas.Manifest) {
				bed := inputByName(m, "total_bedrooms")
				if bed.Kind != schemas.KindNumeric || !bed.Numeric.MissingIndicator || bed.Width != 2 {
					t.Errorf("total_bedrooms: want numeric with a missing indicator, got %+v %+v", bed, bed.Numeric)
				}
				if bed.Numeric.Missing < 130 || bed.Numeric.Missing > 207 {
					t.Errorf("total_bedrooms: %d missing training cells, expected about 0.8*207", bed.Numeric.Missing)
				}
				oc := inputByName(m, "ocean_proximity")
				if oc.Kind != schemas.KindCategorical || oc.Categorical.Order != schemas.OrderLexicographic || oc.Categorical.MissingSlot {
					t.Errorf("ocean_proximity: %+v", oc.Categorical)
				}
				if got := strings.Join(oc.Categorical.Vocab, "|"); got != "<1H OCEAN|INLAND|ISLAND|NEAR BAY|NEAR OCEAN" {
					t.Errorf("ocean_proximity vocab %q", got)
				}
				if m.FeatureWidth != 7+2+5 {
					t.Errorf("feature width %d, want 14", m.FeatureWidth)
				}
				if m.Target.Mean < 150000 || m.Target.Mean > 250000 {
					t.Errorf("target mean %v", m.Target.Mean)
				}
			},
		},
		{
			name: "adult", file: "adult/adult.csv.gz", rows: 48842, task: schemas.TaskBinary,
			classes: []string{"0", "1"}, opts: Options{Categorical: adultCat}, maxCheck: 20000,
			check: func(t *testing.T, m *schemas.Manifest) {
				// Integer codes are categories only because Options say so.
				wc := inputByName(m, "workclass").Categorical
				if wc.Order != schemas.OrderNumeric || strings.Join(wc.Vocab, ",") != "0,1,2,3,4,5,6,7,8" {
					t.Errorf("workclass vocab %v (%s)", wc.Vocab, wc.Order)
				}
				nc := inputByName(m, "native-country").Categorical
				if len(nc.Vocab) < 40 || nc.Vocab[len(nc.Vocab)-1] != "41" {
					t.Errorf("native-country vocab %v", nc.Vocab)
				}
				if inputByName(m, "age").Kind != schemas.KindNumeric {
					t.Errorf("age is not numeric")
				}
			},
		},
		{
			name: "connect4", file: "connect4/connect4.csv.gz", rows: 67557, task: schemas.TaskMulticlass,
			classes: []string{"0", "1", "2"}, opts: Options{Categorical: connect4Cat}, maxCheck: 20000,
			check: func(t *testing.T, m *schemas.Manifest) {
				if m.FeatureWidth != 42*3 {
					t.Errorf("feature width %d, want 126", m.FeatureWidth)
				}
			},
		},
		{
			name: "higgs", file: "higgs/higgs_26k.csv.gz", rows: 25975, task: schemas.TaskBinary,
			classes: []string{"0", "1"}, maxCheck: 30000,
			check: func(t *testing.T, m *schemas.Manifest) {
				if m.FeatureWidth != 28 || inputByName(m, "jet_1_b_tag").Kind != schemas.KindNumeric {
					t.Errorf("higgs: want 28 numeric features, got width %d", m.FeatureWidth)
				}
			},
		},
		{
			name: "covertype", file: "covertype/covertype_197k.csv.gz", rows: 197100, task: schemas.TaskMulticlass,
			classes: []string{"1", "2", "3", "4", "5", "6", "7"}, maxCheck: 15000,
			check: func(t *testing.T, m *schemas.Manifest) {
				if m.FeatureWidth != 54 || len(m.Shards.Train) != 3 {
					t.Errorf("covertype: width %d, %d train shards", m.FeatureWidth, len(m.Shards.Train))
				}
			},
		},
		{
			name: "fashion_mnist_test", file: "fashion_mnist/fashion_mnist_test.csv.gz", rows: 10000, task: schemas.TaskMulticlass,
			classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, maxCheck: 2500,
			check: func(t *testing.T, m *schemas.Manifest) {
				if m.FeatureWidth != 784 {
					t.Errorf("fashion: width %d", m.FeatureWidth)
				}
			},
		},
		{
			// The 60,000-row training file, cut to its first rows so the test stays quick under
			// -race; TestFashionTrainFull ingests all of it when not under -race or -short.
			name: "fashion_mnist_train_limit", file: "fashion_mnist/fashion_mnist_train.csv.gz", rows: 3000,
			task: schemas.TaskMulticlass, classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
			opts: Options{RowLimit: 3000}, maxCheck: 1000,
			check: func(t *testing.T, m *schemas.Manifest) {
				if m.Source.RowLimit != 3000 || m.Source.SHA256 != "a23fed97dff264c0e21a7df24e2570aa6182421d749562c33ac0be3ab21ea783" {
					t.Errorf("row limit %d, sha256 %s (want the whole file's)", m.Source.RowLimit, m.Source.SHA256)
				}
			},
		},
	}
}

// TestDatasetRoundTrip ingests every shared dataset into a local-directory store, reads all
// shards back and compares them with the documented preprocessing applied to the source.
func TestDatasetRoundTrip(t *testing.T) {
	for _, c := range datasetCases() {
		t.Run(c.name, func(t *testing.T) {
			path := datasetPath(t, c.file)
			st := localStore(t)
			opts := c.opts
			opts.Seed = 20240607
			m, err := Ingest(context.Background(), path, st, "datasets/"+c.name, opts)
			if err != nil {
				t.Fatal(err)
			}
			d, err := OpenDataset(context.Background(), st, "datasets/"+c.name)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d.Manifest, m) {
				t.Fatalf("stored manifest differs from the returned one")
			}
			verifyRoundTrip(t, path, d, c)
		})
	}
}

type refStat struct {
	n, missing int64
	shift      float64
	s1, s2     float64
	vocab      map[string]bool
}

func verifyRoundTrip(t *testing.T, path string, d *Dataset, c datasetCase) {
	m := d.Manifest
	if m.Source.Rows != c.rows {
		t.Fatalf("source rows %d, want %d", m.Source.Rows, c.rows)
	}
	if m.Target.Task != c.task || !reflect.DeepEqual(m.Target.Classes, c.classes) {
		t.Fatalf("task %s classes %v, want %s %v", m.Target.Task, m.Target.Classes, c.task, c.classes)
	}
	shards := readAll(t, d)
	var total int64
	fr := []float64{m.Split.Fractions.Train, m.Split.Fractions.Val, m.Split.Fractions.Test}
	for k, list := range shards {
		var n int64
		for _, sd := range list {
			if sd.Features != m.FeatureWidth || len(sd.X) != sd.Rows*sd.Features || len(sd.Y) != sd.Rows {
				t.Fatalf("shard %s: shape %d×%d", sd.Key, sd.Rows, sd.Features)
			}
			n += int64(sd.Rows)
		}
		if n != m.Split.Rows.Get(schemas.SplitNames[k]) {
			t.Errorf("split %s: shards hold %d rows, manifest says %d", schemas.SplitNames[k], n, m.Split.Rows.Get(schemas.SplitNames[k]))
		}
		// Binomial: within 5 standard deviations of the fraction.
		want := fr[k] * float64(c.rows)
		if sd := math.Sqrt(float64(c.rows) * fr[k] * (1 - fr[k])); math.Abs(float64(n)-want) > 5*sd+1 {
			t.Errorf("split %s: %d rows, expected about %.0f", schemas.SplitNames[k], n, want)
		}
		total += n
	}
	if total != c.rows {
		t.Fatalf("shards hold %d rows, source has %d", total, c.rows)
	}

	stride := int64(1)
	if c.maxCheck > 0 && c.rows > int64(c.maxCheck) {
		stride = c.rows / int64(c.maxCheck)
	}
	stats := map[string]*refStat{}
	for _, in := range m.Inputs {
		stats[in.Name] = &refStat{vocab: map[string]bool{}}
	}
	tstat := &refStat{vocab: map[string]bool{}}
	var rank [3]int64
	var checked int
	hdr := headerOf(t, path)
	eachSourceRow(t, path, func(row int64, rec []string) bool {
		if m.Source.RowLimit > 0 && row >= m.Source.RowLimit {
			return false
		}
		k := SplitOf(m.Split.Seed, m.Split.Fractions, row)
		r := rank[k]
		rank[k]++
		if k == Train {
			for _, in := range m.Inputs {
				s := stats[in.Name]
				cell := strings.TrimSpace(rec[in.SourceIndex])
				if cell == "" {
					s.missing++
					continue
				}
				if in.Kind == schemas.KindCategorical {
					s.vocab[cell] = true
					continue
				}
				v, _ := strconv.ParseFloat(cell, 64)
				if s.n == 0 {
					s.shift = v
				}
				s.n++
				s.s1 += v - s.shift
				s.s2 += (v - s.shift) * (v - s.shift)
			}
			if m.Target.Task == schemas.TaskRegression {
				v, _ := strconv.ParseFloat(rec[len(rec)-1], 64)
				if tstat.n == 0 {
					tstat.shift = v
				}
				tstat.n++
				tstat.s1 += v - tstat.shift
				tstat.s2 += (v - tstat.shift) * (v - tstat.shift)
			}
		}
		tstat.vocab[rec[len(rec)-1]] = true
		if row%stride != 0 {
			return true
		}
		list := shards[k]
		si, pos := Locate(r, len(list))
		sd := list[si]
		if pos >= int64(sd.Rows) {
			t.Fatalf("row %d: located at %s row %d beyond %d rows", row, sd.Key, pos, sd.Rows)
		}
		want := refFeatures(t, m, hdr, rec)
		got := sd.Row(int(pos))
		for j := range want {
			if !close32(got[j], want[j]) {
				t.Fatalf("source row %d (split %s, %s row %d) feature %d: got %v, want %v",
					row, schemas.SplitNames[k], sd.Key, pos, j, got[j], want[j])
			}
		}
		if wl := refLabel(t, m, rec[len(rec)-1]); !close32(sd.Y[pos], wl) {
			t.Fatalf("source row %d: label %v, want %v (raw %q)", row, sd.Y[pos], wl, rec[len(rec)-1])
		}
		checked++
		return true
	})
	if hdr[len(hdr)-1] != m.Target.Column {
		t.Fatalf("last header column %q", hdr[len(hdr)-1])
	}

	// Statistics recomputed independently from the training rows.
	for _, in := range m.Inputs {
		s := stats[in.Name]
		if in.Kind == schemas.KindCategorical {
			if got, want := in.Categorical.Vocab, sortedVocab(s.vocab); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: vocab %v, reference %v", in.Name, got, want)
			}
			if in.Categorical.Missing != s.missing {
				t.Errorf("%s: %d missing, reference %d", in.Name, in.Categorical.Missing, s.missing)
			}
			continue
		}
		checkMoments(t, in.Name, s, in.Numeric.Mean, in.Numeric.Std)
		if in.Numeric.Count != s.n || in.Numeric.Missing != s.missing {
			t.Errorf("%s: count/missing %d/%d, reference %d/%d", in.Name, in.Numeric.Count, in.Numeric.Missing, s.n, s.missing)
		}
	}
	if m.Target.Task == schemas.TaskRegression {
		checkMoments(t, "target", tstat, m.Target.Mean, m.Target.Std)
	} else if got, want := m.Target.Classes, sortedVocab(tstat.vocab); !reflect.DeepEqual(got, want) {
		t.Errorf("classes %v, reference %v", got, want)
	}
	if checked == 0 {
		t.Fatal("no rows compared")
	}
	if c.check != nil {
		c.check(t, m)
	}
	t.Logf("%s: %d rows (%d/%d/%d), width %d, %d rows compared feature by feature",
		c.name, total, m.Split.Rows.Train, m.Split.Rows.Val, m.Split.Rows.Test, m.FeatureWidth, checked)
}

func headerOf(t *testing.T, path string) []string {
	return eachSourceRow(t, path, func(int64, []string) bool { return false })
}

func checkMoments(t *testing.T, name string, s *refStat, mean, std float64) {
	t.Helper()
	if s.n == 0 {
		return
	}
	n := float64(s.n)
	rm := s.shift + s.s1/n
	rv := (s.s2 - s.s1*s.s1/n) / n
	rs := math.Sqrt(math.Max(rv, 0))
	if math.Abs(mean-rm) > 1e-9*math.Max(1, math.Abs(rm)) {
		t.Errorf("%s: mean %v, reference %v", name, mean, rm)
	}
	if math.Abs(std-rs) > 1e-7*math.Max(1, rs) {
		t.Errorf("%s: std %v, reference %v", name, std, rs)
	}
}
