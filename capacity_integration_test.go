package dynaflow

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

// TestIntegrationWriteUnits writes items of 1.5 KB to a table without an index and to one with a
// global secondary index. DynamoDB charges 2 write units for each (1 KB rounding), and as much
// again for the index: on DynamoDB Local, the faithful server, Stats.WriteUnits must be exactly
// that. Everywhere, it must equal what the calls reported, and reads must count what they read.
func TestIntegrationWriteUnits(t *testing.T) {
	e := integration(t, "")
	ctx := context.Background()
	indexed := dynamotest.TableName("dynaflow-gsi")
	_, err := e.direct.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(indexed),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("kind"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String("by-kind"),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String("kind"), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dynamodb.NewTableExistsWaiter(e.direct).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(indexed)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for _, tt := range []struct {
		table   string
		perItem float64
	}{{e.table, 2}, {indexed, 4}} {
		var mu sync.Mutex
		reported := 0.0
		b := e.batcher(t, func(o *BatcherOptions) {
			o.Tables = map[string][]string{indexed: nil}
			o.OnBatch = func(r BatchResult) {
				mu.Lock()
				defer mu.Unlock()
				for _, cc := range r.Consumed {
					reported += aws.ToFloat64(cc.CapacityUnits)
				}
			}
		})
		for i := range n {
			item := Item{
				"pk":   &types.AttributeValueMemberS{Value: "k" + strconv.Itoa(i)},
				"kind": &types.AttributeValueMemberS{Value: "a"},
				"body": &types.AttributeValueMemberS{Value: strings.Repeat("x", 1500)},
			}
			if err := b.PutIn(ctx, tt.table, item); err != nil {
				t.Fatal(err)
			}
		}
		closeOK(t, b)
		s := b.Stats()
		mu.Lock()
		if s.WriteUnits <= 0 || s.WriteUnits != reported {
			t.Errorf("%s: WriteUnits = %v, the calls reported %v; want them equal and above 0", tt.table, s.WriteUnits, reported)
		}
		mu.Unlock()
		if e.backend == "ddblocal" && s.WriteUnits != tt.perItem*n {
			t.Errorf("%s: WriteUnits = %v on DynamoDB Local; want %v (%v a 1.5 KB item)", tt.table, s.WriteUnits, tt.perItem*n, tt.perItem)
		}
	}

	dyn := New(e.api)
	before := e.proxy.Calls("Scan")
	items := 0
	for _, err := range dyn.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(indexed), Limit: aws.Int32(7)}) {
		if err != nil {
			t.Fatal(err)
		}
		items++
	}
	rs := dyn.ReadStats()
	if rs.Items != int64(items) || items != n || rs.Requests != int64(e.proxy.Calls("Scan")-before) || rs.ReadUnits <= 0 {
		t.Errorf("ReadStats = %+v after reading %d items in %d calls", rs, items, e.proxy.Calls("Scan")-before)
	}
}

