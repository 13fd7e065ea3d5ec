package dynaflow_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/internal/bench"
)

// The benchmarks run against an in-process sink (internal/benchsink), so that what they measure
// is the client. `make bench` runs the same bodies side by side and prints one table.

func BenchmarkWrites(b *testing.B) {
	for _, delay := range []time.Duration{0, 10 * time.Millisecond} {
		e := bench.NewEnv(delay, 1, 1)
		for _, k := range []int{1, 8, 16} {
			b.Run(fmt.Sprintf("delay=%v/batcher/inflight=%d", delay, k), func(b *testing.B) { bench.BatcherWrites(b, e, k, 4) })
			b.Run(fmt.Sprintf("delay=%v/raw-sdk/goroutines=%d", delay, k), func(b *testing.B) { bench.RawWrites(b, e, k) })
		}
		e.Close()
	}
}

// BenchmarkWritesSplit runs the Batcher and the raw SDK in turns, 25,000 writes at a time, each
// side against a sink of its own and under a pprof label of its own, so that a CPU profile of it
// splits by side: go test -run '^$' -bench WritesSplit -benchtime 1000000x -cpuprofile cpu.out,
// then go tool pprof -tags cpu.out, and -top -cum -tagfocus side=batcher.
func BenchmarkWritesSplit(b *testing.B) {
	for _, k := range []int{1, 8, 16} {
		b.Run(fmt.Sprintf("delay=0s/inflight=%d", k), func(b *testing.B) { bench.WritesSplit(b, 0, k, 4) })
	}
}

// BenchmarkBatcherOverhead measures what a Batcher costs per write on its own: the same Puts as
// BenchmarkWrites into an API that answers at once, with no SDK and no network.
func BenchmarkBatcherOverhead(b *testing.B) {
	for _, k := range []int{1, 8, 16} {
		b.Run(fmt.Sprintf("inflight=%d", k), func(b *testing.B) { bench.BatcherOverhead(b, k, 4) })
	}
}

// BenchmarkConnections compares the SDK's default HTTP transport (10 idle connections per
// host) with one sized for the calls in flight; conns/call shows connections opened per call.
func BenchmarkConnections(b *testing.B) {
	e := bench.NewEnv(10*time.Millisecond, 1, 1)
	defer e.Close()
	for _, k := range []int{8, 16, 32} {
		b.Run(fmt.Sprintf("sdk-default/inflight=%d", k), func(b *testing.B) { bench.BatcherWrites(b, e.WithDefaultHTTP(), k, 4) })
		b.Run(fmt.Sprintf("64-idle/inflight=%d", k), func(b *testing.B) { bench.BatcherWrites(b, e, k, 4) })
	}
}

// BenchmarkScanOverhead measures what dyn.Scan costs per item on its own: the same walk as
// BenchmarkRead's scan/iterator over an API that answers at once with decoded pages.
func BenchmarkScanOverhead(b *testing.B) { bench.ScanOverhead(b, 20, 100) }

func BenchmarkRead(b *testing.B) {
	e := bench.NewEnv(0, 20, 100)
	defer e.Close()
	b.Run("query/iterator", func(b *testing.B) { bench.QueryIter(b, e) })
	b.Run("query/paginator", func(b *testing.B) { bench.QueryPaginator(b, e) })
	b.Run("scan/iterator", func(b *testing.B) { bench.ScanIter(b, e) })
	b.Run("scan/paginator", func(b *testing.B) { bench.ScanPaginator(b, e) })
}

// BenchmarkReadsSplit runs the iterators and the SDK's paginators in turns of five full walks,
// each side against a sink of its own and under a pprof label of its own (side=iterator or
// side=paginator), as BenchmarkWritesSplit does for writes.
func BenchmarkReadsSplit(b *testing.B) {
	b.Run("query", func(b *testing.B) { bench.ReadsSplit(b, true, 20, 100) })
	b.Run("scan", func(b *testing.B) { bench.ReadsSplit(b, false, 20, 100) })
}

func BenchmarkParallelScan(b *testing.B) {
	e := bench.NewEnv(10*time.Millisecond, 64, 100)
	defer e.Close()
	b.Run("scan", func(b *testing.B) { bench.FullScan(b, e, 0) })
	for _, segs := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("segments=%d", segs), func(b *testing.B) { bench.FullScan(b, e, segs) })
	}
}

// BenchmarkPeakHeap sends b.N writes through a Batcher with the default limits while the server
// is stalled for 200ms, and reports the peak heap (`make bench` does it with 1,000,000 writes).
func BenchmarkPeakHeap(b *testing.B) {
	e := bench.NewEnv(0, 1, 1)
	defer e.Close()
	base, peak, err := bench.PeakHeap(e, b.N, 200*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(peak-min(base, peak))/(1<<20), "growth-MiB")
	b.ReportMetric(float64(dynaflow.DefaultMaxBufferedBytes+32<<20)/(1<<20), "limit-MiB")
}

// BenchmarkTwoTables writes to two tables through one Batcher at 10 ms a call, beside one table.
func BenchmarkTwoTables(b *testing.B) {
	e := bench.NewEnv(10*time.Millisecond, 1, 1)
	defer e.Close()
	b.Run("tables=1", func(b *testing.B) { bench.BatcherWrites(b, e, 8, 4) })
	b.Run("tables=2", func(b *testing.B) { bench.TwoTableWrites(b, e, 8, 4) })
}

// BenchmarkFailingPeakHeap sends b.N writes that all fail through a Batcher with the default
// limits, the failures reported by OnError or returned by Flush, and reports the peak heap.
func BenchmarkFailingPeakHeap(b *testing.B) {
	for _, onError := range []bool{true, false} {
		b.Run(fmt.Sprintf("onError=%v", onError), func(b *testing.B) {
			base, peak, err := bench.FailingPeakHeap(b.N, onError)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(peak-min(base, peak))/(1<<20), "growth-MiB")
		})
	}
}
