package dataset

import (
	"encoding/csv"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// TestCSVReaderMatchesEncodingCSV compares the fast reader with the standard library on
// quoting, escapes, embedded newlines, CRLF, blank lines and empty fields.
func TestCSVReaderMatchesEncodingCSV(t *testing.T) {
	inputs := []string{
		"a,b,c\n1,2,3\n",
		"a,b,c\r\n1,2,3\r\n4,5,6",
		"a,b\n\n1,2\n\n\n3,4\n",
		"a,b,c\n1,,\n,,\n",
		"a,b\n\"x,y\",2\n\"he said \"\"hi\"\"\",3\n",
		"a,b\n\"multi\nline\",1\n2,\"\"\n",
		"a,b\n\"\",\"\"\n\"q\",\n",
		"a,b\n\"crlf\r\ninside\",1\r\n",
		"name\n" + strings.Repeat("x", 3<<20) + "\n", // longer than the read buffer
		"a,b\n1,2", // no final newline
	}
	for _, in := range inputs {
		want := [][]string{}
		std := csv.NewReader(strings.NewReader(in))
		std.FieldsPerRecord = -1
		for {
			rec, err := std.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%q: encoding/csv: %v", in, err)
			}
			want = append(want, rec)
		}
		got := [][]string{}
		r := newCSVReader(strings.NewReader(in))
		var lines []int64
		for {
			rec, err := r.read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%q: %v", trim(in), err)
			}
			got = append(got, append([]string(nil), rec...))
			lines = append(lines, r.start)
		}
		// encoding/csv turns \r\n inside quotes into \n; so do we for the line ending only.
		for _, rec := range want {
			for i := range rec {
				rec[i] = strings.ReplaceAll(rec[i], "\r\n", "\n")
			}
		}
		for _, rec := range got {
			for i := range rec {
				rec[i] = strings.ReplaceAll(rec[i], "\r\n", "\n")
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got  %q\n want %q", trim(in), got, want)
		}
		if in == "a,b\n\n1,2\n\n\n3,4\n" && !reflect.DeepEqual(lines, []int64{1, 3, 6}) {
			t.Errorf("line numbers %v, want [1 3 6]", lines)
		}
	}
	for in, msg := range map[string]string{
		"a,b\n1,\"2\n":    "not closed",
		"a,b\n1,x\"y\n":   `bare "`,
		"a,b\n\"1\"x,2\n": "after a closing quote",
	} {
		r := newCSVReader(strings.NewReader(in))
		var err error
		for err == nil {
			_, err = r.read()
		}
		var se *csvSyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.msg, msg) || se.line != 2 {
			t.Errorf("%q: error %v (line %v), want %q on line 2", in, err, se, msg)
		}
	}
}

func trim(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
