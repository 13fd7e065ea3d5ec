package dynaflow

// slotTable holds the owner's slots and finds the slot of a key by the key's hash. The slots live
// in one slice and name each other by index (slotID), so that the table, its chains, the free
// list and the queues that name slots hold no pointers: storing an index costs no write barrier
// while the garbage collector marks, which at a firehose's allocation rate is about half of the
// time, and the whole table, for the default MaxBuffered, is about half a megabyte.
//
// It is a chained hash table whose chains run through the slots (slot.chain, and slot.prev back):
// a lookup reads one bucket and the slots on its chain, usually one, and nothing is allocated per
// key. Put computes the hash in the caller's goroutine, so the owner never hashes a key. A slot
// does not hold its key: find compares hashes and reads the key from the slot's write only when
// they are equal, which for distinct keys almost never happens. Removing a slot reads only the
// slot and its neighbours, never the bucket.
//
// The table keeps at most one slot per bucket on average: it doubles when it holds more slots
// than buckets, and halves, in compact, when it holds fewer than an eighth as many.
type slotTable struct {
	buckets []slotID
	slots   []slot       // slots[0] is never used: slotID 0 names no slot
	free    fifo[slotID] // slots not in the table, to reuse in the order they were freed
	n       int          // slots in the table
}

// slotID names a slot of a slotTable; 0 names none. IDs stay valid while the slice of slots
// grows, and a slot's ID is reused once it is removed.
type slotID int32

// minBuckets is the size a slotTable starts at and never shrinks below.
const minBuckets = 64

// keepBuckets is the size compact never shrinks a table below: 64 KiB of buckets, enough for the
// default MaxBuffered, so that a buffer that fills and drains does not resize the table each time.
const keepBuckets = 1 << 14

// at returns the slot named id, which must be in the table. The pointer is good until the next
// add, which may move the slots.
func (t *slotTable) at(id slotID) *slot { return &t.slots[id] }

// has reports whether id names a slot the table has room for; a write waiting out a backoff may
// name a slot of a table that has since been emptied and shrunk.
func (t *slotTable) has(id slotID) bool { return id > 0 && int(id) < len(t.slots) }

// find returns the slot for key, whose hash is h, or 0.
func (t *slotTable) find(h uint64, key itemKey) slotID {
	if len(t.buckets) == 0 {
		return 0
	}
	for id := t.buckets[h&uint64(len(t.buckets)-1)]; id != 0; {
		s := &t.slots[id]
		if s.hash == h && s.key() == key {
			return id
		}
		id = s.chain
	}
	return 0
}

// add puts a slot for a key whose hash is h into the table and returns it. The caller must give
// it a write (next or inflight) before the next find.
func (t *slotTable) add(h uint64) slotID {
	if t.n >= len(t.buckets) {
		t.resize(max(minBuckets, 2*len(t.buckets)))
	}
	var id slotID
	if t.free.len() > 0 {
		id = t.free.pop()
	} else {
		if len(t.slots) == 0 {
			t.slots = append(t.slots, slot{}) // slotID 0
		}
		id = slotID(len(t.slots))
		t.slots = append(t.slots, slot{})
	}
	t.slots[id].hash = h
	t.link(id)
	t.n++
	return id
}

// link puts id at the head of its bucket's chain.
func (t *slotTable) link(id slotID) {
	s := &t.slots[id]
	i := s.hash & uint64(len(t.buckets)-1)
	s.chain, s.prev = t.buckets[i], 0
	if s.chain != 0 {
		t.slots[s.chain].prev = id
	}
	t.buckets[i] = id
}

// remove takes id, which is in the table and holds no write, out of it, for reuse. It never
// resizes the table, so the walk of each may remove the slot it is at.
func (t *slotTable) remove(id slotID) {
	s := &t.slots[id]
	if s.prev != 0 {
		t.slots[s.prev].chain = s.chain
	} else {
		t.buckets[s.hash&uint64(len(t.buckets)-1)] = s.chain
	}
	if s.chain != 0 {
		t.slots[s.chain].prev = s.prev
	}
	// Its writes are nil already: zeroing the rest field by field stores no pointer.
	s.hash, s.chain, s.prev, s.queued = 0, 0, 0, false
	t.free.push(id)
	t.n--
}

// compact halves the table while it holds fewer slots than an eighth of its buckets, and lets the
// slots go once none is in use, so that a burst of distinct keys does not keep its memory for
// ever.
func (t *slotTable) compact() {
	if len(t.buckets) > keepBuckets && t.n < len(t.buckets)/8 {
		size := len(t.buckets)
		for size > keepBuckets && t.n < size/8 {
			size /= 2
		}
		t.resize(size)
	}
	if t.n == 0 && cap(t.slots) > keepBuckets {
		t.slots, t.free = nil, fifo[slotID]{}
	}
}

// resize moves every slot into a table of size buckets, a power of two.
func (t *slotTable) resize(size int) {
	old := t.buckets
	t.buckets = make([]slotID, size)
	for _, id := range old {
		for id != 0 {
			next := t.slots[id].chain
			t.link(id)
			id = next
		}
	}
}

// each calls fn with every slot in the table. fn may remove the slot it is given, and no other.
func (t *slotTable) each(fn func(slotID, *slot)) {
	for _, id := range t.buckets {
		for id != 0 {
			next := t.slots[id].chain
			fn(id, &t.slots[id])
			id = next
		}
	}
}
