package dynaflow

import "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

// A batch of MaxBatchWriteRequests items of at most MaxItemSize bytes (with room for the request's
// own framing) stays under DynamoDB's 16 MB request limit, so a request is never too large once
// Put has checked each item's size. The array length fails to compile if that ever stops holding.
var _ [maxBatchWriteBytes - MaxBatchWriteRequests*(MaxItemSize+4096)]struct{}

// write is one accepted put or delete, from Put to the moment it lands, fails or is replaced.
//
// It costs no allocation as a rule: Put takes it from the Batcher's writeRing, and the owner ends
// its claim there once nothing refers to it. The PutRequest or DeleteRequest that carries it is
// built in the sending call's reusable buffers, and only for a failure report on its own
// (request). On its way through the Batcher it is read three times: by the owner when it comes
// in, by the worker that sends it, and by the owner again only if it did not land.
type write struct {
	item Item    // the item to put, or the key to delete; nil once the write has ended
	key  itemKey // canonical key
	hash uint64  // key's hash, computed by Put (in the caller's goroutine)
	size int     // item size by DynamoDB's rules
	// seq is the sequence number of the oldest accepted write this one stands for: a write that
	// replaces an older one takes over its number, so that Flush waits for it in its place.
	seq      uint64
	claim    uint64 // its claim in the Batcher's writeRing; 0 for a write on the heap
	lastErr  error  // why the last send did not land
	slot     slotID // its key's slot, set by the owner when the write waits out a backoff
	attempts int32  // times sent; counted by the worker that sends it
	del      bool   // a delete of the key item, not a put
	// delayed is set while the write waits out a backoff, in the owner's delays; orphan when a
	// newer write replaced it meanwhile, so that the owner ends its claim when the wait is over
	// and not before: until then delays refers to it.
	delayed, orphan bool

	// Set by the call that sent it, when it did not land; read by the owner after the call.
	err error
}

// letGo drops what w holds that its ring record must not keep alive once w has ended: its item
// and its errors.
func (w *write) letGo() { w.item, w.err, w.lastErr = nil, nil, nil }

// request returns the write as a WriteRequest of its own.
func (w *write) request() types.WriteRequest {
	if w.del {
		return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: w.item}}
	}
	return types.WriteRequest{PutRequest: &types.PutRequest{Item: w.item}}
}

// outcome is what became of a write in one call.
type outcome uint8

const (
	landed outcome = iota // written
	again                 // unprocessed or retryable: send again
	failed                // rejected; err says why
)

// slot is the owner's state for one key that has writes outstanding. At most one write per key
// is in flight; the newest write waiting behind it (to be sent, or to be retried) is next. A slot
// in the table always has one of the two.
type slot struct {
	hash     uint64
	chain    slotID // the next slot in its slotTable bucket (almost always 0)
	prev     slotID // the slot before it in that bucket, 0 at the head
	inflight *write
	next     *write
	queued   bool // in fresh or retry, to be sent
}

// key returns the key of s's writes; the zero itemKey, which names no item, if it has none.
func (s *slot) key() itemKey {
	switch {
	case s.next != nil:
		return s.next.key
	case s.inflight != nil:
		return s.inflight.key
	}
	return itemKey{}
}

// flushWaiter is a Flush call waiting for the writes up to mark.
type flushWaiter struct {
	mark   uint64
	left   int // outstanding writes with seq <= mark
	done   chan struct{}
	closed bool // the Batcher ended before the writes did (only after an aborted Close)
}
