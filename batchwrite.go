package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Sentinel errors, for errors.Is.
var (
	// ErrClosed is returned by Put, Delete and Flush once Close has been called.
	ErrClosed = errors.New("dynaflow: batcher is closed")
	// ErrItemTooLarge is returned by Put for an item over DynamoDB's 400 KB item limit.
	ErrItemTooLarge = errors.New("dynaflow: item too large")
	// ErrInvalidItem is returned by Put and Delete for a write DynamoDB would reject: a nil item,
	// a missing or mistyped key attribute, an empty key string or binary, a nil value.
	ErrInvalidItem = errors.New("dynaflow: invalid item")
	// ErrUnprocessed is the cause of a write, or a key, that DynamoDB kept handing back
	// unprocessed until the retry budget ran out.
	ErrUnprocessed = errors.New("dynaflow: handed back unprocessed")
)

// keySeed seeds the hashes of write keys, by which the owner goroutine finds a key's state.
var keySeed = maphash.MakeSeed()

// keyHash hashes a write's key; tests replace it to force collisions. Hashing the strings with
// maphash.String costs a third of what maphash.Comparable does on the whole struct.
var keyHash = func(k itemKey) uint64 {
	h := maphash.String(keySeed, k.v1) ^ uint64(k.t1)
	if k.t2 != 0 {
		h = h*0x9e3779b97f4a7c15 ^ maphash.String(keySeed, k.v2) ^ uint64(k.t2)<<8
	}
	return h
}

// MaxBatchWriteRequests is the most writes DynamoDB accepts in one BatchWriteItem request.
const MaxBatchWriteRequests = 25

// maxBatchWriteBytes is DynamoDB's limit on the size of one BatchWriteItem request.
const maxBatchWriteBytes = 16 * 1024 * 1024

// Defaults of BatcherOptions.
const (
	DefaultFlushInterval    = 100 * time.Millisecond
	DefaultMaxInFlight      = 8
	DefaultMaxBuffered      = 10000
	DefaultMaxBufferedBytes = 64 << 20
)

// BatcherOptions configure a Batcher. A zero field takes its default.
//
// OnError is called from a goroutine of the Batcher's own, one call at a time, in order. It may
// call Put, Delete and Flush, but not Close. Close waits for the calls already due, until its
// ctx ends.
type BatcherOptions struct {
	FlushInterval    time.Duration // the longest a write waits for its batch to fill; default 100ms
	MaxInFlight      int           // BatchWriteItem calls at once; default 8
	MaxBuffered      int           // writes accepted but not yet written (queued, in flight, or waiting to retry); default 10000
	MaxBufferedBytes int           // the same, in bytes of item size; default 64 MiB
	KeyAttributes    []string      // the table's key attribute names; when empty, NewBatcher reads them with DescribeTable
	Retry            Retry         // zero: the Client's
	OnError          func(error)   // when set, called with each *WriteError as it happens (Flush/Close still return it)
}

// WriteError reports the writes that could not land. Flush and Close return one, and OnError is
// called with one. errors.Is and errors.As look into every failure's Err.
type WriteError struct{ Failures []Failure }

// Failure is one write that did not land, and why.
type Failure struct {
	Request types.WriteRequest // the put or delete that did not land
	Err     error              // why; wraps the server's error where there was one
}

// Error says how many writes failed and why the first did. It never prints attribute values:
// items can hold personal data. The writes themselves are in Failures.
func (e *WriteError) Error() string {
	switch len(e.Failures) {
	case 0:
		return "dynaflow: no writes failed"
	case 1:
		return "dynaflow: 1 write failed: " + e.Failures[0].Err.Error()
	}
	return fmt.Sprintf("dynaflow: %d writes failed; the first: %v", len(e.Failures), e.Failures[0].Err)
}

// Unwrap returns every failure's error, so that errors.Is and errors.As see them all.
func (e *WriteError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f.Err
	}
	return errs
}

