package model

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/dataset"
)

// TestPredictCSVBadInput feeds california rows with one defect each; the error must name
// the line, the data row and the column.
func TestPredictCSVBadInput(t *testing.T) {
	f := getFixture(t, "california")
	p, err := f.art.Predictor()
	if err != nil {
		t.Fatal(err)
	}
	header, rows := f.rawSplit(t, dataset.Val)
	col := func(name string) int {
		i := slices.Index(header, name)
		if i < 0 {
			t.Fatalf("no column %q", name)
		}
		return i
	}
	// Three good rows; the case edits the second one (line 3, data row 2).
	base := func() [][]string {
		out := make([][]string, 3)
		for i := range out {
			out[i] = slices.Clone(rows[i])
		}
		return out
	}
	set := func(name, v string) func(h []string, r [][]string) ([]string, [][]string) {
		return func(h []string, r [][]string) ([]string, [][]string) {
			r[1][col(name)] = v
			return h, r
		}
	}
	cases := []struct {
		name     string
		edit     func(h []string, r [][]string) ([]string, [][]string)
		line     int64
		row      int64
		column   string
		contains string
	}{
		{"text in a numeric column", set("median_income", "abc"), 3, 2, "median_income", `not a number in a numeric column: "abc"`},
		{"NaN", set("housing_median_age", "NaN"), 3, 2, "housing_median_age", "NaN or Inf"},
		{"infinite", set("total_rooms", "1e999"), 3, 2, "total_rooms", "NaN or Inf"},
		{"bad target", set("target", "n/a"), 3, 2, "target", "not a number"},
		{"empty target", set("target", ""), 3, 2, "target", "empty target cell"},
		{"ragged row", func(h []string, r [][]string) ([]string, [][]string) {
			r[1] = r[1][:len(r[1])-1]
			return h, r
		}, 3, 2, "", "row has 9 cells, the header has 10"},
		{"missing input column", func(h []string, r [][]string) ([]string, [][]string) {
			h = slices.Clone(h)
			h[col("households")] = "households_renamed"
			return h, r
		}, 1, 0, "households", "missing from the header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, r := tc.edit(header, base())
			_, err := p.PredictCSV(context.Background(), bytes.NewReader(csvBytes(t, h, r, "")), &bytes.Buffer{},
				PredictOptions{Name: "rows.csv"})
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an *InputError", err)
			}
			if ie.File != "rows.csv" || ie.Line != tc.line || ie.Row != tc.row || ie.Column != tc.column ||
				!strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("error %q (%+v), want line %d row %d column %q containing %q",
					err, *ie, tc.line, tc.row, tc.column, tc.contains)
			}
			t.Log(err)
		})
	}

	// Things that are not errors: an unseen category, an empty (missing) numeric cell.
	r := base()
	r[0][col("ocean_proximity")] = "ON THE MOON"
	r[1][col("total_bedrooms")] = ""
	r[2][col("median_income")] = " 3.5 "
	sum, err := p.PredictCSV(context.Background(), bytes.NewReader(csvBytes(t, header, r, "")), &bytes.Buffer{}, PredictOptions{})
	if err != nil || sum.Rows != 3 {
		t.Fatalf("unseen category / missing cell: %v, %+v", err, sum)
	}
}

func TestPredictCSVMalformed(t *testing.T) {
	f := getFixture(t, "california")
	p, err := f.art.Predictor()
	if err != nil {
		t.Fatal(err)
	}
	header, rows := f.rawSplit(t, dataset.Val)
	good := string(csvBytes(t, header, rows[:2], ""))
	cases := []struct {
		name, input, want string
	}{
		{"empty", "", "no header row"},
		{"bad quote", good + `-122,"37.8,1,2,3,4,5,6,NEAR BAY,1` + "\n", "line 4"},
		{"bad gzip", "\x1f\x8b\x08\x00garbage", "gzip"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.PredictCSV(context.Background(), strings.NewReader(tc.input), &bytes.Buffer{}, PredictOptions{Name: "in.csv"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "in.csv") {
				t.Fatalf("got %v, want an error about in.csv mentioning %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestPredictCSVKeepAndCancel(t *testing.T) {
	f := getFixture(t, "adult")
	p, err := f.art.Predictor()
	if err != nil {
		t.Fatal(err)
	}
	header, rows := f.rawSplit(t, dataset.Val)
	rows = rows[:50]
	var out bytes.Buffer
	sum, err := p.PredictCSV(context.Background(), bytes.NewReader(csvBytes(t, header, rows, "")), &out,
		PredictOptions{Keep: []string{"age", "target"}, BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := []string{"age", "target", PredictionColumn, ProbPrefix + "0", ProbPrefix + "1"}
	if !slices.Equal(recs[0], wantHeader) || len(recs) != 51 || sum.Rows != 50 {
		t.Fatalf("header %q, %d rows", recs[0], len(recs)-1)
	}
	for i, r := range rows {
		if recs[i+1][0] != r[0] || recs[i+1][1] != r[len(r)-1] {
			t.Fatalf("row %d keeps %q, input %q", i, recs[i+1][:2], r)
		}
	}
	if _, err := p.PredictCSV(context.Background(), bytes.NewReader(csvBytes(t, header, rows, "")), &out,
		PredictOptions{Keep: []string{"id"}}); err == nil || !strings.Contains(err.Error(), `column "id"`) {
		t.Fatalf("missing Keep column: %v", err)
	}
	sum, err = p.PredictCSV(context.Background(), bytes.NewReader(csvBytes(t, header, rows, "")), &bytes.Buffer{},
		PredictOptions{IgnoreTarget: true})
	if err != nil || sum.Labeled {
		t.Fatalf("IgnoreTarget: %v %+v", err, sum)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.PredictCSV(ctx, bytes.NewReader(csvBytes(t, header, rows, "")), &bytes.Buffer{}, PredictOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
}
