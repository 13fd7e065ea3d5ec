package dynaflow

import "sync"

// notifier calls OnError in a goroutine of its own, in order, so that a slow or re-entrant
// callback never stalls the Batcher. Each report holds its failures' room until the callback has
// returned for it, so the queue is bounded by MaxBuffered and MaxBufferedBytes like every write.
type notifier struct {
	b     *Batcher
	fn    func(error)
	mu    sync.Mutex
	queue []report
	more  chan struct{} // capacity 1
	end   chan struct{} // closed by stop
	ended chan struct{} // closed when the goroutine has ended
}

// report is one OnError call to make, and the room its failures hold.
type report struct {
	err  *WriteError
	room room
}

func newNotifier(b *Batcher, fn func(error)) *notifier {
	n := &notifier{b: b, fn: fn, more: make(chan struct{}, 1), end: make(chan struct{}), ended: make(chan struct{})}
	go n.run()
	return n
}

// post queues a report for the callback.
func (n *notifier) post(r report) {
	n.mu.Lock()
	n.queue = append(n.queue, r)
	n.mu.Unlock()
	select {
	case n.more <- struct{}{}:
	default:
	}
}

// stop tells the notifier that nothing more will be posted.
func (n *notifier) stop() { close(n.end) }

func (n *notifier) run() {
	defer close(n.ended)
	for {
		if n.drain() {
			continue
		}
		select {
		case <-n.more:
		case <-n.end:
			n.drain()
			return
		}
	}
}

// drain calls the callback with every report posted so far, in order, giving back each one's
// room as the callback returns, and reports whether there were any.
func (n *notifier) drain() bool {
	n.mu.Lock()
	q := n.queue
	n.queue = nil
	n.mu.Unlock()
	for i, r := range q {
		n.fn(r.err)
		q[i] = report{} // let the items go
		n.b.mu.Lock()
		n.b.release(r.room)
		n.b.mu.Unlock()
	}
	return len(q) > 0
}
