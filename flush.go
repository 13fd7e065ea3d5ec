package dynaflow

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// write is one accepted put or delete, from Put until it lands, fails or is replaced. After Put
// hands it over, only the owner goroutine touches it; the worker that sends it reads item, del
// and t, which never change.
type write struct {
	t    *table
	item Item    // the item to put, or the key to delete
	key  itemKey // canonical key in t
	del  bool    // a delete of the key item, not a put
	size int     // item size by DynamoDB's rules
	// seq is the sequence number of the oldest accepted write this one stands for: a write that
	// replaces an older one takes over its number, so that Flush waits for it in its place.
	seq      uint64
	attempts int       // times sent
	err      error     // why the last send did not land
	ks       *keyState // its key's state, set by the owner as it takes the write in
}

// request returns the write as a WriteRequest of its own.
func (w *write) request() types.WriteRequest {
	if w.del {
		return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: w.item}}
	}
	return types.WriteRequest{PutRequest: &types.PutRequest{Item: w.item}}
}

// keyState is the owner's state for one key with writes outstanding. At most one write per key
// is in flight, so that an older write can never land after a newer one; the newest write waiting
// behind it (to be sent, or to be sent again) is next. A keyState in its table.s states always has
// one of the two.
type keyState struct {
	t        *table // the table, and the canonical key in it
	key      itemKey
	inflight *write
	next     *write
	queued   bool      // in its table's fresh or retry queue, to be sent
	since    time.Time // when it joined fresh
}

// delayed is a write waiting out a backoff before it is sent again.
type delayed struct {
	at time.Time
	ks *keyState
	w  *write
}

// delays is a min-heap of delayed writes by time.
type delays []delayed

func (d delays) Len() int           { return len(d) }
func (d delays) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d delays) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *delays) Push(x any)        { *d = append(*d, x.(delayed)) }
func (d *delays) Pop() any {
	old := *d
	x := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*d = old[:len(old)-1]
	return x
}

// flushWaiter is a Flush call waiting for the writes up to mark.
type flushWaiter struct {
	mark   uint64
	left   int         // outstanding writes with seq <= mark; the owner's
	gaveUp atomic.Bool // Flush's ctx ended: the owner forgets it
	done   chan struct{}
	closed bool // the Batcher ended before the writes did (only after an aborted Close)
}

// owner is the state of the Batcher's goroutine, which alone touches it.
type owner struct {
	b       *Batcher
	spare   []*keyState // let go, to reuse: one allocation less per write
	taken   []*write    // the slice intake last took from b.incoming, emptied, to hand back
	tables  []*table    // by name; each batch starts with the next one in turn
	turn    int
	delays  delays
	waiters []*flushWaiter
	work    chan *call // batches for the workers
	results chan *call // what the workers bring back
	workers int
	calls   sync.WaitGroup
	// maxOut is how many batches may be out at once: MaxInFlight calls, and as many more packed
	// and waiting for a worker, so that a worker that finishes a call starts the next at once.
	maxOut int
	// rtt is the smoothed time from packing a call to its return, and partUnits the smoothed
	// units of one table's writes in a call: from them and a table's rate, how many calls it may
	// have in flight.
	rtt       time.Duration
	partUnits float64

	inflight          int    // batches out
	live              int    // writes in the tables' key states
	fresh             int    // writes in the tables' fresh queues
	maxSeq            uint64 // the highest sequence number taken in
	closing, aborting bool
	pressed           bool // a Put waits for room

	// Changes not yet published to the Batcher.
	dirty    bool
	delta    Stats // the counters, not Puts, Deletes, Buffered and InFlight
	ended    int   // writes that ended: landed, failed or replaced
	freed    room  // what the landed and replaced ones held
	failures []Failure
	failRoom room // what the failures hold until they are reported
}

