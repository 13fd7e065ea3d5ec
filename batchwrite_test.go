package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func putItem(pk string, attrs ...string) Item {
	it := Item{"pk": &types.AttributeValueMemberS{Value: pk}}
	for i := 0; i+1 < len(attrs); i += 2 {
		it[attrs[i]] = &types.AttributeValueMemberS{Value: attrs[i+1]}
	}
	return it
}

// newTestBatcher returns a Batcher on f with short backoffs, and closes it at the end of the
// test, checking that no goroutine outlives it.
func newTestBatcher(t *testing.T, f *fakeAPI, optFns ...func(*BatcherOptions)) *Batcher {
	t.Helper()
	opts := append([]func(*BatcherOptions){func(o *BatcherOptions) {
		o.KeyAttributes = []string{"pk"}
		o.FlushInterval = time.Hour // tests flush; nothing goes out on a timer unless they ask
	}}, optFns...)
	b, err := New(f, fastRetry).NewBatcher(context.Background(), "orders", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(ctx)
		checkNoLeaks(t)
		if f.violation != "" {
			t.Errorf("the fake saw: %s", f.violation)
		}
	})
	return b
}

// checkStats checks that a snapshot adds up: every accepted write is written, failed,
// coalesced or still buffered.
func checkStats(t *testing.T, s Stats) {
	t.Helper()
	if s.Puts+s.Deletes != s.Written+s.Failed+s.Coalesced+int64(s.Buffered) {
		t.Errorf("stats do not add up: %+v", s)
	}
}

func mustFlush(t *testing.T, b *Batcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestBatcherBatchesOf25(t *testing.T) {
	f := newFake(0)
	b := newTestBatcher(t, f)
	for i := range 60 {
		if err := b.Put(context.Background(), putItem("k"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	mustFlush(t, b)
	if n := len(f.storeKeys()); n != 60 {
		t.Errorf("stored %d items; want 60", n)
	}
	if c := f.count("BatchWriteItem"); c != 3 {
		t.Errorf("BatchWriteItem calls = %d; want 3 (25 + 25 + 10)", c)
	}
	s := b.Stats()
	checkStats(t, s)
	if s.Puts != 60 || s.Written != 60 || s.Requests != 3 || s.Buffered != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// waitFor polls cond for up to 10 seconds; it is a generous bound, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatcherSendsFullBatchWithoutWaiting(t *testing.T) {
	f := newFake(0)
	b := newTestBatcher(t, f) // FlushInterval is an hour
	for i := range 25 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	waitFor(t, "a full batch to go out", func() bool { return len(f.storeKeys()) == 25 })
}

func TestBatcherFlushInterval(t *testing.T) {
	f := newFake(0)
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.FlushInterval = 5 * time.Millisecond })
	b.Put(context.Background(), putItem("lonely"))
	waitFor(t, "a lone write to go out after FlushInterval", func() bool { return len(f.storeKeys()) == 1 })
}

func TestBatcherMaxInFlight(t *testing.T) {
	for _, max := range []int{1, 3, 8} {
		t.Run(strconv.Itoa(max), func(t *testing.T) {
			f := newFake(0)
			var cur, peak atomic.Int64
			release := make(chan struct{})
			f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
				n := cur.Add(1)
				defer cur.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				<-release
				return nil, nil
			}
			b := newTestBatcher(t, f, func(o *BatcherOptions) { o.MaxInFlight = max })
			for i := range 25 * (max + 2) {
				b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
			}
			waitFor(t, "calls to fill the slots", func() bool { return cur.Load() == int64(max) && b.Stats().InFlight == max })
			close(release)
			mustFlush(t, b)
			if p := peak.Load(); p != int64(max) {
				t.Errorf("peak calls in flight = %d; want %d", p, max)
			}
			if n := len(f.storeKeys()); n != 25*(max+2) {
				t.Errorf("stored %d; want %d", n, 25*(max+2))
			}
		})
	}
}

func TestBatcherRetriesUnprocessed(t *testing.T) {
	f := newFake(0)
	var calls atomic.Int64
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		// Hand back every other write of every other call.
		if calls.Add(1)%2 == 0 {
			return nil, nil
		}
		var back []types.WriteRequest
		for i, r := range in.RequestItems["orders"] {
			if i%2 == 0 {
				back = append(back, r)
			}
		}
		return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"orders": back}}, nil
	}
	b := newTestBatcher(t, f)
	for i := range 500 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	mustFlush(t, b)
	if n := len(f.storeKeys()); n != 500 {
		t.Errorf("stored %d; want 500", n)
	}
	s := b.Stats()
	checkStats(t, s)
	if s.Retried == 0 || s.Written != 500 || s.Failed != 0 {
		t.Errorf("stats = %+v; want retries, 500 written, none failed", s)
	}
}

