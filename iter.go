// Package dynaflow makes Amazon DynamoDB pleasant and safe for high-volume Go services, on top of
// the AWS SDK for Go v2.
//
// Reads are Go iterators: Query, Scan, ParallelScan and BatchGet walk every page, retry throttled
// pages with backoff, end on the first error, and stop sending requests as soon as the loop
// breaks:
//
//	for item, err := range dyn.Query(ctx, in) {
//		if err != nil {
//			return err
//		}
//		use(item)
//	}
//
// Writes go through a Batcher, which packs them into BatchWriteItem calls of up to 25, sends
// several at once, resubmits what DynamoDB hands back unprocessed, and reports every write that
// could not land.
package dynaflow

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item is one DynamoDB item, or a key, as the SDK represents it.
type Item = map[string]types.AttributeValue

// API is the part of *dynamodb.Client that dynaflow uses.
type API interface {
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	ListTables(ctx context.Context, in *dynamodb.ListTablesInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ListTablesOutput, error)
	ListTagsOfResource(ctx context.Context, in *dynamodb.ListTagsOfResourceInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ListTagsOfResourceOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Options configure a Client.
type Options struct {
	// Retry says how pages, keys and writes that DynamoDB throttles or hands back unprocessed are
	// retried. Zero fields take Retry's defaults.
	Retry Retry
	// MaxWriteUnits caps the write capacity units per second that this Client's Batchers consume,
	// all tables together; 0: no cap. MaxReadUnits does the same for every read (Query, Scan,
	// ParallelScan, BatchGet) made through this Client. Each call is charged before it is sent
	// by an estimate (writes: each item's size rounded up to 1 KB, once more for each global
	// secondary index; reads: one unit) and settled after it with what DynamoDB reported, so the
	// cap holds on average and, once past the first second, no one-second window goes more than
	// 5% above it. Waiting for the cap ends with the call's ctx (Close's, for a Batcher).
	MaxWriteUnits, MaxReadUnits float64
}

// Client reads from and writes to DynamoDB through an API, usually a *dynamodb.Client. A Client
// is safe for concurrent use; its iterators may be ranged over from many goroutines at once.
type Client struct {
	api  API
	opts Options

	readMu   sync.Mutex
	reads    ReadStats
	readCost float64 // the moving average of what a read cost under MaxReadUnits; 0 before the first
	itemCost float64 // the same for an item of a read that returned items

	writeCap, readCap *meter // nil without a cap
}

// ReadStats are a Client's counters for its reads (Query, Scan, ParallelScan, BatchGet) since
// New: requests sent, items returned, requests throttled, and the read capacity units DynamoDB
// reported consumed, tables and indexes together. Every read asks for ReturnConsumedCapacity
// INDEXES unless its input chose otherwise; what servers other than DynamoDB report varies (moto
// reports 1 a call).
type ReadStats struct {
	Requests, Items, Throttled int64
	ReadUnits                  float64
}

// ReadStats returns a snapshot of the Client's read counters.
func (c *Client) ReadStats() ReadStats {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.reads
}

// read makes one read request through MaxReadUnits's cap: it waits for what reads have cost
// lately (one unit at first), sends the request with call, which returns the items that came back
// and the capacity consumed, settles the cap with that, and counts it in ReadStats. Waiting for
// the expected cost before the call, not only for the debt after it, keeps reads going at once
// (ParallelScan's segments) from overshooting the cap together.
func (c *Client) read(ctx context.Context, call func() ([]Item, []types.ConsumedCapacity, error)) error {
	var taken float64
	if c.readCap != nil {
		c.readMu.Lock()
		expect := max(1, c.readCost)
		c.readMu.Unlock()
		var err error
		if taken, err = c.readCap.take(ctx, expect); err != nil {
			return err
		}
	}
	items, consumed, err := call()
	used, cost := units(consumed), 0.0
	switch {
	case c.readCap == nil:
	case err != nil:
		c.readCap.settle(taken, 0) // a failed call consumes nothing
	default:
		// What DynamoDB reported, but never below what its rules charge at the least for the items
		// returned: 4 KB a unit over the page, halved for an eventually consistent read. (A server
		// that reports less, as moto does, would otherwise lift the cap.)
		size := 0
		for _, it := range items {
			size += ItemSize(it)
		}
		cost = math.Max(used, math.Max(1, math.Ceil(float64(size)/4096))/2)
		c.readCap.settle(taken, cost)
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if cost > 0 {
		c.readCost = smooth(c.readCost, cost)
		if len(items) > 0 {
			c.itemCost = smooth(c.itemCost, cost/float64(len(items)))
		}
	}
	c.reads.Requests++
	c.reads.Items += int64(len(items))
	if _, throttled := classify(err); throttled {
		c.reads.Throttled++
	}
	c.reads.ReadUnits += used
	return err
}

// firstPageLimit is the Limit of a capped read's page before any item's cost is known.
const firstPageLimit = 100

// pageLimit is the Limit a Query or Scan page goes with: the caller's, when set, and none without
// MaxReadUnits. Under the cap, a page of 1 MB, as DynamoDB's pages may be, costs up to 128 read
// units (256 consistent); when that is more than a second of the cap, such a page would leave the
// cap seconds in debt, so the page asks for as many items as half a second of the cap pays for,
// by what an item has cost lately (firstPageLimit before that is known).
func (c *Client) pageLimit(limit *int32, consistent bool) *int32 {
	if limit != nil || c.readCap == nil {
		return limit
	}
	full := 128.0
	if consistent {
		full *= 2
	}
	perSecond := float64(c.readCap.lim.Limit())
	if full <= perSecond {
		return nil
	}
	c.readMu.Lock()
	item := c.itemCost
	c.readMu.Unlock()
	if item == 0 {
		return aws.Int32(firstPageLimit)
	}
	return aws.Int32(int32(max(1, min(perSecond/2/item, math.MaxInt32))))
}

// consumedDefault is what a read asks for when its input leaves ReturnConsumedCapacity unset.
func consumedDefault(v types.ReturnConsumedCapacity) types.ReturnConsumedCapacity {
	if v == "" {
		return types.ReturnConsumedCapacityIndexes
	}
	return v
}

// New returns a Client that sends its requests through api, usually a *dynamodb.Client made with
// dynamodb.NewFromConfig.
func New(api API, optFns ...func(*Options)) *Client {
	var o Options
	for _, fn := range optFns {
		fn(&o)
	}
	o.Retry = o.Retry.withDefaults()
	return &Client{api: api, opts: o, writeCap: newMeter(o.MaxWriteUnits), readCap: newMeter(o.MaxReadUnits)}
}

// Decode turns a sequence of items into a sequence of values of type T, decoded with
// attributevalue.UnmarshalMap. An error from seq, or a decode error, is yielded once and ends the
// sequence.
func Decode[T any](seq iter.Seq2[Item, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for item, err := range seq {
			var v T
			if err != nil {
				yield(v, err)
				return
			}
			if err := attributevalue.UnmarshalMap(item, &v); err != nil {
				yield(v, decodeErr[T](item, err))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
	}
}

// decodeErr says which Go type item did not decode into and, when one attribute alone fails to
// decode, which: the SDK's error does not say.
func decodeErr[T any](item Item, err error) error {
	var v T
	for _, name := range slices.Sorted(maps.Keys(item)) {
		var one T
		if attributevalue.UnmarshalMap(Item{name: item[name]}, &one) != nil {
			return fmt.Errorf("dynaflow: decode %T: attribute %q: %w", v, name, err)
		}
	}
	return fmt.Errorf("dynaflow: decode %T: %w", v, err)
}

// page is one call of a paged read: it sends the request that starts at cursor start and returns
// the output, the cursor of the next page, and whether there is one.
type page[O, C any] func(ctx context.Context, start C) (out O, next C, more bool, err error)

// paged is one page's output with the cursor of the page after it.
type paged[O, C any] struct {
	out  O
	next C
	more bool
}

// walk fetches page after page from start until a page comes back without a next one, and
// yields each output, empty pages included. A failed call is retried under r when the error is
// retryable; any other error, or the last one, is yielded once, as "dynaflow: WHAT: ...". It
// returns at once, sending nothing more, when yield returns false.
func walk[O, C any](ctx context.Context, r Retry, what string, start C, fetch page[O, C], yield func(O, error) bool) {
	for {
		p, err := withRetry(ctx, r, func(ctx context.Context) (paged[O, C], error) {
			out, next, more, err := fetch(ctx, start)
			return paged[O, C]{out, next, more}, err
		})
		if err != nil {
			var zero O
			yield(zero, fmt.Errorf("dynaflow: %s: %w", what, err))
			return
		}
		if !yield(p.out, nil) || !p.more {
			return
		}
		start = p.next
	}
}

// withRetry runs fn until it succeeds, fails with an error that is not retryable, or has failed
// r.MaxAttempts times, waiting a full-jitter backoff between attempts on a timer against ctx.
// The error it returns is fn's last; when ctx ends during a wait it wraps both.
func withRetry[T any](ctx context.Context, r Retry, fn func(context.Context) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := fn(ctx)
		if err == nil {
			return v, nil
		}
		if retryable, _ := classify(err); !retryable || attempt >= r.MaxAttempts {
			if retryable {
				err = fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			return v, err
		}
		if werr := sleep(ctx, r.backoff(attempt)); werr != nil {
			return v, fmt.Errorf("%w (while waiting to retry: %w)", werr, err)
		}
	}
}

// flatten turns a sequence of pages into a sequence of the items on them.
func flatten[O, T any](pages iter.Seq2[O, error], items func(O) []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for out, err := range pages {
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range items(out) {
				if !yield(item, nil) {
					return
				}
			}
		}
	}
}

// errSeq returns a sequence that yields err once.
func errSeq[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

// consumedOne returns a page's ConsumedCapacity as a list, empty when there is none.
func consumedOne(cc *types.ConsumedCapacity) []types.ConsumedCapacity {
	if cc == nil {
		return nil
	}
	return []types.ConsumedCapacity{*cc}
}
