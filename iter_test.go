package dynaflow

import (
	"context"
	"errors"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
)

// nums returns the "n" attribute of each item.
func nums(t *testing.T, seq iter.Seq2[Item, error]) []int {
	t.Helper()
	var out []int
	for item, err := range seq {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		n, _ := strconv.Atoi(item["n"].(*types.AttributeValueMemberN).Value)
		out = append(out, n)
	}
	return out
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// reader is Query or Scan, for tests that hold for both.
type reader struct {
	name string
	op   string
	seq  func(c *Client, ctx context.Context, start Item, limit *int32) iter.Seq2[Item, error]
}

var readers = []reader{
	{"Query", "Query", func(c *Client, ctx context.Context, start Item, limit *int32) iter.Seq2[Item, error] {
		return c.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("orders"), ExclusiveStartKey: start, Limit: limit})
	}},
	{"Scan", "Scan", func(c *Client, ctx context.Context, start Item, limit *int32) iter.Seq2[Item, error] {
		return c.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("orders"), ExclusiveStartKey: start, Limit: limit})
	}},
	{"ParallelScan1", "Scan", func(c *Client, ctx context.Context, start Item, limit *int32) iter.Seq2[Item, error] {
		return c.ParallelScan(ctx, &dynamodb.ScanInput{TableName: aws.String("orders"), Limit: limit}, 1)
	}},
}

func TestReadAllPages(t *testing.T) {
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			f := newFake(10)
			got := nums(t, r.seq(New(f), context.Background(), nil, nil))
			if diff := cmp.Diff(upTo(10), got); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
			if got, want := f.count(r.op), 4; got != want {
				t.Errorf("%s calls = %d; want %d (pages of 3)", r.op, got, want)
			}
		})
	}
}

func TestReadWalksPastEmptyPages(t *testing.T) {
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			f := newFake(7)
			f.empty = true
			got := nums(t, r.seq(New(f), context.Background(), nil, nil))
			if diff := cmp.Diff(upTo(7), got); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
			if got, want := f.count(r.op), 6; got != want {
				t.Errorf("%s calls = %d; want %d (3 empty pages and 3 full)", r.op, got, want)
			}
		})
	}
}

func TestReadLimitIsPerPage(t *testing.T) {
	f := newFake(10)
	got := nums(t, New(f).Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String("t"), Limit: aws.Int32(2)}))
	if len(got) != 10 {
		t.Fatalf("got %d items; want all 10 (Limit is per page)", len(got))
	}
	if got, want := f.count("Query"), 5; got != want {
		t.Errorf("Query calls = %d; want %d", got, want)
	}
}

func TestReadBreakStopsRequests(t *testing.T) {
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			f := newFake(30)
			n := 0
			for _, err := range r.seq(New(f), context.Background(), nil, nil) {
				if err != nil {
					t.Fatal(err)
				}
				n++
				if n == 4 {
					break
				}
			}
			// Items 0-2 come on page 1, item 3 on page 2: two calls. A parallel scan's worker may
			// have read one page ahead while the loop ran.
			want := 2
			if strings.HasPrefix(r.name, "Parallel") {
				want = 3
			}
			after := f.count(r.op)
			if after > want {
				t.Errorf("%s calls = %d; want at most %d", r.op, after, want)
			}
			checkNoLeaks(t)
			if got := f.count(r.op); got != after {
				t.Errorf("%d %s calls after the loop ended", got-after, r.op)
			}
		})
	}
}

func TestReadEarlyStopWithYieldFalse(t *testing.T) {
	f := newFake(30)
	calls := 0
	New(f).Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t")})(func(Item, error) bool {
		calls++
		return false
	})
	if calls != 1 || f.count("Scan") != 1 {
		t.Errorf("yield called %d times, Scan %d times; want 1 and 1", calls, f.count("Scan"))
	}
}