// TestIntegrationBatcherUnderCapacity puts a write capacity on the table in the proxy: the
// Batcher is handed writes back and throttled, and lands every write; the proxy's own accounting
// shows what the table took.
func TestIntegrationBatcherUnderCapacity(t *testing.T) {
	e := integration(t, "")
	e.proxy.SetWriteCapacity(e.table, 200, 50) // 500 units of writes: some must be refused
	b := e.batcher(t, func(o *BatcherOptions) {
		o.Retry = Retry{MaxAttempts: 1000, Base: 5 * time.Millisecond, Max: 100 * time.Millisecond}
	})
	for i := range 500 {
		if err := b.Put(context.Background(), event("k"+strconv.Itoa(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	closeOK(t, b)
	if n := len(e.contents(t)); n != 500 {
		t.Fatalf("table holds %d items; want 500", n)
	}
	perSecond, refused := e.proxy.WriteCapacityUse(e.table)
	total := 0.0
	for _, u := range perSecond {
		total += u
	}
	s := b.Stats()
	if total != 500 || refused == 0 || s.ThrottledWrites == 0 || s.ThrottledWrites > int64(refused) {
		t.Errorf("proxy admitted %v units, refused %d writes; Batcher saw %d throttled writes; want 500 admitted, some refused and seen",
			total, refused, s.ThrottledWrites)
	}
}

// TestIntegrationScanUnderReadCapacity reads a table whose read capacity the proxy enforces: the
// scan is throttled and still yields every item once.
func TestIntegrationScanUnderReadCapacity(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN, func(o *Options) {
		o.Retry = Retry{MaxAttempts: 100, Base: 5 * time.Millisecond, Max: 50 * time.Millisecond}
	})
	e.seedRange(t, 300)
	e.proxy.SetReadCapacity(e.table, 4, 1) // the pages cost about 6 units: some must be refused
	seen := map[int]bool{}
	for item, err := range e.dyn.ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.table), Limit: aws.Int32(25)}, 4) {
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(item["sk"].(*types.AttributeValueMemberN).Value)
		if seen[n] {
			t.Fatalf("item %d seen twice", n)
		}
		seen[n] = true
	}
	_, refused := e.proxy.ReadCapacityUse(e.table)
	if len(seen) != 300 || refused == 0 {
		t.Errorf("read %d items, %d calls refused; want 300 read through some refusals", len(seen), refused)
	}
	if rs := e.dyn.ReadStats(); rs.Items != 300 {
		t.Errorf("ReadStats = %+v; want 300 items", rs)
	}
}

// worstWindow returns the most units in any whole second of perSecond after the first, and the
// seconds counted.
func worstWindow(perSecond []float64) (worst float64, seconds int) {
	for i, u := range perSecond {
		if i == 0 || i == len(perSecond)-1 { // the first second holds the start, the last is partial
			continue
		}
		worst = max(worst, u)
		seconds++
	}
	return worst, seconds
}

// TestIntegrationMaxWriteUnits writes through a Client capped at 700 write units a second to a
// table whose capacity, in the proxy, is 900: the proxy never throttles, and no second of its own
// accounting admits more than 5% above the cap. A window counts whole calls of 25 units, and a
// call that reaches the proxy a few milliseconds late falls in the next second: against a cap of
// 300 that alone is 8%, so the cap here is 700 (a call is 3.6% of it).
func TestIntegrationMaxWriteUnits(t *testing.T) {
	e := integration(t, "", func(o *Options) { o.MaxWriteUnits = 700 })
	e.proxy.SetWriteCapacity(e.table, 900, 900)
	b := e.batcher(t, func(o *BatcherOptions) { o.MaxInFlight = 16 })
	for i := range 2400 { // about 1 unit each: over three seconds at the cap
		if err := b.Put(context.Background(), event("k"+strconv.Itoa(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	closeOK(t, b)
	perSecond, refused := e.proxy.WriteCapacityUse(e.table)
	worst, seconds := worstWindow(perSecond)
	if refused != 0 || seconds < 2 || worst > 700*1.05 {
		t.Errorf("proxy admitted %v a second, refused %d writes; want no refusal and no whole second above 735", perSecond, refused)
	}
	if n := len(e.contents(t)); n != 2400 {
		t.Errorf("table holds %d items; want 2400", n)
	}
}

// seedPartition writes n items to e's table, all in partition "p" (sort keys 0 to n-1), each
// with a body of size bytes.
func seedPartition(t *testing.T, e *env, n, size int) {
	t.Helper()
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{
			"pk":   &types.AttributeValueMemberS{Value: "p"},
			"sk":   &types.AttributeValueMemberN{Value: strconv.Itoa(i)},
			"body": &types.AttributeValueMemberS{Value: strings.Repeat("r", size)},
		}
	}
	if err := dynamotest.Seed(context.Background(), e.direct, e.table, items); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationMaxReadUnits scans with 8 segments through a Client capped at 40 read units a
// second, against a read capacity of 60 in the proxy. A page of 8 items costs one unit, so one page
// landing a little late in the next second is 2.5% of the cap (at a cap of 10 it was 10%).
func TestIntegrationMaxReadUnits(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN, func(o *Options) { o.MaxReadUnits = 40 })
	seedPartition(t, e, 1000, 1000)
	e.proxy.SetReadCapacity(e.table, 60, 60)
	n := 0
	for _, err := range e.dyn.ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.table), Limit: aws.Int32(8)}, 8) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	perSecond, refused := e.proxy.ReadCapacityUse(e.table)
	worst, seconds := worstWindow(perSecond)
	if n != 1000 || refused != 0 || seconds < 1 || worst > 40*1.05 {
		t.Errorf("read %d items; proxy charged %v a second and refused %d calls; want 1000, no refusal, no whole second above 42", n, perSecond, refused)
	}
}