func TestBatcherAttemptsPerWrite(t *testing.T) {
	f := newFake(0)
	stuck := fakeKey(putItem("stuck"))
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		for _, r := range in.RequestItems["orders"] {
			if fakeKey(writeItem(r)) == stuck {
				return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"orders": {r}}}, nil
			}
		}
		return nil, nil
	}
	var reported []error
	var mu sync.Mutex
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.Retry = Retry{MaxAttempts: 4, Base: time.Millisecond, Max: time.Millisecond}
		o.OnError = func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }
	})
	b.Put(context.Background(), putItem("stuck"))
	for i := range 100 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatalf("Flush = %v; want nil: with OnError set, failures go to OnError only", err)
	}
	b.Close(context.Background())
	mu.Lock()
	defer mu.Unlock()
	var we *WriteError
	if len(reported) != 1 || !errors.As(reported[0], &we) || len(we.Failures) != 1 {
		t.Fatalf("OnError got %v; want one *WriteError with one failure", reported)
	}
	fl := we.Failures[0]
	if fakeKey(writeItem(fl.Request)) != stuck || !errors.Is(fl.Err, ErrUnprocessed) || !errors.Is(reported[0], ErrUnprocessed) || fl.Table != "orders" {
		t.Errorf("failure = %+v; want the stuck write to orders, failing with ErrUnprocessed", fl)
	}
	if !strings.Contains(fl.Err.Error(), "orders") || !strings.Contains(fl.Err.Error(), "4 attempts") {
		t.Errorf("failure error %q does not name the table and the attempts", fl.Err)
	}
	f.mu.Lock()
	sent := f.sent[stuck]
	f.mu.Unlock()
	if sent != 4 {
		t.Errorf("the stuck write was sent %d times; want MaxAttempts = 4", sent)
	}
	if n := len(f.storeKeys()); n != 100 {
		t.Errorf("stored %d; want the 100 others", n)
	}
	s := b.Stats()
	checkStats(t, s)
	if s.Failed != 1 || s.Written != 100 {
		t.Errorf("stats = %+v", s)
	}
}

func TestBatcherIsolatesInvalidWrites(t *testing.T) {
	f := newFake(0)
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		for _, r := range in.RequestItems["orders"] {
			if r.PutRequest != nil && r.PutRequest.Item["bad"] != nil {
				return nil, errValidation
			}
		}
		return nil, nil
	}
	b := newTestBatcher(t, f)
	for i := range 100 {
		it := putItem("k" + strconv.Itoa(i))
		if i == 37 || i == 80 {
			it["bad"] = &types.AttributeValueMemberS{Value: "x"}
		}
		b.Put(context.Background(), it)
	}
	err := b.Flush(context.Background())
	var we *WriteError
	if !errors.As(err, &we) || len(we.Failures) != 2 {
		t.Fatalf("Flush = %v; want two failures", err)
	}
	for _, fl := range we.Failures {
		if fl.Request.PutRequest.Item["bad"] == nil {
			t.Errorf("a good write failed: %v", fl.Err)
		}
		var api interface{ ErrorCode() string }
		if !errors.As(fl.Err, &api) || api.ErrorCode() != "ValidationException" {
			t.Errorf("failure %v does not wrap the ValidationException", fl.Err)
		}
	}
	if n := len(f.storeKeys()); n != 98 {
		t.Errorf("stored %d; want the 98 good writes", n)
	}
}

func TestBatcherErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantFailed int
		throttled  bool
	}{
		{"throttled then fine", errThrottle, 0, true},
		{"server error then fine", errServer, 0, false},
		{"missing table fails the request", errNotFound, 25, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(0)
			f.script("BatchWriteItem", tt.err)
			if tt.throttled {
				f.script("BatchWriteItem", tt.err)
			}
			b := newTestBatcher(t, f, func(o *BatcherOptions) { o.MaxInFlight = 1 })
			for i := range 50 {
				b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
			}
			err := b.Flush(context.Background())
			s := b.Stats()
			checkStats(t, s)
			if int(s.Failed) != tt.wantFailed || len(f.storeKeys()) != 50-tt.wantFailed {
				t.Errorf("failed %d, stored %d; want %d failed (err %v)", s.Failed, len(f.storeKeys()), tt.wantFailed, err)
			}
			if tt.wantFailed > 0 {
				var rnf *types.ResourceNotFoundException
				if !errors.As(err, &rnf) {
					t.Errorf("Flush = %v; want it to wrap *types.ResourceNotFoundException", err)
				}
			}
			if tt.throttled != (s.Throttled == 2) || (!tt.throttled && s.Throttled != 0) {
				t.Errorf("Throttled = %d", s.Throttled)
			}
		})
	}
}

// blockingFake returns a fake whose BatchWriteItem waits until release is closed or the call's
// ctx ends.
func blockingFake() (*fakeAPI, chan struct{}) {
	f := newFake(0)
	release := make(chan struct{})
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		select {
		case <-release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f, release
}

func TestBatcherLastWriteWins(t *testing.T) {
	f, release := blockingFake()
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.MaxInFlight = 4; o.FlushInterval = time.Millisecond })
	ctx := context.Background()
	b.Put(ctx, putItem("k", "v", "1"))
	waitFor(t, "v1 in flight", func() bool { return b.Stats().InFlight == 1 })
	b.Put(ctx, putItem("k", "v", "2"))
	b.Put(ctx, putItem("k", "v", "3")) // replaces v2, which never went out
	b.Put(ctx, putItem("other"))
	close(release)
	mustFlush(t, b)
	got := f.store[fakeKey(putItem("k"))]["v"].(*types.AttributeValueMemberS).Value
	if got != "3" {
		t.Errorf("k = v%s; want v3", got)
	}
	s := b.Stats()
	checkStats(t, s)
	if s.Coalesced != 1 || s.Written != 3 {
		t.Errorf("stats = %+v; want 1 coalesced, 3 written", s)
	}
}

// A write that comes in after a Flush and replaces one the Flush waits for takes its place: Flush
// returns only once the newer write has landed, whether the owner counted the Flush's writes
// before the newer write came in or after.
func TestBatcherFlushWaitsForTheWriteThatReplacesOne(t *testing.T) {
	f, release := blockingFake()
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.FlushInterval = time.Millisecond })
	ctx := context.Background()
	b.Put(ctx, putItem("k", "v", "1"))
	waitFor(t, "v1 in flight", func() bool { return b.Stats().InFlight == 1 })
	b.Put(ctx, putItem("k", "v", "2")) // waits behind v1
	flushed := make(chan error, 1)
	go func() { flushed <- b.Flush(ctx) }()
	waitFor(t, "the owner to count the Flush, v1 and v2 before v3 comes", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.flushes == 1
	})
	b.Put(ctx, putItem("k", "v", "3")) // replaces v2, newer than the Flush
	close(release)
	if err := <-flushed; err != nil {
		t.Fatalf("Flush: %v", err)
	}
	f.mu.Lock()
	got := f.store[fakeKey(putItem("k"))]["v"].(*types.AttributeValueMemberS).Value
	f.mu.Unlock()
	if got != "3" {
		t.Errorf("k = v%s when Flush returned; want v3", got)
	}
	if s := b.Stats(); s.Coalesced != 1 || s.Written != 2 || s.Buffered != 0 {
		t.Errorf("stats = %+v; want 1 coalesced, 2 written, none buffered", s)
	}
}