func TestReadErrorYieldedOnceAfterItems(t *testing.T) {
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			f := newFake(10)
			f.script(r.op, nil, errNotFound)
			var items, errs int
			var last error
			for item, err := range r.seq(New(f), context.Background(), nil, nil) {
				if err != nil {
					errs++
					last = err
					if item != nil {
						t.Errorf("an item came with the error")
					}
					continue
				}
				if errs > 0 {
					t.Errorf("an item after the error")
				}
				items++
			}
			if items != 3 || errs != 1 {
				t.Fatalf("got %d items and %d errors; want 3 and 1", items, errs)
			}
			var rnf *types.ResourceNotFoundException
			if !errors.As(last, &rnf) {
				t.Errorf("errors.As(%v, *ResourceNotFoundException) = false", last)
			}
			if !strings.Contains(last.Error(), "dynaflow: "+strings.ToLower(r.op)+" orders") {
				t.Errorf("error %q does not name the operation and table", last)
			}
			if got := f.count(r.op); got != 2 {
				t.Errorf("%s calls = %d; want 2 (not-found is not retried)", r.op, got)
			}
		})
	}
}

func TestReadRetries(t *testing.T) {
	quota := ratelimit.QuotaExceededError{Available: 0, Requested: 5}
	tests := []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   bool
	}{
		{"throttled five times", []error{errThrottle, errThrottle, errThrottle, errThrottle, errThrottle}, 4 + 5, false},
		{"server errors", []error{errServer, errServer}, 4 + 2, false},
		{"retry quota exceeded", []error{quota, quota}, 4 + 2, false},
		{"throttled past MaxAttempts", slices.Repeat([]error{errThrottle}, 10), 10, true},
		{"validation not retried", []error{errValidation}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(10)
			f.script("Query", tt.errs...)
			var got []int
			var gotErr error
			for item, err := range New(f, fastRetry).Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String("t")}) {
				if err != nil {
					gotErr = err
					break
				}
				n, _ := strconv.Atoi(item["n"].(*types.AttributeValueMemberN).Value)
				got = append(got, n)
			}
			if (gotErr != nil) != tt.wantErr {
				t.Fatalf("error = %v; want error: %v", gotErr, tt.wantErr)
			}
			if !tt.wantErr && !slices.Equal(got, upTo(10)) {
				t.Errorf("items = %v; want 0..9", got)
			}
			if c := f.count("Query"); c != tt.wantCalls {
				t.Errorf("Query calls = %d; want %d", c, tt.wantCalls)
			}
		})
	}
}

func TestReadBackoffEndsWithContext(t *testing.T) {
	f := newFake(10)
	f.script("Query", slices.Repeat([]error{errThrottle}, 10)...)
	ctx, cancel := context.WithCancel(context.Background())
	c := New(f, func(o *Options) { o.Retry = Retry{Base: time.Hour, Max: time.Hour} })
	go func() {
		for f.count("Query") == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	for _, err := range c.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("t")}) {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v; want context.Canceled", err)
		}
		var pte *types.ProvisionedThroughputExceededException
		if !errors.As(err, &pte) {
			t.Errorf("err = %v; want it to wrap the throttling error too", err)
		}
	}
}

func TestReadRewalkAndInputUntouched(t *testing.T) {
	for _, r := range []string{"Query", "Scan"} {
		t.Run(r, func(t *testing.T) {
			f := newFake(10)
			c := New(f)
			start := idxKey(4)
			qin := &dynamodb.QueryInput{TableName: aws.String("t"), ExclusiveStartKey: start}
			sin := &dynamodb.ScanInput{TableName: aws.String("t"), ExclusiveStartKey: start}
			seq := c.Query(context.Background(), qin)
			if r == "Scan" {
				seq = c.Scan(context.Background(), sin)
			}
			first, second := nums(t, seq), nums(t, seq)
			if diff := cmp.Diff([]int{4, 5, 6, 7, 8, 9}, first); diff != "" {
				t.Errorf("first walk (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(first, second); diff != "" {
				t.Errorf("second walk differs (-first +second):\n%s", diff)
			}
			if idx(qin.ExclusiveStartKey) != 4 || idx(sin.ExclusiveStartKey) != 4 || qin.Limit != nil || sin.Segment != nil {
				t.Errorf("the caller's input was modified")
			}
		})
	}
}

func TestQueryPagesExposeOutputsAndResume(t *testing.T) {
	f := newFake(10)
	c := New(f)
	var resume Item
	var counts []int32
	for out, err := range c.QueryPages(context.Background(), &dynamodb.QueryInput{TableName: aws.String("t")}) {
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, out.Count)
		resume = out.LastEvaluatedKey
		break
	}
	if len(counts) != 1 || counts[0] != 3 || resume == nil {
		t.Fatalf("first page: counts %v, LastEvaluatedKey %v", counts, resume)
	}
	got := nums(t, c.Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String("t"), ExclusiveStartKey: resume}))
	if diff := cmp.Diff([]int{3, 4, 5, 6, 7, 8, 9}, got); diff != "" {
		t.Errorf("resumed walk (-want +got):\n%s", diff)
	}
	var pages, last int
	for out, err := range c.ScanPages(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t")}) {
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if out.LastEvaluatedKey == nil {
			last++
		}
	}
	if pages != 4 || last != 1 {
		t.Errorf("ScanPages: %d pages, %d without LastEvaluatedKey; want 4 and 1", pages, last)
	}
}

