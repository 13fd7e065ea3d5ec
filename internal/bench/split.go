package bench

import (
	"context"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/dynaflow-go/dynaflow"
)

// SplitChunk is how many writes WritesSplit gives each side at a turn: about a tenth of a second
// at 0 ms on a 2-core machine, short next to the machine's slower and faster spells.
const SplitChunk = 25_000

// WritesSplit measures the Batcher and the raw SDK in turns on the same machine moments: b.N
// writes each, in chunks of SplitChunk, the two sides taking turns at going first, each against
// a sink of its own answering after delay. The Batcher has maxInFlight calls at once and
// producers goroutines calling Put; the raw side has maxInFlight goroutines. It reports each
// side's writes/s and CPU per write (the process's, during that side's turns: the sink's work
// is in it, and the collection of garbage either side left) and the ratio of the rates.
//
// Every goroutine of a side carries the pprof label side=batcher or side=raw: the benchmark's,
// the Batcher's, the HTTP transport's and the sink's. A CPU profile of the run therefore splits
// by side (go tool pprof -tags cpu.out, and -tagfocus side=batcher); what no label covers is
// the runtime's own work, garbage collection mostly.
func WritesSplit(b *testing.B, delay time.Duration, maxInFlight, producers int) {
	ctx := context.Background()
	batcherSide := pprof.Labels("side", "batcher")
	rawSide := pprof.Labels("side", "raw")
	var eb, er *Env
	var w *dynaflow.Batcher
	var err error
	pprof.Do(ctx, batcherSide, func(ctx context.Context) {
		eb = NewEnv(delay, 1, 1)
		w, err = dynaflow.New(eb.API).NewBatcher(ctx, Table, func(o *dynaflow.BatcherOptions) {
			o.KeyAttributes = []string{"pk"}
			o.MaxInFlight = maxInFlight
		})
	})
	defer eb.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(ctx)
	pprof.Do(ctx, rawSide, func(context.Context) { er = NewEnv(delay, 1, 1) })
	defer er.Close()
	items, _ := Pool()

	puts := func(first, n int) (err error) {
		// The calls inside use context.Background, not the labelled context pprof.Do passes
		// (the labels stay with the goroutine): the SDK looks values up in its context many
		// times a call, and each side's chain should be as long as the other's.
		pprof.Do(ctx, batcherSide, func(context.Context) {
			err = spreadBlocks(n, producers, putBlock, func(i int) error { return w.Put(ctx, items[(first+i)%len(items)]) })
			if err == nil {
				err = w.Flush(ctx)
			}
		})
		return err
	}
	raw := func(first, n int) (err error) {
		pprof.Do(ctx, rawSide, func(context.Context) { err = rawWrite(ctx, er.API, first, n, maxInFlight) })
		return err
	}
	// measure runs fn and adds its wall-clock and CPU time to wall and cpu.
	measure := func(fn func(first, n int) error, first, n int, wall, cpu *time.Duration) {
		c, t := processCPU(), time.Now()
		if err := fn(first, n); err != nil {
			b.Fatal(err)
		}
		*wall += time.Since(t)
		*cpu += processCPU() - c
	}

	var bWall, bCPU, rWall, rCPU time.Duration
	b.ResetTimer()
	for turn, first := 0, 0; first < b.N; turn, first = turn+1, first+SplitChunk {
		n := min(SplitChunk, b.N-first)
		if turn%2 == 0 {
			measure(puts, first, n, &bWall, &bCPU)
			measure(raw, first, n, &rWall, &rCPU)
		} else {
			measure(raw, first, n, &rWall, &rCPU)
			measure(puts, first, n, &bWall, &bCPU)
		}
	}
	b.StopTimer()
	perWrite := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(b.N) }
	b.ReportMetric(float64(b.N)/bWall.Seconds(), "batcher-writes/s")
	b.ReportMetric(float64(b.N)/rWall.Seconds(), "raw-writes/s")
	b.ReportMetric(float64(rWall)/float64(bWall), "ratio")
	b.ReportMetric(perWrite(bCPU), "batcher-cpu-µs/write")
	b.ReportMetric(perWrite(rCPU), "raw-cpu-µs/write")
}
