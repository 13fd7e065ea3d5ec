package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynaflow-go/dynaflow"
	"github.com/spf13/cobra"
)

func (a *app) exportCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "export TABLE [-o FILE|DIR|-]",
		Short: "Export a table to a file, a folder (one file per segment) or stdout",
		Long: `export scans TABLE with --segments parallel segments and writes every item once, to stdout
(the default or -o -), to a file, or to a folder (a name ending in / or an existing directory)
with one file per segment. The format is --format, else from the file name, else ddb, which is
lossless; json and csv lose types (sets, binaries), and csv drops attributes outside its
columns (--columns, or those of the first 1,000 items).

A file or folder export keeps a checkpoint beside each file (FILE.checkpoint): the segments'
places in the scan and the file's length there. After any interrupt, even kill -9, the same
command with --resume truncates each file to its checkpoint and continues: the export holds
every item exactly once. The bar's total is DynamoDB's ItemCount, which is approximate (it is
updated about every six hours).`,
		Example: `  dynaflow export orders -o orders.ddb.gz
  dynaflow export orders -o backup/ --segments 16 --max-read-units 40%
  dynaflow export orders | gzip > orders.ddb.gz
  dynaflow export orders -o orders.csv --columns pk,sk:N,total:N,tags:SS`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			a.cmd = c
			return a.export(args[0])
		},
	}
	a.connFlags(c)
	a.readFlags(c)
	a.formatFlags(c, "from the file name, else ddb", "from a .gz name")
	c.Flags().StringVarP(&a.output, "output", "o", "-", "FILE, DIR/ (one file per segment) or - for stdout")
	c.Flags().StringVar(&a.columns, "columns", "", "csv: the columns, name or name:TYPE, comma-separated (default: those of the first 1,000 items)")
	return c
}

// exportState is the checkpoint of one output file: the file is whole up to Length, and each of
// its segments has written every item before Start (nil Start and not Done: from the beginning).
type exportState struct {
	Command       string     `json:"command"`
	Table         string     `json:"table"`
	TotalSegments int        `json:"total_segments"`
	Format        string     `json:"format"`
	Gzip          bool       `json:"gzip"`
	Columns       []string   `json:"csv_columns,omitempty"`
	Length        int64      `json:"length"`
	Segments      []segState `json:"segments"`
}

// segState is where a segment of a parallel scan is.
type segState struct {
	Segment int             `json:"segment"`
	Done    bool            `json:"done,omitempty"`
	Start   json.RawMessage `json:"start,omitempty"` // the LastEvaluatedKey, in DynamoDB JSON
}

// exportOut is one output file and the segments that write to it.
type exportOut struct {
	out    *output
	ck     string // checkpoint path; "" for stdout
	state  exportState
	segAt  map[int]int // segment -> index in state.Segments
	lastCk time.Time
}