func TestNilInputs(t *testing.T) {
	c := New(newFake(1))
	for name, seq := range map[string]iter.Seq2[Item, error]{
		"Query":        c.Query(context.Background(), nil),
		"Scan":         c.Scan(context.Background(), nil),
		"ParallelScan": c.ParallelScan(context.Background(), nil, 2),
	} {
		n := 0
		for _, err := range seq {
			n++
			if err == nil {
				t.Errorf("%s(nil): got an item", name)
			}
		}
		if n != 1 {
			t.Errorf("%s(nil): %d yields; want 1 error", name, n)
		}
	}
}

func TestParallelScan(t *testing.T) {
	for _, segs := range []int{1, 2, 4, 16} {
		t.Run(strconv.Itoa(segs), func(t *testing.T) {
			f := newFake(100)
			in := &dynamodb.ScanInput{TableName: aws.String("t")}
			got := nums(t, New(f).ParallelScan(context.Background(), in, segs))
			slices.Sort(got)
			if diff := cmp.Diff(upTo(100), got); diff != "" {
				t.Errorf("items, each once (-want +got):\n%s", diff)
			}
			if in.Segment != nil || in.TotalSegments != nil {
				t.Errorf("the caller's input was modified")
			}
			checkNoLeaks(t)
		})
	}
}

func TestParallelScanBadSegments(t *testing.T) {
	for _, segs := range []int{0, -1, MaxSegments + 1} {
		f := newFake(10)
		var errs []error
		for _, err := range New(f).ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t")}, segs) {
			errs = append(errs, err)
		}
		if len(errs) != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), "segments") {
			t.Errorf("segments %d: yields %v; want one error about segments", segs, errs)
		}
		if f.count("Scan") != 0 {
			t.Errorf("segments %d: %d Scan calls; want 0", segs, f.count("Scan"))
		}
	}
}

func TestParallelScanBreakCancelsWorkers(t *testing.T) {
	f := newFake(1000)
	for range New(f).ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t")}, 8) {
		break
	}
	checkNoLeaks(t)
	// Each of the 8 workers can have read at most the page it was holding and one more that
	// was in flight when the loop broke.
	if got := f.count("Scan"); got > 16 {
		t.Errorf("Scan calls after an early break = %d; want at most 16", got)
	}
}