// Stats are a Batcher's counters. Every accepted write (Puts + Deletes) ends as Written, Failed
// or Coalesced, or is still Buffered: a snapshot always adds up. InFlight is the number of
// BatchWriteItem calls under way; Requests counts every call made, the halves of a split batch
// included.
type Stats struct {
	Puts, Deletes, Written, Coalesced, Retried, Throttled, Failed, Requests int64
	Buffered, InFlight                                                      int
}

// keyAttr is one key attribute of the table: its name and, when DescribeTable told us, its type.
type keyAttr struct {
	name string
	typ  types.ScalarAttributeType // "" when unknown
}

// A Batcher writes items to one table in the background, in BatchWriteItem calls of up to 25
// writes, several at once. Put and Delete hand a write over and return; the Batcher sends it
// within FlushInterval, retries what DynamoDB throttles or hands back unprocessed with
// exponential backoff and full jitter, and keeps the last write per key. Every write accepted
// ends written or reported: Flush and Close return the writes that failed as a *WriteError.
//
// A Batcher is safe for concurrent use.
//
// Put and Delete keep the item or key they are given until it is written: do not modify it
// afterwards.
//
// A Batcher reuses its records of the writes it holds instead of allocating one per write: it
// keeps up to MaxBuffered plus 100 per call slot of them, rounded up to a power of two (at most
// 65,536), of about 128 bytes each: 2 MiB with the defaults, allocated as they are first used and
// kept until the Batcher is garbage. A record holds no item once its write has ended, only the
// strings of its key until it is reused.
//
// Each call in flight uses one HTTP connection. The SDK's default transport keeps at most 10 idle
// connections per host, so with MaxInFlight above 10 connections are opened and closed over and
// over; give the dynamodb.Client an HTTP client whose MaxIdleConnsPerHost is at least
// MaxInFlight (see the README).
type Batcher struct {
	c     *Client
	table string
	opts  BatcherOptions
	keys  []keyAttr

	wake    chan struct{}     // a nudge to the owner: incoming has writes (capacity 1)
	ctrl    chan *flushWaiter // Flush requests
	closing chan struct{}     // closed by the first Close
	abort   chan struct{}     // closed when Close's ctx ends first
	done    chan struct{}     // closed when the owner goroutine has ended

	callCtx   context.Context // the context of every BatchWriteItem call
	cancel    context.CancelFunc
	closeOnce sync.Once
	abortOnce sync.Once
	abortErr  error // why Close gave up; written before abort is closed

	notify *notifier  // runs OnError; nil without one
	ring   *writeRing // where Put and Delete get their writes

	inflight atomic.Int64 // BatchWriteItem calls under way, for Stats

	mu       sync.Mutex // guards what follows
	closed   bool
	seq      uint64        // the sequence number of the last accepted write
	incoming []*write      // accepted writes the owner has not taken yet
	refused  []uint64      // ring claims of writes that add did not accept, for the owner to end
	wakeAt   int           // nudge the owner when incoming holds this many; never when 0
	line     []*roomWaiter // Put and Delete calls waiting for room, first come first
	bytes    int           // bytes of the writes counted in stats.Buffered
	stats    Stats
	failures []Failure // failures no Flush or Close has returned yet
}

