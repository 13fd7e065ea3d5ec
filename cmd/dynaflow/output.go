package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"fmt"
	"io"
	"os"

	"github.com/dynaflow-go/dynaflow"
)

// csvSampleItems is how many items an export reads to choose its CSV columns when --columns is
// not given.
const csvSampleItems = 1000

// output writes items to one file (or stdout) in one format, maybe gzip. Its checkpoints are byte
// lengths at which the file is whole: every item before is complete and, with gzip, the member
// holding them is closed (a gzip file may hold several members, which readers join), so a resumed
// export truncates the file there and appends.
type output struct {
	name   string   // for messages
	file   *os.File // nil for stdout
	count  *countingWriter
	bw     *bufio.Writer
	zw     *gzip.Writer // nil without gzip
	zOpen  bool         // zw has a member under way
	gz     bool
	format string
	buf    []byte

	// csv: the columns, once chosen; until then the first items wait in sample.
	csv     *csv.Writer
	cols    []column
	keys    []string // the table's key attributes, first among chosen columns
	sample  []dynaflow.Item
	row     []string
	dropped int64 // items that had attributes outside the columns
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// newOutput writes to w from byte length at (0 for a new file). cols are the CSV columns when
// known (--columns, or a resumed export's); headerDone says the file already holds the header.
func newOutput(name string, file *os.File, w io.Writer, at int64, format string, gz bool, keys []string, cols []column, headerDone bool) *output {
	o := &output{name: name, file: file, count: &countingWriter{w: w, n: at}, format: format, gz: gz, keys: keys}
	o.bw = bufio.NewWriterSize(o.count, 256<<10)
	if format == formatCSV {
		o.cols = cols
		if cols != nil && !headerDone {
			o.startCSV()
			_ = o.csv.Write(headerOf(cols)) // errors surface on flush
		} else if cols != nil {
			o.startCSV()
		}
	}
	return o
}

// sink is where the encoded bytes go: the gzip member under way, or the buffer.
func (o *output) sink() io.Writer {
	if !o.gz {
		return o.bw
	}
	if !o.zOpen {
		if o.zw == nil {
			o.zw = gzip.NewWriter(o.bw)
		} else {
			o.zw.Reset(o.bw)
		}
		o.zOpen = true
	}
	return o.zw
}

func (o *output) startCSV() {
	o.csv = csv.NewWriter(writerFunc(func(p []byte) (int, error) { return o.sink().Write(p) }))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// write writes one item.
func (o *output) write(item dynaflow.Item) error {
	switch o.format {
	case formatCSV:
		if o.cols == nil {
			o.sample = append(o.sample, item)
			if len(o.sample) < csvSampleItems {
				return nil
			}
			return o.chooseColumns()
		}
		return o.writeRow(item)
	case formatJSON:
		o.buf = appendJSONLine(o.buf[:0], item)
	default:
		o.buf = appendDDBLine(o.buf[:0], item)
	}
	_, err := o.sink().Write(o.buf)
	return o.wrap(err)
}

func (o *output) writeRow(item dynaflow.Item) error {
	o.row = csvRow(o.cols, item, o.row)
	if len(item) > 0 {
		in := 0
		for _, c := range o.cols {
			if _, ok := item[c.name]; ok {
				in++
			}
		}
		if in < len(item) {
			o.dropped++
		}
	}
	return o.wrap(o.csv.Write(o.row))
}

// chooseColumns fixes the CSV columns from the sampled items and writes them out.
func (o *output) chooseColumns() error {
	o.cols = columnsOf(o.keys, o.sample)
	o.startCSV()
	if err := o.csv.Write(headerOf(o.cols)); err != nil {
		return o.wrap(err)
	}
	for _, it := range o.sample {
		if err := o.writeRow(it); err != nil {
			return err
		}
	}
	o.sample = nil
	return nil
}

// ready reports whether the output can take a checkpoint: a CSV output first needs its columns.
func (o *output) ready() bool { return o.format != formatCSV || o.cols != nil }

// sync makes everything written so far whole in the file and returns its length there. final
// fixes CSV columns from however many items there were.
func (o *output) sync(final bool) (int64, error) {
	if o.format == formatCSV && o.cols == nil {
		if !final {
			return 0, fmt.Errorf("%s: no checkpoint before the csv columns are chosen", o.name)
		}
		if len(o.sample) > 0 {
			if err := o.chooseColumns(); err != nil {
				return 0, err
			}
		}
	}
	if o.csv != nil {
		o.csv.Flush()
		if err := o.csv.Error(); err != nil {
			return 0, o.wrap(err)
		}
	}
	if o.zOpen {
		o.zOpen = false
		if err := o.zw.Close(); err != nil {
			return 0, o.wrap(err)
		}
	}
	if err := o.bw.Flush(); err != nil {
		return 0, o.wrap(err)
	}
	return o.count.n, nil
}

// close syncs and closes the file. An empty gzip file still gets one (empty) member, so that
// it is valid gzip.
func (o *output) close() error {
	if o.gz && o.count.n == 0 && o.bw.Buffered() == 0 && !o.zOpen {
		o.sink()
	}
	_, err := o.sync(true)
	if o.file != nil {
		if cerr := o.file.Close(); err == nil && cerr != nil {
			err = o.wrap(cerr)
		}
	}
	return err
}

func (o *output) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("write %s: %w", o.name, err)
}