func TestParallelScanBoundedBuffering(t *testing.T) {
	f := newFake(3000)
	var scans atomic.Int64
	f.scanHook = func(context.Context, *dynamodb.ScanInput) { scans.Add(1) }
	next, stop := iter.Pull2(New(f).ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t")}, 4))
	defer stop()
	if _, err, ok := next(); !ok || err != nil {
		t.Fatalf("first item: ok %v, err %v", ok, err)
	}
	// The consumer now stops reading. Wait until the workers have blocked: the count stays
	// the same across checks; then it must be small, far from the 1000 pages of the table.
	prev := int64(-1)
	for i := 0; i < 100; i++ {
		time.Sleep(5 * time.Millisecond)
		if n := scans.Load(); n == prev {
			break
		} else {
			prev = n
		}
	}
	if n := scans.Load(); n > 3*4 {
		t.Errorf("%d pages read while the consumer waited; want at most 12 (bounded buffering)", n)
	}
	stop()
	checkNoLeaks(t)
}

func TestParallelScanErrorCancelsOthers(t *testing.T) {
	f := newFake(300)
	f.script("Scan", nil, nil, nil, errNotFound)
	var errs, items int
	for _, err := range New(f).ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("orders")}, 4) {
		if err != nil {
			errs++
			var rnf *types.ResourceNotFoundException
			if !errors.As(err, &rnf) || !strings.Contains(err.Error(), "orders segment") {
				t.Errorf("err = %v; want a ResourceNotFoundException naming the segment", err)
			}
			continue
		}
		items++
	}
	if errs != 1 {
		t.Errorf("%d errors; want 1", errs)
	}
	checkNoLeaks(t)
}

func TestParallelScanContextCancelled(t *testing.T) {
	f := newFake(300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errs int
	n := 0
	for _, err := range New(f).ParallelScan(ctx, &dynamodb.ScanInput{TableName: aws.String("t")}, 4) {
		if err != nil {
			errs++
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v; want context.Canceled", err)
			}
			continue
		}
		if n++; n == 5 {
			cancel()
		}
	}
	if errs != 1 {
		t.Errorf("%d errors after cancel; want 1", errs)
	}
	checkNoLeaks(t)
}

func sKey(s string) Item               { return Item{"pk": &types.AttributeValueMemberS{Value: s}} }
func nKey(n string) Item               { return Item{"pk": &types.AttributeValueMemberN{Value: n}} }
func keysOf(ks ...Item) iter.Seq[Item] { return slices.Values(ks) }

func TestBatchGetChunksAndDedupes(t *testing.T) {
	f := newFake(0)
	var keys []Item
	for i := range 250 {
		k := sKey("k" + strconv.Itoa(i))
		f.store[fakeKey(k)] = maps.Clone(k)
		keys = append(keys, k, k) // every key twice
	}
	keys = append(keys, sKey("missing"))
	got := map[string]int{}
	for item, err := range New(f).BatchGet(context.Background(), "t", slices.Values(keys)) {
		if err != nil {
			t.Fatal(err)
		}
		got[item["pk"].(*types.AttributeValueMemberS).Value]++
	}
	if len(got) != 250 {
		t.Errorf("got %d distinct items; want 250", len(got))
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("item %s yielded %d times", k, n)
		}
	}
	if c := f.count("BatchGetItem"); c != 3 {
		t.Errorf("BatchGetItem calls = %d; want 3 (100 + 100 + 51 distinct keys)", c)
	}
	for _, in := range f.lastGets {
		if n := len(in.RequestItems["t"].Keys); n > MaxBatchGetKeys {
			t.Errorf("a request held %d keys", n)
		}
	}
}

func TestBatchGetNumbersByValue(t *testing.T) {
	f := newFake(0)
	f.store[fakeKey(nKey("1"))] = nKey("1")
	n := 0
	for _, err := range New(f).BatchGet(context.Background(), "t", keysOf(nKey("1"), nKey("1.0"), nKey("10e-1"), nKey("+1"))) {
		if err != nil {
			t.Fatal(err) // the fake rejects duplicates as DynamoDB does
		}
		n++
	}
	if n != 1 {
		t.Errorf("got %d items; want 1", n)
	}
}

