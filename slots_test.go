package dynaflow

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// addKey adds a slot for key with hash h to tab, holding a write of key as the owner would.
func addKey(tab *slotTable, h uint64, key itemKey) slotID {
	id := tab.add(h)
	tab.at(id).next = &write{key: key, hash: h}
	return id
}

// dropKey takes slot id out of tab as the owner does, once its write is done.
func dropKey(tab *slotTable, id slotID) {
	tab.at(id).next = nil
	tab.remove(id)
}

func skey(i int) itemKey { return itemKey{t1: 'S', v1: strconv.Itoa(i)} }

func TestSlotTable(t *testing.T) {
	var tab slotTable
	if tab.find(1, itemKey{}) != 0 {
		t.Fatal("an empty table found a slot")
	}
	// Hashes from a small range, so that chains hold several slots with equal hashes too.
	r := rand.New(rand.NewPCG(1, 2))
	const n = 5000
	ids := make([]slotID, n)
	hashes := make([]uint64, n)
	for i := range ids {
		hashes[i] = r.Uint64N(n / 4)
		ids[i] = addKey(&tab, hashes[i], skey(i))
	}
	checkChains(t, &tab)
	if tab.n != n || len(tab.buckets) < n {
		t.Fatalf("n = %d, %d buckets; want %d slots and at least as many buckets", tab.n, len(tab.buckets), n)
	}
	for i := range ids {
		if got := tab.find(hashes[i], skey(i)); got != ids[i] {
			t.Fatalf("find(key %d) = slot %d; want %d", i, got, ids[i])
		}
	}
	if tab.find(hashes[0], skey(-1)) != 0 {
		t.Fatal("found a key that was never added")
	}
	// Remove the even keys while walking the table, as failWaiting does.
	seen := 0
	tab.each(func(id slotID, s *slot) {
		seen++
		if i, _ := strconv.Atoi(s.key().v1); i%2 == 0 {
			dropKey(&tab, id)
		}
	})
	if seen != n || tab.n != n/2 {
		t.Fatalf("each saw %d slots and left %d; want %d and %d", seen, tab.n, n, n/2)
	}
	checkChains(t, &tab)
	for i := range ids {
		got := tab.find(hashes[i], skey(i))
		if want := i%2 == 1; (got != 0) != want {
			t.Fatalf("key %d found: %v; want %v", i, got != 0, want)
		}
	}
	// Removed slots are reused before the table's slice grows.
	grown := len(tab.slots)
	for i := 0; i < n; i += 2 {
		ids[i] = addKey(&tab, hashes[i], skey(i))
	}
	if len(tab.slots) != grown {
		t.Fatalf("re-adding the removed keys grew the slots from %d to %d", grown, len(tab.slots))
	}
	checkChains(t, &tab)
	for i := range ids {
		if got := tab.find(hashes[i], skey(i)); got != ids[i] {
			t.Fatalf("after re-adding, find(key %d) = slot %d; want %d", i, got, ids[i])
		}
	}
}

// TestSlotTableInflightKey checks that find reads a slot's key from its write in flight when no
// write waits behind it.
func TestSlotTableInflightKey(t *testing.T) {
	var tab slotTable
	id := addKey(&tab, 7, skey(1))
	s := tab.at(id)
	s.inflight, s.next = s.next, nil
	if got := tab.find(7, skey(1)); got != id {
		t.Fatalf("find of a key in flight = slot %d; want %d", got, id)
	}
	if got := tab.find(7, skey(2)); got != 0 {
		t.Fatalf("find of another key with the same hash = slot %d; want none", got)
	}
}

// TestSlotTableRemoveAnywhere removes slots from the head, the middle and the tail of chains, in
// random order, putting some back, and checks the links both ways after each step.
func TestSlotTableRemoveAnywhere(t *testing.T) {
	var tab slotTable
	r := rand.New(rand.NewPCG(3, 4))
	const n = 200
	ids := make([]slotID, n)
	hashes := make([]uint64, n)
	for i := range ids {
		hashes[i] = r.Uint64N(8) // long chains
		ids[i] = addKey(&tab, hashes[i], skey(i))
	}
	for step := range 2000 {
		i := r.IntN(n)
		if ids[i] != 0 {
			dropKey(&tab, ids[i])
			ids[i] = 0
		} else {
			ids[i] = addKey(&tab, hashes[i], skey(i))
		}
		checkChains(t, &tab)
		for j := range ids {
			if got := tab.find(hashes[j], skey(j)); got != ids[j] {
				t.Fatalf("step %d: find(key %d) = slot %d; want %d", step, j, got, ids[j])
			}
		}
	}
}

// checkChains fails t unless every chain's links agree both ways and the table counts its slots.
func checkChains(t *testing.T, tab *slotTable) {
	t.Helper()
	count := 0
	for i, id := range tab.buckets {
		var prev slotID
		for ; id != 0; prev, id = id, tab.slots[id].chain {
			s := &tab.slots[id]
			if s.prev != prev {
				t.Fatalf("bucket %d: slot %d's prev is %d; want %d", i, id, s.prev, prev)
			}
			if s.hash&uint64(len(tab.buckets)-1) != uint64(i) {
				t.Fatalf("bucket %d holds a slot of bucket %d", i, s.hash&uint64(len(tab.buckets)-1))
			}
			if s.next == nil && s.inflight == nil {
				t.Fatalf("bucket %d: slot %d holds no write", i, id)
			}
			count++
		}
	}
	if count != tab.n {
		t.Fatalf("the chains hold %d slots; the table counts %d", count, tab.n)
	}
	if free := len(tab.slots) - 1 - tab.n; len(tab.slots) > 0 && tab.free.len() != free {
		t.Fatalf("%d slots are free; the free list holds %d", free, tab.free.len())
	}
}

func TestSlotTableCompact(t *testing.T) {
	var tab slotTable
	const n = 4 * keepBuckets
	ids := make([]slotID, n)
	hash := func(i int) uint64 { return uint64(i) * 0x9e3779b97f4a7c15 }
	for i := range ids {
		ids[i] = addKey(&tab, hash(i), itemKey{t1: 'N', v1: strconv.Itoa(i)})
	}
	grown := len(tab.buckets)
	tab.compact()
	if len(tab.buckets) != grown {
		t.Fatalf("compact of a full table: %d buckets; want %d", len(tab.buckets), grown)
	}
	for i := 10; i < n; i++ {
		dropKey(&tab, ids[i])
	}
	tab.compact()
	checkChains(t, &tab)
	if len(tab.buckets) != keepBuckets {
		t.Fatalf("compact of a table of 10 slots: %d buckets; want %d", len(tab.buckets), keepBuckets)
	}
	for i := range 10 {
		if tab.find(hash(i), itemKey{t1: 'N', v1: strconv.Itoa(i)}) != ids[i] {
			t.Fatalf("slot %d lost in compact", i)
		}
	}
	// Once the last slot goes, compact lets the slots go too; an old ID is then out of range.
	for i := range 10 {
		dropKey(&tab, ids[i])
	}
	tab.compact()
	if tab.slots != nil || tab.free.items != nil {
		t.Fatalf("compact of an empty table kept %d slots and %d free", cap(tab.slots), cap(tab.free.items))
	}
	if tab.has(ids[n-1]) {
		t.Fatalf("has(%d) after the slots went: true", ids[n-1])
	}
	if id := addKey(&tab, 1, skey(1)); !tab.has(id) || tab.find(1, skey(1)) != id {
		t.Fatalf("a table that let its slots go does not take a new key")
	}
}
