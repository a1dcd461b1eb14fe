package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/schemas"
)

// TestBadInputs: every error names the file and, where there is one, the line, data row and
// column; and a failed ingest leaves nothing under the prefix.
func TestBadInputs(t *testing.T) {
	long := "a,b,target\n" + strings.Repeat("1.5,2.5,0\n3.5,4.5,1\n", 20000)
	gz := gzipBytes(t, long)
	cases := []struct {
		name  string
		file  string
		data  []byte
		opts  Options
		parts []string
	}{
		{"ragged short", "short.csv", []byte("a,b,target\n1,2,0\n3,0\n"), Options{},
			[]string{"short.csv", "line 3 (data row 2)", `column "target"`, "ragged row: 2 cells, header has 3"}},
		{"ragged long", "long.csv", []byte("a,b,target\n1,2,0,9\n"), Options{},
			[]string{"long.csv", "line 2 (data row 1)", `column "target"`, "ragged row: 4 cells", "extra"}},
		{"blank lines count", "blank.csv", []byte("a,target\n\n1,0\n\n1,x,2\n"), Options{},
			[]string{"blank.csv", "line 5 (data row 2)", "ragged"}},
		{"NaN", "nan.csv", []byte("a,b,target\n1,2,0\n1,NaN,1\n4,5,1\n"), Options{},
			[]string{"nan.csv", "line 3 (data row 2)", `column "b"`, "NaN or Inf", `"NaN"`}},
		{"Inf", "inf.csv", []byte("a,b,target\n1,2,0\n-inf,3,1\n"), Options{},
			[]string{"inf.csv", "line 3 (data row 2)", `column "a"`, "NaN or Inf"}},
		{"overflow", "big.csv", []byte("a,b,target\n1,2,0\n1,3,1\n1e999,3,1\n"), Options{},
			[]string{"big.csv", "line 4 (data row 3)", `column "a"`, "NaN or Inf"}},
		{"NaN target", "nant.csv", []byte("a,target\n1,0.5\n2,nan\n"), Options{},
			[]string{"nant.csv", "line 3 (data row 2)", `column "target"`, "NaN"}},
		{"missing target column", "notarget.csv", []byte("a,b,label\n1,2,0\n"), Options{},
			[]string{"notarget.csv", `column "target"`, "not found in the header", "a, b, label"}},
		{"custom target missing", "t.csv", []byte("a,b,target\n1,2,0\n"), Options{Target: "y"},
			[]string{"t.csv", `column "y"`, "not found"}},
		{"empty target cell", "et.csv", []byte("a,b,target\n1,2,0\n1,2,\n"), Options{},
			[]string{"et.csv", "line 3 (data row 2)", `column "target"`, "empty target cell"}},
		{"empty file", "empty.csv", nil, Options{}, []string{"empty.csv", "empty file"}},
		{"empty gzip", "empty.csv.gz", gzipBytes(t, ""), Options{}, []string{"empty.csv.gz", "no header row"}},
		{"header only", "hdr.csv", []byte("a,b,target\n"), Options{}, []string{"hdr.csv", "no data rows"}},
		{"bad gzip", "bad.csv.gz", []byte("\x1f\x8b\x00garbage, not deflate"), Options{},
			[]string{"bad.csv.gz", "unreadable gzip"}},
		{"truncated gzip", "cut.csv.gz", gz[:len(gz)/2], Options{},
			[]string{"cut.csv.gz", "unreadable gzip data", "unexpected EOF", "line "}},
		{"unseen label", "lab.csv", []byte("a,target\n1,0\n2,1\n3,2\n"), Options{Classes: []string{"0", "1"}},
			[]string{"lab.csv", "line 4 (data row 3)", `column "target"`, `label "2" is not in the label mapping`}},
		{"forced numeric text", "fn.csv", []byte("a,b,target\n1,2,0\n1,two,1\n"), Options{Numeric: []string{"b"}},
			[]string{"fn.csv", "line 3 (data row 2)", `column "b"`, `not a number in a numeric column: "two"`}},
		{"regression on text", "rt.csv", []byte("a,target\n1,0.5\n2,high\n"), Options{Task: schemas.TaskRegression},
			[]string{"rt.csv", "line 3 (data row 2)", `column "target"`, `"high" is not a number`}},
		{"unknown option column", "uo.csv", []byte("a,target\n1,0\n"), Options{Categorical: []string{"colour"}},
			[]string{"uo.csv", `column "colour"`, "not in the header"}},
		{"duplicate header", "dup.csv", []byte("a,a,target\n1,2,0\n"), Options{},
			[]string{"dup.csv", "line 1", `column "a"`, "columns 1 and 2"}},
		{"too many categories", "cats.csv", []byte("c,target\na,0\nb,1\nc,0\nd,1\ne,0\nf,1\ng,0\nh,1\n"), Options{MaxCategories: 3, Seed: 1},
			[]string{"cats.csv", `column "c"`, "more than 3"}},
		{"unclosed quote", "q.csv", []byte("a,b,target\n1,\"2,0\n3,4,1\n"), Options{},
			[]string{"q.csv", "line 2", "CSV syntax", "not closed"}},
		{"bare quote", "bq.csv", []byte("a,b,target\n1,2,0\n1,2\"x,0\n"), Options{},
			[]string{"bq.csv", "line 3", "CSV syntax", `bare "`}},
		{"single class", "one.csv", []byte("a,target\n1,x\n2,x\n"), Options{},
			[]string{"one.csv", `column "target"`, "1 distinct value"}},
		{"binary with 3 labels", "b3.csv", []byte("a,target\n1,x\n2,y\n3,z\n4,x\n"), Options{Task: schemas.TaskBinary},
			[]string{"b3.csv", `column "target"`, "binary task but the target has 3 distinct values"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := newMemStore()
			path := writeFile(t, c.file, c.data)
			_, err := Ingest(context.Background(), path, st, "ds", c.opts)
			wantErr(t, err, c.parts...)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("error is not an *InputError: %T %v", err, err)
			}
			if keys := st.keys(); len(keys) != 0 {
				t.Errorf("failed ingest left %v", keys)
			}
		})
	}
}