func (a *app) export(table string) error {
	if err := a.checkFlags(); err != nil {
		return err
	}
	target := a.output
	toDir := strings.HasSuffix(target, "/") || isDir(target)
	if target == "-" && a.resume {
		return errors.New("--resume needs an export to a file or a folder; stdout cannot be resumed")
	}
	format, gz := formatDDB, false
	if target != "-" && !toDir {
		format, gz = formatFromName(target)
	}
	if a.format != "" {
		format = a.format
	}
	if a.changed("gzip") {
		gz = a.gzip
	}
	var cols []column
	if a.columns != "" {
		if format != formatCSV {
			return errors.New("--columns is for --format csv")
		}
		var err error
		if cols, err = parseColumns(strings.Split(a.columns, ",")); err != nil {
			return fmt.Errorf("--columns: %w", err)
		}
	}

	// A resumed export takes its settings from its checkpoints.
	var prior map[string]exportState
	if target != "-" {
		var err error
		if prior, err = findExportCheckpoints(target, toDir, a.checkpoint); err != nil {
			return err
		}
		if err := checkStart(checkpointName(target, toDir, a.checkpoint), a.resume, len(prior) > 0); err != nil {
			return err
		}
		for _, st := range prior {
			if st.Table != table {
				return fmt.Errorf("the checkpoints at %s are for an export of %s, not %s", target, st.Table, table)
			}
			if a.changed("segments") && a.segments != st.TotalSegments || a.format != "" && a.format != st.Format || a.changed("gzip") && a.gzip != st.Gzip {
				return fmt.Errorf("--resume: the interrupted export used --segments %d --format %s --gzip=%v; resume it with the same", st.TotalSegments, st.Format, st.Gzip)
			}
			a.segments, format, gz = st.TotalSegments, st.Format, st.Gzip
			break
		}
	}

	api, err := a.connect(a.stop, max(a.segments, 64))
	if err != nil {
		return err
	}
	info, err := describe(a.stop, api, table)
	if err != nil {
		return err
	}
	maxR, err := units("max-read-units", a.maxRead, info, false)
	if err != nil {
		return err
	}
	total := a.segments
	if total == 0 {
		total = defaultSegments(info)
	}

	outs, err := a.openExportOuts(table, target, toDir, total, format, gz, info, cols, prior)
	if err != nil {
		return err
	}
	files := uniqueOuts(outs)
	closeAll := func() error {
		var errs []error
		for _, o := range files {
			errs = append(errs, o.out.close())
		}
		return errors.Join(errs...)
	}

	dyn := dynaflow.New(api, func(o *dynaflow.Options) { o.MaxReadUnits = maxR })
	m := &meter{what: "export " + table, start: time.Now(), total: aws.ToInt64(info.desc.ItemCount), client: dyn}
	pr := a.startProgress(m)

	var run []int
	starts := map[int]dynaflow.Item{}
	for _, o := range files {
		r, st, err := remaining(o.state.Segments)
		if err != nil {
			closeAll()
			pr.end(false)
			return fmt.Errorf("checkpoint %s: %w", o.ck, err)
		}
		run = append(run, r...)
		maps.Copy(starts, st)
	}
	slices.Sort(run)
	in := a.scanInput(table)
	var scanErr error
	if len(run) > 0 {
		pages := dyn.ParallelScanPages(a.stop, in, total, func(o *dynaflow.ParallelScanOptions) {
			o.Segments, o.StartKeys = run, starts
		})
		scanErr = func() error {
			for page, err := range pages {
				if err != nil {
					return err
				}
				o := outs[page.Segment]
				for _, item := range page.Output.Items {
					if err := o.out.write(item); err != nil {
						return err
					}
				}
				m.read.Add(int64(len(page.Output.Items)))
				m.written.Add(int64(len(page.Output.Items)))
				s := &o.state.Segments[o.segAt[page.Segment]]
				s.Start, s.Done = nil, len(page.Output.LastEvaluatedKey) == 0
				if !s.Done {
					s.Start = appendDDBItem(nil, page.Output.LastEvaluatedKey)
				}
				m.bytes.Store(bytesOut(files))
				if o.ck != "" && o.out.ready() && (time.Since(o.lastCk) >= a.checkpointEvery || o.done()) {
					if err := o.save(); err != nil {
						return err
					}
				}
			}
			return nil
		}()
	}
	interrupted := a.stop.Err() != nil
	if interrupted || scanErr != nil {
		// Every page handed to the loop is in its file: save where each output is.
		var errs []error
		for _, o := range files {
			if o.ck != "" && o.out.ready() {
				errs = append(errs, o.save())
			}
		}
		errs = append(errs, closeAll())
		m.bytes.Store(bytesOut(files))
		pr.end(interrupted)
		if err := errors.Join(errs...); err != nil {
			return errors.Join(scanErr, err)
		}
		if target == "-" {
			if interrupted {
				return errInterrupted
			}
			return scanErr
		}
		if interrupted {
			return fmt.Errorf("%w: the checkpoints beside %s hold the place; run the same command with --resume to continue", errInterrupted, target)
		}
		return fmt.Errorf("%w; the checkpoints beside %s hold the place: --resume continues", scanErr, target)
	}
	if err := closeAll(); err != nil {
		pr.end(false)
		return err
	}
	m.bytes.Store(bytesOut(files))
	var notes []string
	var dropped int64
	for _, o := range files {
		dropped += o.out.dropped
		if o.ck != "" {
			if err := os.Remove(o.ck); err != nil && !errors.Is(err, os.ErrNotExist) {
				notes = append(notes, "could not remove a checkpoint: "+err.Error())
			}
		}
	}
	if dropped > 0 {
		notes = append(notes, fmt.Sprintf("%s items had attributes outside the csv columns, which csv leaves out (use --columns, or --format ddb)", count(dropped)))
	}
	pr.end(false, notes...)
	return nil
}

