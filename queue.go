package dynaflow

import "time"

// entry is a slot waiting in a queue, and since when: the time since the owner started. It holds
// no pointer, so the queues cost the garbage collector nothing.
type entry struct {
	s     slotID
	since time.Duration
}

// queue is a FIFO of slots waiting to be sent.
type queue = fifo[entry]

// fifo is a first-in, first-out queue in one slice, which it reuses. pop and reset leave the old
// values in the slice, so T must hold no pointers (slot IDs, times), or they would be kept alive.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }

func (q *fifo[T]) front() T { return q.items[q.head] }

func (q *fifo[T]) push(e T) { q.items = append(q.items, e) }

func (q *fifo[T]) reset() { q.items, q.head = q.items[:0], 0 }

func (q *fifo[T]) pop() T {
	e := q.items[q.head]
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
	return e
}

// delayed are writes waiting out a backoff before they are sent again.
type delayed struct {
	at     time.Time
	writes []*write
}

// delays is a min-heap of delayed by time.
type delays []delayed

func (d delays) Len() int { return len(d) }

func (d delays) Less(i, j int) bool { return d[i].at.Before(d[j].at) }

func (d delays) Swap(i, j int) { d[i], d[j] = d[j], d[i] }

func (d *delays) Push(x any) { *d = append(*d, x.(delayed)) }

func (d *delays) Pop() any {
	old := *d
	x := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*d = old[:len(old)-1]
	return x
}