func TestBatchGetUnprocessedAndOptions(t *testing.T) {
	f := newFake(0)
	for i := range 50 {
		f.store[fakeKey(sKey(strconv.Itoa(i)))] = sKey(strconv.Itoa(i))
	}
	var mu sync.Mutex
	round := 0
	f.getHook = func(ctx context.Context, in *dynamodb.BatchGetItemInput) (*dynamodb.BatchGetItemOutput, error) {
		mu.Lock()
		defer mu.Unlock()
		round++
		ka := in.RequestItems["t"]
		if round > 3 || len(ka.Keys) == 1 {
			return nil, nil
		}
		// Serve the first key only; hand the rest back.
		back := ka
		back.Keys = ka.Keys[1:]
		return &dynamodb.BatchGetItemOutput{
			Responses:       map[string][]Item{"t": {ka.Keys[0]}},
			UnprocessedKeys: map[string]types.KeysAndAttributes{"t": back},
		}, nil
	}
	var keys []Item
	for i := range 50 {
		keys = append(keys, sKey(strconv.Itoa(i)))
	}
	got := 0
	seq := New(f, fastRetry).BatchGet(context.Background(), "t", slices.Values(keys), func(ka *types.KeysAndAttributes) {
		ka.ProjectionExpression = aws.String("#p")
		ka.ExpressionAttributeNames = map[string]string{"#p": "pk"}
		ka.ConsistentRead = aws.Bool(true)
	})
	for _, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != 50 {
		t.Errorf("got %d items; want 50", got)
	}
	if c := f.count("BatchGetItem"); c != 4 {
		t.Errorf("BatchGetItem calls = %d; want 4", c)
	}
	for _, in := range f.lastGets {
		ka := in.RequestItems["t"]
		if aws.ToString(ka.ProjectionExpression) != "#p" || !aws.ToBool(ka.ConsistentRead) || ka.ExpressionAttributeNames["#p"] != "pk" {
			t.Errorf("request without the options: %+v", ka)
		}
	}
}

func TestBatchGetGivesUpWithoutProgress(t *testing.T) {
	f := newFake(0)
	f.getHook = func(ctx context.Context, in *dynamodb.BatchGetItemInput) (*dynamodb.BatchGetItemOutput, error) {
		return &dynamodb.BatchGetItemOutput{UnprocessedKeys: in.RequestItems}, nil
	}
	var errs []error
	for _, err := range New(f, fastRetry).BatchGet(context.Background(), "t", keysOf(sKey("a"), sKey("b"))) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrUnprocessed) || !strings.Contains(errs[0].Error(), "batch get t") {
		t.Fatalf("yields %v; want one ErrUnprocessed naming the table", errs)
	}
	if c := f.count("BatchGetItem"); c != 10 {
		t.Errorf("BatchGetItem calls = %d; want MaxAttempts = 10", c)
	}
}

func TestBatchGetIsLazy(t *testing.T) {
	f := newFake(0)
	for i := range 1000 {
		f.store[fakeKey(sKey(strconv.Itoa(i)))] = sKey(strconv.Itoa(i))
	}
	pulled := 0
	keys := func(yield func(Item) bool) {
		for i := range 1000 {
			pulled++
			if !yield(sKey(strconv.Itoa(i))) {
				return
			}
		}
	}
	for range New(f).BatchGet(context.Background(), "t", keys) {
		break
	}
	if pulled != MaxBatchGetKeys {
		t.Errorf("pulled %d keys before the first item; want %d", pulled, MaxBatchGetKeys)
	}
	if c := f.count("BatchGetItem"); c != 1 {
		t.Errorf("BatchGetItem calls = %d; want 1", c)
	}
}

func TestBatchGetBadKey(t *testing.T) {
	f := newFake(0)
	var errs []error
	for _, err := range New(f).BatchGet(context.Background(), "t", keysOf(sKey(""))) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), `"pk"`) {
		t.Errorf("yields %v; want one error naming the attribute", errs)
	}
}

type order struct {
	PK string `dynamodbav:"pk"`
	N  int    `dynamodbav:"n"`
}

func TestDecode(t *testing.T) {
	f := newFake(5)
	var got []int
	for o, err := range Decode[order](New(f).Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String("t")})) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, o.N)
	}
	if diff := cmp.Diff(upTo(5), got); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}

	f.items[2]["n"] = &types.AttributeValueMemberS{Value: "not a number"}
	var n, errs int
	for _, err := range Decode[order](New(f).Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String("t")})) {
		if err != nil {
			errs++
			continue
		}
		n++
	}
	if n != 2 || errs != 1 {
		t.Errorf("got %d values and %d errors; want 2 and 1", n, errs)
	}
}
