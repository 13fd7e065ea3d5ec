package dynaflow

import (
	"context"
	"slices"
)

// add accepts w, a write from the ring, once there is room: it takes a sequence number and
// hands w to the owner. A write it does not accept hands its ring claim back to the owner.
//
// Room goes to the callers in the order they came: while any caller waits, a new one waits in
// line behind it even if the write would fit, and the owner accepts the waiting writes in line
// order as room frees up (admit). So a large write is never starved by a stream of small ones,
// and no caller waits while others that came later are accepted. A write that waits moves to the
// heap first and hands its claim back: a claim held while it waits would hold up the ring's reuse
// of every later write.
func (b *Batcher) add(ctx context.Context, w *write) error {
	if err := ctx.Err(); err != nil {
		b.mu.Lock()
		b.refuse(w)
		b.mu.Unlock()
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed // after Close the ring's claims need not end
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
	if w.claim != 0 {
		h := new(write)
		*h = *w
		h.claim = 0
		b.refuse(w)
		w = h
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

// fits reports whether there is room for w: it is counted against MaxBuffered and
// MaxBufferedBytes, except that a write larger than MaxBufferedBytes fits an empty buffer;
// b.mu must be held.
func (b *Batcher) fits(w *write) bool {
	return b.stats.Buffered < b.opts.MaxBuffered && (b.bytes == 0 || b.bytes+w.size <= b.opts.MaxBufferedBytes)
}

// accept gives w a sequence number, counts it, and hands it to the owner; b.mu must be held.
func (b *Batcher) accept(w *write) {
	b.seq++
	w.seq = b.seq
	b.stats.Buffered++
	b.bytes += w.size
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
	if n > 0 {
		k := copy(b.line, b.line[n:])
		clear(b.line[k:])
		b.line = b.line[:k]
	}
	return n > 0
}

// refuse hands the ring claim of w, which add has not accepted, back to the owner, and lets go
// of w's item; nothing may read w afterwards. b.mu must be held.
func (b *Batcher) refuse(w *write) {
	if w.claim != 0 && !b.closed { // after Close the ring's claims need not end
		w.letGo()
		b.refused = append(b.refused, w.claim)
	}
}

// roomForWaiters reports whether enough room has freed up to admit the Put calls waiting for it:
// an eighth of the limits, or an empty buffer. Admitting them for every finished call would make
// every waiting producer run for a handful of writes at a time; b.mu must be held.
func (b *Batcher) roomForWaiters() bool {
	if b.stats.Buffered == 0 {
		return true
	}
	return b.opts.MaxBuffered-b.stats.Buffered >= max(1, b.opts.MaxBuffered/8) &&
		b.opts.MaxBufferedBytes-b.bytes >= max(1, b.opts.MaxBufferedBytes/8)
}
