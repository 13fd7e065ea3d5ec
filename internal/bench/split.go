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

// side is one side of a split run: its name, which is its goroutines' pprof label side=name and
// the prefix of its metrics, the work of one turn, and what its turns have done and taken.
type side struct {
	name string
	// step does one turn's work, given the ops the side has done so far, and returns how many
	// ops it did. Its calls use context.Background, not pprof.Do's labelled context (the labels
	// stay with the goroutine): the SDK looks values up in its context many times a call, and
	// neither side's chain should be longer than the other's.
	step      func(done int) (int, error)
	ops       int
	wall, cpu time.Duration
}

// do runs fn with s's label on the goroutine; goroutines fn starts inherit it.
func (s *side) do(fn func()) {
	pprof.Do(context.Background(), pprof.Labels("side", s.name), func(context.Context) { fn() })
}

// turn runs one step and adds its ops, wall-clock time and CPU time (the process's) to s.
func (s *side) turn(b *testing.B) {
	c, t := processCPU(), time.Now()
	var n int
	var err error
	s.do(func() { n, err = s.step(s.ops) })
	if err != nil {
		b.Fatal(err)
	}
	s.ops += n
	s.wall += time.Since(t)
	s.cpu += processCPU() - c
}

func (s *side) rate() float64 { return float64(s.ops) / s.wall.Seconds() }

// takeTurns runs x's and y's turns in pairs, the two taking turns at going first, while more
// reports true, and then reports each side's rate and CPU per op (unit names one op) and the
// ratio of x's rate to y's.
func takeTurns(b *testing.B, x, y *side, more func() bool, unit string) {
	b.ResetTimer()
	for i := 0; more(); i++ {
		if i%2 == 0 {
			x.turn(b)
			y.turn(b)
		} else {
			y.turn(b)
			x.turn(b)
		}
	}
	b.StopTimer()
	for _, s := range []*side{x, y} {
		b.ReportMetric(s.rate(), s.name+"-"+unit+"s/s")
		b.ReportMetric(float64(s.cpu)/float64(time.Microsecond)/float64(s.ops), s.name+"-cpu-µs/"+unit)
	}
	b.ReportMetric(x.rate()/y.rate(), "ratio")
}

// WritesSplit measures the Batcher and the raw SDK in turns on the same machine moments: b.N
// writes each, in chunks of SplitChunk, the two sides taking turns at going first, each against
// a sink of its own answering after delay. The Batcher has maxInFlight calls at once and
// producers goroutines calling Put; the raw side has maxInFlight goroutines. It reports each
// side's writes/s and CPU per write (the process's, during that side's turns: the sink's work
// is in it, and the collection of garbage either side left), the ratio of the rates, and the
// Batcher's writes per call (25 when it sent only full batches, as the raw side does).
//
// Every goroutine of a side carries the pprof label side=batcher or side=raw: the benchmark's,
// the Batcher's, the HTTP transport's and the sink's. A CPU profile of the run therefore splits
// by side (go tool pprof -tags cpu.out, and -tagfocus side=batcher); what no label covers is
// the runtime's own work, garbage collection mostly.
func WritesSplit(b *testing.B, delay time.Duration, maxInFlight, producers int) {
	ctx := context.Background()
	items, _ := Pool()
	chunk := func(done int) int { return min(SplitChunk, b.N-done) }

	var w *dynaflow.Batcher
	bat := &side{name: "batcher", step: func(done int) (int, error) {
		n := chunk(done)
		if err := spreadBlocks(n, producers, putBlock, func(i int) error { return w.Put(ctx, items[(done+i)%len(items)]) }); err != nil {
			return 0, err
		}
		return n, w.Flush(ctx)
	}}
	var eb *Env
	var err error
	bat.do(func() {
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

	var er *Env
	raw := &side{name: "raw", step: func(done int) (int, error) {
		n := chunk(done)
		return n, rawWrite(ctx, er.API, done, n, maxInFlight)
	}}
	raw.do(func() { er = NewEnv(delay, 1, 1) })
	defer er.Close()

	takeTurns(b, bat, raw, func() bool { return bat.ops < b.N }, "write")
	b.ReportMetric(float64(bat.ops)/float64(max(1, w.Stats().Requests)), "batcher-writes/call")
}