// run is the Batcher's goroutine. Each pass takes the writes handed over, wakes the writes whose
// backoff is over, packs and sends batches, and publishes what changed (answering Flush); then it
// waits for a call to come back, a write, a Flush, a timer, or Close.
func (b *Batcher) run() {
	o := &owner{
		b:       b,
		work:    make(chan *call, 2*b.opts.MaxInFlight),
		results: make(chan *call, 2*b.opts.MaxInFlight),
		maxOut:  2 * b.opts.MaxInFlight,
	}
	for _, name := range slices.Sorted(maps.Keys(b.tables)) {
		t := b.tables[name]
		t.states = make(map[itemKey]*keyState)
		o.tables = append(o.tables, t)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var armed time.Time
	var grace <-chan time.Time // set once Close has given up
	closing, abort := b.closing, b.abort
	for {
		now := time.Now()
		o.intake(now)
		o.wakeDelayed(now)
		o.dispatch(now)
		o.publish()
		if o.closing && o.live == 0 && o.inflight == 0 {
			break
		}
		if o.setWakeAt() {
			continue // enough writes came in meanwhile: no need to wait for a nudge
		}
		if next := o.deadline(now); !next.Equal(armed) {
			timer.Stop()
			if !next.IsZero() {
				timer.Reset(time.Until(next))
			}
			armed = next
		}
		select {
		case <-b.wake:
		case c := <-o.results:
			o.complete(c, time.Now())
		case fw := <-b.ctrl:
			o.intake(now) // the writes Flush waits for may still be in incoming
			o.addWaiter(fw)
		case <-timer.C:
			armed = time.Time{}
		case <-closing:
			o.closing, closing = true, nil
		case <-abort:
			abort = nil
			o.startAbort()
			grace = time.After(AbortGrace)
		case <-grace:
			// The calls still out ignore their cancelled ctx: give up on them.
			o.abandon()
			o.publish()
			close(o.work) // the workers end as their calls return
			o.end()
			return
		}
	}
	close(o.work)
	o.calls.Wait()
	o.end()
}

// end answers the Flush calls still waiting and lets Close return.
func (o *owner) end() {
	b := o.b
	for _, fw := range o.waiters {
		fw.closed = true
		close(fw.done)
	}
	b.cancel()
	if b.notify != nil {
		b.notify.stop()
	}
	close(b.done)
}

// setWakeAt tells Put how many waiting writes are worth waking the owner for, and reports
// whether that many are waiting already. The owner wants to hear of the first write when it
// holds none (to start FlushInterval), of a full batch when it has a call slot free, and of
// nothing while every slot is busy: a finished call wakes it anyway.
func (o *owner) setWakeAt() bool {
	n := 0
	switch {
	case o.aborting, o.closing, len(o.waiters) > 0:
		n = 1 // Close or Flush waits: every write matters at once
	case o.inflight >= o.maxOut:
		n = 0
	case o.fresh == 0:
		n = 1
	default:
		n = max(1, MaxBatchWriteRequests-o.fresh)
	}
	b := o.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wakeAt = n
	return b.ownerDue()
}

// intake takes the writes that Put and Delete handed over, and forgets the Flush calls that gave
// up.
func (o *owner) intake(now time.Time) {
	o.waiters = slices.DeleteFunc(o.waiters, func(fw *flushWaiter) bool { return fw.gaveUp.Load() })
	b := o.b
	b.mu.Lock()
	in := b.incoming
	b.incoming = o.taken[:0] // the two slices take turns, so that Put's appends rarely grow one
	o.pressed = len(b.line) > 0
	b.flushes = len(o.waiters)
	b.mu.Unlock()
	for _, w := range in {
		o.accept(w, now)
	}
	clear(in)
	o.taken = in
}

// accept takes one new write: it replaces an older write to the key that is still waiting, waits
// behind one in flight, or joins its table's queue.
func (o *owner) accept(w *write, now time.Time) {
	o.live++
	o.maxSeq = max(o.maxSeq, w.seq)
	if o.aborting {
		o.fail(w, o.abortErr(w))
		return
	}
	ks := w.t.states[w.key]
	if ks == nil {
		ks = o.newKeyState(w.t, w.key)
		w.t.states[w.key] = ks
	}
	w.ks = ks
	if old := ks.next; old != nil {
		o.replace(old, w)
	}
	ks.next = w
	if ks.inflight == nil && !ks.queued {
		o.enqueueFresh(ks, now)
	}
}

// newKeyState returns an empty keyState for key k in t, reusing one that was let go, or one of a block of
// 64 allocated at once when none is: every key of a stream may be new. A delayed write may still
// name a reused keyState; it finds another write in it, and knows it was replaced.
func (o *owner) newKeyState(t *table, k itemKey) *keyState {
	if len(o.spare) == 0 {
		block := make([]keyState, 64)
		for i := range block {
			o.spare = append(o.spare, &block[i])
		}
	}
	n := len(o.spare)
	ks := o.spare[n-1]
	o.spare = o.spare[:n-1]
	ks.t, ks.key = t, k
	return ks
}

// dropKeyState lets ks go: its key has nothing outstanding.
func (o *owner) dropKeyState(ks *keyState) {
	delete(ks.t.states, ks.key)
	if len(o.spare) < o.b.opts.MaxBuffered {
		*ks = keyState{}
		o.spare = append(o.spare, ks)
	}
}

func (o *owner) enqueueFresh(ks *keyState, now time.Time) {
	ks.queued, ks.since = true, now
	t := ks.t
	t.fresh = append(t.fresh, ks)
	o.fresh++
}

// replace drops old, a write that newer makes obsolete, and hands its place in line for Flush to
// newer. A Flush that counted both now waits for one; one that counted either waits for newer,
// which takes the lower sequence number.
func (o *owner) replace(old, newer *write) {
	for _, fw := range o.waiters {
		if old.seq <= fw.mark && newer.seq <= fw.mark {
			fw.left--
		}
	}
	newer.seq = min(old.seq, newer.seq)
	o.delta.Coalesced++
	o.gone()
	o.freed.add(room{1, old.size})
}

// landed ends a write that was written.
func (o *owner) landed(w *write) {
	o.delta.Written++
	o.leave(w)
	o.freed.add(room{1, w.size})
}

// fail ends w as failed with err. Its room stays taken until the failure is reported.
func (o *owner) fail(w *write, err error) {
	o.delta.Failed++
	o.failures = append(o.failures, Failure{Table: w.t.name, Request: w.request(), Err: err})
	o.failRoom.add(room{1, w.size})
	o.leave(w)
}

// leave counts a write that has ended, written or failed, for the Flush calls that wait for it.
func (o *owner) leave(w *write) {
	for _, fw := range o.waiters {
		if w.seq <= fw.mark {
			fw.left--
		}
	}
	o.gone()
}

// gone does the accounting of a write that has left the Batcher.
func (o *owner) gone() {
	o.live--
	o.ended++
	o.dirty = true
}

// urgent reports whether writes should go out without waiting for their batch to fill: Close or
// Flush waits for them, or a Put waits for room.
func (o *owner) urgent() bool { return o.closing || o.pressed || len(o.waiters) > 0 }

// wakeDelayed moves the writes whose backoff is over to their table's retry queue, skipping
// those that a newer write has replaced meanwhile.
func (o *owner) wakeDelayed(now time.Time) {
	for len(o.delays) > 0 && !o.delays[0].at.After(now) {
		d := heap.Pop(&o.delays).(delayed)
		if ks := d.ks; ks.next == d.w && ks.inflight == nil && !ks.queued {
			ks.queued = true
			ks.t.retry = append(ks.t.retry, ks)
		}
	}
}

// dispatch sends batches while calls are free: full batches at once, a partial one when its
// oldest write has waited FlushInterval, when it holds retries, or when Flush or Close waits.
// A table that was throttled sends nothing until its pause is over.
func (o *owner) dispatch(now time.Time) {
	for o.inflight < o.maxOut && !o.aborting {
		ready, retries, oldest := 0, 0, time.Time{}
		for _, t := range o.tables {
			if !o.open(t, now) {
				continue
			}
			ready += len(t.retry) + len(t.fresh)
			retries += len(t.retry)
			if len(t.fresh) > 0 && (oldest.IsZero() || t.fresh[0].since.Before(oldest)) {
				oldest = t.fresh[0].since
			}
		}
		if ready == 0 {
			return
		}
		if ready < MaxBatchWriteRequests && retries == 0 && !o.urgent() && now.Before(oldest.Add(o.b.opts.FlushInterval)) {
			return
		}
		// One table after another, each table's writes together (send splits a batch by table),
		// starting with the next table in turn so that each gets its share of the batches.
		c := &call{sentAt: now, writes: make([]*write, 0, MaxBatchWriteRequests)}
		for i := range o.tables {
			t := o.tables[(o.turn+i)%len(o.tables)]
			if !o.open(t, now) || len(c.writes) == MaxBatchWriteRequests {
				continue
			}
			before := len(c.writes)
			t.retry = o.take(c, t.retry)
			n := len(t.fresh)
			t.fresh = o.take(c, t.fresh)
			o.fresh -= n - len(t.fresh)
			if len(c.writes) > before {
				c.parts = append(c.parts, [2]int{before, len(c.writes)})
				t.out++
				u := writeEstimate(c.writes[before:])
				t.pace.charge(now, u)
				o.partUnits = smooth(o.partUnits, u)
			}
		}
		o.turn++
		o.launch(c)
	}
}

// open reports whether t may send a call now: it is not paused, and its rate and the calls it has
// in flight allow one. A table with writes waiting that its rate holds back marks the rate as in
// use, which lets it grow.
func (o *owner) open(t *table, now time.Time) bool {
	if t.held(now) {
		return false
	}
	if o.b.opts.FixedInFlight || t.pace.ready(now, t.out, o.window(t)) {
		return true
	}
	if len(t.fresh)+len(t.retry) > 0 {
		t.pace.hold()
	}
	return false
}

// window is how many calls t may have in flight at its rate.
func (o *owner) window(t *table) int {
	return t.pace.window(o.rtt, o.partUnits, o.b.opts.MaxInFlight)
}

// smooth returns the moving average avg updated with x (x itself when avg is zero).
func smooth[T time.Duration | float64](avg, x T) T {
	if avg == 0 {
		return x
	}
	return avg - avg/8 + x/8
}

// take moves writes from the front of q into c until c is full, and returns what is left of q.
func (o *owner) take(c *call, q []*keyState) []*keyState {
	n := 0
	for n < len(q) && len(c.writes) < MaxBatchWriteRequests {
		ks := q[n]
		q[n] = nil
		n++
		w := ks.next
		ks.queued, ks.next, ks.inflight = false, nil, w
		w.attempts++
		c.writes = append(c.writes, w)
	}
	if n == len(q) {
		return q[:0]
	}
	return q[n:]
}

// complete handles a finished call: it settles each write, and then updates each table's pause
// and rate with how its writes in the call fared.
func (o *owner) complete(c *call, now time.Time) {
	b := o.b
	select {
	case <-b.abort:
		// The call may have ended because Close gave up: its writes fail with Close's reason.
		o.startAbort()
	default:
	}
	o.inflight--
	o.dirty = true
	o.delta.Throttled += c.throttled
	o.delta.Requests += int64(len(c.results))
	o.delta.ThrottledWrites += c.backs
	o.delta.WriteUnits += c.units
	if fn := b.opts.OnBatch; fn != nil {
		for _, r := range c.results {
			fn(r)
		}
	}
	o.rtt = smooth(o.rtt, now.Sub(c.sentAt))
	for _, g := range c.parts {
		t := c.writes[g[0]].t
		back, throttled, units := 0, 0, 0.0
		for i := g[0]; i < g[1]; i++ {
			w, out, err := c.writes[i], c.outcomes[i], c.errs[i]
			switch out {
			case landed:
				units += writeUnits(w)
			case again:
				back++
				if isThrottle(err) || errors.Is(err, ErrUnprocessed) {
					throttled++
				}
			}
			o.settle(w, out, err, now)
		}
		t.out--
		o.judge(t, c.sentAt, g[1]-g[0], back, now)
		if !b.opts.FixedInFlight && !o.aborting {
			t.pace.observe(now, c.sentAt, g[1]-g[0], throttled, units)
		}
	}
}

// settle ends w, back from a call with outcome out and error err, or schedules it to be sent
// again after a backoff, unless a newer write to its key has come in.
func (o *owner) settle(w *write, out outcome, err error, now time.Time) {
	ks := w.ks // in flight, so still its key's
	ks.inflight = nil
	if out != landed && (w.err == nil || !errors.Is(err, context.Canceled)) {
		w.err = err // the last error that says something: a cancelled call does not
	}
	switch {
	case out == landed:
		o.landed(w)
	case o.aborting:
		o.fail(w, o.abortErr(w))
	case out == failed:
		o.fail(w, failErr(w.t, w.err))
	case ks.next != nil:
		o.replace(w, ks.next) // a newer write to this key came in while this one was out: it wins
	case w.attempts >= o.b.opts.Retry.MaxAttempts:
		o.fail(w, failErr(w.t, fmt.Errorf("gave up after %d attempts%s: %w", w.attempts, throttleReasons(w.err), w.err)))
	default:
		ks.next = w
		o.delta.Retried++
		heap.Push(&o.delays, delayed{at: now.Add(o.b.opts.Retry.backoff(w.attempts)), ks: ks, w: w})
	}
	if ks.next != nil && ks.next != w && !ks.queued {
		o.enqueueFresh(ks, now) // the newer write waited behind this one
	}
	if ks.next == nil && ks.inflight == nil {
		o.dropKeyState(ks)
	}
}

// judge updates t's pause after a call sent at sentAt that carried n of its writes, of which back
// came back to be sent again. All of them back (throttled, or all handed back) says the table is
// over its capacity: it pauses for a full-jitter backoff that grows with each such round trip in
// a row, and then sends one call at a time. Any of them landed ends that. (Some back is a hot key
// or partition, which the backoff of each write handed back deals with.) A call sent before the
// last strike says nothing new, so strikes grow at most once per round trip.
func (o *owner) judge(t *table, sentAt time.Time, n, back int, now time.Time) {
	if back < n {
		t.strikes = 0
		return
	}
	if sentAt.Before(t.struckAt) {
		return
	}
	t.strikes++
	t.struckAt = now
	t.pausedUntil = now.Add(o.b.opts.Retry.backoff(t.strikes))
}

// deadline returns when the owner must next act without being told: when a backoff or a table's
// pause is over, or the oldest waiting write has waited FlushInterval. Zero means no such time.
func (o *owner) deadline(now time.Time) time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if len(o.delays) > 0 {
		earliest(o.delays[0].at)
	}
	if o.inflight < o.maxOut && !o.aborting {
		for _, t := range o.tables {
			switch {
			case len(t.fresh)+len(t.retry) == 0:
			case t.held(now):
				if t.out == 0 {
					earliest(t.pausedUntil)
				} // else the call's return wakes the owner
			case !o.open(t, now):
				if t.out < o.window(t) {
					earliest(t.pace.next)
				} // else the call's return wakes the owner
			case len(t.fresh) > 0:
				earliest(t.fresh[0].since.Add(o.b.opts.FlushInterval))
			}
		}
	}
	return next
}

