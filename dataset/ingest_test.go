package dataset

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/schemas"
)

func ingestString(t *testing.T, name, csvText string, opts Options) (*schemas.Manifest, *memStore, error) {
	t.Helper()
	st := newMemStore()
	m, err := Ingest(context.Background(), writeFile(t, name, []byte(csvText)), st, "ds", opts)
	return m, st, err
}

func TestKindDetection(t *testing.T) {
	var b strings.Builder
	b.WriteString("small_int,text,mixed,code,holes,cat_holes,nan_text,target\n")
	for i := 0; i < 40; i++ {
		hole, catHole := strconv.Itoa(i), []string{"a", "b"}[i%2]
		if i%5 == 0 {
			hole, catHole = "", ""
		}
		fmt.Fprintf(&b, "%d, %s ,%s,%s,%s,%s,%s,%s\n",
			i%3, []string{"red", "green", "blue"}[i%3], []string{"1", "2", "x"}[i%3],
			[]string{"10", "9", "2", "9.0"}[i%4], hole, catHole, []string{"NaN", "ok"}[i%2], []string{"yes", "no"}[i%2])
	}
	m, _, err := ingestString(t, "kinds.csv", b.String(), Options{Categorical: []string{"code"}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	get := func(n string) *schemas.Input { return inputByName(m, n) }
	if in := get("small_int"); in.Kind != schemas.KindNumeric || in.Width != 1 {
		t.Errorf("small_int: few distinct integers must stay numeric: %+v", in)
	}
	if c := get("text").Categorical; c == nil || c.Order != schemas.OrderLexicographic || !reflect.DeepEqual(c.Vocab, []string{"blue", "green", "red"}) {
		t.Errorf("text (cells padded with spaces): %+v", c)
	}
	if c := get("mixed").Categorical; c == nil || !reflect.DeepEqual(c.Vocab, []string{"1", "2", "x"}) {
		t.Errorf("mixed: %+v", c)
	}
	// Forced categorical numeric codes: numeric order, "9.0" and "9" are one value.
	if c := get("code").Categorical; c == nil || c.Order != schemas.OrderNumeric || !reflect.DeepEqual(c.Vocab, []string{"2", "9", "10"}) {
		t.Errorf("code: %+v", c)
	}
	if in := get("holes"); in.Kind != schemas.KindNumeric || !in.Numeric.MissingIndicator || in.Width != 2 || in.Numeric.Missing == 0 {
		t.Errorf("holes: %+v %+v", in, in.Numeric)
	}
	if in := get("cat_holes"); !in.Categorical.MissingSlot || in.Width != 3 {
		t.Errorf("cat_holes: %+v %+v", in, in.Categorical)
	}
	if c := get("nan_text").Categorical; c == nil || !reflect.DeepEqual(c.Vocab, []string{"NaN", "ok"}) {
		t.Errorf("nan_text: NaN in a text column is a category: %+v", c)
	}
	if m.Target.Task != schemas.TaskBinary || !reflect.DeepEqual(m.Target.Classes, []string{"no", "yes"}) || m.Target.ClassOrder != schemas.OrderLexicographic {
		t.Errorf("target: %+v", m.Target)
	}
	widths := 0
	for _, in := range m.Inputs {
		if in.Offset != widths {
			t.Errorf("%s: offset %d, want %d", in.Name, in.Offset, widths)
		}
		widths += in.Width
	}
	if widths != m.FeatureWidth {
		t.Errorf("feature width %d, inputs %d", m.FeatureWidth, widths)
	}

	// Forcing a text column numeric is an error at its first text cell.
	_, _, err = ingestString(t, "kinds.csv", b.String(), Options{Numeric: []string{"mixed"}})
	wantErr(t, err, "kinds.csv", "line 4 (data row 3)", `column "mixed"`, "not a number")
}

func TestTaskDetection(t *testing.T) {
	build := func(n int, label func(i int) string) string {
		var b strings.Builder
		b.WriteString("x,target\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "%d,%s\n", i, label(i))
		}
		return b.String()
	}
	cases := []struct {
		name    string
		csv     string
		opts    Options
		task    string
		classes []string
	}{
		{"3 ints", build(60, func(i int) string { return strconv.Itoa(i%3*5 + 1) }), Options{}, schemas.TaskMulticlass, []string{"1", "6", "11"}},
		{"2 ints as floats", build(60, func(i int) string { return []string{"0.0", "1"}[i%2] }), Options{}, schemas.TaskBinary, []string{"0", "1"}},
		{"floats", build(60, func(i int) string { return fmt.Sprint(float64(i) / 7) }), Options{}, schemas.TaskRegression, nil},
		{"many ints", build(300, func(i int) string { return strconv.Itoa(i) }), Options{}, schemas.TaskRegression, nil},
		{"many ints forced", build(300, func(i int) string { return strconv.Itoa(i % 150) }), Options{Task: schemas.TaskMulticlass}, schemas.TaskMulticlass, nil},
		{"negative and -0", build(60, func(i int) string { return []string{"-1", "-0", "2"}[i%3] }), Options{}, schemas.TaskMulticlass, []string{"-1", "0", "2"}},
		{"given classes", build(60, func(i int) string { return []string{"b", "a", "c"}[i%3] }), Options{Classes: []string{"c", "a", "b"}}, schemas.TaskMulticlass, []string{"c", "a", "b"}},
		{"given numeric", build(60, func(i int) string { return []string{"1", "0"}[i%2] }), Options{Classes: []string{"1.0", "0"}}, schemas.TaskBinary, []string{"1", "0"}},
		{"int regression forced", build(60, func(i int) string { return strconv.Itoa(i % 3) }), Options{Task: schemas.TaskRegression}, schemas.TaskRegression, nil},
	}
	for _, c := range cases {
		m, _, err := ingestString(t, "task.csv", c.csv, c.opts)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if m.Target.Task != c.task || (c.classes != nil && !reflect.DeepEqual(m.Target.Classes, c.classes)) {
			t.Errorf("%s: task %s classes %v, want %s %v", c.name, m.Target.Task, m.Target.Classes, c.task, c.classes)
		}
		if c.name == "many ints forced" && len(m.Target.Classes) != 150 {
			t.Errorf("%s: %d classes", c.name, len(m.Target.Classes))
		}
	}
}

// TestRoundRobinLayout checks the documented row placement: split by SplitOf, then the r-th
// row of a split is row r/N of shard r%N. An id column makes every row identifiable.
func TestRoundRobinLayout(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,v,target\n")
	const n = 2000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%d,%d,%d\n", i, i%7, i%2)
	}
	st := localStore(t)
	path := writeFile(t, "ids.csv", []byte(b.String()))
	m, err := Ingest(context.Background(), path, st, "rr", Options{Seed: 11, RowsPerShard: 300, BufferBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDataset(context.Background(), st, "rr")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards.Train) != int((m.Split.Rows.Train+299)/300) {
		t.Fatalf("%d train shards for %d rows", len(m.Shards.Train), m.Split.Rows.Train)
	}
	shards := readAll(t, d)
	id := inputByName(m, "id").Numeric
	var rank [3]int64
	for i := int64(0); i < n; i++ {
		k := SplitOf(m.Split.Seed, m.Split.Fractions, i)
		si, pos := Locate(rank[k], len(shards[k]))
		rank[k]++
		got := float64(shards[k][si].Row(int(pos))[0])*id.Std + id.Mean
		if math.Abs(got-float64(i)) > 1e-3 {
			t.Fatalf("row %d found as %v at %s row %d", i, got, shards[k][si].Key, pos)
		}
	}
}

func TestDeterminism(t *testing.T) {
	path := datasetPath(t, "california_housing/california_housing.csv.gz")
	st := newMemStore()
	ingest := func(prefix string, seed uint64) *schemas.Manifest {
		m, err := Ingest(context.Background(), path, st, prefix, Options{Seed: seed, RowsPerShard: 5000})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	hashes := func(m *schemas.Manifest) []string {
		var out []string
		for _, name := range schemas.SplitNames {
			for _, sh := range m.Shards.Get(name) {
				out = append(out, sh.SHA256)
			}
		}
		return out
	}
	a, b, c := ingest("a", 5), ingest("b", 5), ingest("c", 6)
	if !reflect.DeepEqual(hashes(a), hashes(b)) || len(hashes(a)) < 4 {
		t.Fatalf("same seed, different shards:\n%v\n%v", hashes(a), hashes(b))
	}
	a.Created, b.Created = time.Time{}, time.Time{}
	a.Shards, b.Shards = schemas.Shards{}, schemas.Shards{}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different manifests")
	}
	if reflect.DeepEqual(hashes(a), hashes(c)) || a.Split.Rows == c.Split.Rows {
		t.Fatalf("different seeds gave the same split")
	}
}

func TestS3Source(t *testing.T) {
	text := "a,b,target\n1,x,0\n2,y,1\n3,x,0\n4,y,1\n5,x,1\n"
	raw := newMemStore()
	if err := raw.Put(context.Background(), "in/data.csv.gz", strings.NewReader(string(gzipBytes(t, text))), -1); err != nil {
		t.Fatal(err)
	}
	var opened []string
	opts := Options{OpenStore: func(ctx context.Context, url string) (objstore.Store, error) {
		opened = append(opened, url)
		return raw, nil
	}}
	dst := newMemStore()
	m, err := Ingest(context.Background(), "s3://raw/in/data.csv.gz", dst, "ds", opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(opened) != 1 || opened[0] != "s3://raw" || m.Source.Path != "s3://raw/in/data.csv.gz" || m.Source.Compression != "gzip" {
		t.Fatalf("opened %v, source %+v", opened, m.Source)
	}
	local, _, err := ingestString(t, "data.csv", text, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Inputs, local.Inputs) || m.Split != local.Split || m.Shards.Train[0].SHA256 != local.Shards.Train[0].SHA256 {
		t.Fatalf("s3 and local ingest of the same data differ")
	}
	// The default opener goes through objstore.Open; with no credentials it must fail
	// clearly, naming the source.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, err = Ingest(context.Background(), "s3://raw/in/data.csv.gz", dst, "ds2", Options{StoreOptions: objstore.Options{Endpoint: "http://127.0.0.1:1"}})
	wantErr(t, err, "s3://raw/in/data.csv.gz", "credentials")
	_, err = Ingest(context.Background(), "s3://raw", dst, "ds2", opts)
	wantErr(t, err, "want s3://bucket/key")
	if _, err := Ingest(context.Background(), "s3://raw/missing.csv", dst, "ds3", opts); err == nil || !strings.Contains(err.Error(), "s3://raw/missing.csv") {
		t.Fatalf("missing s3 object: %v", err)
	}
}

func TestOverwrite(t *testing.T) {
	var b strings.Builder
	b.WriteString("a,target\n")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "%d,%d\n", i, i%2)
	}
	path := writeFile(t, "o.csv", []byte(b.String()))
	st := newMemStore()
	if _, err := Ingest(context.Background(), path, st, "ds", Options{RowsPerShard: 50}); err != nil {
		t.Fatal(err)
	}
	before := len(st.keys())
	_, err := Ingest(context.Background(), path, st, "ds", Options{})
	wantErr(t, err, "already holds a dataset")
	m, err := Ingest(context.Background(), path, st, "ds", Options{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	keys := st.keys()
	if want := []string{"ds/manifest.json", "ds/test/part-00000.parquet", "ds/train/part-00000.parquet", "ds/val/part-00000.parquet"}; !reflect.DeepEqual(keys, want) || before <= len(keys) {
		t.Fatalf("after overwrite: %v (before: %d keys)", keys, before)
	}
	if _, err := OpenDataset(context.Background(), st, "ds/"); err != nil || m.ShardSchema.RowsPerShard != DefaultRowsPerShard {
		t.Fatal(err)
	}
}

func TestPreprocessorMatchesShards(t *testing.T) {
	path := datasetPath(t, "california_housing/california_housing.csv.gz")
	st := newMemStore()
	m, err := Ingest(context.Background(), path, st, "ch", Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := OpenDataset(context.Background(), st, "ch")
	p, err := d.Preprocessor()
	if err != nil {
		t.Fatal(err)
	}
	shards := readAll(t, d)
	hdr := headerOf(t, path)
	var rank [3]int64
	checked := 0
	eachSourceRow(t, path, func(row int64, rec []string) bool {
		k := SplitOf(m.Split.Seed, m.Split.Fractions, row)
		si, pos := Locate(rank[k], len(shards[k]))
		rank[k]++
		if row%7 != 0 {
			return true
		}
		want := shards[k][si].Row(int(pos))
		got, err := p.EncodeRecord(hdr, rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		asMap := map[string]string{}
		for i, h := range hdr[:len(hdr)-1] { // raw rows for prediction have no target
			asMap[h] = rec[i]
		}
		got2, err := p.EncodeMap(asMap, make([]float32, 3))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got2, want) {
			t.Fatalf("row %d: preprocessor %v / %v, shard %v", row, got, got2, want)
		}
		y, err := p.EncodeLabel(rec[len(rec)-1])
		if err != nil || y != shards[k][si].Y[pos] {
			t.Fatalf("row %d: label %v (%v), shard %v", row, y, err, shards[k][si].Y[pos])
		}
		raw, _ := strconv.ParseFloat(rec[len(rec)-1], 64)
		if back := p.DecodeRegression(float64(y)); math.Abs(back-raw) > 1e-6*raw {
			t.Fatalf("row %d: decoded %v, raw %v", row, back, raw)
		}
		checked++
		return true
	})
	if checked < 2000 {
		t.Fatalf("only %d rows checked", checked)
	}

	// Unseen category and missing values, spelled out.
	row := map[string]string{"longitude": "-122", "latitude": "37", "housing_median_age": "10", "total_rooms": "100",
		"total_bedrooms": "", "population": "50", "households": "20", "median_income": "3", "ocean_proximity": "ON THE MOON"}
	x, err := p.EncodeMap(row, nil)
	if err != nil {
		t.Fatal(err)
	}
	bed, oc := inputByName(m, "total_bedrooms"), inputByName(m, "ocean_proximity")
	if x[bed.Offset] != 0 || x[bed.Offset+1] != 1 {
		t.Errorf("missing total_bedrooms: %v", x[bed.Offset:bed.Offset+2])
	}
	for j := oc.Offset; j < oc.Offset+oc.Width; j++ {
		if x[j] != 0 {
			t.Errorf("unseen category must encode as zeros: %v", x[oc.Offset:oc.Offset+oc.Width])
		}
	}
	row["ocean_proximity"] = "INLAND"
	x, _ = p.EncodeMap(row, x)
	if x[oc.Offset+1] != 1 {
		t.Errorf("INLAND is vocab[1]: %v", x[oc.Offset:oc.Offset+oc.Width])
	}
	delete(row, "population")
	_, err = p.EncodeMap(row, nil)
	wantErr(t, err, `column "population"`, "missing")
	row["population"] = "lots"
	_, err = p.EncodeMap(row, nil)
	wantErr(t, err, `column "population"`, "not a number")
	row["population"] = "NaN"
	_, err = p.EncodeMap(row, nil)
	wantErr(t, err, `column "population"`, "NaN")
	if _, err := p.ForHeader([]string{"longitude"}); err == nil {
		t.Error("header without the inputs accepted")
	}
}

func TestPreprocessorLabels(t *testing.T) {
	var b strings.Builder
	b.WriteString("x,target\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "%d,%d\n", i, []int{1, 0}[i%2])
	}
	m, _, err := ingestString(t, "lab.csv", b.String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPreprocessor(m)
	if err != nil {
		t.Fatal(err)
	}
	for cell, want := range map[string]float32{"0": 0, "1": 1, " 1.0 ": 1, "1e0": 1} {
		if y, err := p.EncodeLabel(cell); err != nil || y != want {
			t.Errorf("EncodeLabel(%q) = %v, %v", cell, y, err)
		}
	}
	_, err = p.EncodeLabel("2")
	wantErr(t, err, `column "target"`, `label "2" is not in the label mapping`)
	_, err = p.EncodeLabel("")
	wantErr(t, err, "empty target cell")
	if s, err := p.DecodeClass(1); err != nil || s != "1" {
		t.Errorf("DecodeClass(1) = %q, %v", s, err)
	}
	if _, err := p.DecodeClass(2); err == nil {
		t.Error("DecodeClass(2) accepted")
	}
	bad := *m
	bad.FeatureWidth++
	if _, err := NewPreprocessor(&bad); err == nil {
		t.Error("invalid manifest accepted")
	}
}

// TestRowLimitLargeFile is the fashion-mnist training file (60,000 × 785) read to the end
// for its checksum but ingested only up to RowLimit.
func TestFashionTrainFull(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("SKIPPING the full 60,000-row fashion-mnist ingest under -short or -race (about 10 s without -race); TestDatasetRoundTrip covers its first rows")
	}
	path := datasetPath(t, "fashion_mnist/fashion_mnist_train.csv.gz")
	st := localStore(t)
	m, err := Ingest(context.Background(), path, st, "fm", Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDataset(context.Background(), st, "fm")
	if err != nil {
		t.Fatal(err)
	}
	verifyRoundTrip(t, path, d, datasetCase{name: "fashion_mnist_train", rows: 60000, task: schemas.TaskMulticlass,
		classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, maxCheck: 3000})
	if m.Source.SHA256 != "a23fed97dff264c0e21a7df24e2570aa6182421d749562c33ac0be3ab21ea783" {
		t.Errorf("sha256 %s", m.Source.SHA256)
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}
