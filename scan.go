package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// MaxSegments is the largest number of segments DynamoDB accepts in a parallel scan.
const MaxSegments = 1_000_000

// Scan returns every item that in selects, page after page. It behaves as Query does: it starts
// at in.ExclusiveStartKey, never modifies in, stops all requests on break, retries throttled
// pages, and yields an error once, as "dynaflow: scan TABLE: ...", to end the sequence.
func (c *Client) Scan(ctx context.Context, in *dynamodb.ScanInput) iter.Seq2[Item, error] {
	return flatten(c.ScanPages(ctx, in), func(out *dynamodb.ScanOutput) []Item { return out.Items })
}

// ScanPages is Scan a page at a time: it yields each *dynamodb.ScanOutput whole, empty pages
// included.
func (c *Client) ScanPages(ctx context.Context, in *dynamodb.ScanInput) iter.Seq2[*dynamodb.ScanOutput, error] {
	if in == nil {
		return errSeq[*dynamodb.ScanOutput](errors.New("dynaflow: scan: nil *dynamodb.ScanInput"))
	}
	if aws.ToString(in.TableName) == "" {
		return errSeq[*dynamodb.ScanOutput](errors.New("dynaflow: scan: TableName is empty"))
	}
	req := *in
	return func(yield func(*dynamodb.ScanOutput, error) bool) {
		c.scanPages(ctx, &req, "scan "+aws.ToString(req.TableName), yield)
	}
}

// scanPages walks the pages of req, which it does not modify; errors say what.
func (c *Client) scanPages(ctx context.Context, req *dynamodb.ScanInput, what string, yield func(*dynamodb.ScanOutput, error) bool) {
	fetch := func(ctx context.Context, start Item) (*dynamodb.ScanOutput, Item, bool, error) {
		r := *req
		r.ExclusiveStartKey = start
		r.ReturnConsumedCapacity = consumedDefault(r.ReturnConsumedCapacity)
		r.Limit = c.pageLimit(r.Limit, aws.ToBool(r.ConsistentRead))
		var out *dynamodb.ScanOutput
		err := c.read(ctx, func() (items []Item, cc []types.ConsumedCapacity, err error) {
			if out, err = c.api.Scan(ctx, &r); err != nil {
				return nil, nil, err
			}
			return out.Items, consumedOne(out.ConsumedCapacity), nil
		})
		if err != nil {
			return nil, nil, false, err
		}
		return out, out.LastEvaluatedKey, len(out.LastEvaluatedKey) > 0, nil
	}
	walk(ctx, c.opts.Retry, what, req.ExclusiveStartKey, fetch, yield)
}

// ParallelScanOptions choose which segments of a parallel scan run here, and where each starts.
type ParallelScanOptions struct {
	Segments  []int        // the segments to run, each in [0, segments); default: all of them
	StartKeys map[int]Item // a segment's start: the LastEvaluatedKey of its last page from an earlier run
}

// ScanPage is one page of one segment of a parallel scan. Output.LastEvaluatedKey nil: that
// segment is done.
type ScanPage struct {
	Segment, TotalSegments int
	Output                 *dynamodb.ScanOutput
}

// ParallelScan scans the table with segments workers at once, one per segment (DynamoDB's
// Segment and TotalSegments; in's own, and its ExclusiveStartKey, are ignored and never
// modified), and yields items as they arrive, each exactly once, in no particular order.
// segments must be between 1 and MaxSegments. Each worker is a goroutine with one Scan request at
// a time, so the number of segments run is also how many requests run at once: choose it for the
// throughput the table and the client can take, not for the table's size.
//
// optFns choose the segments to run and where each starts (ParallelScanOptions), so that several
// processes can share one scan and an interrupted one can resume; to record where each segment
// is, use ParallelScanPages.
//
// Buffering is bounded: each worker holds at most the page it has just read until the loop takes
// it, so a slow loop slows the workers instead of filling memory. When the loop breaks, ctx ends,
// or any segment fails, the workers are cancelled, and ParallelScan waits for all of them before
// it returns. The first error is yielded once, as "dynaflow: scan TABLE segment N/M: ...".
func (c *Client) ParallelScan(ctx context.Context, in *dynamodb.ScanInput, segments int, optFns ...func(*ParallelScanOptions)) iter.Seq2[Item, error] {
	return flatten(c.ParallelScanPages(ctx, in, segments, optFns...), func(p ScanPage) []Item { return p.Output.Items })
}

