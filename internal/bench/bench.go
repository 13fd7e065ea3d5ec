// Package bench holds dynaflow's benchmark bodies, shared by the Go benchmarks (bench_test.go at
// the repository root) and by `make bench` (internal/benchtable), which runs them side by side
// with the raw SDK doing the same work and prints one table. It is not part of dynaflow's API.
package bench

import (
	"context"
	"iter"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/internal/benchsink"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

// Table is the table name the benchmarks use; the sink answers for any.
const Table = "bench"

// Env is a sink and an SDK client pointed at it.
type Env struct {
	Sink *benchsink.Sink
	API  *dynamodb.Client
}

// NewEnv starts a sink that answers after delay, with Query/Scan tables of pages pages of
// perPage items, and a client for it with room for 64 idle connections.
func NewEnv(delay time.Duration, pages, perPage int) *Env {
	s := benchsink.New(pages, perPage)
	s.SetDelay(delay)
	return &Env{Sink: s, API: dynamotest.NewClient(s.URL)}
}

// Close stops the sink.
func (e *Env) Close() { e.Sink.Close() }

// WithDefaultHTTP returns e with a client on the SDK's default HTTP transport, which keeps at
// most 10 idle connections per host.
func (e *Env) WithDefaultHTTP() *Env {
	return &Env{Sink: e.Sink, API: dynamotest.NewClient(e.Sink.URL, func(o *dynamodb.Options) {
		o.HTTPClient = awshttp.NewBuildableClient()
	})}
}

// poolSize is the number of distinct items the write benchmarks cycle through: more than any
// Batcher buffers, so that no write is coalesced with an earlier one still waiting.
const poolSize = 1 << 16

var (
	poolOnce sync.Once
	pool     []dynaflow.Item
	batches  [][]types.WriteRequest
)

// Pool returns poolSize distinct items of about 150 bytes, and the same items as pre-built
// batches of 25 write requests.
func Pool() ([]dynaflow.Item, [][]types.WriteRequest) {
	poolOnce.Do(func() {
		pool = make([]dynaflow.Item, poolSize)
		for i := range pool {
			pool[i] = Event(i)
		}
		for i := 0; i+25 <= len(pool); i += 25 {
			b := make([]types.WriteRequest, 25)
			for j := range b {
				b[j] = types.WriteRequest{PutRequest: &types.PutRequest{Item: pool[i+j]}}
			}
			batches = append(batches, b)
		}
	})
	return pool, batches
}

// Event returns the i'th benchmark item.
func Event(i int) dynaflow.Item {
	return dynaflow.Item{
		"pk":   &types.AttributeValueMemberS{Value: "event-" + strconv.Itoa(i)},
		"kind": &types.AttributeValueMemberS{Value: "click"},
		"at":   &types.AttributeValueMemberN{Value: "1700000000000"},
		"body": &types.AttributeValueMemberS{Value: strings.Repeat("x", 100)},
	}
}

// BatcherWrites measures a Batcher with maxInFlight calls at once: b.N Puts from producers
// goroutines, then Flush. One op is one write.
func BatcherWrites(b *testing.B, e *Env, maxInFlight, producers int) {
	conns := e.Sink.Conns()
	st := putAll(b, e.API, maxInFlight, producers)
	b.ReportMetric(float64(b.N)/float64(max(1, st.Requests)), "writes/call")
	b.ReportMetric(float64(e.Sink.Conns()-conns)/float64(max(1, st.Requests)), "conns/call")
}

// putAll times b.N Puts of the pool's items from producers goroutines into a Batcher on api with
// maxInFlight calls at once, then Flush; it reports writes/s and CPU per write, closes the
// Batcher and returns its Stats. The writes go to Table, or in turn to each of more tables.
func putAll(b *testing.B, api dynaflow.API, maxInFlight, producers int, more ...string) dynaflow.Stats {
	items, _ := Pool()
	ctx := context.Background()
	tables := append([]string{Table}, more...)
	w, err := dynaflow.New(api).NewBatcher(ctx, Table, func(o *dynaflow.BatcherOptions) {
		o.KeyAttributes = []string{"pk"}
		o.MaxInFlight = maxInFlight
		o.Tables = make(map[string][]string)
		for _, t := range more {
			o.Tables[t] = []string{"pk"}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	if err := spreadBlocks(b.N, producers, putBlock, func(i int) error { return w.PutIn(ctx, tables[i%len(tables)], items[i%len(items)]) }); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportCPU(b, cpu, "write")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	return w.Stats()
}

// RawWrites measures the raw SDK writing the same items in pre-built batches of 25 from
// goroutines goroutines, each sending one BatchWriteItem at a time and resending what comes back
// unprocessed. One op is one write.
func RawWrites(b *testing.B, e *Env, goroutines int) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	if err := rawWrite(context.Background(), e.API, 0, b.N, goroutines); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportCPU(b, cpu, "write")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// rawWrite writes the pool's items from the first'th (a multiple of 25) for n writes, in the
// pre-built batches of 25, from goroutines goroutines, each sending one BatchWriteItem at a time
// and resending what comes back unprocessed.
func rawWrite(ctx context.Context, api *dynamodb.Client, first, n, goroutines int) error {
	_, pre := Pool()
	calls := (n + 24) / 25
	return spread(calls, goroutines, func(i int) error {
		batch := pre[(first/25+i)%len(pre)]
		if i == calls-1 && n%25 != 0 {
			batch = batch[:n%25]
		}
		pending := map[string][]types.WriteRequest{Table: batch}
		for len(pending) > 0 {
			out, err := api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return err
			}
			pending = out.UnprocessedItems
		}
		return nil
	})
}

// reportCPU reports the process's CPU time per op since start, in microseconds: the cost of an
// op on every core, which a shared machine's noise moves less than the rate does.
func reportCPU(b *testing.B, start time.Duration, op string) {
	b.ReportMetric(float64(processCPU()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/"+op)
}

func queryInput() *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName:                 aws.String(Table),
		KeyConditionExpression:    aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "p"}},
	}
}

// QueryIter measures dyn.Query reading b.N items, starting the query again as often as needed.
// One op is one item.
func QueryIter(b *testing.B, e *Env) { readAll(b, itemCounter(queryWalk(e.API))) }

// QueryPaginator is QueryIter with the SDK's paginator.
func QueryPaginator(b *testing.B, e *Env) { readAll(b, pageCounter(queryPager(e.API))) }

// ScanIter measures dyn.Scan reading b.N items. One op is one item.
func ScanIter(b *testing.B, e *Env) { readAll(b, itemCounter(scanWalk(e.API))) }

// ScanPaginator is ScanIter with the SDK's paginator.
func ScanPaginator(b *testing.B, e *Env) { readAll(b, pageCounter(scanPager(e.API))) }

// queryWalk returns a function that starts dyn.Query over api's table afresh each time.
func queryWalk(api dynaflow.API) func() iter.Seq2[dynaflow.Item, error] {
	dyn := dynaflow.New(api)
	return func() iter.Seq2[dynaflow.Item, error] { return dyn.Query(context.Background(), queryInput()) }
}

// scanWalk returns a function that starts dyn.Scan over api's table afresh each time.
func scanWalk(api dynaflow.API) func() iter.Seq2[dynaflow.Item, error] {
	dyn := dynaflow.New(api)
	return func() iter.Seq2[dynaflow.Item, error] {
		return dyn.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(Table)})
	}
}

