package dynaflow

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// schema is a DescribeTable answer for a table keyed by pk (S) and, when sk is not "", sk (N).
func schema(sk string) *dynamodb.DescribeTableOutput {
	d := &types.TableDescription{
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
	}
	if sk != "" {
		d.KeySchema = append(d.KeySchema, types.KeySchemaElement{AttributeName: aws.String(sk), KeyType: types.KeyTypeRange})
		d.AttributeDefinitions = append(d.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(sk), AttributeType: types.ScalarAttributeTypeN})
	}
	return &dynamodb.DescribeTableOutput{Table: d}
}

func TestNewBatcherChecksKeyAgainstTable(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		keys  []string
		tbl   string // the table's range key; "" for none
		want  string // in the error; "" for none
		typed bool   // the key types come from DescribeTable
	}{
		{"right names", []string{"pk", "sk"}, "sk", "", true},
		{"right names in another order", []string{"sk", "pk"}, "sk", "", true},
		{"none given", nil, "sk", "", true},
		{"hash key alone on a table with a range key", []string{"pk"}, "sk", "the table's key is pk, sk", false},
		{"a range key the table lacks", []string{"pk", "sk"}, "", "the table's key is pk", false},
		{"wrong name", []string{"id"}, "", "key attributes given as id, but the table's key is pk", false},
		{"three names", []string{"a", "b", "c"}, "", "3 key attributes", false},
		{"an empty name", []string{""}, "", "empty key attribute name", false},
		{"a name twice", []string{"pk", "pk"}, "", "given twice", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(0)
			f.describe = schema(tt.tbl)
			b, err := New(f, fastRetry).NewBatcher(ctx, "orders", func(o *BatcherOptions) { o.KeyAttributes = tt.keys })
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "orders") {
					t.Errorf("NewBatcher = %v; want an error naming the table and saying %q", err, tt.want)
				}
				if b != nil {
					t.Errorf("NewBatcher returned a Batcher with its error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(ctx)
			if f.count("DescribeTable") != 1 {
				t.Errorf("DescribeTable calls = %d; want 1, names given or not", f.count("DescribeTable"))
			}
			// The types came from DescribeTable: a string sort key is refused at Put.
			err = b.Put(ctx, Item{"pk": &types.AttributeValueMemberS{Value: "a"}, "sk": &types.AttributeValueMemberS{Value: "1"}})
			if !errors.Is(err, ErrInvalidItem) || !strings.Contains(err.Error(), `"sk" has type S; the table's is N`) {
				t.Errorf("Put with a mistyped sort key = %v", err)
			}
		})
	}
	checkNoLeaks(t)
}

func TestNewBatcherDescribeTableErrors(t *testing.T) {
	ctx := context.Background()
	denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed"}

	// Access denied: the names given are trusted, without types.
	f := newFake(0)
	f.script("DescribeTable", denied)
	b, err := New(f, fastRetry).NewBatcher(ctx, "orders", func(o *BatcherOptions) { o.KeyAttributes = []string{"pk"} })
	if err != nil {
		t.Fatalf("NewBatcher with KeyAttributes and DescribeTable denied = %v; want the names trusted", err)
	}
	if err := b.Put(ctx, Item{"pk": &types.AttributeValueMemberN{Value: "1"}}); err != nil {
		t.Errorf("Put with a number key, the type unknown = %v; want it accepted", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Error(err)
	}

	// Access denied with no names: nothing to go on.
	f = newFake(0)
	f.script("DescribeTable", denied)
	if _, err := New(f, fastRetry).NewBatcher(ctx, "orders"); !errors.As(err, new(smithy.APIError)) || !strings.Contains(err.Error(), "orders") {
		t.Errorf("NewBatcher without names, DescribeTable denied = %v; want the error, naming the table", err)
	}

	// Missing: an error from NewBatcher, names given or not.
	for _, keys := range [][]string{nil, {"pk"}} {
		f = newFake(0)
		f.script("DescribeTable", errNotFound)
		_, err := New(f, fastRetry).NewBatcher(ctx, "nope", func(o *BatcherOptions) { o.KeyAttributes = keys })
		var rnf *types.ResourceNotFoundException
		if !errors.As(err, &rnf) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("NewBatcher(KeyAttributes %v) on a missing table = %v; want a wrapped *ResourceNotFoundException naming it", keys, err)
		}
	}

	// Throttled: retried under Retry.
	f = newFake(0)
	f.script("DescribeTable", errThrottle, errThrottle)
	b, err = New(f, fastRetry).NewBatcher(ctx, "orders")
	if err != nil {
		t.Fatalf("NewBatcher through two throttled DescribeTable calls = %v", err)
	}
	b.Close(ctx)
	if c := f.count("DescribeTable"); c != 3 {
		t.Errorf("DescribeTable calls = %d; want 3", c)
	}
	checkNoLeaks(t)
}