// done reports whether every segment of o is done.
func (o *exportOut) done() bool {
	for _, s := range o.state.Segments {
		if !s.Done {
			return false
		}
	}
	return true
}

// save makes the file whole and saves the checkpoint for it.
func (o *exportOut) save() error {
	n, err := o.out.sync(false)
	if err != nil {
		return err
	}
	o.state.Length = n
	if o.out.cols != nil {
		o.state.Columns = headerOf(o.out.cols)
	}
	o.lastCk = time.Now()
	return saveCheckpoint(o.ck, o.state)
}

// openExportOuts opens the outputs for every segment: one for all (a file or stdout) or one per
// segment (a folder), each resumed from its checkpoint in prior when there is one.
func (a *app) openExportOuts(table, target string, toDir bool, total int, format string, gz bool, info *tableInfo, cols []column, prior map[string]exportState) (map[int]*exportOut, error) {
	outs := map[int]*exportOut{}
	fresh := func(segs []int) exportState {
		st := exportState{Command: "export", Table: table, TotalSegments: total, Format: format, Gzip: gz}
		for _, s := range segs {
			st.Segments = append(st.Segments, segState{Segment: s})
		}
		return st
	}
	open := func(path, ck string, segs []int) (*exportOut, error) {
		st, resumed := prior[ck]
		if !resumed {
			st = fresh(segs)
		}
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if resumed {
			flags = os.O_WRONLY
		}
		f, err := os.OpenFile(path, flags, 0o644)
		if err != nil {
			return nil, err
		}
		if resumed {
			if err := f.Truncate(st.Length); err == nil {
				_, err = f.Seek(st.Length, io.SeekStart)
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("resume %s: %w", path, err)
			}
		}
		c := cols
		if resumed && st.Columns != nil {
			if c, err = parseColumns(st.Columns); err != nil {
				f.Close()
				return nil, fmt.Errorf("checkpoint %s: %w", ck, err)
			}
		}
		o := &exportOut{ck: ck, state: st, segAt: map[int]int{}, lastCk: time.Now()}
		o.out = newOutput(path, f, f, st.Length, format, gz, info.keyNames(), c, resumed && st.Columns != nil)
		for i, s := range st.Segments {
			o.segAt[s.Segment] = i
		}
		return o, nil
	}
	all := make([]int, total)
	for i := range all {
		all[i] = i
	}
	switch {
	case target == "-":
		o := &exportOut{state: fresh(all), segAt: map[int]int{}}
		o.out = newOutput("stdout", nil, a.stdout, 0, format, gz, info.keyNames(), cols, false)
		for i := range all {
			o.segAt[i] = i
			outs[i] = o
		}
	case toDir:
		if err := os.MkdirAll(target, 0o755); err != nil {
			return nil, err
		}
		for seg := range total {
			path := filepath.Join(target, segmentFile(seg, total, format, gz))
			o, err := open(path, path+".checkpoint", []int{seg})
			if err != nil {
				closeOuts(outs)
				return nil, err
			}
			outs[seg] = o
		}
	default:
		o, err := open(target, checkpointName(target, false, a.checkpoint), all)
		if err != nil {
			return nil, err
		}
		for _, s := range all {
			outs[s] = o
		}
	}
	return outs, nil
}

