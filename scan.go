package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
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
	req := *in
	return func(yield func(*dynamodb.ScanOutput, error) bool) {
		c.scanPages(ctx, &req, "scan", aws.ToString(req.TableName), yield)
	}
}

// scanPages walks the pages of req, which it does not modify; errors name op and name.
func (c *Client) scanPages(ctx context.Context, req *dynamodb.ScanInput, op, name string, yield func(*dynamodb.ScanOutput, error) bool) {
	fetch := func(ctx context.Context, start Item) (*dynamodb.ScanOutput, Item, error) {
		r := *req
		r.ExclusiveStartKey = start
		out, err := c.api.Scan(ctx, &r)
		if err != nil {
			return nil, nil, err
		}
		return out, out.LastEvaluatedKey, nil
	}
	walk(ctx, c.opts.Retry, op, name, req.ExclusiveStartKey, fetch, yield)
}

// ParallelScan scans the table with segments workers at once, one per segment (DynamoDB's
// Segment and TotalSegments; in's own are ignored and never modified), and yields items as they
// arrive, each exactly once, in no particular order. segments must be between 1 and MaxSegments.
// Each worker is a goroutine with one Scan request at a time, so segments is also how many
// requests run at once: choose it for the throughput the table and the client can take, not for
// the table's size.
//
// Buffering is bounded: each worker holds at most the page it has just read until the loop takes
// it, so a slow loop slows the workers instead of filling memory. When the loop breaks, ctx ends,
// or any segment fails, the workers are cancelled, and ParallelScan waits for all of them before
// it returns. The first error is yielded once, as "dynaflow: scan TABLE segment N/M: ...".
func (c *Client) ParallelScan(ctx context.Context, in *dynamodb.ScanInput, segments int) iter.Seq2[Item, error] {
	if in == nil {
		return errSeq[Item](errors.New("dynaflow: parallel scan: nil *dynamodb.ScanInput"))
	}
	table := aws.ToString(in.TableName)
	if segments < 1 || segments > MaxSegments {
		return errSeq[Item](fmt.Errorf("dynaflow: parallel scan %s: segments is %d; it must be from 1 to %d", table, segments, MaxSegments))
	}
	req := *in
	req.ExclusiveStartKey = nil // a start key belongs to one segment; each segment starts at its own beginning
	return func(yield func(Item, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait() // runs after cancel: no worker outlives the loop
		defer cancel()

		pages := make(chan []Item)
		exits := make(chan error, segments) // each worker's last word: nil, or why it stopped
		for s := range segments {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := req
				r.Segment, r.TotalSegments = aws.Int32(int32(s)), aws.Int32(int32(segments))
				name := fmt.Sprintf("%s segment %d/%d", table, s, segments)
				var failed error
				c.scanPages(ctx, &r, "scan", name, func(out *dynamodb.ScanOutput, err error) bool {
					if err != nil {
						failed = err
						return false
					}
					if len(out.Items) == 0 {
						return true
					}
					select {
					case pages <- out.Items:
						return true
					case <-ctx.Done():
						failed = fmt.Errorf("dynaflow: scan %s: %w", name, ctx.Err())
						return false
					}
				})
				exits <- failed
			}()
		}
		for running := segments; running > 0; {
			select {
			case items := <-pages:
				for _, item := range items {
					if !yield(item, nil) {
						return
					}
				}
			case err := <-exits:
				running--
				if err != nil {
					// The first failure ends the scan; the deferred cancel stops the other segments.
					yield(nil, err)
					return
				}
			}
		}
	}
}
