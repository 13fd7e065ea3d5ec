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
	for i := range slots {
		got := tab.find(slots[i].hash, slots[i].key)
		if want := i%2 == 1; (got != nil) != want {
			t.Fatalf("slot %d found: %v; want %v", i, got != nil, want)
		}
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
	if len(tab.buckets) != keepBuckets {
		t.Fatalf("compact of a table of 10 slots: %d buckets; want %d", len(tab.buckets), keepBuckets)
	}
	for i := range 10 {
		if tab.find(slots[i].hash, slots[i].key) != &slots[i] {
			t.Fatalf("slot %d lost in compact", i)
		}
	}
}
