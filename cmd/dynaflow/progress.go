package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynaflow-go/dynaflow"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// meter counts what a run does; progress reports it.
type meter struct {
	what     string // "load orders"
	start    time.Time
	read     atomic.Int64 // items (or lines) read from the input or the table
	written  atomic.Int64 // items written, to a file (export); a table's come from the Batcher
	rejected func() int64
	bytes    atomic.Int64 // bytes of input read (load) or of output written (export)
	total    int64        // what a bar fills to: the input's bytes, or the table's approximate item count
	byBytes  bool         // total counts bytes (load), else items
	batcher  atomic.Pointer[dynaflow.Batcher]
	client   *dynaflow.Client
	estimate atomic.Int64 // dry run: estimated write units, in thousandths
}

// figures are one report: a line of --progress json, and the summary.
type figures struct {
	Command     string   `json:"command"`
	ElapsedS    float64  `json:"elapsed_s"`
	Read        int64    `json:"read"`
	Written     int64    `json:"written"`
	Replaced    int64    `json:"replaced"` // by a later item with the same key (load, copy)
	Rejected    int64    `json:"rejected"`
	Retried     int64    `json:"retried"`
	Throttled   int64    `json:"throttled"`
	WriteUnits  float64  `json:"write_units"`
	ReadUnits   float64  `json:"read_units"`
	Bytes       int64    `json:"bytes"`
	Total       int64    `json:"total,omitempty"`
	TotalIs     string   `json:"total_is,omitempty"` // "bytes", or "items (approximate)"
	ItemsPerS   float64  `json:"items_per_s"`
	MBPerS      float64  `json:"mb_per_s"`
	UnitsPerS   float64  `json:"units_per_s"`
	EstUnits    float64  `json:"estimated_write_units,omitempty"`
	Summary     bool     `json:"summary,omitempty"`
	Interrupted bool     `json:"interrupted,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

func (m *meter) figures() figures {
	f := figures{Command: m.what, ElapsedS: time.Since(m.start).Seconds(), Read: m.read.Load(), Written: m.written.Load(), Bytes: m.bytes.Load(), Total: m.total}
	if m.rejected != nil {
		f.Rejected = m.rejected()
	}
	if b := m.batcher.Load(); b != nil {
		s := b.Stats()
		f.Written, f.Replaced, f.Retried, f.Throttled, f.WriteUnits = s.Written, s.Coalesced, s.Retried, s.ThrottledWrites, s.WriteUnits
	}
	if m.client != nil {
		rs := m.client.ReadStats()
		f.ReadUnits = rs.ReadUnits
		f.Throttled += rs.Throttled
	}
	if m.total > 0 {
		f.TotalIs = "items (approximate)"
		if m.byBytes {
			f.TotalIs = "bytes"
		}
	}
	if e := m.estimate.Load(); e > 0 {
		f.EstUnits = float64(e) / 1000
	}
	if f.ElapsedS > 0 {
		f.ItemsPerS = float64(max(f.Written, f.Read)) / f.ElapsedS
		f.MBPerS = float64(f.Bytes) / 1e6 / f.ElapsedS
		f.UnitsPerS = (f.WriteUnits + f.ReadUnits) / f.ElapsedS
	}
	return f
}

// progress reports a meter on stderr while a run goes on: bars on a terminal, else (or with
// --progress json) a JSON object a second. end stops it and writes the summary.
type progress struct {
	m    *meter
	mode string
	w    io.Writer
	stop chan struct{}
	wg   sync.WaitGroup
	p    *mpb.Progress
	bar  *mpb.Bar
}

// startProgress starts reporting m as --progress asks, on stderr, and notes the mode chosen, in
// which the error that may end the run is reported too.
func (a *app) startProgress(m *meter) *progress {
	pr := startProgress(m, a.progress, a.stderr)
	a.progressMode = pr.mode
	return pr
}

func startProgress(m *meter, mode string, w io.Writer) *progress {
	if mode == "auto" {
		mode = "json"
		if isTerminal(w) {
			mode = "bar"
		}
	}
	pr := &progress{m: m, mode: mode, w: w, stop: make(chan struct{})}
	switch mode {
	case "json":
		pr.wg.Add(1)
		go pr.jsonLoop()
	case "bar":
		pr.startBar()
	}
	return pr
}

func (pr *progress) jsonLoop() {
	defer pr.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	enc := json.NewEncoder(pr.w)
	for {
		select {
		case <-t.C:
			_ = enc.Encode(pr.m.figures()) // progress is best effort; the summary reports errors
		case <-pr.stop:
			return
		}
	}
}

func (pr *progress) startBar() {
	pr.p = mpb.New(mpb.WithOutput(pr.w), mpb.WithWidth(100), mpb.WithRefreshRate(250*time.Millisecond))
	stats := decor.Any(func(decor.Statistics) string {
		f := pr.m.figures()
		s := fmt.Sprintf("%s items  %.0f items/s  %.1f MB/s  %.0f units/s", count(max(f.Written, f.Read)), f.ItemsPerS, f.MBPerS, f.UnitsPerS)
		if f.Throttled > 0 {
			s += fmt.Sprintf("  throttled %s", count(f.Throttled))
		}
		if f.Rejected > 0 {
			s += fmt.Sprintf("  rejected %s", count(f.Rejected))
		}
		return s
	})
	name := pr.m.what
	if pr.m.total > 0 && !pr.m.byBytes {
		name += " (of ~" + count(pr.m.total) + ", approximate)"
	}
	if pr.m.total > 0 {
		pr.bar = pr.p.AddBar(pr.m.total, mpb.PrependDecorators(decor.Name(name+" "), decor.Percentage()),
			mpb.AppendDecorators(stats, decor.Name("  ETA "), decor.AverageETA(decor.ET_STYLE_GO)))
	} else {
		pr.bar = pr.p.New(0, mpb.SpinnerStyle(), mpb.PrependDecorators(decor.Name(name+" ")), mpb.AppendDecorators(stats))
	}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				pr.bar.SetCurrent(pr.current())
			case <-pr.stop:
				return
			}
		}
	}()
}

func (pr *progress) current() int64 {
	if pr.m.byBytes {
		return pr.m.bytes.Load()
	}
	f := pr.m.figures()
	return max(f.Written, f.Read)
}

// end stops the reports and writes the summary: the last JSON object, or a line for people.
func (pr *progress) end(interrupted bool, notes ...string) figures {
	close(pr.stop)
	pr.wg.Wait()
	if pr.bar != nil {
		// Complete the bar at whatever it reached; a bar at 0 cannot complete, so it ends aborted.
		if n := pr.current(); n > 0 {
			pr.bar.SetCurrent(n)
			pr.bar.SetTotal(-1, true)
		} else {
			pr.bar.Abort(false)
		}
		pr.p.Wait()
	}
	f := pr.m.figures()
	f.Summary, f.Interrupted, f.Notes = true, interrupted, notes
	if pr.mode == "json" {
		_ = json.NewEncoder(pr.w).Encode(f)
		return f
	}
	s := fmt.Sprintf("dynaflow %s: read %s, written %s, replaced %s, rejected %s, retried %s, throttled %s, %.1f write units, %.1f read units, %s",
		f.Command, count(f.Read), count(f.Written), count(f.Replaced), count(f.Rejected), count(f.Retried), count(f.Throttled), f.WriteUnits, f.ReadUnits, time.Duration(f.ElapsedS*float64(time.Second)).Round(time.Millisecond))
	if f.EstUnits > 0 {
		s += fmt.Sprintf(", estimated write units %.0f", f.EstUnits)
	}
	if interrupted {
		s += " (interrupted)"
	}
	for _, n := range notes {
		s += "; " + n
	}
	fmt.Fprintln(pr.w, s)
	return f
}

// items is count(n) followed by one or many, as n is 1 or not.
func items(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return count(n) + " " + many
}

// count writes n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