// queryPager returns a function that starts the SDK's Query paginator afresh each time.
func queryPager(api dynamodb.QueryAPIClient) func() pager {
	return func() pager {
		p := dynamodb.NewQueryPaginator(api, queryInput())
		return pagerOf(p, func(out *dynamodb.QueryOutput) []dynaflow.Item { return out.Items })
	}
}

// scanPager returns a function that starts the SDK's Scan paginator afresh each time.
func scanPager(api dynamodb.ScanAPIClient) func() pager {
	return func() pager {
		p := dynamodb.NewScanPaginator(api, &dynamodb.ScanInput{TableName: aws.String(Table)})
		return pagerOf(p, func(out *dynamodb.ScanOutput) []dynaflow.Item { return out.Items })
	}
}

// counter walks a table once from the start, visiting at most limit items as a caller's loop
// would, and returns how many it visited.
type counter func(limit int) (int, error)

// readAll reads b.N items with count, walking again whenever a walk ends, and reports items/s.
func readAll(b *testing.B, count counter) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for n := 0; n < b.N; {
		c, err := count(b.N - n)
		if err != nil {
			b.Fatal(err)
		}
		n += c
	}
	reportCPU(b, cpu, "item")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

// itemCounter counts the items of a fresh iterator that walk starts.
func itemCounter(walk func() iter.Seq2[dynaflow.Item, error]) counter {
	return func(limit int) (int, error) {
		n := 0
		for _, err := range walk() {
			if err != nil {
				return n, err
			}
			if n++; n == limit {
				break
			}
		}
		return n, nil
	}
}

