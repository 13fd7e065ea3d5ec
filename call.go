package dynaflow

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// call is one BatchWriteItem call, with the calls it split into after a ValidationException.
// The owner reuses calls, and with them the buffers the request is built in: the SDK keeps
// nothing of its input once the call returns.
type call struct {
	writes    []*write
	throttled int64
	requests  int64

	reqs  []types.WriteRequest
	puts  []types.PutRequest // reqs[i].PutRequest points into puts: never grown past its capacity
	dels  []types.DeleteRequest
	items map[string][]types.WriteRequest // the request's RequestItems
}

// newCall returns an empty call with room for a full batch.
func newCall() *call {
	return &call{
		writes: make([]*write, 0, MaxBatchWriteRequests),
		reqs:   make([]types.WriteRequest, 0, MaxBatchWriteRequests),
		puts:   make([]types.PutRequest, 0, MaxBatchWriteRequests),
		dels:   make([]types.DeleteRequest, 0, MaxBatchWriteRequests),
		items:  make(map[string][]types.WriteRequest, 1),
	}
}

// reset empties c for its next batch, dropping its references to writes and items.
func (c *call) reset() {
	clear(c.writes)
	clear(c.reqs)
	clear(c.puts)
	clear(c.dels)
	clear(c.items)
	c.writes, c.reqs, c.puts, c.dels = c.writes[:0], c.reqs[:0], c.puts[:0], c.dels[:0]
	c.throttled, c.requests = 0, 0
}

// call returns an empty call, reusing one that is done with when there is one.
func (o *owner) call() *call {
	if n := len(o.idle); n > 0 {
		c := o.idle[n-1]
		o.idle[n-1] = nil
		o.idle = o.idle[:n-1]
		return c
	}
	return newCall()
}

// launch hands c to a worker, starting one (up to MaxInFlight) if every worker is busy.
// Workers live until the owner ends: a new goroutine per call would grow a fresh stack through
// the SDK's deep middleware chain every time, which costs more than the call's own work when the
// server answers fast. Neither channel ever blocks: at most maxOut batches are out, and both
// hold that many.
func (o *owner) launch(c *call) {
	o.inflight++
	o.dirty = true
	if o.workers < min(o.inflight, o.b.opts.MaxInFlight) {
		o.workers++
		o.calls.Add(1)
		go o.worker()
	}
	o.work <- c
}

// worker sends the batches it is handed, one at a time, until the owner ends.
func (o *owner) worker() {
	defer o.calls.Done()
	b := o.b
	// A context of the worker's own, under callCtx: the SDK's HTTP transport derives a cancellable
	// context from it for every call, and registering those under one shared parent would make
	// the workers contend for that parent's lock.
	ctx, cancel := context.WithCancel(b.callCtx)
	defer cancel()
	for c := range o.work {
		b.inflight.Add(1)
		b.send(ctx, c.writes, c)
		b.inflight.Add(-1)
		o.results <- c
	}
}

// send writes ws with one BatchWriteItem call and sets each write's outcome. A batch that draws
// a ValidationException is split in halves, within the same call slot, until each offending
// write stands alone, so that only the offenders fail.
func (b *Batcher) send(ctx context.Context, ws []*write, c *call) {
	// The buffers hold one request at a time: a split sends its halves one after the other.
	reqs, puts, dels := c.reqs[:0], c.puts[:0], c.dels[:0]
	for _, w := range ws {
		if w.del {
			dels = append(dels, types.DeleteRequest{Key: w.item})
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &dels[len(dels)-1]})
		} else {
			puts = append(puts, types.PutRequest{Item: w.item})
			reqs = append(reqs, types.WriteRequest{PutRequest: &puts[len(puts)-1]})
		}
	}
	c.items[b.table] = reqs
	c.requests++
	out, err := b.c.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: c.items})
	if err == nil {
		left := out.UnprocessedItems[b.table]
		var unprocessed map[itemKey]bool
		if len(left) > 0 && len(left) < len(ws) {
			unprocessed = make(map[itemKey]bool, len(left))
			for _, r := range left {
				if k, ok := b.requestKey(r); ok {
					unprocessed[k] = true
				}
			}
		}
		for _, w := range ws {
			w.outcome, w.err = landed, nil
			if len(left) >= len(ws) || unprocessed[w.key] {
				w.outcome, w.err = again, ErrUnprocessed
			}
		}
		return
	}
	retryable, throttled := classify(err)
	if throttled {
		c.throttled++
	}
	if !retryable && len(ws) > 1 && isValidation(err) && ctx.Err() == nil {
		h := len(ws) / 2
		b.send(ctx, ws[:h], c)
		b.send(ctx, ws[h:], c)
		return
	}
	o := failed
	if retryable {
		o = again
	}
	for _, w := range ws {
		w.outcome, w.err = o, err
	}
}

// isValidation reports whether err says the request itself is bad.
func isValidation(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ValidationException" {
		return true
	}
	var ser *smithy.SerializationError
	return errors.As(err, &ser)
}
