package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/dynaflow-go/dynaflow"
	"github.com/spf13/cobra"
)

func (a *app) loadCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "load TABLE [FILE|-]",
		Short: "Load items from a file or stdin into a table",
		Long: `load writes every item of FILE (or stdin) to TABLE with BatchWriteItem, retrying what DynamoDB
throttles or hands back. A line that does not parse, lacks or mistypes a key, is over 400 KB or
fails at DynamoDB goes to the rejects file with its line number and the reason; the rejects file
loads again as it is. A later line with the same key as an earlier one replaces it, as a second
PutItem would.

The format is --format, else csv for a .csv name, else found from the first line: DynamoDB JSON
(the {"Item":...} lines of DynamoDB's export to S3, or bare typed items) or plain JSON lines.
gzip is found from the data.

Interrupted (Ctrl-C), load stops reading, lets what it accepted land, saves the checkpoint
(default: dynaflow-load-TABLE.checkpoint in the current directory) and exits 130; --resume
skips every line before it and misses none after.`,
		Example: `  dynaflow load orders orders.ddb.gz
  zcat export/*.json.gz | dynaflow load orders - --max-write-units 500
  dynaflow load orders orders.csv --dry-run
  dynaflow load orders orders.rejects.ddb        # once the rejects are fixed`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			a.cmd = c
			file := "-"
			if len(args) == 2 {
				file = args[1]
			}
			return a.load(args[0], file)
		},
	}
	a.connFlags(c)
	a.writeFlags(c)
	a.formatFlags(c, "csv for a .csv name, else found from the first line", "found from the data")
	c.Flags().BoolVar(&a.dryRun, "dry-run", false, "read and check everything, write nothing; report counts and estimated write units")
	return c
}

// loadCheckpoint is where an interrupted load was: every line up to Line (ending at byte Offset
// of the decompressed input) has landed or been rejected.
type loadState struct {
	Command    string   `json:"command"`
	Table      string   `json:"table"`
	Input      string   `json:"input"`
	InputSize  int64    `json:"input_size,omitempty"`
	Format     string   `json:"format"`
	Gzip       bool     `json:"gzip"`
	Header     []string `json:"csv_header,omitempty"`
	Line       int64    `json:"line"`
	Offset     int64    `json:"offset"`
	Rejects    string   `json:"rejects"`
	RejectsLen int64    `json:"rejects_length"`
}

// loadPos is a position in the input.
type loadPos struct{ line, offset int64 }

func (a *app) load(table, file string) (err error) {
	if err := a.checkFlags(); err != nil {
		return err
	}
	in, size, name, err := a.openInput(file)
	if err != nil {
		return err
	}
	defer in.Close()

	format := a.format
	if format == "" {
		if f, _ := formatFromName(name); f == formatCSV {
			format = formatCSV
		}
	}
	var gz *bool
	if a.changed("gzip") {
		gz = &a.gzip
	} else if _, byName := formatFromName(name); byName {
		gz = &byName
	}

	ckPath := a.checkpoint
	if ckPath == "" {
		ckPath = "dynaflow-load-" + safeName(table) + ".checkpoint"
	}
	var st loadState
	found, err := loadCheckpoint(ckPath, &st)
	if err != nil {
		return err
	}
	if err := checkStart(ckPath, a.resume, found); err != nil {
		return err
	}
	if a.dryRun && a.resume {
		return errors.New("--dry-run and --resume do not go together")
	}
	abs, _ := filepath.Abs(file)
	if file == "-" {
		abs = "-"
	}
	if found {
		if st.Table != table || st.Input != abs || (size > 0 && st.InputSize != size) {
			return fmt.Errorf("the checkpoint %s is for loading %s into %s; this is %s into %s", ckPath, st.Input, st.Table, abs, table)
		}
		format, gz = st.Format, &st.Gzip
	}

	api, err := a.connect(a.stop, a.inFlight)
	if err != nil {
		return err
	}
	info, err := describe(a.stop, api, table)
	if err != nil {
		return err
	}
	maxW, err := units("max-write-units", a.maxWrite, info, true)
	if err != nil {
		return err
	}

	m := &meter{what: "load " + table, start: time.Now(), total: size, byBytes: true}
	counted := &countingReader{r: in, n: &m.bytes}
	src, format, closeSrc, err := openSource(counted, format, gz, st.Offset, st.Line, st.Header)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer closeSrc.Close()
	gzipped := gz != nil && *gz || gz == nil && counted.gzip()

	rejPath := a.rejects
	if found {
		rejPath = st.Rejects
	} else if rejPath == "" {
		rejPath = safeName(table) + ".rejects.ddb"
	}
	rej := &rejects{path: rejPath, at: st.RejectsLen}
	defer rej.close()

	dyn := dynaflow.New(api, func(o *dynaflow.Options) { o.MaxWriteUnits = maxW })
	m.rejected, m.client = rej.count, dyn
	pr := a.startProgress(m)

	state := loadState{Command: "load", Table: table, Input: abs, InputSize: size, Format: format, Gzip: gzipped, Rejects: rejPath}
	if cs, ok := src.(*csvSource); ok {
		state.Header = cs.header
	}
	if a.dryRun {
		return a.dryLoad(src, info, rej, m, pr)
	}

	b, err := dyn.NewBatcher(a.stop, table, a.batcherOptions(info, maxW))
	if err != nil {
		pr.end(false)
		return err
	}
	m.batcher.Store(b)
	w := newTableWriter(b, info, rej, loadPos{st.Line, st.Offset})
	w.verify = a.verify
	save := func(pos any, rejectsLen int64) error {
		p := pos.(loadPos)
		s := state
		s.Line, s.Offset, s.RejectsLen = p.line, p.offset, rejectsLen
		return saveCheckpoint(ckPath, s)
	}
	read := func() error {
		for {
			if a.stop.Err() != nil {
				return a.stop.Err()
			}
			rec, err := src.next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			m.read.Add(1)
			if rec.err != nil {
				err = rej.add(rec.line, nil, rec.raw, fmt.Errorf("line %d: %w", rec.line, rec.err))
			} else {
				err = w.put(a.stop, rec.line, rec.item)
			}
			if err != nil {
				return err
			}
			w.reached(loadPos{rec.line, rec.end})
		}
	}

	return a.writeRun(w, dyn, table, ckPath, "load", pr, save, read)
}

