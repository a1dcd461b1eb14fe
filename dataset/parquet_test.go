package dataset

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// TestParquetInput writes the same table as CSV text and as Parquet (nullable columns of
// several types) and checks that both ingest to the same manifest and the same shards.
func TestParquetInput(t *testing.T) {
	const n = 1500
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "dist", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "count", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ratio", Type: arrow.PrimitiveTypes.Float32},
		{Name: "zone", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "code", Type: arrow.PrimitiveTypes.Int32},
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "small", Type: arrow.PrimitiveTypes.Uint8},
		{Name: "target", Type: arrow.BinaryTypes.String},
	}, nil)
	var csv strings.Builder
	csv.WriteString("dist,count,ratio,zone,code,flag,small,target\n")
	data := parquetBytes(t, sc, func(b *array.RecordBuilder) {
		for i := 0; i < n; i++ {
			dist := math.Sin(float64(i)) * 1000
			ratio := float32(i) / 3
			zone := []string{"north", "south", "east west", "<1H"}[i%4]
			code := int32(i % 6 * 10)
			flag := i%3 == 0
			label := []string{"lo", "mid", "hi"}[i%3]
			distCell, zoneCell := strconv.FormatFloat(dist, 'g', -1, 64), zone
			if i%11 == 0 {
				b.Field(0).(*array.Float64Builder).AppendNull()
				distCell = ""
			} else {
				b.Field(0).(*array.Float64Builder).Append(dist)
			}
			b.Field(1).(*array.Int64Builder).Append(int64(i * 1000))
			b.Field(2).(*array.Float32Builder).Append(ratio)
			if i%13 == 0 {
				b.Field(3).(*array.StringBuilder).AppendNull()
				zoneCell = ""
			} else {
				b.Field(3).(*array.StringBuilder).Append(zone)
			}
			b.Field(4).(*array.Int32Builder).Append(code)
			b.Field(5).(*array.BooleanBuilder).Append(flag)
			b.Field(6).(*array.Uint8Builder).Append(uint8(i % 250))
			b.Field(7).(*array.StringBuilder).Append(label)
			fmt.Fprintf(&csv, "%s,%d,%s,%s,%d,%t,%d,%s\n", distCell, i*1000,
				strconv.FormatFloat(float64(ratio), 'g', -1, 32), zoneCell, code, flag, i%250, label)
		}
	})
	opts := Options{Seed: 77, RowsPerShard: 400, Categorical: []string{"code"}}
	st := newMemStore()
	ctx := context.Background()
	mp, err := Ingest(ctx, writeFile(t, "table.parquet", data), st, "pq", opts)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := Ingest(ctx, writeFile(t, "table.csv", []byte(csv.String())), st, "csv", opts)
	if err != nil {
		t.Fatal(err)
	}
	if mp.Source.Format != "parquet" || mc.Source.Format != "csv" || mp.Source.Rows != n {
		t.Fatalf("formats %s/%s rows %d", mp.Source.Format, mc.Source.Format, mp.Source.Rows)
	}
	if !reflect.DeepEqual(mp.Inputs, mc.Inputs) || !reflect.DeepEqual(mp.Target, mc.Target) || mp.Split != mc.Split {
		t.Fatalf("manifests differ:\nparquet %+v\ncsv     %+v", mp.Inputs, mc.Inputs)
	}
	if z := inputByName(mp, "zone").Categorical; z == nil || !z.MissingSlot || len(z.Vocab) != 4 {
		t.Errorf("zone: %+v", z)
	}
	if f := inputByName(mp, "flag").Categorical; f == nil || !reflect.DeepEqual(f.Vocab, []string{"false", "true"}) {
		t.Errorf("flag: %+v", f)
	}
	if d := inputByName(mp, "dist"); !d.Numeric.MissingIndicator {
		t.Errorf("dist: nulls must count as missing: %+v", d.Numeric)
	}
	for _, name := range []string{"train", "val", "test"} {
		a, b := mp.Shards.Get(name), mc.Shards.Get(name)
		if len(a) != len(b) {
			t.Fatalf("%s: %d vs %d shards", name, len(a), len(b))
		}
		for i := range a {
			if a[i].SHA256 != b[i].SHA256 || a[i].Rows != b[i].Rows {
				t.Errorf("%s shard %d differs between Parquet and CSV input", name, i)
			}
		}
	}

	// A Parquet column of an unsupported type is named in the error.
	bad := parquetBytes(t, arrow.NewSchema([]arrow.Field{
		{Name: "when", Type: arrow.FixedWidthTypes.Date32},
		{Name: "target", Type: arrow.PrimitiveTypes.Int64},
	}, nil), func(b *array.RecordBuilder) {
		b.Field(0).(*array.Date32Builder).Append(1)
		b.Field(1).(*array.Int64Builder).Append(1)
	})
	_, err = Ingest(ctx, writeFile(t, "dates.parquet", bad), st, "bad", Options{})
	wantErr(t, err, "dates.parquet", `column "when"`, "unsupported Parquet column type")
	// A truncated Parquet file is not mistaken for CSV.
	_, err = Ingest(ctx, writeFile(t, "cut.parquet", data[:len(data)/2]), st, "cut", Options{})
	wantErr(t, err, "cut.parquet", "unreadable Parquet")
}