// NewBatcher returns a Batcher that writes to table and starts its goroutine; Close stops it.
//
// When opts.KeyAttributes is empty, NewBatcher asks DescribeTable for the table's key schema
// (and so learns the key types too), with ctx, and returns its error wrapped. ctx is used for
// nothing else: the Batcher lives until Close.
func (c *Client) NewBatcher(ctx context.Context, table string, optFns ...func(*BatcherOptions)) (*Batcher, error) {
	var o BatcherOptions
	for _, fn := range optFns {
		fn(&o)
	}
	if table == "" {
		return nil, errors.New("dynaflow: new batcher: empty table name")
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxBuffered <= 0 {
		o.MaxBuffered = DefaultMaxBuffered
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if o.Retry == (Retry{}) {
		o.Retry = c.opts.Retry
	}
	o.Retry = o.Retry.withDefaults()

	var keys []keyAttr
	if len(o.KeyAttributes) > 0 {
		if len(o.KeyAttributes) > 2 {
			return nil, fmt.Errorf("dynaflow: new batcher for %s: %d key attributes; a DynamoDB key has one or two", table, len(o.KeyAttributes))
		}
		for _, name := range o.KeyAttributes {
			if name == "" {
				return nil, fmt.Errorf("dynaflow: new batcher for %s: empty key attribute name", table)
			}
			keys = append(keys, keyAttr{name: name})
		}
	} else {
		var err error
		if keys, err = describeKeys(ctx, c.api, table); err != nil {
			return nil, err
		}
	}

	b := &Batcher{
		c:       c,
		table:   table,
		opts:    o,
		keys:    keys,
		wake:    make(chan struct{}, 1),
		wakeAt:  1,
		ctrl:    make(chan *flushWaiter),
		closing: make(chan struct{}),
		abort:   make(chan struct{}),
		done:    make(chan struct{}),
		ring:    newWriteRing(o.MaxBuffered + 4*o.MaxInFlight*MaxBatchWriteRequests),
	}
	b.callCtx, b.cancel = context.WithCancel(context.Background())
	if o.OnError != nil {
		b.notify = newNotifier(o.OnError)
	}
	go b.run()
	return b, nil
}

// describeKeys reads table's key attributes, hash key first, with their types.
func describeKeys(ctx context.Context, api API, table string) ([]keyAttr, error) {
	out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return nil, fmt.Errorf("dynaflow: new batcher: describe table %s: %w", table, err)
	}
	if out.Table == nil || len(out.Table.KeySchema) == 0 {
		return nil, fmt.Errorf("dynaflow: new batcher: describe table %s: no key schema in the answer", table)
	}
	typeOf := make(map[string]types.ScalarAttributeType)
	for _, d := range out.Table.AttributeDefinitions {
		typeOf[aws.ToString(d.AttributeName)] = d.AttributeType
	}
	var keys []keyAttr
	for _, ks := range out.Table.KeySchema {
		name := aws.ToString(ks.AttributeName)
		k := keyAttr{name: name, typ: typeOf[name]}
		if ks.KeyType == "HASH" {
			keys = append([]keyAttr{k}, keys...)
		} else {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Put hands item over to be written with a PutRequest and returns; it does no network I/O. A
// later write to the same key replaces this one if this one has not been sent yet.
//
// A write that DynamoDB would reject is refused at once, and not accepted: ErrInvalidItem for a
// nil item, a missing key attribute, a key attribute that is not S, N or B (or not the table's
// type), an empty key string or binary, or a nil value; ErrItemTooLarge for an item over
// MaxItemSize. While MaxBuffered writes or MaxBufferedBytes are outstanding, Put blocks until
// there is room or ctx ends; then it returns ctx.Err() and the write is not accepted. Blocked
// calls get room in the order they came, and while any call is blocked a new one waits behind
// it, so a large item is not starved by small ones. After Close it returns ErrClosed.
func (b *Batcher) Put(ctx context.Context, item Item) error {
	if item == nil {
		return fmt.Errorf("%w: put to table %s: nil item", ErrInvalidItem, b.table)
	}
	var it walked
	it.walk(item, b.keys)
	key, err := b.keyOf(it.vals, it.found, "put")
	if err != nil {
		return err
	}
	if it.bad != "" {
		return fmt.Errorf("%w: put to table %s: attribute %q %s", ErrInvalidItem, b.table, it.badName, it.bad)
	}
	if it.size > MaxItemSize {
		return fmt.Errorf("%w: put to table %s: item is %d bytes, over DynamoDB's limit of %d bytes (400 KB)", ErrItemTooLarge, b.table, it.size, MaxItemSize)
	}
	w, claim := b.ring.get()
	*w = write{item: item, key: key, hash: keyHash(key), size: it.size, claim: claim}
	return b.add(ctx, w)
}

// Delete hands over the deletion of the item with the given key, which must hold the key
// attributes and nothing else, and returns; it does no network I/O. It refuses a bad key, blocks
// for room, and fails after Close as Put does.
func (b *Batcher) Delete(ctx context.Context, key Item) error {
	if key == nil {
		return fmt.Errorf("%w: delete from table %s: nil key", ErrInvalidItem, b.table)
	}
	k, err := b.key(key, "delete", true)
	if err != nil {
		return err
	}
	w, claim := b.ring.get()
	*w = write{item: key, del: true, key: k, hash: keyHash(k), size: ItemSize(key), claim: claim}
	return b.add(ctx, w)
}

// key checks the key attributes of item and returns its canonical key. With only true, item
// must hold nothing but the key.
func (b *Batcher) key(item Item, op string, only bool) (itemKey, error) {
	var vals [2]types.AttributeValue
	var found [2]bool
	for i, k := range b.keys {
		vals[i], found[i] = item[k.name]
	}
	key, err := b.keyOf(vals, found, op)
	if err != nil {
		return itemKey{}, err
	}
	if only && len(item) != len(b.keys) {
		for name := range item {
			if !b.isKey(name) {
				return itemKey{}, fmt.Errorf("%w: %s table %s: attribute %q is not part of the key", ErrInvalidItem, opTo(op), b.table, name)
			}
		}
	}
	return key, nil
}

// keyOf checks the values of the key attributes, vals[i] for b.keys[i] (found[i] when the item
// has it), and returns their canonical key.
func (b *Batcher) keyOf(vals [2]types.AttributeValue, found [2]bool, op string) (itemKey, error) {
	var key itemKey
	for i, k := range b.keys {
		if !found[i] {
			return itemKey{}, fmt.Errorf("%w: %s table %s: key attribute %q is missing", ErrInvalidItem, opTo(op), b.table, k.name)
		}
		// One type switch for a good key; keyErr says what is wrong with a bad one.
		t, canon, err := keyPart(vals[i])
		if err != nil || k.typ != "" && (len(k.typ) != 1 || k.typ[0] != t) || t != 'N' && len(canon) > keyLimit(i) {
			return itemKey{}, b.keyErr(i, vals[i], op)
		}
		if i == 0 {
			key.t1, key.v1 = t, canon
		} else {
			key.t2, key.v2 = t, canon
		}
	}
	return key, nil
}

// keyErr returns what is wrong with v as the value of key attribute i, which keyOf refused.
func (b *Batcher) keyErr(i int, v types.AttributeValue, op string) error {
	k := b.keys[i]
	if k.typ != "" && typeName(v) != string(k.typ) {
		return fmt.Errorf("%w: %s table %s: key attribute %q has type %s; the table's is %s", ErrInvalidItem, opTo(op), b.table, k.name, typeName(v), k.typ)
	}
	if _, _, err := keyPart(v); err != nil {
		return fmt.Errorf("%w: %s table %s: key attribute %q %v", ErrInvalidItem, opTo(op), b.table, k.name, err)
	}
	return fmt.Errorf("%w: %s table %s: key attribute %q is %d bytes, over DynamoDB's limit of %d bytes", ErrInvalidItem, opTo(op), b.table, k.name, keyBytes(v), keyLimit(i))
}

// keyLimit is DynamoDB's limit on the size of key attribute i: 2048 bytes for the partition key,
// 1024 for the sort key.
func keyLimit(i int) int {
	if i == 0 {
		return 2048
	}
	return 1024
}

// keyBytes is the size of a string or binary key value.
func keyBytes(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	}
	return 0
}

// opTo names an operation with its preposition, for error messages.
func opTo(op string) string {
	if op == "delete" {
		return "delete from"
	}
	return op + " to"
}

// isKey reports whether name is a key attribute.
func (b *Batcher) isKey(name string) bool {
	for _, k := range b.keys {
		if k.name == name {
			return true
		}
	}
	return false
}

// requestKey returns the canonical key of a write request DynamoDB handed back.
func (b *Batcher) requestKey(r types.WriteRequest) (itemKey, bool) {
	var item Item
	switch {
	case r.PutRequest != nil:
		item = r.PutRequest.Item
	case r.DeleteRequest != nil:
		item = r.DeleteRequest.Key
	}
	k, err := b.key(item, "", false)
	return k, err == nil
}

// nudge wakes the owner goroutine, unless a nudge is already waiting for it.
func (b *Batcher) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every write accepted before the call is written or has failed, and returns
// the failures no Flush or Close has returned yet, as a *WriteError (nil when there are none).
// Writes still waiting for their batch to fill are sent at once. If ctx ends first, Flush
// returns ctx.Err(); the writes stay queued and are not lost. After Close it returns ErrClosed.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	mark := b.seq
	b.mu.Unlock()
	fw := &flushWaiter{mark: mark, done: make(chan struct{})}
	select {
	case b.ctrl <- fw:
	case <-b.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-fw.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if fw.closed {
		return ErrClosed
	}
	return b.takeFailures()
}

// Close stops accepting writes (Put and Delete return ErrClosed from then on), sends everything
// outstanding, waits for it, stops the Batcher's goroutines, and returns the failures no Flush
// has returned, as a *WriteError (nil when there are none).
//
// If ctx ends first, Close cancels the calls in flight and the waits between retries, and
// returns a *WriteError that holds every write that was not written, each failing with ctx.Err()
// wrapped around its last error. Calling Close again is safe: it waits for the first to finish
// and returns what has failed since.
func (b *Batcher) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		for _, rw := range b.line { // Put calls waiting for room see closed
			close(rw.ready)
		}
		b.line = nil
		b.mu.Unlock()
		close(b.closing)
	})
	select {
	case <-b.done:
	case <-ctx.Done():
		b.abortOnce.Do(func() {
			b.abortErr = ctx.Err()
			close(b.abort)
			b.cancel()
		})
		<-b.done
	}
	if b.notify != nil {
		// The callback runs the user's code; a stuck one must not hold Close past its ctx.
		select {
		case <-b.notify.ended:
		case <-ctx.Done():
		}
	}
	return b.takeFailures()
}