func manyRows(n int) string {
	var b strings.Builder
	b.WriteString("a,c,target\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%d,%s,%d\n", i, []string{"p", "q", "r"}[i%3], i%2)
	}
	return b.String()
}

// TestFailedUploadRollsBack: a store failure in the middle of the shard uploads, or at the
// manifest, leaves no manifest and no shards behind.
func TestFailedUploadRollsBack(t *testing.T) {
	path := writeFile(t, "m.csv", []byte(manyRows(3000)))
	for _, failKey := range []string{"ds/train/part-00002.parquet", "ds/val/part-00000.parquet", "ds/manifest.json"} {
		st := newMemStore()
		st.failPut = func(key string) error {
			if key == failKey {
				return fmt.Errorf("injected failure writing %s", key)
			}
			return nil
		}
		_, err := Ingest(context.Background(), path, st, "ds", Options{RowsPerShard: 500})
		wantErr(t, err, "injected failure", failKey)
		if keys := st.keys(); len(keys) != 0 {
			t.Errorf("failing %s left %v", failKey, keys)
		}
		if _, err := OpenDataset(context.Background(), st, "ds"); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("OpenDataset after a failed ingest: %v", err)
		}
	}
}

func TestCancelledIngest(t *testing.T) {
	path := writeFile(t, "m.csv", []byte(manyRows(3000)))
	st := newMemStore()
	ctx, cancel := context.WithCancel(context.Background())
	puts := 0
	st.failPut = func(key string) error {
		puts++
		if puts == 2 {
			cancel()
			return ctx.Err()
		}
		return nil
	}
	_, err := Ingest(ctx, path, st, "ds", Options{RowsPerShard: 500})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if keys := st.keys(); len(keys) != 0 {
		t.Errorf("cancelled ingest left %v", keys)
	}
	if _, err := Ingest(ctx, path, st, "ds", Options{}); err == nil {
		t.Fatal("ingest with a cancelled context succeeded")
	}
}