// twoTables returns a Batcher on f writing to "orders" and "events", both keyed by pk.
func twoTables(t *testing.T, f *fakeAPI, optFns ...func(*BatcherOptions)) *Batcher {
	return newTestBatcher(t, f, append([]func(*BatcherOptions){func(o *BatcherOptions) {
		o.Tables = map[string][]string{"events": nil}
	}}, optFns...)...)
}

func TestBatcherSeveralTablesInOneCall(t *testing.T) {
	f := newFake(0)
	var mixed atomic.Int64
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if len(in.RequestItems) == 2 {
			mixed.Add(1)
		}
		return nil, nil
	}
	b := twoTables(t, f)
	ctx := context.Background()
	for i := range 10 {
		k := "k" + strconv.Itoa(i)
		if err := b.Put(ctx, putItem(k, "v", "orders")); err != nil {
			t.Fatal(err)
		}
		if err := b.PutIn(ctx, "events", putItem(k, "v", "events")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeleteIn(ctx, "events", putItem("k9")); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, b)
	if c := f.count("BatchWriteItem"); c != 1 || mixed.Load() != 1 {
		t.Errorf("%d calls, %d with both tables; want one call carrying both", c, mixed.Load())
	}
	// The same key in two tables is two keys; the delete replaced events' k9 only.
	if s := b.Stats(); s.Written != 20 || s.Coalesced != 1 {
		t.Errorf("stats = %+v; want 20 written, 1 coalesced", s)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range 10 {
		k := putItem("k" + strconv.Itoa(i))
		if got := f.store[tableKey("orders", k)]; got == nil || got["v"].(*types.AttributeValueMemberS).Value != "orders" {
			t.Errorf("orders %v = %v", k["pk"], got)
		}
		got, want := f.store[tableKey("events", k)], i != 9
		if (got != nil) != want {
			t.Errorf("events holds k%d: %v; want %v", i, got != nil, want)
		}
	}
}

func TestBatcherUnknownTable(t *testing.T) {
	b := newTestBatcher(t, newFake(0))
	for _, err := range []error{
		b.PutIn(context.Background(), "elsewhere", putItem("a")),
		b.DeleteIn(context.Background(), "elsewhere", putItem("a")),
	} {
		if !errors.Is(err, ErrUnknownTable) || !strings.Contains(err.Error(), "elsewhere") || !strings.Contains(err.Error(), "orders") {
			t.Errorf("err = %v; want ErrUnknownTable naming the table and the Batcher's tables", err)
		}
	}
	if s := b.Stats(); s.Puts+s.Deletes != 0 {
		t.Errorf("stats = %+v; want nothing accepted", s)
	}
}

// TestBatcherThrottledTableAlone hands back every write for "events" until the test has seen all
// of "orders" land; the Batcher must pause events and keep orders flowing.
func TestBatcherThrottledTableAlone(t *testing.T) {
	f := newFake(0)
	var refuse atomic.Bool
	refuse.Store(true)
	var eventCalls, orderCalls atomic.Int64
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if len(in.RequestItems["orders"]) > 0 {
			orderCalls.Add(1)
		}
		if ev := in.RequestItems["events"]; len(ev) > 0 {
			eventCalls.Add(1)
			if refuse.Load() {
				out := &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"events": ev}}
				f.apply(in, out.UnprocessedItems)
				return out, nil
			}
		}
		return nil, nil
	}
	b := twoTables(t, f, func(o *BatcherOptions) {
		o.FlushInterval = time.Millisecond
		o.Retry = Retry{MaxAttempts: 1000, Base: 5 * time.Millisecond, Max: 200 * time.Millisecond}
	})
	ctx := context.Background()
	for i := range 1000 {
		if err := b.PutIn(ctx, "events", putItem("e"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "events to be handed back", func() bool { return b.Stats().Retried > 0 })
	ec0 := eventCalls.Load()
	for i := range 1000 {
		if err := b.Put(ctx, putItem("o"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every orders write to land while events is refused", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i := range 1000 {
			if f.store[fakeKey(putItem("o"+strconv.Itoa(i)))] == nil {
				return false
			}
		}
		return true
	})
	oc, ec := orderCalls.Load(), eventCalls.Load()-ec0
	if ec*2 > oc {
		t.Errorf("%d calls carried events and %d orders while events was refused; want events paused", ec, oc)
	}
	refuse.Store(false)
	mustFlush(t, b)
	if s := b.Stats(); s.Written != 2000 || s.Failed != 0 {
		t.Errorf("stats = %+v; want all 2000 written", s)
	}
}

// TestBatcherFailedTableFailsAlone: a table that is gone fails its own writes, not the others'.
func TestBatcherFailedTableFailsAlone(t *testing.T) {
	f := newFake(0)
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if len(in.RequestItems["events"]) > 0 {
			return nil, errNotFound
		}
		return nil, nil
	}
	b := twoTables(t, f)
	ctx := context.Background()
	for i := range 20 {
		b.Put(ctx, putItem("k"+strconv.Itoa(i)))
		b.PutIn(ctx, "events", putItem("k"+strconv.Itoa(i)))
	}
	err := b.Flush(ctx)
	var we *WriteError
	if !errors.As(err, &we) || len(we.Failures) != 20 || !errors.As(err, new(*types.ResourceNotFoundException)) {
		t.Fatalf("Flush = %v; want 20 failures wrapping ResourceNotFoundException", err)
	}
	for _, fl := range we.Failures {
		if fl.Table != "events" || !strings.Contains(fl.Err.Error(), "events") {
			t.Fatalf("failure %+v is not for events", fl)
		}
	}
	if n := len(f.storeKeys()); n != 20 {
		t.Errorf("stored %d; want the 20 orders", n)
	}
}