func closeOuts(outs map[int]*exportOut) {
	for _, o := range uniqueOuts(outs) {
		o.out.close()
	}
}

// uniqueOuts lists each output once, in segment order.
func uniqueOuts(outs map[int]*exportOut) []*exportOut {
	segs := make([]int, 0, len(outs))
	for s := range outs {
		segs = append(segs, s)
	}
	slices.Sort(segs)
	var list []*exportOut
	seen := map[*exportOut]bool{}
	for _, s := range segs {
		if o := outs[s]; !seen[o] {
			seen[o] = true
			list = append(list, o)
		}
	}
	return list
}

// bytesOut is what the files hold, buffers included.
func bytesOut(files []*exportOut) int64 {
	var n int64
	for _, o := range files {
		n += o.out.count.n + int64(o.out.bw.Buffered())
	}
	return n
}

// segmentFile names the file of one segment in a folder export.
func segmentFile(seg, total int, format string, gz bool) string {
	name := fmt.Sprintf("segment-%04d-of-%04d.%s", seg, total, format)
	if gz {
		name += ".gz"
	}
	return name
}

// checkpointName is the checkpoint of a file export, or the pattern of a folder's.
func checkpointName(target string, toDir bool, flag string) string {
	switch {
	case toDir:
		return filepath.Join(target, "segment-*.checkpoint")
	case flag != "":
		return flag
	}
	return target + ".checkpoint"
}

// findExportCheckpoints reads the checkpoints of an earlier export to target, by path.
func findExportCheckpoints(target string, toDir bool, flag string) (map[string]exportState, error) {
	paths := []string{checkpointName(target, toDir, flag)}
	if toDir {
		var err error
		if paths, err = filepath.Glob(paths[0]); err != nil {
			return nil, err
		}
	}
	found := map[string]exportState{}
	total := 0
	for _, p := range paths {
		var st exportState
		ok, err := loadCheckpoint(p, &st)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if st.Command != "export" || st.TotalSegments < 1 {
			return nil, fmt.Errorf("%s is not an export checkpoint", p)
		}
		if total != 0 && st.TotalSegments != total {
			return nil, fmt.Errorf("the checkpoints in %s are from exports with different --segments; remove them to start over", target)
		}
		total = st.TotalSegments
		found[p] = st
	}
	return found, nil
}

// remaining returns the segments of states still to scan, and where each starts.
func remaining(states []segState) (run []int, starts map[int]dynaflow.Item, err error) {
	starts = map[int]dynaflow.Item{}
	for _, s := range states {
		if s.Done {
			continue
		}
		run = append(run, s.Segment)
		if s.Start != nil {
			k, err := decodeKey(s.Start)
			if err != nil {
				return nil, nil, fmt.Errorf("segment %d: %w", s.Segment, err)
			}
			starts[s.Segment] = k
		}
	}
	return run, starts, nil
}

// scanInput is the Scan of table that export and copy run, with --page-size.
func (a *app) scanInput(table string) *dynamodb.ScanInput {
	in := &dynamodb.ScanInput{TableName: aws.String(table)}
	if a.pageSize > 0 {
		in.Limit = aws.Int32(a.pageSize)
	}
	return in
}

// decodeKey reads a LastEvaluatedKey saved in DynamoDB JSON.
func decodeKey(raw json.RawMessage) (dynaflow.Item, error) {
	var attrs map[string]*ddbValue
	if err := json.Unmarshal(raw, &attrs); err != nil {
		return nil, fmt.Errorf("start key: %w", err)
	}
	return ddbItem(attrs)
}

// defaultSegments is one segment per 2 GB of the table (DynamoDB's advice), at least 4 so that
// small tables still scan at some speed, and at most 64.
func defaultSegments(info *tableInfo) int {
	size := float64(aws.ToInt64(info.desc.TableSizeBytes))
	return int(min(64, max(4, math.Ceil(size/2e9))))
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
