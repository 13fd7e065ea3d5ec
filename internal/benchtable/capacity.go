package main

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/dynaflow-go/dynaflow/internal/bench"
)

// capacityRows runs the capacity scenarios, all at once (each has a sink and a capacity proxy of
// its own, and they wait on the 10 ms sink far more than they use the cores), and prints their
// rows. Every figure is the proxy's own accounting.
func capacityRows(w io.Writer, writes int) error {
	const capacity = 2000.0
	// The capacity halves two fifths of the way through a run of writes (20 s for 100,000).
	halveAt := max(time.Second, time.Duration(float64(writes)/capacity*0.4*float64(time.Second)))
	halveWrites := int(capacity*halveAt.Seconds() + capacity/2*halveAt.Seconds()) // 20 s at each
	runs := []struct {
		sender string
		writes int
		halve  time.Duration
	}{
		{bench.Adaptive, writes, 0},
		{bench.Adaptive, halveWrites, halveAt},
		{bench.Capped, writes, 0},
		{bench.Fixed16, writes, 0},
		{bench.SDK, writes, 0},
	}
	results := make([]bench.CapacityResult, len(runs))
	errs := make([]error, len(runs)+1)
	var reads []float64
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = bench.CapacityWrites(r.writes, capacity, r.sender, r.halve)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		reads, errs[len(runs)] = bench.CappedScan(1000, halveAt)
	}()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("capacity rows: %w", err)
		}
	}
	goodput := func(i int) float64 { return float64(runs[i].writes) / results[i].Took.Seconds() / capacity }
	throttled := func(i int) float64 { return float64(results[i].Throttled) / float64(max(1, results[i].Calls)) }
	where := fmt.Sprintf("capacity proxy at %.0f WCU/s (a second's burst) before the sink at 10 ms, 1 KB items", capacity)

	g := goodput(0)
	fmt.Fprintf(w, "| 16 | adaptive (no cap, capacity unknown), %d writes, %s: goodput ÷ capacity | %.3f (%v) | — | — | %s ≥ 0.90 |\n",
		writes, where, g, results[0].Took.Round(time.Millisecond), verdict(g >= 0.9))
	th := throttled(0)
	fmt.Fprintf(w, "| 16 | adaptive: calls with writes handed back ÷ all calls | %.1f%% (%d of %d) | — | — | %s ≤ 10%% |\n",
		100*th, results[0].Throttled, results[0].Calls, verdict(th <= 0.1))

	// Recovery: from the change to the end of the first 1 s window wholly after it that admitted
	// at least 90% of the new capacity; and the lowest window in the 10 s after that, for context.
	rec := results[1].Windows
	from := int(halveAt/(100*time.Millisecond)) + 1 // window k covers (k/10 s, k/10 s + 1 s]
	back, low := time.Duration(-1), capacity
	for k := from; k < min(len(rec), from+100); k++ {
		if back < 0 && rec[k] >= 0.9*capacity/2 {
			back = time.Duration(k-from+1)*100*time.Millisecond + time.Second
		}
		if back >= 0 {
			low = min(low, rec[k])
		}
	}
	fmt.Fprintf(w, "| 16 | adaptive, capacity halves to %.0f after %v: time until a 1 s window is back within 10%% of it (lowest window in the 10 s after: %.3f of it) | %v | — | — | %s ≤ 5 s |\n",
		capacity/2, halveAt, low/(capacity/2), back, verdict(back >= 0 && back <= 5*time.Second))

	cap90 := 0.9 * capacity
	worst := 0.0
	if ws := results[2].Windows; len(ws) > 10 {
		worst = slices.Max(ws[10:]) // past the first second
	}
	fmt.Fprintf(w, "| 16 | MaxWriteUnits %.0f (90%% of capacity): worst 1 s window ÷ cap; calls with writes handed back | %.3f; %d of %d | — | — | %s ≤ 1.05; ≈ 0 |\n",
		cap90, worst/cap90, results[2].Throttled, results[2].Calls, verdict(worst/cap90 <= 1.05 && throttled(2) <= 0.01))
	fmt.Fprintf(w, "| 16 | beside them: fixed MaxInFlight 16 without adaptation | goodput %.3f, %.1f%% of %d calls throttled | raw SDK, 16 goroutines, adaptive retry mode: goodput %.3f, %.1f%% of %d calls throttled | — | — |\n",
		goodput(3), 100*throttled(3), results[3].Calls, goodput(4), 100*throttled(4), results[4].Calls)

	worstRead := 0.0
	if len(reads) > 2 {
		worstRead = slices.Max(reads[1 : len(reads)-1]) // whole seconds past the first
	}
	fmt.Fprintf(w, "| 16 | reads: ParallelScan(16) with MaxReadUnits 1000, %v: worst 1 s window ÷ cap | %.3f | — | — | %s ≤ 1.05 |\n",
		halveAt, worstRead/1000, verdict(worstRead/1000 <= 1.05))
	return nil
}
