package dynaflow

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/dynaflow-go/dynaflow/dynaflowtest"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
	"github.com/google/go-cmp/cmp"
)

// seedRange writes n items with pk "p" and sk 0..n-1 (a number range key).
func (e *env) seedRange(t *testing.T, n int) {
	t.Helper()
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{
			"pk":   &types.AttributeValueMemberS{Value: "p"},
			"sk":   &types.AttributeValueMemberN{Value: strconv.Itoa(i)},
			"data": &types.AttributeValueMemberS{Value: "item " + strconv.Itoa(i)},
			"num":  &types.AttributeValueMemberN{Value: strconv.Itoa(i)},
		}
	}
	if err := dynamotest.Seed(context.Background(), e.direct, e.table, items); err != nil {
		t.Fatal(err)
	}
}

func (e *env) query(limit int32) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName:                 aws.String(e.table),
		KeyConditionExpression:    aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "p"}},
		Limit:                     aws.Int32(limit),
	}
}

// sks returns the sk of each item the sequence yields, failing the test on an error.
func sks(t *testing.T, seq func(func(Item, error) bool)) []int {
	t.Helper()
	var out []int
	for item, err := range seq {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		n, _ := strconv.Atoi(item["sk"].(*types.AttributeValueMemberN).Value)
		out = append(out, n)
	}
	return out
}

func TestIntegrationQueryAllPagesInOrder(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	e.seedRange(t, 250)
	got := sks(t, e.dyn.Query(context.Background(), e.query(7)))
	if diff := cmp.Diff(upTo(250), got); diff != "" {
		t.Errorf("items in order (-want +got):\n%s", diff)
	}
	// 35 full pages and one of 5 items.
	if c := e.proxy.Calls("Query"); c != 36 {
		t.Errorf("Query calls = %d; want 36", c)
	}
}

func TestIntegrationBreakStopsRequests(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	e.seedRange(t, 100)
	n := 0
	for _, err := range e.dyn.Query(context.Background(), e.query(10)) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 15 {
			break
		}
	}
	if c := e.proxy.Calls("Query"); c != 2 {
		t.Errorf("Query calls after a break on page 2 = %d; want 2", c)
	}
}

func TestIntegrationErrorMidWalk(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	e.seedRange(t, 100)
	e.proxy.AddRule(dynaflowtest.Rule{Op: "Query", Skip: 2, Fault: dynaflowtest.Validation})
	var items, errs int
	for _, err := range e.dyn.Query(context.Background(), e.query(10)) {
		if err != nil {
			errs++
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != "ValidationException" {
				t.Errorf("err = %v; want the server's ValidationException", err)
			}
			continue
		}
		if errs > 0 {
			t.Errorf("an item after the error")
		}
		items++
	}
	if items != 20 || errs != 1 {
		t.Errorf("got %d items and %d errors; want 20 and 1", items, errs)
	}
}

func TestIntegrationRidesOutThrottling(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN, func(o *Options) { o.Retry.Base = 5 * time.Millisecond })
	e.seedRange(t, 100)
	// Seven throttled answers in a row: more than the SDK's three attempts per call.
	e.proxy.AddRule(dynaflowtest.Rule{Op: "Query", Skip: 1, Count: 7, Fault: dynaflowtest.Throttle})
	got := sks(t, e.dyn.Query(context.Background(), e.query(25)))
	if diff := cmp.Diff(upTo(100), got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if c, f := e.proxy.Calls("Query"), e.proxy.Forwarded("Query"); c != f+7 {
		t.Errorf("Query calls = %d, forwarded %d; want 7 throttled", c, f)
	}
}

func TestIntegrationResumeFromQueryPages(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	e.seedRange(t, 60)
	var first []int
	var resume Item
	pages := 0
	for out, err := range e.dyn.QueryPages(context.Background(), e.query(10)) {
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range out.Items {
			n, _ := strconv.Atoi(item["sk"].(*types.AttributeValueMemberN).Value)
			first = append(first, n)
		}
		resume = out.LastEvaluatedKey
		if pages++; pages == 2 {
			break
		}
	}
	in := e.query(10)
	in.ExclusiveStartKey = resume
	rest := sks(t, e.dyn.Query(context.Background(), in))
	if diff := cmp.Diff(upTo(60), append(first, rest...)); diff != "" {
		t.Errorf("two pages then the rest (-want +got):\n%s", diff)
	}
	if in.ExclusiveStartKey == nil || len(in.ExclusiveStartKey) != len(resume) {
		t.Errorf("the input's ExclusiveStartKey was changed")
	}
}