// TestBatcherSplitBound: a batch whose writes are all refused by validation takes at most 2n
// calls for n writes, one table or two.
func TestBatcherSplitBound(t *testing.T) {
	for _, tables := range []int{1, 2} {
		t.Run(strconv.Itoa(tables), func(t *testing.T) { splitBound(t, tables) })
	}
}

func splitBound(t *testing.T, tables int) {
	{
		f := newFake(0)
		f.writeHook = func(context.Context, *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
			return nil, errValidation
		}
		b := twoTables(t, f)
		for i := range MaxBatchWriteRequests {
			table := "orders"
			if tables == 2 && i%2 == 1 {
				table = "events"
			}
			b.PutIn(context.Background(), table, putItem("k"+strconv.Itoa(i)))
		}
		err := b.Flush(context.Background())
		var we *WriteError
		if !errors.As(err, &we) || len(we.Failures) != MaxBatchWriteRequests {
			t.Fatalf("Flush = %v; want all 25 failed", err)
		}
		if c := f.count("BatchWriteItem"); c > 2*MaxBatchWriteRequests {
			t.Errorf("%d tables: %d calls for 25 refused writes; want at most 50", tables, c)
		}
	}
}

// TestBatcherUnmatchedUnprocessed: DynamoDB hands back a write that matches none sent. Nothing
// may be counted as written on that answer: every write of the table is sent again.
func TestBatcherUnmatchedUnprocessed(t *testing.T) {
	f := newFake(0)
	var first atomic.Bool
	first.Store(true)
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if first.CompareAndSwap(true, false) {
			stranger := types.WriteRequest{PutRequest: &types.PutRequest{Item: putItem("stranger")}}
			// Nothing is applied: the answer claims all but one landed, but names a stranger.
			return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"orders": {stranger}}}, nil
		}
		return nil, nil
	}
	b := newTestBatcher(t, f)
	for i := range 10 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	mustFlush(t, b)
	if n := len(f.storeKeys()); n != 10 {
		t.Errorf("stored %d; want all 10 (sent again)", n)
	}
	f.mu.Lock()
	for i := range 10 {
		if n := f.sent[fakeKey(putItem("k"+strconv.Itoa(i)))]; n != 2 {
			t.Errorf("k%d sent %d times; want 2", i, n)
		}
	}
	f.mu.Unlock()
	if s := b.Stats(); s.Written != 10 || s.Retried != 10 {
		t.Errorf("stats = %+v; want 10 written, 10 retried", s)
	}
}