// pager returns the next page's items, or false after the last page.
type pager func() ([]dynaflow.Item, bool, error)

// sdkPaginator is what the SDK's Query and Scan paginators have in common.
type sdkPaginator[O any] interface {
	HasMorePages() bool
	NextPage(context.Context, ...func(*dynamodb.Options)) (O, error)
}

// pagerOf turns an SDK paginator into a pager; items picks a page's items.
func pagerOf[O any](p sdkPaginator[O], items func(O) []dynaflow.Item) pager {
	return func() ([]dynaflow.Item, bool, error) {
		if !p.HasMorePages() {
			return nil, false, nil
		}
		out, err := p.NextPage(context.Background())
		if err != nil {
			return nil, false, err
		}
		return items(out), true, nil
	}
}

// pageCounter counts the items of the pages of a fresh pager that newPager makes.
func pageCounter(newPager func() pager) counter {
	return func(limit int) (int, error) {
		next, n := newPager(), 0
		for n < limit {
			items, ok, err := next()
			if err != nil || !ok {
				return n, err
			}
			for range items {
				if n++; n == limit {
					break
				}
			}
		}
		return n, nil
	}
}

// FullScan measures reading the whole table: with ParallelScan over segments segments, or with
// Scan when segments is 0. One op is one full scan.
func FullScan(b *testing.B, e *Env, segments int) {
	dyn := dynaflow.New(e.API)
	ctx := context.Background()
	want := e.Sink.Pages() * e.Sink.PerPage()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		in := &dynamodb.ScanInput{TableName: aws.String(Table)}
		seq := dyn.Scan(ctx, in)
		if segments > 0 {
			seq = dyn.ParallelScan(ctx, in, segments)
		}
		n := 0
		for _, err := range seq {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != want {
			b.Fatalf("scan read %d items; want %d", n, want)
		}
	}
	b.ReportMetric(float64(b.N*want)/b.Elapsed().Seconds(), "items/s")
}

// PeakHeap sends writes writes through a Batcher with the default limits, from 8 producers,
// while the server is stalled for stall and then released. It returns the heap (bytes of live
// and not yet collected objects) after a GC before it started, and the highest heap seen,
// sampled every millisecond.
func PeakHeap(e *Env, writes int, stall time.Duration) (base, peak uint64, err error) {
	ctx := context.Background()
	return sampleHeap(func() error {
		w, err := dynaflow.New(e.API).NewBatcher(ctx, Table, func(o *dynaflow.BatcherOptions) {
			o.KeyAttributes = []string{"pk"}
		})
		if err != nil {
			return err
		}
		e.Sink.Stall()
		release := time.AfterFunc(stall, e.Sink.Release)
		defer release.Stop()
		// A fresh item per write, as a service builds them.
		putErr := spreadBlocks(writes, 8, putBlock, func(i int) error { return w.Put(ctx, Event(i)) })
		if err := w.Close(ctx); err != nil {
			return err
		}
		return putErr
	})
}

// spread runs fn(0) to fn(n-1) on workers goroutines, each taking the next index as it is free,
// and returns the first error; after an error the workers stop taking indexes.
func spread(n, workers int, fn func(i int) error) error { return spreadBlocks(n, workers, 1, fn) }

// putBlock is how many consecutive indexes a goroutine calling Put takes at a time: one shared
// counter bumped on every Put would cost the Put side a contended atomic per write (the raw side
// bumps it once per call of 25), which is the harness's cost, not the Batcher's.
const putBlock = 32

// spreadBlocks is spread with each worker taking block consecutive indexes at a time.
func spreadBlocks(n, workers, block int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	var failed atomic.Bool
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				from := int(next.Add(int64(block))) - block
				if from >= n {
					return
				}
				for i := from; i < min(from+block, n); i++ {
					if err := fn(i); err != nil {
						once.Do(func() { first = err })
						failed.Store(true)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return first
}