// finishRejects ends the report and chooses between success and exit 2.
func (a *app) finishRejects(pr *progress, rej *rejects, notes []string) error {
	if n := rej.count(); n > 0 {
		if err := rej.close(); err != nil {
			pr.end(false, notes...)
			return err
		}
		notes = append(notes, fmt.Sprintf("%s rejected, in %s", count(n), rej.path))
		pr.end(false, notes...)
		return fmt.Errorf("%w: %s in %s, each with the reason (the first: %v)", errRejects, items(n, "item is", "items are"), rej.path, rej.first)
	}
	pr.end(false, notes...)
	return nil
}

// dryLoad reads and checks everything, writing nothing to the table.
func (a *app) dryLoad(src source, info *tableInfo, rej *rejects, m *meter, pr *progress) error {
	var est float64
	for {
		if a.stop.Err() != nil {
			pr.end(true)
			return fmt.Errorf("%w (dry run)", errInterrupted)
		}
		rec, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			pr.end(false)
			return err
		}
		m.read.Add(1)
		if rec.err == nil {
			rec.err = info.checkItem(rec.item)
		} else {
			rec.err = fmt.Errorf("line %d: %w", rec.line, rec.err)
		}
		if rec.err != nil {
			if a.rejects != "" {
				if err := rej.add(rec.line, rec.item, rec.raw, rec.err); err != nil {
					pr.end(false)
					return err
				}
			} else {
				rej.tally(rec.err)
			}
			continue
		}
		est += info.writeUnits(rec.item)
		m.estimate.Store(int64(est * 1000))
	}
	notes := []string{fmt.Sprintf("dry run: %s would be written, about %.0f write units; nothing was written", items(m.read.Load()-rej.count(), "item", "items"), est)}
	if n := rej.count(); n > 0 {
		pr.end(false, notes...)
		where := "pass --rejects FILE to keep them"
		if a.rejects != "" {
			where = "they are in " + a.rejects
		}
		return fmt.Errorf("%w: %s would be rejected (the first: %v); %s", errRejects, items(n, "item", "items"), rej.first, where)
	}
	pr.end(false, notes...)
	return nil
}

// openInput opens file, or stdin for "-", and returns its size when known.
func (a *app) openInput(file string) (io.ReadCloser, int64, string, error) {
	if file == "-" {
		return io.NopCloser(a.stdin), 0, "stdin", nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, "", err
	}
	var size int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, file, nil
}

// countingReader counts the bytes read through it, for progress, and remembers the first two to
// tell whether they were gzip.
type countingReader struct {
	r    io.Reader
	n    *atomic.Int64
	head []byte
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if len(c.head) < 2 {
		c.head = append(c.head, p[:min(n, 2-len(c.head))]...)
	}
	if c.n != nil {
		c.n.Add(int64(n))
	}
	return n, err
}

func (c *countingReader) gzip() bool { return isGzip(c.head) }

// safeName makes a table name safe in a file name (table names allow only [a-zA-Z0-9_.-]).
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