// TestIntegrationBatcherAdaptsToCapacity writes, with no cap set, to a table whose capacity in the
// proxy is 300 write units a second with a burst of 30: a BatchWriteItem of 25 writes is a
// twelfth of a second of it, and 16 calls in flight would be 16 times too many. In the second
// half of its writes, past the start (where 16 calls go out before the first comes back, and
// where a share handed back may once be misjudged as background, which sends at the opening rate
// again), the Batcher keeps to the capacity: few of its calls have writes refused, and the table takes most of its capacity (a short run: the start,
// and the slow growth after a deep first cut, weigh on it; make bench measures 100,000 writes).
// Without adaptation (FixedInFlight) most calls of such a run had writes refused (82-86% of them
// on the three servers).
func TestIntegrationBatcherAdaptsToCapacity(t *testing.T) {
	const capacity, n = 300, 1500 // about one unit a write: five seconds at capacity
	e := integration(t, "")
	e.proxy.SetWriteCapacity(e.table, capacity, capacity/10)
	b := e.batcher(t, func(o *BatcherOptions) {
		o.MaxInFlight = 16
		o.Retry = Retry{MaxAttempts: 1000, Base: 5 * time.Millisecond, Max: 200 * time.Millisecond}
	})
	for i := range n {
		if err := b.Put(context.Background(), event("k"+strconv.Itoa(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the first half of the writes to land", func() bool { return b.Stats().Written >= n/2 })
	calls0, throttled0 := e.proxy.WriteCapacityCalls(e.table)
	closeOK(t, b)
	calls, throttled := e.proxy.WriteCapacityCalls(e.table)
	calls, throttled = calls-calls0, throttled-throttled0
	if share := float64(throttled) / float64(calls); share > 0.2 {
		t.Errorf("in the second half, %d of %d calls had writes refused (%.0f%%); want at most 20%%", throttled, calls, 100*share)
	}
	perSecond, _ := e.proxy.WriteCapacityUse(e.table)
	if worst, seconds := worstWindow(perSecond); seconds < 2 {
		t.Errorf("proxy admitted %v a second; want at least two whole seconds (worst %v)", perSecond, worst)
	}
	if got := mean(perSecond[1:len(perSecond)-1]) / capacity; got < 0.5 { // a crawl takes far less
		t.Errorf("the table took %.2f of its capacity a second (%v); want at least 0.5", got, perSecond)
	}
	if got := len(e.contents(t)); got != n {
		t.Errorf("table holds %d items; want %d", got, n)
	}
}

// TestIntegrationBatcherSlowsThrottledTableAlone writes to two tables through one Batcher: one
// with a capacity of 150 write units a second in the proxy, one with a capacity it never
// reaches. The second table's writes are never refused and land at their own pace, long before
// the slow table's; the slow one is paced to its capacity: in the second half of its writes (past
// the start, where 16 calls go out before the first comes back) few of its calls are refused.
func TestIntegrationBatcherSlowsThrottledTableAlone(t *testing.T) {
	e := integration(t, "")
	fast := e.secondTable(t)
	e.proxy.SetWriteCapacity(e.table, 150, 50) // a burst that holds a whole call, as DynamoDB's does
	e.proxy.SetWriteCapacity(fast, 1e6, 1e6)
	var mu sync.Mutex
	landed := map[string]int{}
	slowWhenFastDone, calls0, throttled0 := -1, 0, 0
	const nSlow, nFast = 600, 500
	b := e.batcher(t, func(o *BatcherOptions) {
		o.Tables = map[string][]string{fast: {"pk"}}
		o.MaxInFlight = 16
		o.Retry = Retry{MaxAttempts: 1000, Base: 5 * time.Millisecond, Max: 200 * time.Millisecond}
		o.OnBatch = func(r BatchResult) {
			mu.Lock()
			defer mu.Unlock()
			for table, k := range r.Tables {
				landed[table] += k
			}
			if landed[fast] == nFast && slowWhenFastDone < 0 {
				slowWhenFastDone = landed[e.table]
			}
			if landed[e.table] >= nSlow/2 && calls0 == 0 {
				calls0, throttled0 = e.proxy.WriteCapacityCalls(e.table)
			}
		}
	})
	ctx := context.Background()
	for i := range max(nSlow, nFast) { // the two tables' writes interleaved
		if i < nSlow {
			if err := b.Put(ctx, event("s"+strconv.Itoa(i), 1)); err != nil {
				t.Fatal(err)
			}
		}
		if i < nFast {
			if err := b.PutIn(ctx, fast, event("f"+strconv.Itoa(i), 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	closeOK(t, b)
	if slowWhenFastDone < 0 || slowWhenFastDone > nSlow/2 {
		t.Errorf("the slow table had %d of its %d writes landed when the other's %d were done; want at most half", slowWhenFastDone, nSlow, nFast)
	}
	if calls, throttled := e.proxy.WriteCapacityCalls(fast); calls == 0 || throttled != 0 {
		t.Errorf("%d of %d calls had writes for the unthrottled table refused; want none", throttled, calls)
	}
	calls, throttled := e.proxy.WriteCapacityCalls(e.table)
	if calls, throttled = calls-calls0, throttled-throttled0; calls < 10 || throttled > calls/5 {
		t.Errorf("in the second half, %d of %d calls had writes for the slow table refused; want at least 10 calls and at most a fifth refused", throttled, calls)
	}
	if n, m := len(e.contents(t)), len(e.tableContents(t, fast)); n != nSlow || m != nFast {
		t.Errorf("tables hold %d and %d items; want %d and %d", n, m, nSlow, nFast)
	}
}

// TestIntegrationMaxReadUnitsSizesPages scans 1,000 items of about 3.5 KB with no Limit under a
// cap of 60 read units a second. A page of 1 MB (some 290 items) would cost about 125 units, two
// seconds of the cap in one answer; so after the first page (of firstPageLimit items, before an
// item's cost is known) the pages ask for what half a second of the cap pays for (about 68
// items). Every item comes once, the later pages are that small, and no whole second after the
// first takes more than 1.6 times the cap (three pages of half a second at most), where a 1 MB
// page alone takes twice the cap.
func TestIntegrationMaxReadUnitsSizesPages(t *testing.T) {
	const capacity = 60
	e := integration(t, types.ScalarAttributeTypeN, func(o *Options) { o.MaxReadUnits = capacity })
	seedPartition(t, e, 1000, 3500)
	e.proxy.SetReadCapacity(e.table, 1e9, 0) // counts, never refuses
	n, pages := 0, 0
	for out, err := range e.dyn.ScanPages(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.table)}) {
		if err != nil {
			t.Fatal(err)
		}
		if pages > 0 && len(out.Items) > 100 {
			t.Errorf("page %d holds %d items; want the pages after the first sized to half a second of the cap (about 68)", pages, len(out.Items))
		}
		n += len(out.Items)
		pages++
	}
	perSecond, _ := e.proxy.ReadCapacityUse(e.table)
	if worst, seconds := worstWindow(perSecond); n != 1000 || seconds < 2 || worst > capacity*1.6 {
		t.Errorf("read %d items in %d pages; proxy charged %v a second; want 1000, and no whole second past the first above %v", n, pages, perSecond, capacity*1.6)
	}
}
