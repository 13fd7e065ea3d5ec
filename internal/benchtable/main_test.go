package main

import (
	"flag"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTable runs every row of `make bench` once, each benchmark for one op (-test.benchtime 1x), and checks that the table has each
// row, once, with a ratio and a verdict where there is a target. It asserts no timing: a run this
// short (and under -race) measures nothing worth comparing.
func TestTable(t *testing.T) {
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	if err := bt.Value.Set("1x"); err != nil {
		t.Fatal(err)
	}
	defer bt.Value.Set(old)

	var out strings.Builder
	if err := run(&out, config{trials: 1, cpuTrials: 1, heapWrites: 20_000, splitWrites: 2_000, cliItems: 2_000, cliTrials: 1, capacityWrites: 4_000}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.HasPrefix(text, "dynaflow benchmarks: ") || !strings.Contains(text, "| # | measure | dynaflow | raw SDK | ratio | target |") {
		t.Fatalf("no header:\n%s", text)
	}
	rows := map[string]int{}
	targeted := regexp.MustCompile(`\| (met|MISSED) [≥≤] [^|]+ \|$|\| (met|MISSED) \| ≤ MaxBufferedBytes \+ 32 MiB \|$`)
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| # ") {
			continue
		}
		row := strings.TrimSpace(strings.Split(line, "|")[1])
		rows[row]++
		if strings.Count(line, "|") != 7 {
			t.Errorf("row %s has %d cells; want 6: %s", row, strings.Count(line, "|")-1, line)
		}
		if !strings.HasSuffix(line, "| — |") && !targeted.MatchString(line) {
			t.Errorf("row %s has no verdict against its target: %s", row, line)
		}
	}
	// Row 1: three pairs at 10 ms, three at 0 ms, the Batcher alone. Row 2: Query, Scan, Scan
	// alone. Row 3: ParallelScan with 1, 4 and 16 segments. Row 4: allocations at 10 ms and 0 ms
	// for three concurrencies. Row 5: the peak heap. Row 7: the command line's load and export,
	// rate and peak RSS. Row 16: the capacity rows.
	if diff := cmp.Diff(map[string]int{"1": 7, "2": 3, "3": 3, "4": 6, "5": 3, "6": 1, "7": 4, "16": 6}, rows); diff != "" {
		t.Errorf("rows of the table (-want +got):\n%s\n%s", diff, text)
	}
}

func TestMedianAndSpan(t *testing.T) {
	rs := []testing.BenchmarkResult{
		{Extra: map[string]float64{"ratio": 0.93}},
		{Extra: map[string]float64{"ratio": 0.88}},
		{Extra: map[string]float64{"ratio": 0.97}},
	}
	if got := medianOf(rs, "ratio"); got != 0.93 {
		t.Errorf("medianOf = %v; want 0.93", got)
	}
	if got := span(metric(rs, "ratio")); got != "0.880-0.970" {
		t.Errorf("span = %q; want 0.880-0.970", got)
	}
	if verdict(true) != "met" || verdict(false) != "MISSED" {
		t.Error("verdict does not say met and MISSED")
	}
}
