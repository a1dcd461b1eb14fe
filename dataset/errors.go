package dataset

import (
	"fmt"
	"strings"
)

// InputError locates a problem in the raw input file. Line and Row are 1-based; Line counts
// text lines of a CSV (the header is line 1), Row counts data rows (header excluded). Zero
// means "not applicable"; Column is empty when the problem is not tied to one column.
type InputError struct {
	Op     string // what was being done, e.g. "model: predict"; empty means "dataset"
	File   string
	Line   int64
	Row    int64
	Column string
	Err    error
}

func (e *InputError) Error() string {
	var b strings.Builder
	op := e.Op
	if op == "" {
		op = "dataset"
	}
	fmt.Fprintf(&b, "%s: %s", op, e.File)
	switch {
	case e.Line > 0 && e.Row > 0:
		fmt.Fprintf(&b, ": line %d (data row %d)", e.Line, e.Row)
	case e.Line > 0:
		fmt.Fprintf(&b, ": line %d", e.Line)
	case e.Row > 0:
		fmt.Fprintf(&b, ": data row %d", e.Row)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %q", e.Column)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *InputError) Unwrap() error { return e.Err }

// cellError is a problem with one cell, located later by the caller that knows the row.
type cellError struct {
	Column string
	Err    error
}

func (e *cellError) Error() string { return fmt.Sprintf("column %q: %v", e.Column, e.Err) }
func (e *cellError) Unwrap() error { return e.Err }
