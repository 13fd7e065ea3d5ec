package dynaflow

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// owner is the state of the Batcher's goroutine, which alone touches it.
type owner struct {
	b       *Batcher
	slots   slotTable
	epoch   time.Time // when the owner started: queue entries count their time from it
	fresh   queue     // new writes, oldest first
	retry   queue     // writes back from a backoff: sent first
	delays  delays
	waiters []*flushWaiter
	work    chan *call // batches for the workers
	results chan *call // what the workers bring back
	workers int
	calls   sync.WaitGroup
	idle    []*call // calls done with, to reuse
	// maxOut is how many batches may be out at once: MaxInFlight calls, and as many more
	// packed and waiting for a worker, so that a worker that finishes a call starts the next at
	// once instead of waiting for the owner to pack it.
	maxOut int

	inflight          int    // batches out: in calls, or packed and waiting for a worker
	live              int    // writes in slots
	maxSeq            uint64 // the highest sequence number taken in
	closing, aborting bool
	pressed           bool // a Put waits for room
	scrubbed          bool // the idle calls hold no references to writes

	// Changes not yet published to b.stats.
	dirty                                           bool
	written, failedN, coalesced, retried, throttled int64
	requests                                        int64
	finished, finishedBytes                         int
	failures                                        []Failure
}