// addWaiter registers a Flush, counting the outstanding writes it waits for. When no write newer
// than the Flush has come in, that is every write held: a write's sequence number only goes down
// (when it replaces an older write), so none is above maxSeq.
func (o *owner) addWaiter(fw *flushWaiter) {
	if o.maxSeq <= fw.mark {
		fw.left = o.live
	} else {
		for _, t := range o.tables {
			for _, ks := range t.states {
				if ks.inflight != nil && ks.inflight.seq <= fw.mark {
					fw.left++
				}
				if ks.next != nil && ks.next.seq <= fw.mark {
					fw.left++
				}
			}
		}
	}
	o.waiters = append(o.waiters, fw)
}

// startAbort fails every write that is not in flight, once Close's ctx has ended; the calls in
// flight are cancelled and their writes fail as they come back.
func (o *owner) startAbort() {
	if o.aborting {
		return
	}
	o.aborting = true
	for _, t := range o.tables {
		for k, ks := range t.states {
			if w := ks.next; w != nil {
				ks.next, ks.queued = nil, false
				o.fail(w, o.abortErr(w))
			}
			if ks.inflight == nil {
				delete(t.states, k)
			}
		}
		clear(t.fresh)
		clear(t.retry)
		t.fresh, t.retry = nil, nil
	}
	o.fresh = 0
	o.delays = nil
}

