package dataset

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// csvReader splits RFC 4180 CSV (comma separator, "" escapes, quoted fields may span lines).
// It is encoding/csv's format with a fast path: a line without a quote is cut at commas
// directly, which is most of the cost of ingesting numeric tables. Blank lines are skipped.
// Each record's cells share one string allocation; the slice is reused between calls.
type csvReader struct {
	br      *bufio.Reader
	line    int64 // lines consumed so far
	start   int64 // first line of the last record
	rec     []string
	buf     []byte
	ends    []int
	pending []byte // a line longer than the bufio buffer, assembled
}

// csvSyntaxError is a malformed quote, located by line.
type csvSyntaxError struct {
	line int64
	msg  string
}

func (e *csvSyntaxError) Error() string { return e.msg }

func newCSVReader(r io.Reader) *csvReader {
	return &csvReader{br: bufio.NewReaderSize(r, 1<<20)}
}

// readLine returns the next line without its line ending; io.EOF only when nothing is left.
func (c *csvReader) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.pending = append(c.pending[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = c.br.ReadSlice('\n')
			c.pending = append(c.pending, line...)
		}
		line = c.pending
	}
	if len(line) == 0 {
		if err == nil {
			err = io.EOF
		}
		return nil, err
	}
	if err == io.EOF {
		err = nil // a last line without a newline
	}
	c.line++
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, err
}

// read returns the next record, or io.EOF.
func (c *csvReader) read() ([]string, error) {
	var line []byte
	for {
		l, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if len(l) > 0 {
			line = l
			break
		}
	}
	c.start = c.line
	c.buf = c.buf[:0]
	c.ends = c.ends[:0]
	if bytes.IndexByte(line, '"') < 0 {
		for {
			i := bytes.IndexByte(line, ',')
			if i < 0 {
				c.buf = append(c.buf, line...)
				c.ends = append(c.ends, len(c.buf))
				break
			}
			c.buf = append(c.buf, line[:i]...)
			c.ends = append(c.ends, len(c.buf))
			line = line[i+1:]
		}
	} else if err := c.parseQuoted(line); err != nil {
		return nil, err
	}
	str := string(c.buf)
	c.rec = c.rec[:0]
	prev := 0
	for _, e := range c.ends {
		c.rec = append(c.rec, str[prev:e])
		prev = e
	}
	return c.rec, nil
}

// parseQuoted is the slow path for a record with quotes.
func (c *csvReader) parseQuoted(line []byte) error {
	for {
		// At the start of a field.
		if len(line) == 0 || line[0] != '"' {
			i := bytes.IndexByte(line, ',')
			field := line
			if i >= 0 {
				field = line[:i]
			}
			if bytes.IndexByte(field, '"') >= 0 {
				return &csvSyntaxError{line: c.line, msg: `bare " in a non-quoted field`}
			}
			c.buf = append(c.buf, field...)
			c.ends = append(c.ends, len(c.buf))
			if i < 0 {
				return nil
			}
			line = line[i+1:]
			continue
		}
		// Quoted field: runs to a closing quote, possibly over several lines.
		line = line[1:]
		for {
			i := bytes.IndexByte(line, '"')
			if i < 0 {
				c.buf = append(c.buf, line...)
				next, err := c.readLine()
				if err != nil {
					if err == io.EOF {
						return &csvSyntaxError{line: c.start, msg: "quoted field not closed before the end of the file"}
					}
					return err
				}
				c.buf = append(c.buf, '\n')
				line = next
				continue
			}
			c.buf = append(c.buf, line[:i]...)
			line = line[i+1:]
			if len(line) > 0 && line[0] == '"' { // "" is an escaped quote
				c.buf = append(c.buf, '"')
				line = line[1:]
				continue
			}
			break
		}
		c.ends = append(c.ends, len(c.buf))
		switch {
		case len(line) == 0:
			return nil
		case line[0] == ',':
			line = line[1:] // an empty rest is one more, empty field
		default:
			return &csvSyntaxError{line: c.line, msg: fmt.Sprintf("unexpected %q after a closing quote", line[0])}
		}
	}
}
