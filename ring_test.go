package dynaflow

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestWriteRingSize(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, ringSegmentLen}, {1, ringSegmentLen}, {ringSegmentLen, ringSegmentLen},
		{ringSegmentLen + 1, 2 * ringSegmentLen}, {10800, 16384}, {1 << 30, ringMax},
	} {
		if got := newWriteRing(c.n).size; got != uint64(c.want) {
			t.Errorf("newWriteRing(%d).size = %d; want %d", c.n, got, c.want)
		}
	}
}

// TestWriteRingReusesOnlyEndedWrites takes every write of a ring, ends them out of order, and
// checks that a write is handed out again only once every claim before it has ended, and that
// then it is the same write.
func TestWriteRingReusesOnlyEndedWrites(t *testing.T) {
	r := newWriteRing(0)
	size := int(r.size)
	first := make([]*write, size)
	for i := range size {
		w, claim := r.get()
		if claim != uint64(i)+1 {
			t.Fatalf("claim %d numbered %d", i+1, claim)
		}
		first[i] = w
		for j := range i {
			if first[j] == w {
				t.Fatalf("claims %d and %d got the same write", j+1, i+1)
			}
		}
	}
	// The ring has gone round: until claim 1 has ended, every write comes from the heap.
	if w, claim := r.get(); claim != 0 || w == first[0] {
		t.Fatalf("a full ring handed out claim %d", claim)
	}
	// End claims 2 to 70: the horizon stays at claim 1, which has not ended.
	for c := 2; c <= 70; c++ {
		r.end(uint64(c))
	}
	r.advance()
	if h := r.horizon.Load(); h != 0 {
		t.Fatalf("horizon %d with claim 1 outstanding; want 0", h)
	}
	if _, claim := r.get(); claim != 0 {
		t.Fatalf("got claim %d while claim 1 is outstanding", claim)
	}
	// Ending claim 1 moves the horizon past 70 (and past a whole word of claims at once).
	r.end(1)
	r.advance()
	if h := r.horizon.Load(); h != 70 {
		t.Fatalf("horizon %d; want 70", h)
	}
	// The heap writes above took no claim: the next claim reuses claim 1's write, and so on up
	// to claim 70's.
	for i := range 70 {
		w, claim := r.get()
		if want := uint64(size + i + 1); claim != want {
			t.Fatalf("claim %d; want %d", claim, want)
		}
		if w != first[i] {
			t.Fatalf("claim %d did not reuse the write of claim %d", claim, i+1)
		}
	}
	if _, claim := r.get(); claim != 0 {
		t.Fatalf("got claim %d while claim 71 is outstanding", claim)
	}
}

// checkRingEnded checks that every write b took from its ring has ended: none was lost track of.
// It holds once Close has returned, if nothing was Put after Close.
func checkRingEnded(t *testing.T, b *Batcher) {
	t.Helper()
	if h, c := b.ring.horizon.Load(), b.ring.claims.Load(); h != c {
		t.Errorf("%d of %d ring claims never ended", c-h, c)
	}
}

// TestBatcherRingGoesRoundAStuckWrite keeps one write coming back unprocessed while many times
// the ring's size of other writes go through: the ring hands out heap writes meanwhile, every
// write lands with its own item, and once the stuck write lands the ring is used again.
func TestBatcherRingGoesRoundAStuckWrite(t *testing.T) {
	f := newFake(0)
	stuck := fakeKey(putItem("stuck"))
	var release atomic.Bool
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if release.Load() {
			return nil, nil
		}
		for _, r := range in.RequestItems["orders"] {
			if fakeKey(r.PutRequest.Item) == stuck {
				return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"orders": {r}}}, nil
			}
		}
		return nil, nil
	}
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.MaxBuffered = 50
		o.MaxInFlight = 1
		o.FlushInterval = time.Millisecond
		o.Retry = Retry{MaxAttempts: 1 << 20, Base: time.Millisecond, Max: time.Millisecond}
	})
	ctx := context.Background()
	if err := b.Put(ctx, putItem("stuck", "v", "stuck")); err != nil {
		t.Fatal(err)
	}
	n := 4 * int(b.ring.size)
	for i := range n {
		if err := b.Put(ctx, putItem("k"+strconv.Itoa(i), "v", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the other writes to land", func() bool { return b.Stats().Written == int64(n) })
	if h, c := b.ring.horizon.Load(), b.ring.claims.Load(); h != 0 || c != b.ring.size {
		t.Errorf("with the first write stuck: horizon %d, claims %d; want 0 and %d", h, c, b.ring.size)
	}
	release.Store(true)
	mustFlush(t, b)
	// The ring is free again: the next writes take claims.
	for i := range 10 {
		if err := b.Put(ctx, putItem("after"+strconv.Itoa(i), "v", "after")); err != nil {
			t.Fatal(err)
		}
	}
	mustFlush(t, b)
	if c := b.ring.claims.Load(); c != b.ring.size+10 {
		t.Errorf("claims %d after the stuck write landed; want %d", c, b.ring.size+10)
	}
	f.mu.Lock()
	for i := range n {
		k := "k" + strconv.Itoa(i)
		if got := f.store[fakeKey(putItem(k))]; got == nil || got["v"].(*types.AttributeValueMemberS).Value != strconv.Itoa(i) {
			t.Errorf("%s holds %v; want its own item", k, got)
		}
	}
	if got := f.store[stuck]; got == nil || got["v"].(*types.AttributeValueMemberS).Value != "stuck" {
		t.Errorf("stuck holds %v", got)
	}
	f.mu.Unlock()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkRingEnded(t, b)
}

// replacedRetries puts a full batch of writes that comes back unprocessed, waits until they wait
// out their backoff (of up to wait), and replaces each with a newer write while it waits, so that
// the owner's delays still refer to the replaced writes.
func replacedRetries(t *testing.T, wait time.Duration) (*fakeAPI, *Batcher) {
	f := newFake(0)
	var first atomic.Bool
	f.writeHook = func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		if !first.Swap(true) {
			return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}, nil
		}
		return nil, nil
	}
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.MaxBuffered = 50
		o.MaxInFlight = 1
		o.Retry = Retry{MaxAttempts: 5, Base: wait, Max: wait}
	})
	ctx := context.Background()
	for i := range MaxBatchWriteRequests { // a full batch goes out at once
		b.Put(ctx, putItem("r"+strconv.Itoa(i), "v", "old"))
	}
	waitFor(t, "the first batch to come back unprocessed", func() bool { return b.Stats().Retried == MaxBatchWriteRequests })
	for i := range MaxBatchWriteRequests {
		b.Put(ctx, putItem("r"+strconv.Itoa(i), "v", "new"))
	}
	return f, b
}

