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
//
// Besides the writes, a call carries what the owner needs of each when the call comes back: its
// slot, size, sequence number and outcome, in arrays of its own, so that the owner does not read
// a write that landed again (the worker that sent it has it in its cache; the owner does not).
type call struct {
	writes    []*write
	slots     []slotID  // slots[i] is the slot of writes[i]
	sizes     []int     // sizes[i] is writes[i].size, read by the worker
	seqs      []uint64  // seqs[i] is writes[i].seq, read by the worker
	claims    []uint64  // claims[i] is writes[i].claim, read by the worker
	outcomes  []outcome // outcomes[i] is what became of writes[i]; its err is in the write
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
		writes:   make([]*write, 0, MaxBatchWriteRequests),
		slots:    make([]slotID, 0, MaxBatchWriteRequests),
		sizes:    make([]int, MaxBatchWriteRequests),
		seqs:     make([]uint64, MaxBatchWriteRequests),
		claims:   make([]uint64, MaxBatchWriteRequests),
		outcomes: make([]outcome, MaxBatchWriteRequests),
		reqs:     make([]types.WriteRequest, 0, MaxBatchWriteRequests),
		puts:     make([]types.PutRequest, 0, MaxBatchWriteRequests),
		dels:     make([]types.DeleteRequest, 0, MaxBatchWriteRequests),
		items:    make(map[string][]types.WriteRequest, 1),
	}
}

// reset empties c for its next batch. It leaves the old references in its buffers, to be
// overwritten by the next batch: clearing them after every call would cost a write barrier per
// pointer while the garbage collector marks. scrub drops them when the Batcher goes idle.
func (c *call) reset() {
	c.writes, c.slots, c.reqs, c.puts, c.dels = c.writes[:0], c.slots[:0], c.reqs[:0], c.puts[:0], c.dels[:0]
	c.throttled, c.requests = 0, 0
}

// scrub drops every reference c's buffers hold to writes and items.
func (c *call) scrub() {
	c.reset()
	clear(c.writes[:cap(c.writes)])
	clear(c.reqs[:cap(c.reqs)])
	clear(c.puts[:cap(c.puts)])
	clear(c.dels[:cap(c.dels)])
	clear(c.items)
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
	o.dirty, o.scrubbed = true, false
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
		for i, w := range c.writes {
			w.attempts++
			c.sizes[i], c.seqs[i], c.claims[i] = w.size, w.seq, w.claim
		}
		b.send(ctx, c, 0, len(c.writes))
		b.inflight.Add(-1)
		o.results <- c
	}
}

// send writes c.writes[lo:hi] with one BatchWriteItem call and sets each write's outcome. A batch
// that draws a ValidationException is split in halves, within the same call slot, until each
// offending write stands alone, so that only the offenders fail.
func (b *Batcher) send(ctx context.Context, c *call, lo, hi int) {
	ws := c.writes[lo:hi]
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
	outcomes := c.outcomes[lo:hi]
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
		for i, w := range ws {
			// Only a write that did not land is read again: most calls leave none.
			if len(left) >= len(ws) || unprocessed != nil && unprocessed[w.key] {
				outcomes[i], w.err = again, ErrUnprocessed
				continue
			}
			outcomes[i] = landed
			// The owner ends w's claim without reading w: let go of the item here, where w is
			// in the cache, so that the ring keeps no item alive.
			w.letGo()
		}
		return
	}
	retryable, throttled := classify(err)
	if throttled {
		c.throttled++
	}
	if !retryable && len(ws) > 1 && isValidation(err) && ctx.Err() == nil {
		h := lo + len(ws)/2
		b.send(ctx, c, lo, h)
		b.send(ctx, c, h, hi)
		return
	}
	o := failed
	if retryable {
		o = again
	}
	for i, w := range ws {
		outcomes[i], w.err = o, err
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