// TestBatcherFailuresHoldRoom: when every write fails, the failures hold the room until they are
// reported; Put waits, then Flush gives the room back.
func TestBatcherFailuresHoldRoom(t *testing.T) {
	f := newFake(0)
	f.writeHook = func(context.Context, *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		return nil, errNotFound
	}
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.MaxBuffered = 50; o.FlushInterval = time.Millisecond })
	ctx := context.Background()
	for i := range 50 {
		if err := b.Put(ctx, putItem("k"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all 50 to fail", func() bool { return b.Stats().Failed == 50 })
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.Put(short, putItem("more")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put with 50 unreported failures and MaxBuffered 50 = %v; want it to wait for room", err)
	}
	var we *WriteError
	if err := b.Flush(ctx); !errors.As(err, &we) || len(we.Failures) != 50 {
		t.Fatalf("Flush = %v; want the 50 failures", err)
	}
	if err := b.Put(ctx, putItem("more")); err != nil {
		t.Errorf("Put after Flush returned the failures = %v; want room", err)
	}
}

// TestBatcherOnErrorFreesRoom: with OnError, failures flow out and Puts go on, far past
// MaxBuffered, and each failure is reported once.
func TestBatcherOnErrorFreesRoom(t *testing.T) {
	f := newFake(0)
	f.writeHook = func(context.Context, *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		return nil, errNotFound
	}
	var mu sync.Mutex
	reported := 0
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.MaxBuffered = 50
		o.FlushInterval = time.Millisecond
		o.OnError = func(err error) {
			var we *WriteError
			if errors.As(err, &we) {
				mu.Lock()
				reported += len(we.Failures)
				mu.Unlock()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 1000 {
		if err := b.Put(ctx, putItem("k"+strconv.Itoa(i))); err != nil {
			t.Fatalf("Put %d = %v", i, err)
		}
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close = %v; want nil: OnError had every failure", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if reported != 1000 {
		t.Errorf("OnError saw %d failures; want 1000", reported)
	}
}

// TestBatcherFlushGivenUpIsForgotten: a Flush whose ctx ends stops counting at once, while the
// writes it waited for are still out.
func TestBatcherFlushGivenUpIsForgotten(t *testing.T) {
	f, release := blockingFake()
	b := newTestBatcher(t, f)
	b.Put(context.Background(), putItem("a"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Flush(ctx) }()
	waitFor(t, "the Flush to be counted", func() bool {
		b.mu.Lock()
		n := b.flushes
		b.mu.Unlock()
		return n == 1 && b.Stats().InFlight == 1
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Flush = %v; want context.Canceled", err)
	}
	waitFor(t, "the owner to forget the Flush", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.flushes == 0
	})
	if s := b.Stats(); s.InFlight != 1 {
		t.Errorf("the write is no longer out (%+v): the test proves nothing", s)
	}
	close(release)
	mustFlush(t, b)
}

// ignoresCtx is an API whose BatchWriteItem ignores its ctx and returns only when released.
type ignoresCtx struct {
	*fakeAPI
	release chan struct{}
}

func (a ignoresCtx) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	<-a.release
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// TestBatcherCloseBoundedWhenAPIIgnoresCtx: Close returns within AbortGrace of its ctx ending
// even when a call never returns, reporting that call's writes as not written.
func TestBatcherCloseBoundedWhenAPIIgnoresCtx(t *testing.T) {
	api := ignoresCtx{newFake(0), make(chan struct{})}
	b, err := New(api).NewBatcher(context.Background(), "orders", func(o *BatcherOptions) { o.FlushInterval = time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	waitFor(t, "calls out", func() bool { return b.Stats().InFlight > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = b.Close(ctx)
	var we *WriteError
	if !errors.As(err, &we) || len(we.Failures) != 30 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v; want all 30 reported, wrapping DeadlineExceeded", err)
	}
	if !strings.Contains(we.Failures[0].Err.Error(), "did not return") && !strings.Contains(we.Failures[len(we.Failures)-1].Err.Error(), "did not return") {
		t.Errorf("failures do not say the call did not return: %v", we.Failures[0].Err)
	}
	close(api.release) // the stuck calls return: their goroutines end
	checkNoLeaks(t)
}
