package dynaflow

// slotTable finds the owner's slot for a key, by the key's hash. It is a chained hash table
// whose chains run through the slots themselves (slot.chain, and slot.prev back): a lookup reads
// one bucket and the slots on its chain, usually one, and nothing is allocated per key. Put
// computes the hash in the caller's goroutine, so the owner never hashes a key. Removing a slot
// reads only the slot and its neighbours, never the bucket: with thousands of writes buffered,
// the bucket array is long out of the cache by the time a write's call returns, and a read of it
// would stall the owner where a write does not.
//
// The table keeps at most one slot per bucket on average: it doubles when it holds more slots
// than buckets, and halves, in compact, when it holds fewer than an eighth as many.
type slotTable struct {
	buckets []*slot
	n       int // slots in the table
}

// minBuckets is the size a slotTable starts at and never shrinks below.
const minBuckets = 64

// keepBuckets is the size compact never shrinks a table below: 128 KiB of buckets, enough for the
// default MaxBuffered, so that a buffer that fills and drains does not resize the table each time.
const keepBuckets = 1 << 14

// find returns the slot for key, whose hash is h, or nil.
func (t *slotTable) find(h uint64, key itemKey) *slot {
	if len(t.buckets) == 0 {
		return nil
	}
	for s := t.buckets[h&uint64(len(t.buckets)-1)]; s != nil; s = s.chain {
		if s.hash == h && s.key == key {
			return s
		}
	}
	return nil
}

// insert adds s, whose key and hash are set and which is not in the table.
func (t *slotTable) insert(s *slot) {
	if t.n >= len(t.buckets) {
		t.resize(max(minBuckets, 2*len(t.buckets)))
	}
	t.link(s)
	t.n++
}

// link puts s at the head of its bucket's chain.
func (t *slotTable) link(s *slot) {
	i := s.hash & uint64(len(t.buckets)-1)
	s.chain, s.prev = t.buckets[i], nil
	if s.chain != nil {
		s.chain.prev = s
	}
	t.buckets[i] = s
}

// remove takes s, which is in the table, out of it. It never resizes the table, so the walk of
// each may remove the slot it is at.
func (t *slotTable) remove(s *slot) {
	if s.prev != nil {
		s.prev.chain = s.chain
	} else {
		t.buckets[s.hash&uint64(len(t.buckets)-1)] = s.chain
	}
	if s.chain != nil {
		s.chain.prev = s.prev
	}
	s.chain, s.prev = nil, nil
	t.n--
}

// compact halves the table while it holds fewer slots than an eighth of its buckets, so that a
// burst of distinct keys does not keep its memory for ever.
func (t *slotTable) compact() {
	if len(t.buckets) > keepBuckets && t.n < len(t.buckets)/8 {
		size := len(t.buckets)
		for size > keepBuckets && t.n < size/8 {
			size /= 2
		}
		t.resize(size)
	}
}

// resize moves every slot into a table of size buckets, a power of two.
func (t *slotTable) resize(size int) {
	old := t.buckets
	t.buckets = make([]*slot, size)
	for _, s := range old {
		for s != nil {
			next := s.chain
			t.link(s)
			s = next
		}
	}
}

// each calls fn with every slot in the table. fn may remove the slot it is given, and no other.
func (t *slotTable) each(fn func(*slot)) {
	for _, s := range t.buckets {
		for s != nil {
			next := s.chain
			fn(s)
			s = next
		}
	}
}
