package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow/internal/bench"
)

// The command line's rows (7): `dynaflow load` and `dynaflow export` run as the built binary
// against the sink at 10 ms, each beside the library doing the same calls in process (the
// Batcher, ParallelScan) and a plain SDK loop doing the job one call at a time. The binary's
// peak RSS comes from the kernel. The sink runs in this process, so these rows run before the
// others have put their item pools on this heap: a larger heap here would slow the sink's answers
// to the binary and not those to the in-process side.
func cliRows(w io.Writer, items, trials int) error {
	dir, err := os.MkdirTemp("", "dynaflow-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "dynaflow")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dynaflow-go/dynaflow/cmd/dynaflow").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	file := filepath.Join(dir, "items.ddb")
	if err := writeEvents(file, items); err != nil {
		return err
	}
	const inFlight = 16
	delay := 10 * time.Millisecond

	// export: 16 segments from the sink to a file, against ParallelScan(16) reading the same.
	pages := max(16, items/100)
	e := bench.NewEnv(delay, pages, 100)
	// ParallelScan's rate over the same sink, on a tenth of the pages (at most 1,000): its rate
	// is the same once its 16 segments are under way, and a whole walk would take as long again.
	eps := bench.NewEnv(delay, max(16, min(pages, 1000)), 100)
	defer eps.Close()
	var ratios []float64
	var expRate, psRate, expRSS, expCPU float64
	out := filepath.Join(dir, "export.ddb")
	for range trials {
		runtime.GC()
		ps := testing.Benchmark(func(b *testing.B) { bench.FullScan(b, eps, 16) })
		took, rss, cpu, err := runCLI(bin, "export", "bench", "-o", out, "--segments", "16", "--endpoint", e.Sink.URL)
		if err != nil {
			e.Close()
			return fmt.Errorf("dynaflow export: %w", err)
		}
		rate := float64(pages*100) / took.Seconds()
		ratios = append(ratios, rate/ps.Extra["items/s"])
		expCPU = cpu.Seconds() * 1e6 / float64(pages*100)
		expRate, psRate, expRSS = max(expRate, rate), max(psRate, ps.Extra["items/s"]), max(expRSS, rss)
		os.Remove(out)
	}
	plainScanN := min(pages*100, 20_000)
	plainScan, err := plainExport(e.API, filepath.Join(dir, "plain.ddb"), plainScanN)
	e.Close()
	if err != nil {
		return fmt.Errorf("plain export: %w", err)
	}
	slices.Sort(ratios)
	r := ratios[(len(ratios)-1)/2] // of an even count, the lower
	fmt.Fprintf(w, "| 7 | `dynaflow export` of %d items to a ddb file, %v delay, --segments 16, vs ParallelScan(16) (best of %d) | %.0f items/s (%.1f CPU-µs/item) | %.0f items/s (ParallelScan); %.0f (plain SDK Scan paginator writing lines, %d items) | %.3f (trials %s) | %s ≥ 0.90 |\n",
		pages*100, delay, trials, expRate, expCPU, psRate, plainScan, plainScanN, r, span(ratios), verdict(r >= 0.90))
	fmt.Fprintf(w, "| 7 | `dynaflow export` peak RSS, %d items | %.1f MiB | — | — | %s ≤ 100 MiB |\n", pages*100, expRSS, verdict(expRSS <= 100))
	ratios = ratios[:0]
	// load: the file into the sink, against the Batcher with as many calls in flight.
	e = bench.NewEnv(delay, 1, 1)
	var loadRate, batRate, loadRSS, loadCPU, batCPU float64
	for range trials {
		runtime.GC()
		bat := testing.Benchmark(func(b *testing.B) { bench.BatcherWrites(b, e, inFlight, 4) })
		took, rss, cpu, err := runCLI(bin, "load", "bench", file, "--in-flight", fmt.Sprint(inFlight), "--endpoint", e.Sink.URL)
		if err != nil {
			e.Close()
			return fmt.Errorf("dynaflow load: %w", err)
		}
		rate := float64(items) / took.Seconds()
		ratios = append(ratios, rate/bat.Extra["writes/s"])
		loadCPU = cpu.Seconds() * 1e6 / float64(items)
		batCPU = bat.Extra["cpu-µs/write"]
		loadRate, batRate, loadRSS = max(loadRate, rate), max(batRate, bat.Extra["writes/s"]), max(loadRSS, rss)
	}
	plainN := min(items, 10_000)
	plain, err := plainLoad(e.API, file, plainN)
	e.Close()
	if err != nil {
		return fmt.Errorf("plain load: %w", err)
	}
	slices.Sort(ratios)
	r = ratios[(len(ratios)-1)/2]
	fmt.Fprintf(w, "| 7 | `dynaflow load` of %d items from a ddb file, %v delay, --in-flight %d, vs the Batcher at MaxInFlight %d (best of %d) | %.0f items/s (%.1f CPU-µs/item) | %.0f writes/s (Batcher, %.1f CPU-µs/write); %.0f (plain SDK loop, one BatchWriteItem at a time, %d items) | %.3f (trials %s) | %s ≥ 0.90 |\n",
		items, delay, inFlight, inFlight, trials, loadRate, loadCPU, batRate, batCPU, plain, plainN, r, span(ratios), verdict(r >= 0.90))
	fmt.Fprintf(w, "| 7 | `dynaflow load` peak RSS, %d items | %.1f MiB | — | — | %s ≤ 100 MiB |\n", items, loadRSS, verdict(loadRSS <= 100))

	return nil
}

