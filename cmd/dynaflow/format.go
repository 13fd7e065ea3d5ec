package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/dynaflow-go/dynaflow"
)

// The formats a file can be in.
const (
	formatDDB  = "ddb"
	formatJSON = "json"
	formatCSV  = "csv"
)

// maxLine is the longest line a ddb or json reader takes: an item is at most 400 KB, and its
// JSON, with base64 and escapes, stays well under this.
const maxLine = 8 << 20

// formatFromName picks a format from a file name (a .gz suffix aside): .csv is csv; .json, .jsonl
// and .ndjson are json; anything else ddb. gz says whether the name ends in .gz.
func formatFromName(name string) (format string, gz bool) {
	lower := strings.ToLower(name)
	if gz = strings.HasSuffix(lower, ".gz"); gz {
		lower = strings.TrimSuffix(lower, ".gz")
	}
	switch filepath.Ext(lower) {
	case ".csv":
		return formatCSV, gz
	case ".json", ".jsonl", ".ndjson":
		return formatJSON, gz
	}
	return formatDDB, gz
}

// sniffJSON tells DynamoDB JSON from plain JSON by a file's first line: DynamoDB's own exports
// are named .json but hold {"Item":{...}} lines, which load must read as ddb.
func sniffJSON(first []byte) string {
	if item, err := decodeDDBLine(first); err == nil && len(item) > 0 {
		return formatDDB
	}
	return formatJSON
}

// isGzip reports whether p starts with gzip's magic number.
func isGzip(p []byte) bool { return len(p) >= 2 && p[0] == 0x1f && p[1] == 0x8b }

// record is one item read from an input, or why it could not be.
type record struct {
	line int64         // the record's first line, from 1
	item dynaflow.Item // nil when err is set
	raw  []byte        // the input as read, when it did not parse
	err  error         // why the record is not an item
	end  int64         // bytes of the decompressed input up to the end of this record
}

// source reads records; it returns io.EOF after the last.
type source interface {
	next() (record, error)
}

// lineSource reads one item a line (ddb or json). Blank lines are skipped.
type lineSource struct {
	r      *bufio.Reader
	decode func([]byte) (dynaflow.Item, error)
	line   int64
	off    int64
}

func newLineSource(r *bufio.Reader, format string, line, off int64) *lineSource {
	s := &lineSource{r: r, decode: decodeDDBLine, line: line, off: off}
	if format == formatJSON {
		s.decode = decodeJSONLine
	}
	return s
}

func (s *lineSource) next() (record, error) {
	for {
		b, n, tooLong, err := readLine(s.r)
		if n == 0 && err != nil {
			return record{}, err
		}
		s.line++
		s.off += n
		if tooLong {
			return record{line: s.line, end: s.off, err: fmt.Errorf("line is over %d MiB", maxLine>>20)}, nil
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		item, perr := s.decode(b)
		if perr != nil {
			return record{line: s.line, end: s.off, raw: bytes.Clone(b), err: perr}, nil
		}
		return record{line: s.line, item: item, end: s.off}, nil
	}
}

// readLine returns the next line without its newline, the bytes it took from r, and whether it
// was over maxLine (then its content is dropped). err is r's error once nothing more is read.
func readLine(r *bufio.Reader) (line []byte, n int64, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		n += int64(len(chunk))
		if !tooLong {
			if len(buf)+len(chunk) > maxLine {
				tooLong, buf = true, nil
			} else if err == bufio.ErrBufferFull || buf != nil {
				buf = append(buf, chunk...)
			} else {
				buf = chunk
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), n, tooLong, err
	}
}

// csvSource reads CSV rows under a typed header.
type csvSource struct {
	r      *csv.Reader
	read   *kept // what r has read, from the row being read on
	cols   []column
	header []string
	line   int64 // lines before this reader's start
	off    int64 // bytes before this reader's start
}

// newCSVSource reads the header from r, unless header is given (a resumed load, which starts
// after it).
func newCSVSource(r io.Reader, header []string, line, off int64) (*csvSource, error) {
	read := &kept{r: r}
	cr := csv.NewReader(read)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	s := &csvSource{r: cr, read: read, line: line, off: off}
	if header == nil {
		h, err := cr.Read()
		if err == io.EOF {
			return nil, errors.New("csv input is empty: it needs a header")
		}
		if err != nil {
			return nil, fmt.Errorf("csv header: %w", err)
		}
		header = append([]string(nil), h...)
		read.forget(cr.InputOffset())
	}
	cols, err := parseColumns(header)
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	s.cols, s.header = cols, header
	return s, nil
}

func (s *csvSource) next() (record, error) {
	start := s.r.InputOffset()
	row, err := s.r.Read()
	if err == io.EOF {
		return record{}, io.EOF
	}
	end := s.r.InputOffset()
	defer s.read.forget(end)
	rec := record{end: s.off + end}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		// Not FieldPos: a row refused in its first field has no fields, and FieldPos panics.
		rec.line = s.line + int64(pe.StartLine)
		rec.err = fmt.Errorf("csv: %w", pe.Err)
		if rec.raw = s.read.span(start, end); rec.raw == nil {
			rec.err = fmt.Errorf("csv: %w (the row runs over %d MiB: its text is not kept)", pe.Err, maxLine>>20)
		}
		return rec, nil
	}
	if err != nil {
		return record{}, err
	}
	line, _ := s.r.FieldPos(0)
	rec.line = s.line + int64(line)
	if rec.item, rec.err = csvItem(s.cols, row); rec.err != nil {
		rec.raw = s.read.span(start, end)
	}
	return rec, nil
}

