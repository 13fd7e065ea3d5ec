package dynaflow

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// call is one batch: one BatchWriteItem call, with the calls it split into. The owner fills
// writes, each table's writes side by side; the worker that sends it fills outcomes and errs and
// touches nothing else, so that the owner can give up on a call that never returns.
type call struct {
	writes    []*write
	parts     [][2]int  // each table's writes are c.writes[p[0]:p[1]], one part a table
	outcomes  []outcome // outcomes[i] is what became of writes[i]
	errs      []error   // errs[i] is why writes[i] did not land
	sentAt    time.Time
	results   []BatchResult // one per BatchWriteItem request made, in order
	throttled int64         // requests throttled
	backs     int64         // writes handed back unprocessed or in a throttled request
	units     float64       // capacity units DynamoDB reported consumed
}

// outcome is what became of a write in one call.
type outcome uint8

const (
	landed outcome = iota // written
	again                 // unprocessed or retryable: send again
	failed                // rejected; errs says why
)

// launch hands c to a worker, starting one (up to MaxInFlight) if every worker is busy. Workers
// live until the owner ends: a new goroutine per call would grow a fresh stack through the SDK's
// deep middleware chain every time. The channel never blocks: at most maxOut batches are out,
// and it holds that many.
func (o *owner) launch(c *call) {
	c.outcomes = make([]outcome, len(c.writes))
	c.errs = make([]error, len(c.writes))
	o.inflight++
	o.dirty = true
	if o.workers < min(o.inflight, o.b.opts.MaxInFlight) {
		o.workers++
		o.calls.Add(1)
		go o.worker()
	}
	o.work <- c
}

// worker sends the batches it is handed, one at a time, until the owner closes work.
func (o *owner) worker() {
	defer o.calls.Done()
	b := o.b
	for c := range o.work {
		b.inflight.Add(1)
		b.send(b.callCtx, c, 0, len(c.writes))
		b.inflight.Add(-1)
		o.results <- c
	}
}

// send writes c.writes[lo:hi] with one BatchWriteItem call and sets each write's outcome. A
// request that fails for good is split so that only the offenders fail: first by table, so that
// a missing or forbidden table fails only its own writes, then, on a ValidationException, in
// halves until each offending write stands alone. n writes that are all refused take at most 2n
// calls.
func (b *Batcher) send(ctx context.Context, c *call, lo, hi int) {
	ws := c.writes[lo:hi]
	// One allocation each for the request's parts, not one per write.
	reqs := make([]types.WriteRequest, len(ws))
	puts := make([]types.PutRequest, len(ws))
	items := make(map[string][]types.WriteRequest, 1)
	for i, w := range ws {
		if w.del {
			reqs[i].DeleteRequest = &types.DeleteRequest{Key: w.item}
		} else {
			puts[i].Item = w.item
			reqs[i].PutRequest = &puts[i]
		}
	}
	gs := c.partsIn(lo, hi)
	for _, g := range gs {
		items[c.writes[g[0]].t.name] = reqs[g[0]-lo : g[1]-lo : g[1]-lo]
	}
	taken, err := b.c.writeCap.take(ctx, writeEstimate(ws)) // MaxWriteUnits
	if err != nil {                                         // Close gave up while the call waited for capacity
		c.results = append(c.results, BatchResult{Err: err})
		for i := lo; i < hi; i++ {
			c.outcomes[i], c.errs[i] = again, err
		}
		return
	}
	start := time.Now()
	out, err := b.c.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
		RequestItems:           items,
		ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
	}, noThrottleRetries)
	res := BatchResult{Duration: time.Since(start), Err: err}
	if err != nil {
		b.c.writeCap.settle(taken, 0) // a failed call consumes nothing
	}
	if err == nil {
		for _, g := range gs {
			c.unprocessed(g[0], g[1], out.UnprocessedItems[c.writes[g[0]].t.name])
		}
		if b.opts.OnBatch != nil { // the only reader of Tables
			res.Tables = make(map[string]int, len(items))
		}
		for i := lo; i < hi; i++ {
			if c.outcomes[i] != landed {
				res.Unprocessed++
			} else if res.Tables != nil {
				res.Tables[c.writes[i].t.name]++
			}
		}
		res.Consumed = out.ConsumedCapacity
		c.units += units(out.ConsumedCapacity)
		if b.c.writeCap != nil {
			// Settled with what DynamoDB reported, but never below the estimate of the writes that
			// landed, which DynamoDB's rules make a lower bound (a server that reports less, as
			// moto does, would otherwise lift the cap).
			var done []*write
			for i := lo; i < hi; i++ {
				if c.outcomes[i] == landed {
					done = append(done, c.writes[i])
				}
			}
			b.c.writeCap.settle(taken, math.Max(units(out.ConsumedCapacity), writeEstimate(done)))
		}
		c.backs += int64(res.Unprocessed)
		c.results = append(c.results, res)
		return
	}
	c.results = append(c.results, res)
	retryable, throttled := classify(err)
	if throttled {
		c.throttled++
		c.backs += int64(len(ws))
	}
	if !retryable && len(ws) > 1 && ctx.Err() == nil {
		if len(items) > 1 {
			for _, g := range gs {
				b.send(ctx, c, g[0], g[1])
			}
			return
		}
		if isValidation(err) {
			h := lo + len(ws)/2
			b.send(ctx, c, lo, h)
			b.send(ctx, c, h, hi)
			return
		}
	}
	o := failed
	if retryable {
		o = again
	}
	for i := lo; i < hi; i++ {
		c.outcomes[i], c.errs[i] = o, err
	}
}

// partsIn returns the bounds [from, to) in c.writes of each table's writes within [lo, hi).
func (c *call) partsIn(lo, hi int) [][2]int {
	if lo == 0 && hi == len(c.writes) {
		return c.parts
	}
	var ps [][2]int
	for _, p := range c.parts {
		if from, to := max(p[0], lo), min(p[1], hi); from < to {
			ps = append(ps, [2]int{from, to})
		}
	}
	return ps
}

// unprocessed sets the outcomes of c.writes[lo:hi], one table's writes in a call that succeeded,
// from the requests DynamoDB handed back for that table: those are sent again, the rest landed.
// When a request handed back matches none of the writes, every write of the table in the call is
// sent again: which one it stands for cannot be known, and a put or delete that lands twice does
// no harm (a newer write to its key waits behind it), while one counted as written when it was
// not would be lost.
func (c *call) unprocessed(lo, hi int, left []types.WriteRequest) {
	if len(left) == 0 {
		return // all landed; the outcomes are landed already
	}
	ws := c.writes[lo:hi]
	back := make([]bool, len(ws))
	if len(left) < len(ws) {
		t := ws[0].t
		at := make(map[itemKey]int, len(ws))
		for i, w := range ws {
			at[w.key] = i
		}
		for _, r := range left {
			k, ok := t.requestKey(r)
			i, sent := at[k]
			if !ok || !sent {
				back = nil
				break
			}
			back[i] = true
		}
	} else {
		back = nil
	}
	for i := range ws {
		if back == nil || back[i] {
			c.outcomes[lo+i], c.errs[lo+i] = again, ErrUnprocessed
		}
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