func TestBatcherOlderRetryNeverOverwritesNewer(t *testing.T) {
	f := newFake(0)
	first := make(chan struct{})
	goOn := make(chan struct{})
	var n atomic.Int64
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if n.Add(1) == 1 {
			// v1 is in flight; let the test queue v2, then hand v1 back unprocessed.
			close(first)
			<-goOn
			return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}, nil
		}
		return nil, nil
	}
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.FlushInterval = time.Millisecond })
	b.Put(context.Background(), putItem("k", "v", "1"))
	<-first
	b.Put(context.Background(), putItem("k", "v", "2"))
	close(goOn)
	mustFlush(t, b)
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.store[fakeKey(putItem("k"))]["v"].(*types.AttributeValueMemberS).Value; got != "2" {
		t.Errorf("k = v%s; want v2", got)
	}
	if len(f.writeLog) != 1 {
		t.Errorf("writes applied: %v; want only v2's", f.writeLog)
	}
	if f.sent[fakeKey(putItem("k"))] != 2 {
		t.Errorf("k sent %d times; want 2 (v1 once, v2 once)", f.sent[fakeKey(putItem("k"))])
	}
}

func TestBatcherNewerReplacesRetryInBackoff(t *testing.T) {
	f := newFake(0)
	var n atomic.Int64
	k := fakeKey(putItem("k"))
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if n.Add(1) == 1 { // hand back v1 alone: the others land, so the table is not paused
			for _, r := range in.RequestItems["orders"] {
				if fakeKey(writeItem(r)) == k {
					return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"orders": {r}}}, nil
				}
			}
		}
		return nil, nil
	}
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.Retry = Retry{MaxAttempts: 5, Base: time.Hour, Max: time.Hour} // v1 waits "forever"
		o.FlushInterval = time.Millisecond
	})
	b.Put(context.Background(), putItem("k", "v", "1"))
	for i := range MaxBatchWriteRequests - 1 {
		b.Put(context.Background(), putItem("other"+strconv.Itoa(i)))
	}
	waitFor(t, "v1 to come back unprocessed", func() bool { return b.Stats().Retried == 1 })
	b.Put(context.Background(), putItem("k", "v", "2"))
	mustFlush(t, b) // returns without waiting out v1's hour: v2 replaced it
	if got := f.store[fakeKey(putItem("k"))]["v"].(*types.AttributeValueMemberS).Value; got != "2" {
		t.Errorf("k = v%s; want v2", got)
	}
	if s := b.Stats(); s.Coalesced != 1 || s.Written != MaxBatchWriteRequests || s.Buffered != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestBatcherPutThenDelete(t *testing.T) {
	f := newFake(0)
	b := newTestBatcher(t, f)
	for i := range 30 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
		b.Delete(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	b.Put(context.Background(), putItem("kept"))
	mustFlush(t, b)
	if got := f.storeKeys(); len(got) != 1 || got[0] != fakeKey(putItem("kept")) {
		t.Errorf("stored %d keys; want only the kept one", len(got))
	}
}

func TestBatcherNumbersByValue(t *testing.T) {
	f := newFake(0)
	f.describe = &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeN}},
	}}
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.KeyAttributes = []string{"pk"} })
	for _, n := range []string{"1", "1.0", "10e-1", "+1.000"} {
		if err := b.Put(context.Background(), Item{"pk": &types.AttributeValueMemberN{Value: n}, "v": &types.AttributeValueMemberS{Value: n}}); err != nil {
			t.Fatal(err)
		}
	}
	mustFlush(t, b)
	if got := b.Stats().Coalesced; got != 3 {
		t.Errorf("Coalesced = %d; want 3", got)
	}
	if f.store[fakeKey(nKey("1"))]["v"].(*types.AttributeValueMemberS).Value != "+1.000" {
		t.Errorf("the last write did not win")
	}
}

