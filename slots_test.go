package dynaflow

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestSlotTable(t *testing.T) {
	var tab slotTable
	if tab.find(1, itemKey{}) != nil {
		t.Fatal("an empty table found a slot")
	}
	// Hashes from a small range, so that chains hold several slots with equal hashes too.
	r := rand.New(rand.NewPCG(1, 2))
	const n = 5000
	slots := make([]slot, n)
	for i := range slots {
		slots[i].key = itemKey{t1: 'S', v1: strconv.Itoa(i)}
		slots[i].hash = r.Uint64N(n / 4)
		tab.insert(&slots[i])
	}
	checkChains(t, &tab)
	if tab.n != n || len(tab.buckets) < n {
		t.Fatalf("n = %d, %d buckets; want %d slots and at least as many buckets", tab.n, len(tab.buckets), n)
	}
	for i := range slots {
		if got := tab.find(slots[i].hash, slots[i].key); got != &slots[i] {
			t.Fatalf("find(slot %d) = %p; want %p", i, got, &slots[i])
		}
	}
	if tab.find(slots[0].hash, itemKey{t1: 'S', v1: "none"}) != nil {
		t.Fatal("found a key that was never inserted")
	}
	// Remove the even slots while walking the table, as failWaiting does.
	seen := 0
	tab.each(func(s *slot) {
		seen++
		if i, _ := strconv.Atoi(s.key.v1); i%2 == 0 {
			tab.remove(s)
		}
	})
	if seen != n || tab.n != n/2 {
		t.Fatalf("each saw %d slots and left %d; want %d and %d", seen, tab.n, n, n/2)
	}
	checkChains(t, &tab)
	for i := range slots {
		got := tab.find(slots[i].hash, slots[i].key)
		if want := i%2 == 1; (got != nil) != want {
			t.Fatalf("slot %d found: %v; want %v", i, got != nil, want)
		}
	}
}

// TestSlotTableRemoveAnywhere removes slots from the head, the middle and the tail of chains, in
// random order, putting some back, and checks the links both ways after each step.
func TestSlotTableRemoveAnywhere(t *testing.T) {
	var tab slotTable
	r := rand.New(rand.NewPCG(3, 4))
	const n = 200
	slots := make([]slot, n)
	in := make([]bool, n)
	for i := range slots {
		slots[i].key = itemKey{t1: 'S', v1: strconv.Itoa(i)}
		slots[i].hash = r.Uint64N(8) // long chains
		tab.insert(&slots[i])
		in[i] = true
	}
	for step := range 2000 {
		i := r.IntN(n)
		if in[i] {
			tab.remove(&slots[i])
		} else {
			tab.insert(&slots[i])
		}
		in[i] = !in[i]
		checkChains(t, &tab)
		for j := range slots {
			if got := tab.find(slots[j].hash, slots[j].key); (got == &slots[j]) != in[j] || (got != nil && got != &slots[j]) {
				t.Fatalf("step %d: find(slot %d) = %p; in the table: %v", step, j, got, in[j])
			}
		}
	}
}

// checkChains fails t unless every chain's links agree both ways and the table counts its slots.
func checkChains(t *testing.T, tab *slotTable) {
	t.Helper()
	count := 0
	for i, s := range tab.buckets {
		var prev *slot
		for ; s != nil; prev, s = s, s.chain {
			if s.prev != prev {
				t.Fatalf("bucket %d: a slot's prev is %p; want %p", i, s.prev, prev)
			}
			if s.hash&uint64(len(tab.buckets)-1) != uint64(i) {
				t.Fatalf("bucket %d holds a slot of bucket %d", i, s.hash&uint64(len(tab.buckets)-1))
			}
			count++
		}
	}
	if count != tab.n {
		t.Fatalf("the chains hold %d slots; the table counts %d", count, tab.n)
	}
}

func TestSlotTableCompact(t *testing.T) {
	var tab slotTable
	const n = 4 * keepBuckets
	slots := make([]slot, n)
	for i := range slots {
		slots[i].key = itemKey{t1: 'N', v1: strconv.Itoa(i)}
		slots[i].hash = uint64(i) * 0x9e3779b97f4a7c15
		tab.insert(&slots[i])
	}
	grown := len(tab.buckets)
	tab.compact()
	if len(tab.buckets) != grown {
		t.Fatalf("compact of a full table: %d buckets; want %d", len(tab.buckets), grown)
	}
	for i := 10; i < n; i++ {
		tab.remove(&slots[i])
	}
	tab.compact()
	checkChains(t, &tab)
	if len(tab.buckets) != keepBuckets {
		t.Fatalf("compact of a table of 10 slots: %d buckets; want %d", len(tab.buckets), keepBuckets)
	}
	for i := range 10 {
		if tab.find(slots[i].hash, slots[i].key) != &slots[i] {
			t.Fatalf("slot %d lost in compact", i)
		}
	}
}