// abandon fails the writes of the calls that did not come back within AbortGrace of being
// cancelled.
func (o *owner) abandon() {
	for _, t := range o.tables {
		for _, ks := range t.states {
			if w := ks.inflight; w != nil {
				o.fail(w, failErr(w.t, fmt.Errorf("not written before Close gave up: %w; its call did not return within %v of being cancelled", o.b.abortErr, AbortGrace)))
			}
		}
		clear(t.states)
	}
}

// abortErr is the error of a write that was not written when Close gave up: Close's ctx.Err()
// wrapped around the write's last error.
func (o *owner) abortErr(w *write) error {
	if w.err == nil || errors.Is(w.err, context.Canceled) {
		return failErr(w.t, fmt.Errorf("not written before Close gave up: %w", o.b.abortErr))
	}
	return failErr(w.t, fmt.Errorf("not written before Close gave up: %w; last error: %w", o.b.abortErr, w.err))
}

// failErr wraps err as the error of a failed write to t.
func failErr(t *table, err error) error {
	return fmt.Errorf("dynaflow: batch write %s: %w", t.name, err)
}

// publish makes the owner's changes visible: counters, freed room, failures, finished Flushes.
func (o *owner) publish() {
	if o.dirty {
		b := o.b
		b.mu.Lock()
		st := &b.stats
		st.Written += o.delta.Written
		st.Failed += o.delta.Failed
		st.Coalesced += o.delta.Coalesced
		st.Retried += o.delta.Retried
		st.Throttled += o.delta.Throttled
		st.Requests += o.delta.Requests
		st.ThrottledWrites += o.delta.ThrottledWrites
		st.WriteUnits += o.delta.WriteUnits
		st.Buffered -= o.ended
		var r report
		if len(o.failures) > 0 {
			if b.notify != nil {
				r = report{&WriteError{Failures: o.failures}, o.failRoom}
			} else {
				b.failures = append(b.failures, o.failures...)
				b.failRoom.add(o.failRoom)
			}
		}
		b.release(o.freed)
		b.mu.Unlock()
		if r.err != nil {
			b.notify.post(r)
		}
		o.delta, o.ended, o.freed, o.failures, o.failRoom, o.dirty = Stats{}, 0, room{}, nil, room{}, false
	}
	// Flush calls wake after their failures are in b.failures.
	o.waiters = slices.DeleteFunc(o.waiters, func(fw *flushWaiter) bool {
		if fw.left <= 0 {
			close(fw.done)
			return true
		}
		return false
	})
}