// ingestSmall makes a dataset with several shards in a memory store.
func ingestSmall(t *testing.T) (*memStore, *schemas.Manifest) {
	t.Helper()
	st := newMemStore()
	m, err := Ingest(context.Background(), writeFile(t, "m.csv", []byte(manyRows(3000))), st, "ds", Options{RowsPerShard: 500})
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

func TestCorruptShard(t *testing.T) {
	st, m := ingestSmall(t)
	sh := m.Shards.Train[1]
	good := append([]byte(nil), st.objs[sh.Key]...)
	ctx := context.Background()
	if _, _, rows, err := ReadShard(ctx, st, sh); err != nil || rows != int(sh.Rows) {
		t.Fatalf("good shard: %v", err)
	}

	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x40
	st.objs[sh.Key] = flipped
	_, _, _, err := ReadShard(ctx, st, sh)
	wantErr(t, err, sh.Key, "corrupt", "SHA-256")

	st.objs[sh.Key] = good[:len(good)-10]
	_, _, _, err = ReadShard(ctx, st, sh)
	wantErr(t, err, sh.Key, "corrupt", fmt.Sprintf("%d bytes, manifest says %d", len(good)-10, len(good)))

	delete(st.objs, sh.Key)
	_, _, _, err = ReadShard(ctx, st, sh)
	wantErr(t, err, sh.Key)
	if !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("missing shard: %v", err)
	}

	// A well-formed Parquet file with the right checksum but the wrong schema.
	other := parquetBytes(t, arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}}, nil),
		func(b *array.RecordBuilder) { b.Field(0).(*array.Float64Builder).AppendValues([]float64{1, 2}, nil) })
	st.objs[sh.Key] = other
	fake := schemas.Shard{Key: sh.Key, Rows: 2, Bytes: int64(len(other)), SHA256: sha256Hex(other)}
	_, _, _, err = ReadShard(ctx, st, fake)
	wantErr(t, err, sh.Key, "schema")

	// Right schema, wrong width for the manifest.
	narrow := parquetBytes(t, ShardArrowSchema(1), func(b *array.RecordBuilder) {
		b.Field(0).(*array.Float32Builder).AppendValues([]float32{1, 2}, nil)
		b.Field(1).(*array.Float32Builder).AppendValues([]float32{0, 1}, nil)
	})
	st.objs[sh.Key] = narrow
	fake = schemas.Shard{Key: sh.Key, Rows: 2, Bytes: int64(len(narrow)), SHA256: sha256Hex(narrow)}
	if _, _, rows, err := ReadShard(ctx, st, fake); err != nil || rows != 2 {
		t.Fatalf("a valid 1-feature shard: %v", err)
	}
	d, err := OpenDataset(ctx, st, "ds")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadShard(ctx, fake)
	wantErr(t, err, sh.Key, fmt.Sprintf("1 feature columns, manifest says %d", m.FeatureWidth))
	fake.Rows = 3
	_, _, _, err = ReadShard(ctx, st, fake)
	wantErr(t, err, sh.Key, "2 rows, manifest says 3")
}

func TestCorruptManifest(t *testing.T) {
	st, _ := ingestSmall(t)
	ctx := context.Background()
	good := st.objs["ds/manifest.json"]
	cases := map[string]func(m *schemas.Manifest){
		"feature_width":               func(m *schemas.Manifest) { m.FeatureWidth++ },
		"format_version":              func(m *schemas.Manifest) { m.FormatVersion = 9 },
		"split.rows":                  func(m *schemas.Manifest) { m.Split.Rows.Train++ },
		"shards.train[0].sha256":      func(m *schemas.Manifest) { m.Shards.Train[0].SHA256 = "x" },
		"inputs[1].categorical.vocab": func(m *schemas.Manifest) { m.Inputs[1].Categorical.Vocab[0] = "zz" },
		"target.classes":              func(m *schemas.Manifest) { m.Target.Classes = []string{"1", "0"} },
	}
	for field, edit := range cases {
		var m schemas.Manifest
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		edit(&m)
		data, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		st.objs["ds/manifest.json"] = data
		_, err = OpenDataset(ctx, st, "ds")
		wantErr(t, err, "ds/manifest.json", "manifest: "+field+":")
	}
	st.objs["ds/manifest.json"] = bytes.Replace(good, []byte(`"feature_width"`), []byte(`"colour": 1, "feature_width"`), 1)
	_, err := OpenDataset(ctx, st, "ds")
	wantErr(t, err, "ds/manifest.json", `unknown field "colour"`)
	delete(st.objs, "ds/manifest.json")
	_, err = OpenDataset(ctx, st, "ds")
	wantErr(t, err, "manifest missing")
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func parquetBytes(t *testing.T, sc *arrow.Schema, fill func(*array.RecordBuilder)) []byte {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	fill(b)
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(sc, &buf, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