// ParallelScanPages is ParallelScan a page at a time: it yields every page of every segment run,
// empty ones included, each segment's pages in order. A segment's state after a page is that
// page's LastEvaluatedKey (nil: the segment is done). A caller that records it after handling each
// page can stop anywhere (break, crash, ctx) and resume later with the unfinished segments in
// Segments and their recorded keys in StartKeys: the rest of the scan yields every remaining item
// exactly once.
//
// Segments out of range or given twice, and StartKeys for segments not run, are errors, yielded
// once before any request.
func (c *Client) ParallelScanPages(ctx context.Context, in *dynamodb.ScanInput, segments int, optFns ...func(*ParallelScanOptions)) iter.Seq2[ScanPage, error] {
	if in == nil {
		return errSeq[ScanPage](errors.New("dynaflow: parallel scan: nil *dynamodb.ScanInput"))
	}
	table := aws.ToString(in.TableName)
	if table == "" {
		return errSeq[ScanPage](errors.New("dynaflow: parallel scan: TableName is empty"))
	}
	if segments < 1 || segments > MaxSegments {
		return errSeq[ScanPage](fmt.Errorf("dynaflow: parallel scan %s: segments is %d; it must be from 1 to %d", table, segments, MaxSegments))
	}
	var o ParallelScanOptions
	for _, fn := range optFns {
		fn(&o)
	}
	run, err := segmentsToRun(o, segments)
	if err != nil {
		return errSeq[ScanPage](fmt.Errorf("dynaflow: parallel scan %s: %w", table, err))
	}
	req := *in
	return func(yield func(ScanPage, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait() // runs after cancel: no worker outlives the loop
		defer cancel()

		pages := make(chan ScanPage)
		exits := make(chan error, len(run)) // each worker's last word: nil, or why it stopped
		for _, s := range run {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := req
				r.Segment, r.TotalSegments = aws.Int32(int32(s)), aws.Int32(int32(segments))
				r.ExclusiveStartKey = o.StartKeys[s]
				what := fmt.Sprintf("scan %s segment %d/%d", table, s, segments)
				var failed error
				c.scanPages(ctx, &r, what, func(out *dynamodb.ScanOutput, err error) bool {
					if err != nil {
						failed = err
						return false
					}
					select {
					case pages <- ScanPage{Segment: s, TotalSegments: segments, Output: out}:
						return true
					case <-ctx.Done():
						failed = fmt.Errorf("dynaflow: %s: %w", what, ctx.Err())
						return false
					}
				})
				exits <- failed
			}()
		}
		for running := len(run); running > 0; {
			select {
			case p := <-pages:
				if !yield(p, nil) {
					return
				}
			case err := <-exits:
				running--
				if err != nil {
					// The first failure ends the scan; the deferred cancel stops the other segments.
					yield(ScanPage{}, err)
					return
				}
			}
		}
	}
}

// segmentsToRun returns the segments o asks for, checked against the scan's total.
func segmentsToRun(o ParallelScanOptions, total int) ([]int, error) {
	run := o.Segments
	if run == nil {
		run = make([]int, total)
		for i := range run {
			run[i] = i
		}
	}
	given := make(map[int]bool, len(run))
	for _, s := range run {
		if s < 0 || s >= total {
			return nil, fmt.Errorf("segment %d is out of range: segments are 0 to %d", s, total-1)
		}
		if given[s] {
			return nil, fmt.Errorf("segment %d is given twice", s)
		}
		given[s] = true
	}
	for s := range o.StartKeys {
		if !given[s] {
			return nil, fmt.Errorf("a start key is given for segment %d, which is not run", s)
		}
	}
	return run, nil
}
