package schemas

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func loadGolden(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/manifest_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestManifestGoldenRoundTrip(t *testing.T) {
	data := loadGolden(t)
	m, err := DecodeManifest(data)
	if err != nil {
		t.Fatalf("golden manifest does not decode: %v", err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("golden manifest does not validate: %v", err)
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("re-encoded manifest differs from the golden file:\n%s", out)
	}
	// Spot-check that fields landed where the JSON says.
	if m.Target.Classes[2] != "10" || m.Inputs[2].Categorical.Vocab[0] != "<1H OCEAN" ||
		m.Shards.Train[1].Key != "datasets/toy/train/part-00001.parquet" || m.Split.Seed != 7 ||
		!m.Created.Equal(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) || m.ShardSchema.FeatureColumn(6) != "f6" {
		t.Fatalf("decoded fields wrong: %+v", m)
	}
}

// TestManifestCorrupt breaks one field at a time; the error must name that field.
func TestManifestCorrupt(t *testing.T) {
	cases := []struct {
		field string
		edit  func(m *Manifest)
	}{
		{"format_version", func(m *Manifest) { m.FormatVersion = 2 }},
		{"created", func(m *Manifest) { m.Created = time.Time{} }},
		{"source.path", func(m *Manifest) { m.Source.Path = "" }},
		{"source.format", func(m *Manifest) { m.Source.Format = "xlsx" }},
		{"source.compression", func(m *Manifest) { m.Source.Compression = "zip" }},
		{"source.bytes", func(m *Manifest) { m.Source.Bytes = 0 }},
		{"source.sha256", func(m *Manifest) { m.Source.SHA256 = "abc" }},
		{"source.sha256", func(m *Manifest) { m.Source.SHA256 = strings.ToUpper(m.Source.SHA256) }},
		{"source.rows", func(m *Manifest) { m.Source.Rows = 0 }},
		{"source.row_limit", func(m *Manifest) { m.Source.RowLimit = 5 }},
		{"target.column", func(m *Manifest) { m.Target.Column = "" }},
		{"target.task", func(m *Manifest) { m.Target.Task = "ranking" }},
		{"target.classes", func(m *Manifest) { m.Target.Classes = []string{"1"} }},
		{"target.classes", func(m *Manifest) { m.Target.Classes = []string{"1", "10", "2"} }},
		{"target.classes", func(m *Manifest) { m.Target.Classes = []string{"1", "1.0", "10"} }},
		{"target.classes", func(m *Manifest) { m.Target.Task = TaskBinary }},
		{"target.class_order", func(m *Manifest) { m.Target.ClassOrder = "random" }},
		{"target.mean", func(m *Manifest) { m.Target.Mean = 1 }},
		{"target.classes", func(m *Manifest) { m.Target.Task = TaskRegression }},
		{"target.std", func(m *Manifest) {
			m.Target = Target{Column: "target", Task: TaskRegression, Std: math.Inf(1)}
			m.ShardSchema.LabelEncoding = LabelStandard
		}},
		{"inputs", func(m *Manifest) { m.Inputs = nil }},
		{"inputs[0].name", func(m *Manifest) { m.Inputs[0].Name = "" }},
		{"inputs[1].name", func(m *Manifest) { m.Inputs[1].Name = "age" }},
		{"inputs[1].name", func(m *Manifest) { m.Inputs[1].Name = "target" }},
		{"inputs[2].source_index", func(m *Manifest) { m.Inputs[2].SourceIndex = 0 }},
		{"inputs[1].offset", func(m *Manifest) { m.Inputs[1].Offset = 2 }},
		{"inputs[0].kind", func(m *Manifest) { m.Inputs[0].Kind = "ordinal" }},
		{"inputs[0].numeric", func(m *Manifest) { m.Inputs[0].Numeric = nil }},
		{"inputs[0].numeric.mean", func(m *Manifest) { m.Inputs[0].Numeric.Mean = math.NaN() }},
		{"inputs[0].numeric.std", func(m *Manifest) { m.Inputs[0].Numeric.Std = -1 }},
		{"inputs[0].numeric.impute", func(m *Manifest) { m.Inputs[0].Numeric.Impute = "median" }},
		{"inputs[1].numeric.missing_indicator", func(m *Manifest) { m.Inputs[1].Numeric.MissingIndicator = false }},
		{"inputs[0].width", func(m *Manifest) { m.Inputs[0].Width = 2 }},
		{"inputs[2].categorical", func(m *Manifest) { m.Inputs[2].Categorical = nil }},
		{"inputs[2].numeric", func(m *Manifest) { m.Inputs[2].Numeric = m.Inputs[0].Numeric }},
		{"inputs[2].categorical.vocab", func(m *Manifest) { m.Inputs[2].Categorical.Vocab = []string{"INLAND", "<1H OCEAN", "NEAR BAY"} }},
		{"inputs[2].categorical.vocab", func(m *Manifest) { m.Inputs[2].Categorical.Vocab[1] = "<1H OCEAN" }},
		{"inputs[2].categorical.vocab", func(m *Manifest) { m.Inputs[2].Categorical.Order = OrderNumeric }},
		{"inputs[2].categorical.order", func(m *Manifest) { m.Inputs[2].Categorical.Order = "frequency" }},
		{"inputs[2].categorical.missing_slot", func(m *Manifest) { m.Inputs[2].Categorical.MissingSlot = false }},
		{"inputs[2].categorical.unseen", func(m *Manifest) { m.Inputs[2].Categorical.Unseen = "error" }},
		{"inputs[2].width", func(m *Manifest) { m.Inputs[2].Width = 3 }},
		{"feature_width", func(m *Manifest) { m.FeatureWidth = 8 }},
		{"split.method", func(m *Manifest) { m.Split.Method = "modulo" }},
		{"split.fractions", func(m *Manifest) { m.Split.Fractions.Test = 0.2 }},
		{"split.fractions", func(m *Manifest) { m.Split.Fractions = Fractions{Train: 0, Val: 0.5, Test: 0.5} }},
		{"split.rows", func(m *Manifest) { m.Split.Rows.Test = 2 }},
		{"split.rows.val", func(m *Manifest) { m.Split.Rows.Val = -1 }},
		{"shard_schema.dtype", func(m *Manifest) { m.ShardSchema.DType = "float64" }},
		{"shard_schema.feature_prefix", func(m *Manifest) { m.ShardSchema.FeaturePrefix = "" }},
		{"shard_schema.label", func(m *Manifest) { m.ShardSchema.Label = "f7" }},
		{"shard_schema.features", func(m *Manifest) { m.ShardSchema.Features = 6 }},
		{"shard_schema.label_encoding", func(m *Manifest) { m.ShardSchema.LabelEncoding = LabelStandard }},
		{"shard_schema.assignment", func(m *Manifest) { m.ShardSchema.Assignment = "contiguous" }},
		{"shard_schema.rows_per_shard", func(m *Manifest) { m.ShardSchema.RowsPerShard = 0 }},
		{"shards.train[0].key", func(m *Manifest) { m.Shards.Train[0].Key = "" }},
		{"shards.test[0].key", func(m *Manifest) { m.Shards.Test[0].Key = m.Shards.Val[0].Key }},
		{"shards.train[1].rows", func(m *Manifest) { m.Shards.Train[1].Rows = 5 }},
		{"shards.train[1].bytes", func(m *Manifest) { m.Shards.Train[1].Bytes = 0 }},
		{"shards.val[0].sha256", func(m *Manifest) { m.Shards.Val[0].SHA256 = "not-a-hash" }},
		{"shards.train", func(m *Manifest) { m.Shards.Train = m.Shards.Train[:1] }},
		{"shards.train[1].rows", func(m *Manifest) {
			m.Shards.Train[0].Rows, m.Shards.Train[1].Rows = 2, 6
			m.ShardSchema.RowsPerShard = 6
		}},
	}
	for _, c := range cases {
		m, err := DecodeManifest(loadGolden(t))
		if err != nil {
			t.Fatal(err)
		}
		c.edit(m)
		err = m.Validate()
		if err == nil {
			t.Errorf("%s: corrupt manifest validated", c.field)
			continue
		}
		if !strings.Contains(err.Error(), "manifest: "+c.field+":") {
			t.Errorf("%s: error does not name the field: %v", c.field, err)
		}
		// The stored form must be refused the same way.
		data, err := json.Marshal(m)
		if err != nil {
			continue // NaN/Inf cannot even be encoded
		}
		if _, err := DecodeManifest(data); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: DecodeManifest error %v", c.field, err)
		}
	}
}

func TestDecodeManifestRejects(t *testing.T) {
	golden := string(loadGolden(t))
	cases := map[string]string{
		"format_version: got 2":   strings.Replace(golden, `"format_version": 1`, `"format_version": 2`, 1),
		"format_version: missing": strings.Replace(golden, `"format_version": 1,`, ``, 1),
		`unknown field "colour"`:  strings.Replace(golden, `"feature_width": 7,`, `"feature_width": 7, "colour": "red",`, 1),
		"not valid JSON":          golden[:100],
		"after top-level value":   golden + "{}",
		"source.rows":             strings.Replace(golden, `"rows": 10`, `"rows": -3`, 1),
	}
	for want, text := range cases {
		_, err := DecodeManifest([]byte(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}

func TestCanonicalNumber(t *testing.T) {
	for in, want := range map[float64]string{1: "1", 1.5: "1.5", -2: "-2", math.Copysign(0, -1): "0", 1e6: "1000000", 0.1: "0.1"} {
		if got := CanonicalNumber(in); got != want {
			t.Errorf("CanonicalNumber(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestFractionsValidate(t *testing.T) {
	if err := DefaultFractions.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Fractions{Train: 0.7, Val: 0.2, Test: 0.1}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Fractions{{0.5, 0.5, 0.5}, {-0.1, 0.6, 0.5}, {0, 0, 1}, {math.NaN(), 0, 1}} {
		if f.Validate() == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}