func TestBatcherRefusesBadWrites(t *testing.T) {
	f := newFake(0)
	f.describe = &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN},
		},
	}}
	b, err := New(f).NewBatcher(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	big := strings.Repeat("x", MaxItemSize)
	tests := []struct {
		name   string
		item   Item
		delete bool
		want   error
		words  []string
	}{
		{"nil item", nil, false, ErrInvalidItem, []string{"orders", "nil"}},
		{"missing hash key", Item{"sk": n("1")}, false, ErrInvalidItem, []string{"orders", `"pk"`, "missing"}},
		{"missing range key", Item{"pk": s("a")}, false, ErrInvalidItem, []string{`"sk"`, "missing"}},
		{"wrong key type", Item{"pk": s("a"), "sk": s("1")}, false, ErrInvalidItem, []string{`"sk"`, "type S", "N"}},
		{"key not scalar", Item{"pk": &types.AttributeValueMemberL{}, "sk": n("1")}, false, ErrInvalidItem, []string{`"pk"`, "type L"}},
		{"empty string key", Item{"pk": s(""), "sk": n("1")}, false, ErrInvalidItem, []string{`"pk"`, "empty string"}},
		{"bad number key", Item{"pk": s("a"), "sk": n("one")}, false, ErrInvalidItem, []string{`"sk"`}},
		{"hash key too long", Item{"pk": s(strings.Repeat("k", 2049)), "sk": n("1")}, false, ErrInvalidItem, []string{`"pk"`, "2048"}},
		{"nil value", Item{"pk": s("a"), "sk": n("1"), "v": nil}, false, ErrInvalidItem, []string{`"v"`, "nil"}},
		{"empty set", Item{"pk": s("a"), "sk": n("1"), "tags": &types.AttributeValueMemberSS{}}, false, ErrInvalidItem, []string{`"tags"`, "empty set"}},
		{"too large", Item{"pk": s("a"), "sk": n("1"), "blob": s(big)}, false, ErrItemTooLarge, []string{"orders", "409600"}},
		{"delete with extra attribute", Item{"pk": s("a"), "sk": n("1"), "v": s("x")}, true, ErrInvalidItem, []string{`"v"`, "not part of the key"}},
		{"delete nil key", nil, true, ErrInvalidItem, []string{"orders"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.delete {
				err = b.Delete(context.Background(), tt.item)
			} else {
				err = b.Put(context.Background(), tt.item)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v; want %v", err, tt.want)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "xxxxxxxx") {
				t.Errorf("err carries an attribute value")
			}
		})
	}
	if st := b.Stats(); st.Puts != 0 || st.Deletes != 0 || st.Buffered != 0 {
		t.Errorf("bad writes were accepted: %+v", st)
	}
	if err := b.Put(context.Background(), Item{"pk": s("a"), "sk": n("1"), "blob": s(big[:MaxItemSize-20])}); err != nil {
		t.Errorf("an item just under the limit was refused: %v", err)
	}
	if c := f.count("DescribeTable"); c != 1 {
		t.Errorf("DescribeTable calls = %d; want 1", c)
	}
}

func TestBatcherBackpressure(t *testing.T) {
	for _, bytesLimit := range []bool{false, true} {
		t.Run(fmt.Sprintf("bytes=%v", bytesLimit), func(t *testing.T) {
			f, release := blockingFake()
			item := putItem("k0", "pad", strings.Repeat("p", 1000))
			size := ItemSize(item)
			b := newTestBatcher(t, f, func(o *BatcherOptions) {
				if bytesLimit {
					o.MaxBufferedBytes = 10 * size
				} else {
					o.MaxBuffered = 10
				}
			})
			for i := range 10 {
				if err := b.Put(context.Background(), putItem("k"+strconv.Itoa(i), "pad", strings.Repeat("p", 1000))); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if err := b.Put(ctx, putItem("k10", "pad", strings.Repeat("p", 1000))); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Put over the limit = %v; want context.DeadlineExceeded", err)
			}
			if s := b.Stats(); s.Puts != 10 || s.Buffered != 10 {
				t.Errorf("stats = %+v; want 10 accepted and buffered", s)
			}
			// A Put that waits gets in once room frees.
			done := make(chan error, 1)
			go func() { done <- b.Put(context.Background(), putItem("k11")) }()
			close(release)
			if err := <-done; err != nil {
				t.Errorf("waiting Put = %v", err)
			}
			mustFlush(t, b)
			if n := len(f.storeKeys()); n != 11 {
				t.Errorf("stored %d; want 11", n)
			}
		})
	}
}

