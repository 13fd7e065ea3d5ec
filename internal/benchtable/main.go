// Command benchtable runs dynaflow's benchmarks side by side with the raw SDK doing the same work
// and prints one Markdown table, with every ratio computed within the one run: `make bench`.
//
// The machine may be shared and noisy, so every comparison is repeated -trials times and the
// table shows medians, and each ratio is taken within a trial, over the same moments: where the
// rate is bound by waiting (writes at 10 ms), the two sides run back to back, taking turns at
// going first; where it is bound by CPU (writes at 0 ms, reads), they take turns many times a
// trial, each with a sink of its own. Nothing here asserts a time; the table is for people.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/internal/bench"
)

func main() {
	testing.Init()
	var c config
	flag.IntVar(&c.trials, "trials", 3, "runs of each benchmark; the median is kept")
	flag.IntVar(&c.cpuTrials, "cpu-trials", 3, "runs of each write comparison at 0 ms, whose single trials vary most; the median is kept")
	flag.IntVar(&c.heapWrites, "heap-writes", 1_000_000, "writes for the peak-heap row")
	flag.IntVar(&c.splitWrites, "split-writes", 16*bench.SplitChunk, "writes a side in each trial of a write comparison at 0 ms (sixteen turns a side by default)")
	flag.IntVar(&c.cliItems, "cli-items", 1_000_000, "items for the command line's load and export rows")
	flag.IntVar(&c.cliTrials, "cli-trials", 2, "runs of each command line row")
	flag.IntVar(&c.capacityWrites, "capacity-writes", 100_000, "writes in each capacity row")
	flag.BoolVar(&c.onlyCapacity, "only-capacity", false, "run only the capacity rows")
	flag.Parse()
	if err := run(os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// config is what a run measures: how many trials, and how many writes where that is fixed.
type config struct {
	trials, cpuTrials, heapWrites, splitWrites int
	cliItems, cliTrials                        int
	capacityWrites                             int
	onlyCapacity                               bool
}

// run runs the benchmarks as c says and prints the table to w. The benchmarks other than the
// 0 ms write comparisons and the peak heap run for -test.benchtime each (a second by default).
//
// The peak heap and the command line run first, before the benchmarks' item pools are on this
// process's heap. Each section runs alone: the capacity rows, run beside the 10 ms rows, slowed
// the sink's answers to them by half. Each section's time goes to stderr.
func run(w io.Writer, c config) error {
	t := &table{trials: c.trials}
	if c.onlyCapacity {
		fmt.Fprintln(w, "| # | measure | dynaflow | raw SDK | ratio | target |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		return capacityRows(w, c.capacityWrites)
	}
	began := time.Now()
	fmt.Fprintf(w, "dynaflow benchmarks: %s, %d cores (GOMAXPROCS %d), %s/%s, %s, one run started %s\n\n",
		cpuName(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), began.UTC().Format(time.RFC3339))
	var heap, cli, capacity, wait, cpu, allocs strings.Builder
	var heapTook time.Duration
	sections := []struct {
		name string
		run  func() error
	}{
		{"peak heap", func() (err error) { heapTook, err = heapRows(&heap, c.heapWrites); return err }},
		{"command line", func() error { return cliRows(&cli, c.cliItems, c.cliTrials) }},
		{"10 ms", func() error { return waitRows(&wait, &allocs, t) }},
		{"CPU-bound", func() error { return cpuRows(&cpu, &allocs, t, c) }},
		{"capacity", func() error { return capacityRows(&capacity, c.capacityWrites) }},
	}
	for _, s := range sections {
		start := time.Now()
		if err := s.run(); err != nil {
			return err
		}
		log.Printf("benchtable: %s rows took %v", s.name, time.Since(start).Round(time.Second))
	}
	fmt.Fprintln(w, "| # | measure | dynaflow | raw SDK | ratio | target |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, s := range []*strings.Builder{&wait, &cpu, &cli, &capacity, &allocs, &heap} {
		fmt.Fprint(w, s.String())
	}
	fmt.Fprintf(w, "\n(the run took %v; the peak-heap rows %v)\n", time.Since(began).Round(time.Second), heapTook.Round(time.Millisecond))
	return nil
}

// heapRows prints the peak-heap rows (5) and returns how long they took.
func heapRows(w io.Writer, writes int) (time.Duration, error) {
	start := time.Now()
	e := bench.NewEnv(0, 1, 1)
	base, peak, err := bench.PeakHeap(e, writes, 500*time.Millisecond)
	e.Close()
	if err != nil {
		return 0, fmt.Errorf("peak heap: %w", err)
	}
	limit := float64(dynaflow.DefaultMaxBufferedBytes+32<<20) / (1 << 20)
	fmt.Fprintf(w, "| 5 | peak heap, %d writes, server stalled 0.5 s, default limits | %.1f MiB (%.1f MiB before) | limit %.0f MiB | %s | ≤ MaxBufferedBytes + 32 MiB |\n",
		writes, mib(peak), mib(base), limit, verdict(mib(peak) <= limit))
	// The same, with every write failing: the failures hold the room until they are reported.
	for _, onError := range []bool{true, false} {
		base, peak, err := bench.FailingPeakHeap(writes, onError)
		if err != nil {
			return 0, fmt.Errorf("peak heap, all failing: %w", err)
		}
		how := "reported by OnError"
		if !onError {
			how = "returned by Flush, called in a loop"
		}
		fmt.Fprintf(w, "| 5 | peak heap, %d writes that all fail, %s, default limits | %.1f MiB (%.1f MiB before) | limit %.0f MiB | %s | ≤ MaxBufferedBytes + 32 MiB |\n",
			writes, how, mib(peak), mib(base), limit, verdict(mib(peak) <= limit))
	}
	return time.Since(start), nil
}

// waitRows prints the rows whose rates are bound by waiting on a 10 ms sink: writes (1), two
// tables (6), ParallelScan (3); and the allocation rows (4) at 10 ms, from the same runs. The
// raw side with one goroutine is the one-at-a-time writer.
func waitRows(w, allocs io.Writer, t *table) error {
	delay := 10 * time.Millisecond
	e := bench.NewEnv(delay, 1, 1)
	defer e.Close()
	var one float64
	for _, k := range []int{1, 8, 16} {
		bat, raw, rs := t.pair(
			func(b *testing.B) { bench.BatcherWrites(b, e, k, 4) },
			func(b *testing.B) { bench.RawWrites(b, e, k) })
		if k == 1 {
			one = raw.rate("writes/s")
		}
		r := rs[(len(rs)-1)/2]
		fmt.Fprintf(w, "| 1 | writes/s, %v delay, MaxInFlight %d vs %d goroutines | %.0f (%.1f CPU-µs/write) | %.0f (%.1f CPU-µs/write) | %.3f (trials %s; %.1f× one-at-a-time: %.0f) | %s ≥ 0.95 |\n",
			delay, k, k, bat.rate("writes/s"), bat.rate("cpu-µs/write"), raw.rate("writes/s"), raw.rate("cpu-µs/write"),
			r, span(rs), bat.rate("writes/s")/one, one, verdict(r >= 0.95))
		allocRow(allocs, delay, k, bat, raw)
	}
	// Two tables in one Batcher: the writes share the calls, so the rate is one table's.
	two, single, rs := t.pair(
		func(b *testing.B) { bench.TwoTableWrites(b, e, 8, 4) },
		func(b *testing.B) { bench.BatcherWrites(b, e, 8, 4) })
	r := rs[(len(rs)-1)/2]
	fmt.Fprintf(w, "| 6 | writes/s, %v delay, MaxInFlight 8: two tables in one Batcher vs one table | %.0f | %.0f (one table) | %.3f (trials %s) | %s ≥ 0.95 |\n",
		delay, two.rate("writes/s"), single.rate("writes/s"), r, span(rs), verdict(r >= 0.95))

	es := bench.NewEnv(delay, 64, 100)
	defer es.Close()
	scan := t.run(func(b *testing.B) { bench.FullScan(b, es, 0) })
	for _, segs := range []int{1, 4, 16} {
		tt, target := &table{trials: 1}, "—" // the rows without a target take one run
		if segs == 16 {
			tt = t
		}
		ps := tt.run(func(b *testing.B) { bench.FullScan(b, es, segs) })
		r := ps.rate("items/s") / scan.rate("items/s")
		if segs == 16 {
			target = verdict(r >= 10) + " ≥ 10"
		}
		fmt.Fprintf(w, "| 3 | ParallelScan(%d) vs Scan items/s, 10 ms delay, 64 pages | %.0f | %.0f (dyn.Scan) | %.1f | %s |\n", segs, ps.rate("items/s"), scan.rate("items/s"), r, target)
	}
	return nil
}

// allocRow prints an allocation row (4): the Batcher's allocations per written item beyond the
// raw SDK's.
func allocRow(w io.Writer, delay time.Duration, k int, bat, raw result) {
	fmt.Fprintf(w, "| 4 | allocs (bytes) per written item, %v delay, %d in flight | %d (%d B) | %d (%d B) | +%d (%+d B) | %s ≤ +2 allocs |\n",
		delay, k, bat.AllocsPerOp(), bat.AllocedBytesPerOp(), raw.AllocsPerOp(), raw.AllocedBytesPerOp(),
		bat.AllocsPerOp()-raw.AllocsPerOp(), bat.AllocedBytesPerOp()-raw.AllocedBytesPerOp(), verdict(bat.AllocsPerOp()-raw.AllocsPerOp() <= 2))
}

// cpuRows prints the rows bound by CPU (writes at 0 ms, reads, the Batcher and Scan on their
// own) to w, and the allocation rows (4) to allocs.
func cpuRows(w, allocs io.Writer, t *table, c config) error {
	// At 0 ms both cores are busy and the rate is the inverse of the CPU spent per write, which
	// on this shared machine moves by up to 15% from one second to the next: more than the
	// difference measured. So the two sides take turns every SplitChunk writes, SplitWrites each
	// a trial, and the ratio of each trial is taken over the same moments. Even so one trial's
	// ratio lands anywhere within about ±0.04 of the median, so these rows take -cpu-trials
	// trials. The raw side with one goroutine is the one-at-a-time writer.
	var oneAt0, rawCPU float64 // the raw SDK's rate with 1 goroutine, and CPU per write with 8
	for _, k := range []int{1, 8, 16} {
		rs := (&table{trials: c.cpuTrials}).runsOf(c.splitWrites, func(b *testing.B) { bench.WritesSplit(b, 0, k, 4) })
		r := medianOf(rs, "ratio")
		trials := span(metric(rs, "ratio"))
		if k == 1 {
			oneAt0 = medianOf(rs, "raw-writes/s")
		}
		if k == 8 {
			rawCPU = medianOf(rs, "raw-cpu-µs/write")
		}
		fmt.Fprintf(w, "| 1 | writes/s, 0s delay, MaxInFlight %d vs %d goroutines (taking turns every %d writes, each with a sink of its own) | %.0f (%.1f CPU-µs/write) | %.0f (%.1f CPU-µs/write) | %.3f (trials %s; %.1f× one-at-a-time: %.0f) | %s ≥ 0.85 |\n",
			k, k, bench.SplitChunk, medianOf(rs, "batcher-writes/s"), medianOf(rs, "batcher-cpu-µs/write"),
			medianOf(rs, "raw-writes/s"), medianOf(rs, "raw-cpu-µs/write"), r, trials, medianOf(rs, "batcher-writes/s")/oneAt0, oneAt0, verdict(r >= 0.85))
	}
	own := t.run(func(b *testing.B) { bench.BatcherOverhead(b, 8, 4) })
	fmt.Fprintf(w, "| 1 | the Batcher's own CPU per write, MaxInFlight 8, on an API that answers at once (no SDK, no network) | %.2f CPU-µs/write | %.1f CPU-µs/write (SDK and sink, 0s delay, 8 goroutines) | %.0f%% | — |\n",
		own.rate("cpu-µs/write"), rawCPU, 100*own.rate("cpu-µs/write")/rawCPU)

	// A read waits for each page before it asks for the next, so its rate rides on this machine's
	// scheduling delays, which vary more than CPU time does: back-to-back trials of a second each
	// differ by more than the 5% measured, so the two sides take turns every five walks.
	var pagCPU float64 // the Scan paginator's CPU per item
	for _, op := range []struct {
		name  string
		query bool
	}{{"Query", true}, {"Scan", false}} {
		rs := t.runs(func(b *testing.B) { bench.ReadsSplit(b, op.query, 20, 100) })
		r := medianOf(rs, "ratio")
		fmt.Fprintf(w, "| 2 | %s items/s, 0 ms delay: iterator vs SDK paginator, the two taking turns every 5 walks of 2000 items, each with a sink of its own | %.0f (%.2f CPU-µs/item) | %.0f (%.2f CPU-µs/item) | %.3f (trials %s) | %s ≥ 0.95 |\n",
			op.name, medianOf(rs, "iterator-items/s"), medianOf(rs, "iterator-cpu-µs/item"),
			medianOf(rs, "paginator-items/s"), medianOf(rs, "paginator-cpu-µs/item"), r, span(metric(rs, "ratio")), verdict(r >= 0.95))
		if !op.query {
			pagCPU = medianOf(rs, "paginator-cpu-µs/item")
		}
	}
	scanOwn := t.run(func(b *testing.B) { bench.ScanOverhead(b, 20, 100) })
	fmt.Fprintf(w, "| 2 | dyn.Scan's own CPU per item, on an API that answers at once with decoded pages (no SDK, no network) | %.1f ns/item | %.2f CPU-µs/item (SDK and sink, Scan paginator) | %.2f%% | — |\n",
		1000*scanOwn.rate("cpu-µs/item"), pagCPU, 100*scanOwn.rate("cpu-µs/item")/pagCPU)

	// Allocations per write do not depend on the machine's moment: one back-to-back pair each.
	e := bench.NewEnv(0, 1, 1)
	defer e.Close()
	for _, k := range []int{1, 8, 16} {
		bat, raw, _ := (&table{trials: 1}).pair(
			func(b *testing.B) { bench.BatcherWrites(b, e, k, 4) },
			func(b *testing.B) { bench.RawWrites(b, e, k) })
		allocRow(allocs, 0, k, bat, raw)
	}
	return nil
}

// table runs benchmarks.
type table struct{ trials int }

// result is one benchmark's median result.
type result struct{ testing.BenchmarkResult }

func (r result) rate(unit string) float64 { return r.Extra[unit] }

// run runs f trials times and returns the run with the median rate.
func (t *table) run(f func(*testing.B)) result { return median(t.runs(f)) }

// runs runs f trials times and returns every run.
func (t *table) runs(f func(*testing.B)) []testing.BenchmarkResult {
	var rs []testing.BenchmarkResult
	for range t.trials {
		rs = append(rs, testing.Benchmark(f))
	}
	return rs
}

// runsOf runs f trials times with b.N set to n, not grown to a second, and returns every run.
func (t *table) runsOf(n int, f func(*testing.B)) []testing.BenchmarkResult {
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	if err := bt.Value.Set(fmt.Sprintf("%dx", n)); err != nil {
		panic(err)
	}
	defer bt.Value.Set(old)
	return t.runs(f)
}

// medianOf returns the median over rs of the metric unit, each taken on its own; of an even
// count, the lower of the two in the middle.
func medianOf(rs []testing.BenchmarkResult, unit string) float64 {
	vs := metric(rs, unit)
	return vs[(len(vs)-1)/2] // of an even count, the lower
}

// metric returns the metric unit of every run in rs, sorted.
func metric(rs []testing.BenchmarkResult, unit string) []float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = r.Extra[unit]
	}
	slices.Sort(vs)
	return vs
}

// span shows the range of sorted values, the spread behind a median.
func span(vs []float64) string { return fmt.Sprintf("%.3f-%.3f", vs[0], vs[len(vs)-1]) }

// pair runs a and b back to back, trials times, and returns each one's median run and the
// trials' ratios of a's rate to b's, sorted: a ratio taken within one trial cancels the
// machine's slower and faster moments, which a ratio of medians would not. The two take turns at
// going first, so that neither always inherits the other's garbage.
func (t *table) pair(a, b func(*testing.B)) (result, result, []float64) {
	var ra, rb []testing.BenchmarkResult
	var ratios []float64
	for i := range t.trials {
		var x, y testing.BenchmarkResult
		if i%2 == 0 {
			x, y = testing.Benchmark(a), testing.Benchmark(b)
		} else {
			y, x = testing.Benchmark(b), testing.Benchmark(a)
		}
		ra, rb = append(ra, x), append(rb, y)
		ratios = append(ratios, float64(y.NsPerOp())/float64(x.NsPerOp()))
	}
	slices.Sort(ratios)
	return median(ra), median(rb), ratios
}

// median returns the run with the median time per op.
func median(rs []testing.BenchmarkResult) result {
	slices.SortFunc(rs, func(a, b testing.BenchmarkResult) int { return int(a.NsPerOp() - b.NsPerOp()) })
	return result{rs[len(rs)/2]}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// cpuName returns the processor's model name, from /proc/cpuinfo where there is one.
func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimLeft(name, "\t :"))
		}
	}
	return runtime.GOARCH
}
