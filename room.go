package dynaflow

import (
	"context"
	"slices"
)

// room is what MaxBuffered and MaxBufferedBytes count: writes and their bytes of item size.
type room struct{ n, bytes int }

func (r *room) add(o room) { r.n += o.n; r.bytes += o.bytes }

func (r *room) sub(o room) { r.n -= o.n; r.bytes -= o.bytes }

// add accepts w once there is room: it takes a sequence number and hands w to the owner.
//
// Room goes to the callers in the order they came: while any caller waits, a new one waits in
// line behind it even if the write would fit, and the owner accepts the waiting writes in line
// order as room frees up (admit). So a large write is never starved by a stream of small ones,
// and no caller waits while others that came later are accepted.
func (b *Batcher) add(ctx context.Context, w *write) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if len(b.line) == 0 && b.fits(w) {
		b.accept(w)
		nudge := b.ownerDue()
		b.mu.Unlock()
		if nudge {
			b.nudge()
		}
		return nil
	}
	rw := &roomWaiter{w: w, ready: make(chan struct{})}
	b.line = append(b.line, rw)
	b.mu.Unlock()
	b.nudge() // a caller waits: partial batches should go out now
	select {
	case <-rw.ready:
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case rw.accepted: // even if ctx has ended meanwhile: the write is on its way
		return nil
	case b.closed:
		return ErrClosed
	}
	// ctx ended while rw was in line: leave it, and let the writes behind it have the room it
	// was waiting for.
	b.line = slices.DeleteFunc(b.line, func(x *roomWaiter) bool { return x == rw })
	if b.admit() && b.ownerDue() {
		b.nudge()
	}
	return ctx.Err()
}

// roomWaiter is a Put or Delete call waiting in line for room.
type roomWaiter struct {
	w        *write
	ready    chan struct{} // closed when w is accepted or the Batcher closes
	accepted bool          // w is accepted; guarded by b.mu
}

// fits reports whether there is room for w, except that a write larger than MaxBufferedBytes
// fits an empty buffer; b.mu must be held.
func (b *Batcher) fits(w *write) bool {
	return b.held.n < b.opts.MaxBuffered && (b.held.bytes == 0 || b.held.bytes+w.size <= b.opts.MaxBufferedBytes)
}

// accept gives w a sequence number, counts it, and hands it to the owner; b.mu must be held.
func (b *Batcher) accept(w *write) {
	b.seq++
	w.seq = b.seq
	b.held.add(room{1, w.size})
	b.stats.Buffered++
	if w.del {
		b.stats.Deletes++
	} else {
		b.stats.Puts++
	}
	b.incoming = append(b.incoming, w)
}

// ownerDue reports whether incoming holds as many writes as the owner asked to be woken for
// (wakeAt); b.mu must be held.
func (b *Batcher) ownerDue() bool { return b.wakeAt > 0 && len(b.incoming) >= b.wakeAt }

// release gives back r, held by writes that have landed, been replaced, or failed and been
// reported, and lets the callers in line have it; b.mu must be held.
func (b *Batcher) release(r room) {
	b.held.sub(r)
	if len(b.line) > 0 && b.roomForWaiters() && b.admit() && b.ownerDue() {
		b.nudge()
	}
}

// admit accepts the writes waiting in line, in line order, for as long as the first one fits,
// and wakes their callers; it reports whether it accepted any. b.mu must be held.
func (b *Batcher) admit() bool {
	n := 0
	for n < len(b.line) && b.fits(b.line[n].w) {
		rw := b.line[n]
		b.accept(rw.w)
		rw.accepted = true
		close(rw.ready)
		n++
	}
	b.line = slices.Delete(b.line, 0, n)
	return n > 0
}

// roomForWaiters reports whether enough room has freed up to admit the calls waiting for it: an
// eighth of the limits, or an empty buffer. Admitting them for every finished call would make
// every waiting producer run for a handful of writes at a time; b.mu must be held.
func (b *Batcher) roomForWaiters() bool {
	if b.held.n == 0 {
		return true
	}
	return b.opts.MaxBuffered-b.held.n >= max(1, b.opts.MaxBuffered/8) &&
		b.opts.MaxBufferedBytes-b.held.bytes >= max(1, b.opts.MaxBufferedBytes/8)
}