func TestBatcherFlushContextEnds(t *testing.T) {
	f, release := blockingFake()
	b := newTestBatcher(t, f)
	for i := range 30 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v; want context.DeadlineExceeded", err)
	}
	close(release)
	mustFlush(t, b)
	if n := len(f.storeKeys()); n != 30 {
		t.Errorf("stored %d after the second Flush; want 30 (nothing lost)", n)
	}
}

func TestBatcherFlushWaitsForEarlierWritesOnly(t *testing.T) {
	f := newFake(0)
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.MaxInFlight = 2 })
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // a steady stream of later writes that Flush must not wait for
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b.Put(context.Background(), putItem("later"+strconv.Itoa(i)))
		}
	}()
	for i := range 100 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	mustFlush(t, b)
	f.mu.Lock()
	for i := range 100 {
		if _, ok := f.store[fakeKey(putItem("k"+strconv.Itoa(i)))]; !ok {
			t.Errorf("k%d not written when Flush returned", i)
		}
	}
	f.mu.Unlock()
	close(stop)
	wg.Wait()
}

func TestBatcherCloseWritesEverything(t *testing.T) {
	f := newFake(0)
	b := newTestBatcher(t, f)
	for i := range 1000 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.storeKeys()); n != 1000 {
		t.Errorf("stored %d; want 1000", n)
	}
	checkNoLeaks(t)
	if err := b.Put(context.Background(), putItem("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v; want ErrClosed", err)
	}
	if err := b.Delete(context.Background(), putItem("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete after Close = %v; want ErrClosed", err)
	}
	if err := b.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v; want ErrClosed", err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

func TestBatcherCloseDeadlineReturnsEveryWrite(t *testing.T) {
	f := newFake(0)
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, errServer // the server is down: every call fails, retryably
	}
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.Retry = Retry{MaxAttempts: 1000, Base: time.Millisecond, Max: 20 * time.Millisecond}
	})
	for i := range 300 {
		b.Put(context.Background(), putItem("k"+strconv.Itoa(i)))
	}
	b.Delete(context.Background(), putItem("gone"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Close(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 100ms deadline", d)
	}
	var we *WriteError
	if !errors.As(err, &we) || len(we.Failures) != 301 {
		t.Fatalf("Close = %v; want a *WriteError with all 301 writes", err)
	}
	for _, fl := range we.Failures {
		if !errors.Is(fl.Err, context.DeadlineExceeded) {
			t.Fatalf("failure %v does not wrap context.DeadlineExceeded", fl.Err)
		}
	}
	var ise *types.InternalServerError
	if !errors.As(err, &ise) {
		t.Errorf("Close = %v; want the last error (InternalServerError) wrapped too", err)
	}
	checkNoLeaks(t)
	s := b.Stats()
	checkStats(t, s)
	if s.Failed != 301 || s.Buffered != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestBatcherCloseUnblocksWaitingPut(t *testing.T) {
	f, release := blockingFake()
	defer close(release)
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.MaxBuffered = 1 })
	b.Put(context.Background(), putItem("a"))
	done := make(chan error, 1)
	go func() { done <- b.Put(context.Background(), putItem("b")) }()
	waitFor(t, "the second Put to wait", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.line) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	b.Close(ctx)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting Put after Close = %v; want ErrClosed", err)
	}
}

// unprocessedEveryThird makes every third BatchWriteItem call on f hand its whole batch back
// unprocessed, and lets the others through.
func unprocessedEveryThird(f *fakeAPI) {
	var calls atomic.Int64
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if calls.Add(1)%3 == 0 {
			return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}, nil
		}
		return nil, nil
	}
}

