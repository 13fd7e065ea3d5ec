package dynaflow

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestBatcherReportsConsumedCapacityAndBatches(t *testing.T) {
	f := newFake(0)
	var mu sync.Mutex
	var results []BatchResult
	b := twoTables(t, f, func(o *BatcherOptions) {
		o.OnBatch = func(r BatchResult) { mu.Lock(); results = append(results, r); mu.Unlock() }
	})
	ctx := context.Background()
	for i := range 30 {
		b.Put(ctx, putItem("k"+strconv.Itoa(i)))
		b.PutIn(ctx, "events", putItem("k"+strconv.Itoa(i)))
	}
	mustFlush(t, b)
	s := b.Stats()
	if s.WriteUnits != 60 || s.Requests != 3 || s.ThrottledWrites != 0 {
		t.Errorf("stats = %+v; want 60 write units (the fake's one a write) in 3 calls", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 3 {
		t.Fatalf("OnBatch called %d times; want once per call, 3", len(results))
	}
	landed, units := map[string]int{}, 0.0
	for _, r := range results {
		if r.Err != nil || r.Unprocessed != 0 || r.Duration <= 0 {
			t.Errorf("result = %+v", r)
		}
		for table, n := range r.Tables {
			landed[table] += n
		}
		for _, cc := range r.Consumed {
			units += aws.ToFloat64(cc.CapacityUnits)
		}
	}
	if landed["orders"] != 30 || landed["events"] != 30 || units != 60 {
		t.Errorf("OnBatch saw %v landed and %v units; want 30 a table and 60", landed, units)
	}
}

func TestBatcherCountsThrottledWrites(t *testing.T) {
	f := newFake(0)
	unprocessedEveryThird(f)
	f.script("BatchWriteItem", nil, errThrottle)
	var mu sync.Mutex
	var back, errs int
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.OnBatch = func(r BatchResult) {
			mu.Lock()
			defer mu.Unlock()
			back += r.Unprocessed
			if errors.Is(r.Err, errThrottle) {
				errs++
			}
		}
	})
	for i := range 100 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	mustFlush(t, b)
	s := b.Stats()
	mu.Lock()
	defer mu.Unlock()
	if errs != 1 || s.Throttled != 1 {
		t.Errorf("throttled calls: OnBatch %d, Stats %d; want 1", errs, s.Throttled)
	}
	if s.ThrottledWrites != s.Retried { // every write sent again was handed back or throttled
		t.Errorf("ThrottledWrites = %d, Retried = %d, handed back per OnBatch %d; want every write sent again counted", s.ThrottledWrites, s.Retried, back)
	}
	if back == 0 {
		t.Errorf("no write was handed back: the test proves nothing")
	}
}

func TestReadStatsAndConsumedCapacityRequest(t *testing.T) {
	f := newFake(10)
	var asked []types.ReturnConsumedCapacity
	var mu sync.Mutex
	f.scanHook = func(_ context.Context, in *dynamodb.ScanInput) {
		mu.Lock()
		asked = append(asked, in.ReturnConsumedCapacity)
		mu.Unlock()
	}
	c := New(f, fastRetry)
	f.script("Scan", nil, errThrottle)
	n := 0
	for _, err := range c.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t")}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	for _, err := range c.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t"), ReturnConsumedCapacity: types.ReturnConsumedCapacityNone}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	rs := c.ReadStats()
	if rs.Items != 20 || rs.Requests != int64(f.count("Scan")) || rs.Throttled != 1 {
		t.Errorf("ReadStats = %+v after %d Scan calls; want 20 items, every call, 1 throttled", rs, f.count("Scan"))
	}
	mu.Lock()
	defer mu.Unlock()
	if asked[0] != types.ReturnConsumedCapacityIndexes || asked[len(asked)-1] != types.ReturnConsumedCapacityNone {
		t.Errorf("ReturnConsumedCapacity asked: %v; want INDEXES by default and the caller's NONE kept", asked)
	}
}

// Under MaxReadUnits a read waits for what reads have cost lately, and a page without the
// caller's Limit asks for half a second of the cap's worth of items: the estimates behind both,
// driven read by read.
func TestReadCostEstimate(t *testing.T) {
	ctx := context.Background()
	if got := New(newFake(0), func(o *Options) { o.MaxReadUnits = 1000 }).pageLimit(nil, false); got != nil {
		t.Errorf("Limit under a cap of 1000, above what a 1 MB page costs = %d; want none", *got)
	}
	c := New(newFake(0), func(o *Options) { o.MaxReadUnits = 40 })
	if got := c.pageLimit(aws.Int32(7), false); aws.ToInt32(got) != 7 {
		t.Errorf("Limit given as 7 = %v; want it kept", got)
	}
	if got := c.pageLimit(nil, false); aws.ToInt32(got) != firstPageLimit {
		t.Errorf("Limit before any read = %v; want %d", got, firstPageLimit)
	}
	page := func(n, size int, reported float64) func() ([]Item, []types.ConsumedCapacity, error) {
		return func() ([]Item, []types.ConsumedCapacity, error) {
			items := make([]Item, n)
			for i := range items {
				items[i] = Item{"pk": &types.AttributeValueMemberS{Value: strconv.Itoa(i)}, "body": &types.AttributeValueMemberS{Value: string(make([]byte, size))}}
			}
			return items, []types.ConsumedCapacity{{CapacityUnits: aws.Float64(reported)}}, nil
		}
	}
	// 10 small items reported at 5 units: a read costs 5, an item half a unit, and a page of half
	// a second of the cap (20 units) holds 40 items.
	if err := c.read(ctx, page(10, 10, 5)); err != nil {
		t.Fatal(err)
	}
	if c.readCost != 5 || c.itemCost != 0.5 {
		t.Errorf("after one read of 5 units: cost %v a read, %v an item; want 5 and 0.5", c.readCost, c.itemCost)
	}
	if got := c.pageLimit(nil, false); aws.ToInt32(got) != 40 {
		t.Errorf("Limit at 0.5 units an item under a cap of 40 = %v; want 40", got)
	}
	// A server that reports 1 unit for 400 KB (moto does) is charged what DynamoDB's rules charge
	// at least: 409,670 bytes are 101 units of 4 KB, halved for an eventually consistent read.
	// The moving average moves an eighth of the way.
	if err := c.read(ctx, page(10, 40*1024, 1)); err != nil {
		t.Fatal(err)
	}
	if want := 5 - 5.0/8 + 50.5/8; c.readCost != want {
		t.Errorf("after a 400 KB page reported as 1 unit: cost %v a read; want %v", c.readCost, want)
	}
	// A failed read costs nothing and teaches nothing.
	before := c.readCost
	if err := c.read(ctx, func() ([]Item, []types.ConsumedCapacity, error) { return nil, nil, errThrottle }); !errors.Is(err, errThrottle) {
		t.Fatalf("failed read = %v; want its error", err)
	}
	if c.readCost != before {
		t.Errorf("a failed read moved the cost from %v to %v", before, c.readCost)
	}
}