// kept is a reader that keeps what it has read since the offset last forgotten, so that a row
// that does not make an item goes to the rejects file as it was written. It holds one row and
// what the CSV reader has buffered beyond it.
type kept struct {
	r    io.Reader
	buf  []byte
	base int64 // the offset of buf[0] in what r has read
}

func (k *kept) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	k.buf = append(k.buf, p[:n]...)
	return n, err
}

// forget lets go of what was read before offset off.
func (k *kept) forget(off int64) {
	k.buf = k.buf[off-k.base:]
	k.base = off
}

// span returns a copy of what was read from offset from to offset to, without its line end; nil
// when that is over maxLine (a quote left open can make one field of the rest of the input).
func (k *kept) span(from, to int64) []byte {
	if to-from > maxLine {
		return nil
	}
	b := k.buf[from-k.base : to-k.base]
	return bytes.Clone(bytes.TrimRight(b, "\r\n"))
}

// openSource makes a source of r (the input's bytes, maybe gzip), given its format ("" to
// detect it: ddb or json from the first line) and gzip ("" to detect it from the magic number).
// skip bytes of the decompressed input are dropped first, at line line; header is a resumed csv
// load's header. It returns the format found.
func openSource(r io.Reader, format string, gz *bool, skip, line int64, header []string) (source, string, io.Closer, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var closer io.Closer = io.NopCloser(nil)
	if gz == nil {
		head, _ := br.Peek(2)
		v := isGzip(head)
		gz = &v
	}
	in := br
	if *gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", nil, fmt.Errorf("gzip: %w", err)
		}
		closer = zr
		in = bufio.NewReaderSize(zr, 1<<20)
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, in, skip); err != nil {
			return nil, "", nil, fmt.Errorf("skipping the %d bytes loaded before: %w (is this the same input?)", skip, err)
		}
	}
	if format == "" {
		format = formatDDB
		b, _ := in.Peek(1 << 20) // as much as there is, up to the buffer's size
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			format = sniffJSON(bytes.TrimSpace(b[:i]))
		} else if len(b) < 1<<20 {
			format = sniffJSON(bytes.TrimSpace(b))
		} else if !bytes.HasPrefix(bytes.TrimSpace(b), []byte(`{"Item":`)) {
			format = formatJSON
		}
	}
	if format == formatCSV {
		s, err := newCSVSource(in, header, line, skip)
		if err != nil {
			return nil, "", nil, err
		}
		return s, format, closer, nil
	}
	return newLineSource(in, format, line, skip), format, closer, nil
}