func TestBatcherConcurrentPutsAndStats(t *testing.T) {
	f := newFake(0)
	unprocessedEveryThird(f)
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.MaxBuffered = 200
		o.FlushInterval = time.Millisecond
		o.Retry = Retry{MaxAttempts: 50, Base: time.Millisecond, Max: 2 * time.Millisecond}
	})
	const producers, each = 16, 500
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var snapshots atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			checkStats(t, b.Stats())
			snapshots.Add(1)
		}
	}()
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Keys overlap across producers, so writes to one key race.
				k := "k" + strconv.Itoa((p*each+i)%3000)
				var err error
				if i%10 == 9 {
					err = b.Delete(context.Background(), putItem(k))
				} else {
					err = b.Put(context.Background(), putItem(k, "from", strconv.Itoa(p)))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(stop)
	s := b.Stats()
	checkStats(t, s)
	if s.Puts+s.Deletes != producers*each || s.Failed != 0 || s.Buffered != 0 || s.InFlight != 0 {
		t.Errorf("stats = %+v", s)
	}
	if snapshots.Load() == 0 {
		t.Errorf("no snapshots taken")
	}
}

// TestBatcherRoundsOfWritesUnderRetries writes and deletes the same keys round after round while
// a third of the writes come back unprocessed: each key must end with its last write.
func TestBatcherRoundsOfWritesUnderRetries(t *testing.T) {
	f := newFake(0)
	unprocessedEveryThird(f)
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.FlushInterval = time.Millisecond
		o.Retry = Retry{MaxAttempts: 50, Base: time.Millisecond, Max: 2 * time.Millisecond}
	})
	want := map[string]string{}
	for round := range 5 {
		for k := range 60 {
			key := "k" + strconv.Itoa(k)
			switch {
			case (k+round)%7 == 0:
				b.Delete(context.Background(), putItem(key))
				delete(want, fakeKey(putItem(key)))
			default:
				b.Put(context.Background(), putItem(key, "round", strconv.Itoa(round)))
				want[fakeKey(putItem(key))] = strconv.Itoa(round)
			}
		}
	}
	mustFlush(t, b)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.store) != len(want) {
		t.Errorf("store holds %d keys; want %d", len(f.store), len(want))
	}
	for k, round := range want {
		if got := f.store[k]; got == nil || got["round"].(*types.AttributeValueMemberS).Value != round {
			t.Errorf("a key does not hold its last write (round %s)", round)
		}
	}
	checkStats(t, b.Stats())
}

// landAll writes everything it is sent, and keeps nothing.
type landAll struct{ API }

func (landAll) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func (landAll) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return newFake(0).DescribeTable(ctx, in)
}

// TestBatcherKeepsNoItemWhenIdle checks that a Batcher that has written everything holds no
// reference to any item it wrote: the buffers its calls reuse are scrubbed once it is idle.
func TestBatcherKeepsNoItemWhenIdle(t *testing.T) {
	ctx := context.Background()
	b, err := New(landAll{}).NewBatcher(ctx, "orders", func(o *BatcherOptions) {
		o.KeyAttributes = []string{"pk"}
		o.MaxInFlight = 2
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(ctx); err != nil {
			t.Error(err)
		}
		checkNoLeaks(t)
	}()
	var refs []weak.Pointer[types.AttributeValueMemberS]
	for i := range 3*MaxBatchWriteRequests + 7 {
		v := &types.AttributeValueMemberS{Value: "body"}
		refs = append(refs, weak.Make(v))
		if err := b.Put(ctx, Item{"pk": &types.AttributeValueMemberS{Value: strconv.Itoa(i)}, "body": v}); err != nil {
			t.Fatal(err)
		}
	}
	mustFlush(t, b)
	waitFor(t, "the Batcher to let go of every item it wrote", func() bool {
		runtime.GC()
		for _, r := range refs {
			if r.Value() != nil {
				return false
			}
		}
		return true
	})
}
