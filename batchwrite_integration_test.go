package dynaflow

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/dynaflow-go/dynaflow/dynaflowtest"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

// patient retries long enough that random faults never exhaust a write's budget in a test.
var patient = Retry{MaxAttempts: 60, Base: time.Millisecond, Max: 20 * time.Millisecond}

// batcher returns a Batcher on e's table through the proxy; the test must Close it.
func (e *env) batcher(t *testing.T, optFns ...func(*BatcherOptions)) *Batcher {
	t.Helper()
	b, err := e.dyn.NewBatcher(context.Background(), e.table, optFns...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// contents reads the table directly (not through the proxy): pk to the item.
func (e *env) contents(t *testing.T) map[string]Item {
	t.Helper()
	out := map[string]Item{}
	for item, err := range New(e.direct).Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.table)}) {
		if err != nil {
			t.Fatal(err)
		}
		out[item["pk"].(*types.AttributeValueMemberS).Value] = item
	}
	return out
}

func event(pk string, v int) Item {
	return Item{
		"pk":      &types.AttributeValueMemberS{Value: pk},
		"version": &types.AttributeValueMemberN{Value: strconv.Itoa(v)},
		"body":    &types.AttributeValueMemberS{Value: strings.Repeat("e", 100)},
	}
}

func closeOK(t *testing.T, b *Batcher) {
	t.Helper()
	closeWithin(t, b, 60*time.Second)
}

// closeWithin is closeOK with a budget of its own.
func closeWithin(t *testing.T, b *Batcher, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkStats(t, b.Stats())
	checkNoLeaks(t)
}