// runCLI runs the binary and returns how long it took, its peak RSS in MiB and the CPU it used.
// The peak is the kernel's high-water mark of the process's resident memory (VmHWM in
// /proc/PID/status), read every 10 ms while it runs: getrusage's ru_maxrss would not do, as a
// child's starts at its parent's, and this parent is larger than the child.
func runCLI(bin string, args ...string) (took time.Duration, rss float64, cpu time.Duration, err error) {
	cmd := exec.Command(bin, append(args, "--progress", "none")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for {
		select {
		case err := <-done:
			took = time.Since(start)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("%w: %s", err, stderr.String())
			}
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			return took, rss, cpu, nil
		case <-tick.C:
			rss = max(rss, highWater(status))
		}
	}
}

// highWater reads VmHWM, in MiB, from a /proc/PID/status file; 0 when it cannot.
func highWater(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// writeEvents writes n benchmark items as a ddb file.
func writeEvents(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		ev := bench.Event(i)
		fmt.Fprintf(bw, `{"Item":{"at":{"N":%q},"body":{"S":%q},"kind":{"S":%q},"pk":{"S":%q}}}`+"\n",
			ev["at"].(*types.AttributeValueMemberN).Value, ev["body"].(*types.AttributeValueMemberS).Value,
			ev["kind"].(*types.AttributeValueMemberS).Value, ev["pk"].(*types.AttributeValueMemberS).Value)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plainLoad is the loop people write by hand: read a line, decode it, and every 25 items one
// BatchWriteItem, resending what comes back unprocessed. It returns items/s over the first n.
func plainLoad(api *dynamodb.Client, path string, n int) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ctx := context.Background()
	sc := bufio.NewScanner(f)
	start := time.Now()
	var batch []types.WriteRequest
	flush := func() error {
		pending := map[string][]types.WriteRequest{bench.Table: batch}
		for len(pending) > 0 {
			out, err := api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return err
			}
			pending = out.UnprocessedItems
		}
		batch = nil
		return nil
	}
	for i := 0; i < n && sc.Scan(); i++ {
		var line struct{ Item map[string]map[string]string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return 0, err
		}
		item := map[string]types.AttributeValue{}
		for k, v := range line.Item {
			if s, ok := v["S"]; ok {
				item[k] = &types.AttributeValueMemberS{Value: s}
			} else {
				item[k] = &types.AttributeValueMemberN{Value: v["N"]}
			}
		}
		batch = append(batch, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		if len(batch) == 25 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// plainExport scans with the SDK's paginator, one page at a time, and writes each item as a
// line of JSON, until it has n. It returns items/s.
func plainExport(api *dynamodb.Client, path string, n int) (float64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	start := time.Now()
	done := 0
	p := dynamodb.NewScanPaginator(api, &dynamodb.ScanInput{TableName: aws.String(bench.Table)})
	for p.HasMorePages() && done < n {
		out, err := p.NextPage(context.Background())
		if err != nil {
			return 0, err
		}
		for _, it := range out.Items {
			b, err := json.Marshal(it) // what people reach for; loses the types, as dynein's did
			if err != nil {
				return 0, err
			}
			bw.Write(append(b, '\n'))
			done++
		}
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return float64(done) / time.Since(start).Seconds(), nil
}
