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