// takeFailures returns the failures not yet returned, as a *WriteError, or nil.
func (b *Batcher) takeFailures() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.failures) == 0 {
		return nil
	}
	err := &WriteError{Failures: b.failures}
	b.failures = nil
	return err
}

// Stats returns a consistent snapshot of the Batcher's counters.
func (b *Batcher) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.InFlight = int(b.inflight.Load())
	return s
}

// failErr wraps err as the error of a failed write.
func (b *Batcher) failErr(err error) error {
	return fmt.Errorf("dynaflow: batch write %s: %w", b.table, err)
}

// notifier calls OnError in a goroutine of its own, in order, so that a slow or re-entrant
// callback never stalls the Batcher.
type notifier struct {
	fn    func(error)
	mu    sync.Mutex
	queue []error
	more  chan struct{}
	end   chan struct{}
	ended chan struct{}
}

func newNotifier(fn func(error)) *notifier {
	n := &notifier{fn: fn, more: make(chan struct{}, 1), end: make(chan struct{}), ended: make(chan struct{})}
	go n.run()
	return n
}

// post queues err for the callback.
func (n *notifier) post(err error) {
	n.mu.Lock()
	n.queue = append(n.queue, err)
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

// drain calls the callback with every error posted so far, in order, and reports whether there
// were any.
func (n *notifier) drain() bool {
	n.mu.Lock()
	q := n.queue
	n.queue = nil
	n.mu.Unlock()
	for _, err := range q {
		n.fn(err)
	}
	return len(q) > 0
}