// run is the Batcher's goroutine: it takes accepted writes, packs them into calls, handles what
// the calls bring back, and answers Flush, until Close and every write is done.
func (b *Batcher) run() {
	o := &owner{
		b:       b,
		work:    make(chan *call, 2*b.opts.MaxInFlight),
		results: make(chan *call, 2*b.opts.MaxInFlight),
		maxOut:  2 * b.opts.MaxInFlight,
		epoch:   time.Now(),
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var armed time.Time
	closing, abort := b.closing, b.abort
	var spare []*write
	for {
		now := time.Now()
		spare = o.intake(spare, now)
		o.wakeDelayed(now)
		o.dispatch(now)
		o.publish()
		o.slots.compact()
		o.scrub()
		if o.closing && o.live == 0 && o.inflight == 0 {
			break
		}
		if o.setWakeAt() {
			continue // enough writes came in meanwhile: no need to wait for a nudge
		}
		if next := o.deadline(); !next.Equal(armed) {
			timer.Stop()
			if !next.IsZero() {
				timer.Reset(time.Until(next))
			}
			armed = next
		}
		select {
		case <-b.wake:
		case c := <-o.results:
			now := time.Now()
			o.complete(c, now)
			// Take every other call that has finished too, so that one pass of the loop (and
			// its locking) serves them all.
			for more := true; more; {
				select {
				case c := <-o.results:
					o.complete(c, now)
				default:
					more = false
				}
			}
		case fw := <-b.ctrl:
			spare = o.intake(spare, now) // the writes Flush waits for may still be in incoming
			o.addWaiter(fw)
		case <-timer.C:
			armed = time.Time{}
		case <-closing:
			o.closing, closing = true, nil
		case <-abort:
			abort = nil
			o.startAbort()
		}
	}
	timer.Stop()
	close(o.work)
	o.calls.Wait()
	o.endRing()
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

// endRing ends, as the owner stops, the ring claims that nothing has ended: those of replaced
// writes whose backoff is not over (with no write left, every write in delays is one) and of
// writes that Put refused since the last pass. Put refuses every write from now on without
// handing its claim over, so that after Close every claim taken before it has ended.
func (o *owner) endRing() {
	o.undelay()
	o.b.mu.Lock()
	o.takeRefused()
	o.b.mu.Unlock()
	o.b.ring.advance()
}

// takeRefused ends the ring claims of the writes that add refused; b.mu must be held.
func (o *owner) takeRefused() {
	b := o.b
	for _, c := range b.refused {
		b.ring.end(c)
	}
	b.refused = b.refused[:0]
}

// setWakeAt tells Put how many waiting writes are worth waking the owner for, and reports
// whether that many are waiting already. The owner wants to hear of the first write when it
// holds none (to start FlushInterval), of a full batch when it has a call slot free, and of
// nothing while every slot is busy: a finished call wakes it anyway. Waking only then keeps the
// owner from waking once per Put when writes come fast. (A Put that starts waiting for room
// nudges the owner itself.)
func (o *owner) setWakeAt() bool {
	n := 0
	switch {
	case o.aborting, o.closing, len(o.waiters) > 0:
		n = 1 // Close or Flush waits: every write matters at once
	case o.inflight >= o.maxOut:
		n = 0
	case o.fresh.len() == 0:
		n = 1
	default:
		n = max(1, MaxBatchWriteRequests-o.fresh.len()-o.retry.len())
	}
	b := o.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wakeAt = n
	return b.ownerDue()
}

// intake takes the writes that Put and Delete handed over. spare is an empty slice to hand back
// to incoming; intake returns the next one.
func (o *owner) intake(spare []*write, now time.Time) []*write {
	b := o.b
	b.mu.Lock()
	in := b.incoming
	b.incoming = spare
	o.pressed = len(b.line) > 0
	o.takeRefused()
	b.mu.Unlock()
	for _, w := range in {
		o.accept(w, now)
	}
	clear(in)
	return in[:0]
}

// accept takes one new write: it replaces an older write to the key that is still waiting, waits
// behind one in flight, or joins the queue.
func (o *owner) accept(w *write, now time.Time) {
	o.live++
	o.maxSeq = max(o.maxSeq, w.seq)
	if o.aborting {
		o.fail(w, o.abortErr(w))
		return
	}
	id := o.slots.find(w.hash, w.key)
	if id == 0 {
		id = o.slots.add(w.hash)
	}
	s := o.slots.at(id)
	if old := s.next; old != nil {
		o.replace(old, w)
	}
	s.next = w
	if s.inflight == nil && !s.queued {
		o.enqueue(&o.fresh, id, now)
	}
}

// enqueue puts slot id in q.
func (o *owner) enqueue(q *queue, id slotID, now time.Time) {
	o.slots.at(id).queued = true
	q.push(entry{id, now.Sub(o.epoch)})
}

// replace drops old, a write that newer makes obsolete, and hands its place in line for Flush to
// newer.
func (o *owner) replace(old, newer *write) {
	for _, fw := range o.waiters {
		before := b2i(old.seq <= fw.mark) + b2i(newer.seq <= fw.mark)
		after := b2i(min(old.seq, newer.seq) <= fw.mark)
		fw.left -= before - after
	}
	newer.seq = min(old.seq, newer.seq)
	o.coalesced++
	o.gone(old.size)
	o.end(old)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// landed ends a write that was written: the write whose sequence number is seq, of size bytes.
// It does not read the write.
func (o *owner) landed(seq uint64, size int) {
	o.written++
	o.leave(seq, size)
}

// fail ends w as failed with err; nothing may read w afterwards.
func (o *owner) fail(w *write, err error) {
	o.failedN++
	o.failures = append(o.failures, Failure{Request: w.request(), Err: err})
	o.leave(w.seq, w.size)
	o.end(w)
}

// end ends the ring claim of w, which has failed or been replaced, and lets go of what it holds;
// nothing may read w afterwards. A write waiting out a backoff is only marked: delays still
// refers to it, and wakeDelayed ends its claim when the wait is over.
func (o *owner) end(w *write) {
	w.letGo()
	if w.delayed {
		w.orphan = true
		return
	}
	o.b.ring.end(w.claim)
}

// leave counts a write that has ended, written or failed, for the Flush calls that wait for it.
func (o *owner) leave(seq uint64, size int) {
	for i := 0; i < len(o.waiters); i++ {
		fw := o.waiters[i]
		if seq <= fw.mark {
			fw.left--
		}
	}
	o.gone(size)
}

// gone does the accounting of a write of size bytes that has left the Batcher.
func (o *owner) gone(size int) {
	o.live--
	o.finished++
	o.finishedBytes += size
	o.dirty = true
}

// release frees slot id once nothing is left in it.
func (o *owner) release(id slotID) {
	if s := o.slots.at(id); s.next != nil || s.inflight != nil {
		return
	}
	o.slots.remove(id)
}

// scrub drops the references the idle calls' buffers keep to writes and items, once the Batcher
// holds no write: between calls they are left to be overwritten (see call.reset).
func (o *owner) scrub() {
	if o.scrubbed || o.live > 0 || o.inflight > 0 {
		return
	}
	for _, c := range o.idle {
		c.scrub()
	}
	o.scrubbed = true
}

// urgent reports whether writes should go out without waiting for their batch to fill: Close or
// Flush waits for them, or a Put waits for room.
func (o *owner) urgent() bool { return o.closing || o.pressed || len(o.waiters) > 0 }

// dispatch sends batches while calls are free: full batches at once, a partial one when its
// oldest write has waited FlushInterval, when it holds retries, or when Flush or Close waits.
func (o *owner) dispatch(now time.Time) {
	opts := &o.b.opts
	for o.inflight < o.maxOut && !o.aborting {
		n := o.retry.len() + o.fresh.len()
		if n == 0 {
			return
		}
		if n < MaxBatchWriteRequests && o.retry.len() == 0 && !o.urgent() &&
			now.Sub(o.epoch) < o.fresh.front().since+opts.FlushInterval {
			return
		}
		c := o.call()
		batch, slots := c.writes, c.slots
		for len(batch) < MaxBatchWriteRequests {
			var e entry
			switch {
			case o.retry.len() > 0:
				e = o.retry.pop()
			case o.fresh.len() > 0:
				e = o.fresh.pop()
			}
			if e.s == 0 {
				break
			}
			s := o.slots.at(e.s)
			w := s.next // not read here: the worker reads it
			s.queued, s.next, s.inflight = false, nil, w
			batch, slots = append(batch, w), append(slots, e.s)
		}
		c.writes, c.slots = batch, slots
		o.launch(c)
	}
}

// complete handles a finished call: it ends the writes that landed or failed, and schedules the
// others to be sent again after a backoff, unless a newer write to their key has come in.
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
	o.throttled += c.throttled
	o.requests += c.requests
	var retry []*write
	maxAttempts := 0
	for i, w := range c.writes {
		id, out := c.slots[i], c.outcomes[i]
		s := o.slots.at(id)
		s.inflight = nil
		switch {
		case out == landed:
			o.landed(c.seqs[i], c.sizes[i])
		case o.aborting:
			o.fail(w, o.abortErr(w))
		case out == failed:
			o.fail(w, b.failErr(w.err))
		case s.next != nil:
			// A newer write to this key came in while this one was in flight: it wins.
			w.lastErr = w.err
			o.replace(w, s.next)
		case int(w.attempts) >= b.opts.Retry.MaxAttempts:
			o.fail(w, b.failErr(fmt.Errorf("gave up after %d attempts: %w", w.attempts, w.err)))
		default:
			w.lastErr, w.slot = w.err, id // wakeDelayed finds its slot again by slot
			w.delayed = true
			s.next = w
			o.retried++
			retry = append(retry, w)
			maxAttempts = max(maxAttempts, int(w.attempts))
		}
		if s.next != nil && s.next != w && !s.queued {
			o.enqueue(&o.fresh, id, now) // the newer write waited behind this one
		}
		o.release(id)
		if out == landed {
			// Nothing refers to w now but c's buffers, which are overwritten before they are
			// read again; the worker has let go of its item.
			o.b.ring.end(c.claims[i])
		}
	}
	if len(retry) > 0 {
		heap.Push(&o.delays, delayed{at: now.Add(b.opts.Retry.backoff(maxAttempts)), writes: retry})
	}
	c.reset()
	o.idle = append(o.idle, c)
}

// wakeDelayed moves the writes whose backoff is over to the retry queue, skipping those that a
// newer write has replaced meanwhile.
func (o *owner) wakeDelayed(now time.Time) {
	for len(o.delays) > 0 && !o.delays[0].at.After(now) {
		d := heap.Pop(&o.delays).(delayed)
		for _, w := range d.writes {
			if o.undelayWrite(w) {
				continue // replaced while it waited: it has ended
			}
			// A slot whose write was replaced may have been freed and reused for another key,
			// or let go with the table's slots: then s.next is not w either.
			if id := w.slot; o.slots.has(id) {
				if s := o.slots.at(id); s.next == w && s.inflight == nil && !s.queued {
					o.enqueue(&o.retry, id, now)
				}
			}
		}
	}
}

// deadline returns when the owner must next act without being told: when the oldest waiting
// write has waited FlushInterval, or a backoff is over. Zero means no such time.
func (o *owner) deadline() time.Time {
	var t time.Time
	if o.fresh.len() > 0 && o.inflight < o.maxOut && !o.aborting {
		t = o.epoch.Add(o.fresh.front().since + o.b.opts.FlushInterval)
	}
	if len(o.delays) > 0 && (t.IsZero() || o.delays[0].at.Before(t)) {
		t = o.delays[0].at
	}
	return t
}

// addWaiter registers a Flush, counting the outstanding writes it waits for. When no write
// newer than the Flush has come in, that is every write in the slots, and no write is read: a
// write's sequence number only goes down (when it replaces an older write), so none is above
// maxSeq. Otherwise it counts them slot by slot, reading every write, which for a full buffer
// is thousands of cache misses.
func (o *owner) addWaiter(fw *flushWaiter) {
	if o.maxSeq <= fw.mark {
		fw.left = o.live
	} else {
		o.slots.each(func(_ slotID, s *slot) {
			if s.inflight != nil && s.inflight.seq <= fw.mark {
				fw.left++
			}
			if s.next != nil && s.next.seq <= fw.mark {
				fw.left++
			}
		})
	}
	o.waiters = append(o.waiters, fw)
}

// undelay marks every write in delays as waiting no longer, and ends the claims of those that
// newer writes replaced, as the owner lets delays go: nothing will read them again.
func (o *owner) undelay() {
	for _, d := range o.delays {
		for _, w := range d.writes {
			o.undelayWrite(w)
		}
	}
}

// undelayWrite marks w, taken out of delays, as waiting no longer, and reports whether a newer
// write replaced it meanwhile; then it has ended, and its ring claim ends now, as nothing refers
// to it any more.
func (o *owner) undelayWrite(w *write) bool {
	w.delayed = false
	if w.orphan {
		o.b.ring.end(w.claim)
	}
	return w.orphan
}

// startAbort fails every write that is not in flight, once Close's ctx has ended.
func (o *owner) startAbort() {
	if !o.aborting {
		o.aborting = true
		o.failWaiting()
	}
}

// failWaiting fails every write that is not in flight, after Close's ctx has ended; the calls in
// flight are cancelled and their writes fail as they come back.
func (o *owner) failWaiting() {
	// The writes waiting out a backoff are failed below, and their claims ended as they fail.
	o.undelay()
	o.slots.each(func(id slotID, s *slot) {
		if w := s.next; w != nil {
			s.next, s.queued = nil, false
			o.fail(w, o.abortErr(w))
		}
		o.release(id)
	})
	o.fresh.reset()
	o.retry.reset()
	clear(o.delays)
	o.delays = o.delays[:0]
}

// abortErr is the error of a write that was not written when Close gave up: Close's ctx.Err()
// wrapped around the write's last error.
func (o *owner) abortErr(w *write) error {
	last := w.lastErr
	if w.err != nil && !errors.Is(w.err, context.Canceled) {
		last = w.err
	}
	if last == nil {
		return o.b.failErr(fmt.Errorf("not written before Close gave up: %w", o.b.abortErr))
	}
	return o.b.failErr(fmt.Errorf("not written before Close gave up: %w; last error: %w", o.b.abortErr, last))
}

// publish makes the owner's changes visible: counters, freed room, failures, finished Flushes.
func (o *owner) publish() {
	o.b.ring.advance()
	if o.dirty {
		o.publishStats()
	}
	o.wakeFlushes()
}

// publishStats copies the owner's counters, freed room and failures to the Batcher.
func (o *owner) publishStats() {
	b := o.b
	b.mu.Lock()
	st := &b.stats
	st.Written += o.written
	st.Failed += o.failedN
	st.Coalesced += o.coalesced
	st.Retried += o.retried
	st.Throttled += o.throttled
	st.Requests += o.requests
	st.Buffered -= o.finished
	b.bytes -= o.finishedBytes
	if o.finished > 0 && len(b.line) > 0 && b.roomForWaiters() {
		b.admit() // the owner's next pass finds the writes in incoming
	}
	var report *WriteError
	if len(o.failures) > 0 {
		b.failures = append(b.failures, o.failures...)
		if b.notify != nil {
			report = &WriteError{Failures: o.failures}
		}
	}
	b.mu.Unlock()
	if report != nil {
		b.notify.post(report)
		o.failures = nil
	} else {
		o.failures = o.failures[:0]
	}
	o.written, o.failedN, o.coalesced, o.retried, o.throttled, o.requests = 0, 0, 0, 0, 0, 0
	o.finished, o.finishedBytes = 0, 0
	o.dirty = false
}

// wakeFlushes answers the Flush calls whose writes are all done.
func (o *owner) wakeFlushes() {
	// Flush calls wake after their failures are in b.failures.
	if len(o.waiters) > 0 {
		kept := o.waiters[:0]
		for _, fw := range o.waiters {
			if fw.left <= 0 {
				close(fw.done)
			} else {
				kept = append(kept, fw)
			}
		}
		clear(o.waiters[len(kept):])
		o.waiters = kept
	}
}