// checkItems checks that each of the keys prefix0 to prefix(n-1) holds the item v wants for it.
func checkItems(t *testing.T, f *fakeAPI, prefix string, n int, v func(i int) string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		k := prefix + strconv.Itoa(i)
		if got := f.store[fakeKey(putItem(k))]; got == nil || got["v"].(*types.AttributeValueMemberS).Value != v(i) {
			t.Errorf("%s holds %v; want v=%s", k, got, v(i))
		}
	}
}

// TestBatcherRingKeepsReplacedRetries replaces writes while they wait out an hour's backoff and
// then sends several rings' worth of other writes: the replaced writes' claims hold the ring's
// horizon, so their writes are never reused while delays refers to them (every later write comes
// from the heap once the ring has gone round), and every write lands with its own item.
func TestBatcherRingKeepsReplacedRetries(t *testing.T) {
	f, b := replacedRetries(t, time.Hour)
	ctx := context.Background()
	n := 3 * int(b.ring.size)
	for i := range n {
		b.Put(ctx, putItem("k"+strconv.Itoa(i), "v", strconv.Itoa(i)))
	}
	mustFlush(t, b) // does not wait for the replaced writes' backoff
	checkItems(t, f, "r", MaxBatchWriteRequests, func(int) string { return "new" })
	checkItems(t, f, "k", n, strconv.Itoa)
	s := b.Stats()
	checkStats(t, s)
	if s.Coalesced != MaxBatchWriteRequests || s.Written != int64(n+MaxBatchWriteRequests) {
		t.Errorf("stats = %+v; want %d coalesced, %d written", s, MaxBatchWriteRequests, n+MaxBatchWriteRequests)
	}
	if h, c := b.ring.horizon.Load(), b.ring.claims.Load(); h != 0 || c != b.ring.size {
		t.Errorf("horizon %d, claims %d; want 0 and %d: the replaced writes must hold the ring", h, c, b.ring.size)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkRingEnded(t, b) // Close ends the claims of writes still waiting in delays
}

// TestBatcherRingEndsReplacedRetriesWhenTheirWaitEnds checks that the claims of replaced writes
// end when their backoff does, so that the ring is used again.
func TestBatcherRingEndsReplacedRetriesWhenTheirWaitEnds(t *testing.T) {
	f, b := replacedRetries(t, 50*time.Millisecond)
	mustFlush(t, b)
	checkItems(t, f, "r", MaxBatchWriteRequests, func(int) string { return "new" })
	waitFor(t, "every claim to end", func() bool { return b.ring.horizon.Load() == b.ring.claims.Load() })
}

// TestBatcherRingEndsRefusedWrites checks that a write Put did not accept (its ctx ended while
// it waited for room) gives its claim back.
func TestBatcherRingEndsRefusedWrites(t *testing.T) {
	f, unblock := blockingFake()
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.MaxBuffered = 3
		o.MaxInFlight = 1
	})
	ctx := context.Background()
	for i := range 3 {
		if err := b.Put(ctx, putItem("k"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := b.Put(short, putItem("refused")); err != context.DeadlineExceeded {
		t.Fatalf("Put = %v; want DeadlineExceeded", err)
	}
	close(unblock)
	mustFlush(t, b)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkRingEnded(t, b)
	if c := b.ring.claims.Load(); c != 4 {
		t.Errorf("claims %d; want 4", c)
	}
}