func TestIntegrationParallelScan(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	e.seedRange(t, 500)
	for _, segs := range []int{1, 4, 13} {
		in := &dynamodb.ScanInput{TableName: aws.String(e.table), Limit: aws.Int32(20)}
		got := sks(t, e.dyn.ParallelScan(context.Background(), in, segs))
		slices.Sort(got)
		if diff := cmp.Diff(upTo(500), got); diff != "" {
			t.Errorf("%d segments: each item once (-want +got):\n%s", segs, diff)
		}
	}
	checkNoLeaks(t)
}

// countingAPI counts the Scan calls started through it.
type countingAPI struct {
	API
	scans atomic.Int64
}

func (c *countingAPI) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.scans.Add(1)
	return c.API.Scan(ctx, in, optFns...)
}

func TestIntegrationParallelScanBreak(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	e.seedRange(t, 500)
	// Calls are counted as they start, in the client: a call cancelled by the break may still
	// reach the proxy after the loop has ended, so the proxy's count is not the measure here.
	api := &countingAPI{API: e.api}
	dyn := New(api)
	n := 0
	for _, err := range dyn.ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.table), Limit: aws.Int32(10)}, 8) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 10 {
			break
		}
	}
	checkNoLeaks(t)
	after := api.scans.Load()
	for _, err := range dyn.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("missing-" + e.table)}) {
		var rnf *types.ResourceNotFoundException
		if !errors.As(err, &rnf) {
			t.Errorf("scan of a missing table: %v; want *types.ResourceNotFoundException", err)
		}
	}
	if c := api.scans.Load(); c != after+1 {
		t.Errorf("Scan calls went from %d to %d; want only the one for the missing table", after, c)
	}
}

func TestIntegrationBatchGetUnderUnprocessedKeys(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN, func(o *Options) {
		o.Retry = Retry{MaxAttempts: 20, Base: time.Millisecond, Max: 20 * time.Millisecond}
	})
	e.seedRange(t, 300)
	e.proxy.SetUnprocessed(0.4)
	var keys []Item
	for i := range 300 {
		k := Item{"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberN{Value: strconv.Itoa(i)}}
		keys = append(keys, k, k)
		if i%10 == 0 {
			// The same key written another way, and a key with no item.
			keys = append(keys, Item{"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberN{Value: strconv.Itoa(i) + ".0"}})
			keys = append(keys, Item{"pk": &types.AttributeValueMemberS{Value: "nobody"}, "sk": &types.AttributeValueMemberN{Value: strconv.Itoa(i)}})
		}
	}
	seq := e.dyn.BatchGet(context.Background(), e.table, slices.Values(keys), func(ka *types.KeysAndAttributes) {
		ka.ProjectionExpression = aws.String("pk, sk")
		ka.ConsistentRead = aws.Bool(true)
	})
	got := sks(t, seq)
	slices.Sort(got)
	if diff := cmp.Diff(upTo(300), got); diff != "" {
		t.Errorf("each existing item once (-want +got):\n%s", diff)
	}
	if c := e.proxy.Calls("BatchGetItem"); c <= 4 {
		t.Errorf("BatchGetItem calls = %d; want more than 4 (330 distinct keys need 4 without retries)", c)
	}
}

func TestIntegrationEmptyPagesWalkedPast(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	e.seedRange(t, 100)
	// Limit counts items evaluated before the filter: the first 18 pages of 5 match nothing,
	// yet each carries a LastEvaluatedKey.
	in := e.query(5)
	in.FilterExpression = aws.String("num >= :min") // a key attribute may not be filtered on
	in.ExpressionAttributeValues[":min"] = &types.AttributeValueMemberN{Value: "90"}
	empty := 0
	for out, err := range e.dyn.QueryPages(context.Background(), in) {
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Items) == 0 && out.LastEvaluatedKey != nil {
			empty++
		}
	}
	if empty < 18 {
		t.Errorf("%d empty pages with a LastEvaluatedKey; want at least 18", empty)
	}
	got := sks(t, e.dyn.Query(context.Background(), in))
	if diff := cmp.Diff([]int{90, 91, 92, 93, 94, 95, 96, 97, 98, 99}, got); diff != "" {
		t.Errorf("items past the empty pages (-want +got):\n%s", diff)
	}
}