func TestIntegrationBatcherLandsEverythingThroughFaults(t *testing.T) {
	e := integration(t, "")
	e.proxy.SetUnprocessed(0.3)
	e.proxy.AddRule(dynaflowtest.Rule{Op: "BatchWriteItem", Share: 0.1, Fault: dynaflowtest.Throttle})
	e.proxy.AddRule(dynaflowtest.Rule{Op: "BatchWriteItem", Share: 0.05, Fault: dynaflowtest.ServerError})
	b := e.batcher(t, func(o *BatcherOptions) { o.Retry = patient; o.FlushInterval = 10 * time.Millisecond })
	const producers, each = 16, 125 // many goroutines putting at once
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.Put(context.Background(), event("e"+strconv.Itoa(p*each+i), 1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// What this test asks is that nothing is lost, not how fast. Against this mix (30% handed
	// back, a tenth of the calls throttled whole, at random) the adaptive rate now and then sinks
	// to a crawl for tens of seconds: each whole throttle counts as the rate's doing and cuts it,
	// faster than it grows back.
	closeWithin(t, b, 150*time.Second)
	if n := len(e.contents(t)); n != producers*each {
		t.Errorf("table holds %d items; want %d", n, producers*each)
	}
	s := b.Stats()
	if s.Written != producers*each || s.Failed != 0 || s.Retried == 0 {
		t.Errorf("stats = %+v; want all written, with retries", s)
	}
	// The SDK rides out most injected faults itself; that some were injected is what counts.
	if injected := e.proxy.Calls("BatchWriteItem") - e.proxy.Forwarded("BatchWriteItem"); injected == 0 {
		t.Errorf("the proxy injected no faults")
	}
	if c := e.proxy.Calls("BatchWriteItem"); int64(c) < s.Requests {
		t.Errorf("proxy saw %d calls; Stats.Requests = %d", c, s.Requests)
	}
}

func TestIntegrationBatcherLastWriteWins(t *testing.T) {
	e := integration(t, "")
	e.proxy.SetUnprocessed(0.5)
	b := e.batcher(t, func(o *BatcherOptions) {
		o.Retry = patient
		o.FlushInterval = time.Millisecond
		o.MaxInFlight = 16
	})
	const keys, versions = 100, 20
	var wg sync.WaitGroup
	for k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range versions {
				if err := b.Put(context.Background(), event("k"+strconv.Itoa(k), v)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	closeOK(t, b)
	got := e.contents(t)
	if len(got) != keys {
		t.Fatalf("table holds %d items; want %d", len(got), keys)
	}
	for pk, item := range got {
		if v := item["version"].(*types.AttributeValueMemberN).Value; v != strconv.Itoa(versions-1) {
			t.Errorf("%s holds version %s; want the last, %d", pk, v, versions-1)
		}
	}
	if s := b.Stats(); s.Written+s.Coalesced != keys*versions {
		t.Errorf("stats = %+v", s)
	}
}

func TestIntegrationBatcherPutThenDelete(t *testing.T) {
	e := integration(t, "")
	e.proxy.SetUnprocessed(0.3)
	b := e.batcher(t, func(o *BatcherOptions) { o.Retry = patient; o.FlushInterval = time.Millisecond })
	for i := range 200 {
		k := "k" + strconv.Itoa(i)
		b.Put(context.Background(), event(k, 1))
		if i%2 == 0 {
			if err := b.Delete(context.Background(), Item{"pk": &types.AttributeValueMemberS{Value: k}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	closeOK(t, b)
	got := e.contents(t)
	if len(got) != 100 {
		t.Errorf("table holds %d items; want the 100 not deleted", len(got))
	}
	for pk := range got {
		if n, _ := strconv.Atoi(pk[1:]); n%2 == 0 {
			t.Errorf("%s was deleted after its put, but is there", pk)
		}
	}
}

func TestIntegrationBatcherRefusesBadItems(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	b := e.batcher(t) // key names and types from DescribeTable
	for name, item := range map[string]Item{
		"missing range key": {"pk": &types.AttributeValueMemberS{Value: "a"}},
		"mistyped key":      {"pk": &types.AttributeValueMemberS{Value: "a"}, "sk": &types.AttributeValueMemberS{Value: "1"}},
		"empty key":         {"pk": &types.AttributeValueMemberS{Value: ""}, "sk": &types.AttributeValueMemberN{Value: "1"}},
		"too large": {"pk": &types.AttributeValueMemberS{Value: "a"}, "sk": &types.AttributeValueMemberN{Value: "1"},
			"blob": &types.AttributeValueMemberB{Value: make([]byte, MaxItemSize)}},
	} {
		err := b.Put(context.Background(), item)
		if !errors.Is(err, ErrInvalidItem) && !errors.Is(err, ErrItemTooLarge) {
			t.Errorf("%s: Put = %v; want ErrInvalidItem or ErrItemTooLarge", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), e.table) {
			t.Errorf("%s: %q does not name the table", name, err)
		}
	}
	closeOK(t, b)
	if c := e.proxy.Calls("BatchWriteItem"); c != 0 {
		t.Errorf("BatchWriteItem calls = %d; want 0", c)
	}
	if c := e.proxy.Calls("DescribeTable"); c != 1 {
		t.Errorf("DescribeTable calls = %d; want 1", c)
	}
}

func TestIntegrationBatcherIsolatesRejectedWrite(t *testing.T) {
	e := integration(t, "")
	// Put does not parse numbers outside the key, so a malformed one passes it and the server
	// rejects the whole request it travels in.
	b := e.batcher(t)
	for i := range 100 {
		item := event("k"+strconv.Itoa(i), 1)
		if i == 42 {
			item["version"] = &types.AttributeValueMemberN{Value: "forty-two"}
		}
		if err := b.Put(context.Background(), item); err != nil {
			t.Fatal(err)
		}
	}
	err := b.Close(context.Background())
	var we *WriteError
	if !errors.As(err, &we) || len(we.Failures) != 1 {
		t.Fatalf("Close = %v; want one failure", err)
	}
	var api smithy.APIError
	if !errors.As(we.Failures[0].Err, &api) || api.ErrorCode() != "ValidationException" {
		t.Errorf("failure = %v; want the server's ValidationException", we.Failures[0].Err)
	}
	if v := we.Failures[0].Request.PutRequest.Item["version"].(*types.AttributeValueMemberN).Value; v != "forty-two" || we.Failures[0].Table != e.table {
		t.Errorf("the failure is not the bad write to %s", e.table)
	}
	if n := len(e.contents(t)); n != 99 {
		t.Errorf("table holds %d items; want the 99 others", n)
	}
	checkNoLeaks(t)
}

func TestIntegrationBatcherBackpressure(t *testing.T) {
	e := integration(t, "")
	e.proxy.AddRule(dynaflowtest.Rule{Op: "BatchWriteItem", Fault: dynaflowtest.Stall})
	b := e.batcher(t, func(o *BatcherOptions) { o.MaxBuffered = 100; o.FlushInterval = time.Millisecond })
	for i := range 100 {
		if err := b.Put(context.Background(), event("k"+strconv.Itoa(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Put(ctx, event("k100", 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put past MaxBuffered against a stalled server = %v; want context.DeadlineExceeded", err)
	}
	if s := b.Stats(); s.Buffered != 100 || s.Puts != 100 {
		t.Errorf("stats = %+v; want 100 buffered", s)
	}
	e.proxy.Release()
	closeOK(t, b)
	if n := len(e.contents(t)); n != 100 {
		t.Errorf("table holds %d items; want 100", n)
	}
}

func TestIntegrationBatcherCloseWhileServerDown(t *testing.T) {
	e := integration(t, "")
	b := e.batcher(t, func(o *BatcherOptions) { o.FlushInterval = time.Millisecond })
	e.proxy.SetDown(true)
	for i := range 200 {
		b.Put(context.Background(), event("k"+strconv.Itoa(i), 1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Close(ctx)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v with a 300ms deadline", d)
	}
	var we *WriteError
	if !errors.As(err, &we) || len(we.Failures) != 200 {
		t.Fatalf("Close = %v; want all 200 writes back", err)
	}
	for _, f := range we.Failures {
		if !errors.Is(f.Err, context.DeadlineExceeded) {
			t.Fatalf("failure %v does not wrap context.DeadlineExceeded", f.Err)
		}
	}
	checkNoLeaks(t)
	if s := b.Stats(); s.Failed != 200 || s.Buffered != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestIntegrationBatcherThrottleStorm(t *testing.T) {
	e := integration(t, "")
	// 1.5 s of nothing but throttling: far longer than the SDK's three attempts per call.
	e.proxy.AddRule(dynaflowtest.Rule{Op: "BatchWriteItem", Until: time.Now().Add(1500 * time.Millisecond), Fault: dynaflowtest.Throttle})
	// The default backoff (25ms base, 5s cap), with a budget of 15 attempts so that an unlucky
	// run of short random waits cannot exhaust it inside the storm.
	b := e.batcher(t, func(o *BatcherOptions) { o.Retry = Retry{MaxAttempts: 15} })
	for i := range 500 {
		b.Put(context.Background(), event("k"+strconv.Itoa(i), 1))
	}
	closeOK(t, b)
	if n := len(e.contents(t)); n != 500 {
		t.Errorf("table holds %d items; want 500", n)
	}
	s := b.Stats()
	if s.Throttled == 0 || s.Written != 500 {
		t.Errorf("stats = %+v", s)
	}
	// The SDK retried no throttled call on its own: each call the proxy saw is one the Batcher
	// made and judged.
	if calls := e.proxy.Calls("BatchWriteItem"); int64(calls) != s.Requests {
		t.Errorf("the proxy saw %d BatchWriteItem calls, the Batcher made %d: the SDK retried throttling itself", calls, s.Requests)
	}
}

func TestIntegrationBatcherMissingTable(t *testing.T) {
	e := integration(t, "")
	for _, keys := range [][]string{nil, {"pk"}} {
		_, err := e.dyn.NewBatcher(context.Background(), "missing-"+e.table, func(o *BatcherOptions) { o.KeyAttributes = keys })
		var rnf *types.ResourceNotFoundException
		if !errors.As(err, &rnf) || !strings.Contains(err.Error(), "missing-"+e.table) {
			t.Errorf("NewBatcher on a missing table with KeyAttributes %v = %v; want *types.ResourceNotFoundException naming the table", keys, err)
		}
	}
	checkNoLeaks(t)
}

// secondTable creates another table like e's (hash key pk, S) and returns its name.
func (e *env) secondTable(t *testing.T) string {
	t.Helper()
	name := dynamotest.TableName("dynaflow-b")
	if err := dynamotest.CreateTable(context.Background(), e.direct, name, dynamotest.Key{Name: "pk", Type: types.ScalarAttributeTypeS}, nil); err != nil {
		t.Fatal(err)
	}
	return name
}

// tableContents reads table directly: pk to the item.
func (e *env) tableContents(t *testing.T, table string) map[string]Item {
	t.Helper()
	other := *e
	other.table = table
	return other.contents(t)
}

// TestIntegrationBatcherSeveralTables writes the same keys to two tables through a proxy that
// hands back 30% of all writes: each table gets its own writes, and calls carry both. Adaptive
// sending is off: with it, each table that writes are handed back to goes at its own rate and
// fills calls by itself, so that calls carry both tables only where their turns meet.
func TestIntegrationBatcherSeveralTables(t *testing.T) {
	e := integration(t, "")
	second := e.secondTable(t)
	e.proxy.SetUnprocessed(0.3)
	b := e.batcher(t, func(o *BatcherOptions) {
		o.Tables = map[string][]string{second: {"pk"}}
		o.Retry = patient
		o.FlushInterval = time.Millisecond
		o.FixedInFlight = true
	})
	ctx := context.Background()
	for i := range 300 {
		k := "k" + strconv.Itoa(i)
		if err := b.Put(ctx, event(k, 1)); err != nil {
			t.Fatal(err)
		}
		if err := b.PutIn(ctx, second, event(k, 2)); err != nil { // the same key in the other table
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if err := b.DeleteIn(ctx, second, Item{"pk": &types.AttributeValueMemberS{Value: "k" + strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	closeOK(t, b)
	first, other := e.contents(t), e.tableContents(t, second)
	if len(first) != 300 || len(other) != 250 {
		t.Fatalf("tables hold %d and %d items; want 300 and 250", len(first), len(other))
	}
	for k, item := range first {
		if item["version"].(*types.AttributeValueMemberN).Value != "1" {
			t.Fatalf("%s in %s holds the other table's write", k, e.table)
		}
	}
	for k, item := range other {
		if item["version"].(*types.AttributeValueMemberN).Value != "2" {
			t.Fatalf("%s in %s holds the other table's write", k, second)
		}
	}
	calls, a, c := e.proxy.Calls("BatchWriteItem"), e.proxy.TableCalls(e.table), e.proxy.TableCalls(second)
	if a+c <= calls {
		t.Errorf("%d calls, %d carrying %s, %d carrying %s: no call carried both", calls, a, e.table, c, second)
	}
}

// TestIntegrationBatcherThrottledTableAlone: one table behind a proxy that hands back every one
// of its writes; the other table's writes land meanwhile, and the refused table is paused.
func TestIntegrationBatcherThrottledTableAlone(t *testing.T) {
	e := integration(t, "")
	second := e.secondTable(t)
	e.proxy.SetTableUnprocessed(second, 1)
	b := e.batcher(t, func(o *BatcherOptions) {
		o.Tables = map[string][]string{second: nil}
		o.Retry = Retry{MaxAttempts: 1000, Base: 5 * time.Millisecond, Max: 200 * time.Millisecond}
		o.FlushInterval = time.Millisecond
	})
	ctx := context.Background()
	for i := range 500 {
		if err := b.PutIn(ctx, second, event("s"+strconv.Itoa(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the second table's writes to be handed back", func() bool { return b.Stats().Retried > 0 })
	sc0, fc0 := e.proxy.TableCalls(second), e.proxy.TableCalls(e.table)
	for i := range 1000 {
		if err := b.Put(ctx, event("f"+strconv.Itoa(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the first table's writes to land", func() bool { return b.Stats().Written == 1000 })
	sc, fc := e.proxy.TableCalls(second)-sc0, e.proxy.TableCalls(e.table)-fc0
	if len(e.tableContents(t, second)) != 0 {
		t.Fatalf("the refused table holds items: the test proves nothing")
	}
	// Unpaused, the refused table rides along in about two calls for each of the other's (79 to
	// 42 when the pause was taken out); paused, it probes once per backoff, about half as often
	// as the other's calls on a fast server and a little more on a slow one (21 to 40 on moto).
	if sc > fc {
		t.Errorf("%d calls carried the refused table and %d the other meanwhile; want the refused one paused", sc, fc)
	}
	e.proxy.SetTableUnprocessed(second, 0)
	closeOK(t, b)
	if n, m := len(e.contents(t)), len(e.tableContents(t, second)); n != 1000 || m != 500 {
		t.Errorf("tables hold %d and %d; want 1000 and 500", n, m)
	}
}

func TestIntegrationBatcherKeyNamesChecked(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	_, err := e.dyn.NewBatcher(context.Background(), e.table, func(o *BatcherOptions) { o.KeyAttributes = []string{"pk"} })
	if err == nil || !strings.Contains(err.Error(), "the table's key is pk, sk") || !strings.Contains(err.Error(), e.table) {
		t.Fatalf("NewBatcher with only the hash key named = %v; want an error naming the table's key", err)
	}
	b := e.batcher(t, func(o *BatcherOptions) { o.KeyAttributes = []string{"sk", "pk"} })
	defer closeOK(t, b)
	// The types came from DescribeTable: a string sort key is refused before it is sent.
	err = b.Put(context.Background(), Item{"pk": &types.AttributeValueMemberS{Value: "a"}, "sk": &types.AttributeValueMemberS{Value: "1"}})
	if !errors.Is(err, ErrInvalidItem) {
		t.Errorf("Put with a string sort key on a numeric one = %v; want ErrInvalidItem", err)
	}
	for i := range 3 { // distinct items with one pk stay distinct
		if err := b.Put(context.Background(), Item{"pk": &types.AttributeValueMemberS{Value: "a"}, "sk": &types.AttributeValueMemberN{Value: strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); s.Written != 3 || s.Coalesced != 0 {
		t.Errorf("stats = %+v; want 3 written, none coalesced", s)
	}
}

// TestIntegrationBatcherTableGoneFailsAlone: a table deleted under the Batcher fails its own
// writes only; its failures hold their room until Flush reports them.
func TestIntegrationBatcherTableGoneFailsAlone(t *testing.T) {
	e := integration(t, "")
	second := e.secondTable(t)
	b := e.batcher(t, func(o *BatcherOptions) {
		o.Tables = map[string][]string{second: nil}
		o.MaxBuffered = 50
		o.FlushInterval = time.Millisecond
	})
	defer closeOK(t, b)
	if _, err := e.direct.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(second)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 25 {
		b.Put(ctx, event("k"+strconv.Itoa(i), 1))
		b.PutIn(ctx, second, event("k"+strconv.Itoa(i), 1))
	}
	err := b.Flush(ctx)
	var we *WriteError
	if !errors.As(err, &we) || len(we.Failures) != 25 || !errors.As(err, new(*types.ResourceNotFoundException)) {
		t.Fatalf("Flush = %v; want the 25 writes to the deleted table, wrapping ResourceNotFoundException", err)
	}
	for _, f := range we.Failures {
		if f.Table != second {
			t.Fatalf("failure for table %q; want %q", f.Table, second)
		}
	}
	// Now fill the room with failures: they hold it until Flush reports them.
	for i := range 50 {
		if err := b.PutIn(ctx, second, event("g"+strconv.Itoa(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the 50 to fail", func() bool { return b.Stats().Failed == 75 })
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.Put(short, event("more", 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put with 50 unreported failures and MaxBuffered 50 = %v; want a wait for room", err)
	}
	if err := b.Flush(ctx); !errors.As(err, &we) || len(we.Failures) != 50 {
		t.Fatalf("Flush = %v; want the 50 failures", err)
	}
	if err := b.Put(ctx, event("more", 1)); err != nil {
		t.Errorf("Put after Flush reported the failures = %v", err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(e.contents(t)); n != 26 {
		t.Errorf("%s holds %d items; want 26", e.table, n)
	}
}
