package dynaflow

import (
	"math/bits"
	"sync/atomic"
)

// writeRing is where Put and Delete get their writes: a ring of writes that are reused once
// they have ended, instead of one allocation per write. A write lives about as long as the
// buffer takes to drain, long enough for the garbage collector to mark it: allocating and
// collecting writes cost up to two points of the Batcher's rate against the raw SDK when the
// server answers at once (the README has the measurements). Writes taken one after the other also
// lie one after the other in memory, the order in which the owner and the workers read them.
//
// Claims are numbered in the order they are taken; claim n uses the ring's write n mod size.
// The owner goroutine keeps the horizon: every claim below it has ended, and nothing refers to
// its write any more. Put takes claim n only while n < horizon+size, so the write it gets was
// last used by a claim below the horizon, which has ended. When the horizon is held back (a write
// waits out a long backoff, say) and the ring has gone round, Put allocates its write on the heap
// instead, as it did before the ring; that write is simply left to the garbage collector. A Put
// that must wait for room gives its claim back and waits with a copy on the heap (Batcher.add),
// so that the ring never waits on a Put.
//
// Put takes a claim with atomics, outside the Batcher's lock, and fills its write there too, so
// that the lock is held no longer than before. The owner's record of which claims have ended is
// its own (ended), and it publishes the horizon once per pass.
//
// The ring's memory is allocated a segment at a time, when the claims first reach it, and kept for
// the Batcher's life: size writes of 128 bytes, and the strings of their keys until they
// are reused; never an item, which is let go of when its write ends.
type writeRing struct {
	claims  atomic.Uint64 // claims taken so far: the next claim's number
	horizon atomic.Uint64 // every claim below it has ended (written by the owner)
	size    uint64        // a power of two
	segs    []atomic.Pointer[ringSegment]

	// The owner's: ended[n mod size] for claims from horizon on that have ended.
	ended []uint64
}

// ringSegmentLen is how many writes a segment of a writeRing holds.
const ringSegmentLen = 256

// ringMax is the most writes a writeRing has, whatever MaxBuffered is.
const ringMax = 1 << 16

// ringSegment is one segment of a writeRing.
type ringSegment [ringSegmentLen]write

// newWriteRing returns a ring of at least n writes (rounded up to a power of two, at least one
// segment, at most ringMax).
func newWriteRing(n int) *writeRing {
	size := uint64(ringSegmentLen)
	if n > ringSegmentLen {
		size = min(uint64(1)<<bits.Len64(uint64(n-1)), ringMax)
	}
	return &writeRing{
		size:  size,
		segs:  make([]atomic.Pointer[ringSegment], size/ringSegmentLen),
		ended: make([]uint64, size/64),
	}
}

// get returns a write to fill and its claim: the claim's number plus one, or 0 for a write on
// the heap, which needs no end. The write may hold a former write's fields: overwrite them all.
// Every claim must be ended, by the owner, once nothing refers to its write.
func (r *writeRing) get() (*write, uint64) {
	for {
		n := r.claims.Load()
		if n >= r.horizon.Load()+r.size {
			return new(write), 0 // the ring has gone round to writes that have not ended
		}
		if r.claims.CompareAndSwap(n, n+1) {
			return r.at(n), n + 1
		}
	}
}

// at returns claim n's write, allocating its segment if no claim has reached it before.
func (r *writeRing) at(n uint64) *write {
	i := n & (r.size - 1)
	p := &r.segs[i/ringSegmentLen]
	seg := p.Load()
	if seg == nil {
		seg = new(ringSegment)
		if !p.CompareAndSwap(nil, seg) {
			seg = p.Load()
		}
	}
	return &seg[i%ringSegmentLen]
}

// end records that claim (as get returned it) has ended: nothing refers to its write any more.
// Only the owner goroutine calls it; 0, a heap write, is a no-op. Its write may be reused once
// advance has published the new horizon.
func (r *writeRing) end(claim uint64) {
	if claim == 0 {
		return
	}
	i := (claim - 1) & (r.size - 1)
	r.ended[i/64] |= 1 << (i % 64)
}

// advance moves the horizon past the claims that have ended, and publishes it. Only the owner
// goroutine calls it.
func (r *writeRing) advance() {
	h := r.horizon.Load() // only the owner stores it
	low := h
	for {
		i := low & (r.size - 1)
		w := &r.ended[i/64]
		if *w == ^uint64(0) && i%64 == 0 {
			*w = 0 // 64 claims at once
			low += 64
			continue
		}
		if *w&(1<<(i%64)) == 0 {
			break
		}
		*w &^= 1 << (i % 64)
		low++
	}
	if low != h {
		r.horizon.Store(low)
	}
}
