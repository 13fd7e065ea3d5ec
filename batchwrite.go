package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
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
	// ErrUnknownTable is returned by PutIn and DeleteIn for a table that is neither the one given
	// to NewBatcher nor one of BatcherOptions.Tables.
	ErrUnknownTable = errors.New("dynaflow: unknown table")
)

// MaxBatchWriteRequests is the most writes DynamoDB accepts in one BatchWriteItem request.
const MaxBatchWriteRequests = 25

// maxBatchWriteBytes is DynamoDB's limit on the size of one BatchWriteItem request.
const maxBatchWriteBytes = 16 * 1024 * 1024

// A batch of MaxBatchWriteRequests items of at most MaxItemSize bytes (with room for the request's
// own framing) stays under DynamoDB's 16 MB request limit, so a request is never too large once
// Put has checked each item's size. The array length fails to compile if that ever stops holding.
var _ [maxBatchWriteBytes - MaxBatchWriteRequests*(MaxItemSize+4096)]struct{}

// Defaults of BatcherOptions.
const (
	DefaultFlushInterval    = 100 * time.Millisecond
	DefaultMaxInFlight      = 8
	DefaultMaxBuffered      = 10000
	DefaultMaxBufferedBytes = 64 << 20
)

// BatcherOptions configure a Batcher. A zero field takes its default.
//
// OnError is called from a goroutine of the Batcher's own, one call at a time, in order, with a
// *WriteError for the writes that failed since the last call. It may call Put, Delete and Flush,
// but not Close. With OnError set, failures are reported to it and only to it: Flush and Close do
// not return them again, and each failure's room (see Batcher) is given back when OnError returns.
// Close waits for the calls already due, until its ctx ends.
type BatcherOptions struct {
	FlushInterval    time.Duration // the longest a write waits for its batch to fill; default 100ms
	MaxInFlight      int           // BatchWriteItem calls at once; default 8
	MaxBuffered      int           // writes held: accepted and not yet written, or failed and not yet reported; default 10000
	MaxBufferedBytes int           // the same, in bytes of item size; default 64 MiB
	KeyAttributes    []string      // the key attribute names of NewBatcher's table; when empty, read with DescribeTable
	Retry            Retry         // zero: the Client's
	OnError          func(error)   // when set, called with each *WriteError as it happens, instead of Flush and Close returning it

	// Tables are further tables this Batcher writes to with PutIn and DeleteIn, each with its key
	// attribute names; an empty list means NewBatcher reads that table's key with DescribeTable.
	Tables map[string][]string

	// OnBatch, when set, is called after every BatchWriteItem call, from the Batcher's own
	// goroutine, in order: keep it quick, as no write moves while it runs. It may call Stats, but
	// not Put, Delete, Flush or Close.
	OnBatch func(BatchResult)

	// FixedInFlight turns adaptive sending off: the Batcher keeps MaxInFlight calls going
	// whatever DynamoDB throttles, and only each write's backoff and a table's pause slow it. For
	// when MaxWriteUnits, or a capacity known to be ample, already keeps it in bounds.
	FixedInFlight bool
}

// WriteError reports the writes that could not land. Flush and Close return one, and OnError is
// called with one. errors.Is and errors.As look into every failure's Err.
type WriteError struct{ Failures []Failure }

// Failure is one write that did not land, and why.
type Failure struct {
	Table   string             // the table the write was for
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

// Stats are a Batcher's counters, all tables together. Every accepted write (Puts + Deletes)
// ends as Written, Failed or Coalesced, or is still Buffered: a snapshot always adds up. InFlight
// is the number of BatchWriteItem calls under way; Requests counts every call made, the parts of
// a split batch included; Throttled counts the calls that DynamoDB throttled, and
// ThrottledWrites the writes handed back unprocessed or in a throttled call.
//
// WriteUnits adds up the write capacity units DynamoDB reported consumed, tables and indexes
// together (every call asks for ReturnConsumedCapacity INDEXES). It is what the server reported:
// DynamoDB and DynamoDB Local report by DynamoDB's rules, dynalite counts tables but not indexes,
// and moto reports 1 a call whatever it wrote.
type Stats struct {
	Puts, Deletes, Written, Coalesced, Retried, Throttled, Failed, Requests int64
	ThrottledWrites                                                         int64
	WriteUnits                                                              float64
	Buffered, InFlight                                                      int
}

// BatchResult is what one BatchWriteItem call did, for BatcherOptions.OnBatch.
type BatchResult struct {
	Tables      map[string]int           // writes landed in this call, per table
	Unprocessed int                      // writes handed back
	Consumed    []types.ConsumedCapacity // as DynamoDB reported it, per table, with its indexes
	Duration    time.Duration            // from sending the request to its answer
	Err         error                    // the call's error, if it failed
}

// A Batcher writes items in the background to one table, or several, in BatchWriteItem calls of
// up to 25 writes, several calls at once. Put and Delete hand a write over and return; the
// Batcher sends it within FlushInterval, retries what DynamoDB throttles or hands back
// unprocessed with exponential backoff and full jitter, and keeps the last write per key (a key
// is a table and the item's key in it). Every write accepted ends written or reported: Flush and
// Close return the writes that failed as a *WriteError, or OnError receives them.
//
// A Batcher is safe for concurrent use.
//
// Memory is bounded by MaxBuffered and MaxBufferedBytes: they count every write the Batcher
// holds, from Put until it lands, and a failed write until it has been reported, by Flush, Close
// or OnError. When they are reached, Put and Delete wait. So when every write fails, set OnError
// or call Flush now and then: the failures are what holds the room, and reporting them frees it.
//
// A table whose writes are throttled or handed back is slowed on its own: its sending rate, in
// write units per second, is cut to what lands and then probed back up while calls land whole
// (unless FixedInFlight), and when all its writes come back it stops for a backoff, while the
// writes for the other tables go on. The room is shared, though: a table that stays
// throttled long enough fills it, and then Puts to every table wait. Use a Batcher per table
// when one table must never hold up another.
//
// Put and Delete keep the item or key they are given until it is written: do not modify it
// afterwards.
//
// Each call in flight uses one HTTP connection. The SDK's default transport keeps at most 10 idle
// connections per host, so with MaxInFlight above 10 connections are opened and closed over and
// over; give the dynamodb.Client an HTTP client whose MaxIdleConnsPerHost is at least
// MaxInFlight (see the README).
type Batcher struct {
	c      *Client
	table  *table            // NewBatcher's table, for Put and Delete
	tables map[string]*table // every table, NewBatcher's included; never changes
	opts   BatcherOptions

	wake    chan struct{}     // a nudge to the owner: incoming has writes, or a Flush gave up (capacity 1)
	ctrl    chan *flushWaiter // Flush requests
	closing chan struct{}     // closed by the first Close
	abort   chan struct{}     // closed when Close's ctx ends first
	done    chan struct{}     // closed when the owner goroutine has ended

	callCtx   context.Context // the context of every BatchWriteItem call
	cancel    context.CancelFunc
	closeOnce sync.Once
	abortOnce sync.Once
	abortErr  error // why Close gave up; written before abort is closed

	notify *notifier // runs OnError; nil without one

	inflight atomic.Int64 // BatchWriteItem calls under way, for Stats

	mu       sync.Mutex // guards what follows
	closed   bool
	seq      uint64        // the sequence number of the last accepted write
	incoming []*write      // accepted writes the owner has not taken yet
	wakeAt   int           // nudge the owner when incoming holds this many; never when 0
	line     []*roomWaiter // Put and Delete calls waiting for room, first come first
	held     room          // what MaxBuffered and MaxBufferedBytes count
	stats    Stats
	failures []Failure // failures not yet reported (without OnError)
	failRoom room      // the room those failures hold
	flushes  int       // Flush calls the owner waits for, as of its last pass (for tests)
}

// NewBatcher returns a Batcher that writes to table, and to opts.Tables with PutIn and DeleteIn,
// and starts its goroutine; Close stops it.
//
// NewBatcher asks DescribeTable for each table's key (retrying throttling under Retry) and learns
// the key types from it. Where key attribute names are given (KeyAttributes, or a list in Tables),
// they must be exactly the table's key, or NewBatcher fails naming the real one: a wrong key would
// make distinct items look alike, and the Batcher would keep only the last of them. Only when
// DescribeTable is refused with AccessDeniedException (a role allowed BatchWriteItem alone) does it
// trust the names given, unchecked, and without key types. Any other error from DescribeTable, a
// missing table among them, fails NewBatcher. ctx is used for nothing else: the Batcher lives
// until Close.
func (c *Client) NewBatcher(ctx context.Context, tableName string, optFns ...func(*BatcherOptions)) (*Batcher, error) {
	var o BatcherOptions
	for _, fn := range optFns {
		fn(&o)
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

	names := map[string][]string{tableName: o.KeyAttributes}
	if keys, dup := o.Tables[tableName]; dup && len(keys) > 0 && len(o.KeyAttributes) > 0 && !slices.Equal(keys, o.KeyAttributes) {
		return nil, fmt.Errorf("dynaflow: new batcher: table %s is given two keys, in KeyAttributes and in Tables", tableName)
	} else if dup && len(o.KeyAttributes) == 0 {
		names[tableName] = keys
	}
	for name, keys := range o.Tables {
		if name != tableName {
			names[name] = keys
		}
	}
	b := &Batcher{
		c:       c,
		tables:  make(map[string]*table, len(names)),
		opts:    o,
		wake:    make(chan struct{}, 1),
		wakeAt:  1,
		ctrl:    make(chan *flushWaiter),
		closing: make(chan struct{}),
		abort:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		t, err := resolveTable(ctx, c.api, o.Retry, name, names[name])
		if err != nil {
			return nil, err
		}
		b.tables[name] = t
	}
	b.table = b.tables[tableName]
	b.callCtx, b.cancel = context.WithCancel(context.Background())
	if o.OnError != nil {
		b.notify = newNotifier(b, o.OnError)
	}
	go b.run()
	return b, nil
}

// Put hands item over to be written to the Batcher's table with a PutRequest and returns; it does
// no network I/O. A later write to the same key replaces this one if this one has not been sent
// yet.
//
// A write that DynamoDB would reject is refused at once, and not accepted: ErrInvalidItem for a
// nil item, a missing key attribute, a key attribute that is not S, N or B (or not the table's
// type), an empty key string or binary, or a nil value; ErrItemTooLarge for an item over
// MaxItemSize. A Put whose ctx is already done returns ctx.Err() and accepts nothing. While
// MaxBuffered writes or MaxBufferedBytes are held, Put blocks until there is room or ctx ends;
// then it returns ctx.Err() and the write is not accepted. Blocked calls get room in the order
// they came, and while any call is blocked a new one waits behind it, so a large item is not
// starved by small ones. After Close it returns ErrClosed.
func (b *Batcher) Put(ctx context.Context, item Item) error {
	return b.put(ctx, b.table, item)
}

// PutIn is Put to table, which must be the Batcher's table or one of BatcherOptions.Tables;
// for any other it returns an error wrapping ErrUnknownTable.
func (b *Batcher) PutIn(ctx context.Context, tableName string, item Item) error {
	t, err := b.lookup(tableName, "put to")
	if err != nil {
		return err
	}
	return b.put(ctx, t, item)
}

// PutValue marshals v with attributevalue.MarshalMap and Puts the item; a value that does not
// marshal to an item (a struct or a map) is refused with an error wrapping ErrInvalidItem and naming v's Go type.
// The item then goes through Put's checks.
func (b *Batcher) PutValue(ctx context.Context, v any) error {
	return b.putValue(ctx, b.table, v)
}

// PutValueIn is PutValue to table, which must be the Batcher's table or one of
// BatcherOptions.Tables.
func (b *Batcher) PutValueIn(ctx context.Context, tableName string, v any) error {
	t, err := b.lookup(tableName, "put to")
	if err != nil {
		return err
	}
	return b.putValue(ctx, t, v)
}

func (b *Batcher) putValue(ctx context.Context, t *table, v any) error {
	av, err := attributevalue.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: put to table %s: marshal %T: %w", ErrInvalidItem, t.name, v, err)
	}
	m, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return fmt.Errorf("%w: put to table %s: a %T marshals to %s, not to an item (a struct or a map)", ErrInvalidItem, t.name, v, TypeName(av))
	}
	return b.put(ctx, t, m.Value)
}

func (b *Batcher) put(ctx context.Context, t *table, item Item) error {
	if item == nil {
		return fmt.Errorf("%w: put to table %s: nil item", ErrInvalidItem, t.name)
	}
	var it walked
	it.walk(item, t.keys)
	key, err := t.keyOf(it.vals, it.found, "put")
	if err != nil {
		return err
	}
	if it.bad != "" {
		return fmt.Errorf("%w: put to table %s: attribute %q %s", ErrInvalidItem, t.name, it.badName, it.bad)
	}
	if it.size > MaxItemSize {
		return fmt.Errorf("%w: put to table %s: item is %d bytes, over DynamoDB's limit of %d bytes (400 KB)", ErrItemTooLarge, t.name, it.size, MaxItemSize)
	}
	return b.add(ctx, &write{t: t, item: item, key: key, size: it.size})
}

// Delete hands over the deletion of the item with the given key from the Batcher's table; key
// must hold the key attributes and nothing else. It returns without network I/O, refuses a bad
// key, blocks for room, and fails after Close as Put does.
func (b *Batcher) Delete(ctx context.Context, key Item) error {
	return b.del(ctx, b.table, key)
}

// DeleteIn is Delete from table, which must be the Batcher's table or one of
// BatcherOptions.Tables; for any other it returns an error wrapping ErrUnknownTable.
func (b *Batcher) DeleteIn(ctx context.Context, tableName string, key Item) error {
	t, err := b.lookup(tableName, "delete from")
	if err != nil {
		return err
	}
	return b.del(ctx, t, key)
}

func (b *Batcher) del(ctx context.Context, t *table, key Item) error {
	if key == nil {
		return fmt.Errorf("%w: delete from table %s: nil key", ErrInvalidItem, t.name)
	}
	k, err := t.key(key, "delete", true)
	if err != nil {
		return err
	}
	return b.add(ctx, &write{t: t, item: key, del: true, key: k, size: ItemSize(key)})
}

// lookup returns the table named name.
func (b *Batcher) lookup(name, op string) (*table, error) {
	if t := b.tables[name]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %s table %q: this Batcher writes to %v", ErrUnknownTable, op, name, slices.Sorted(maps.Keys(b.tables)))
}

// Flush waits until every write accepted before the call is written or has failed, and returns
// the failures not yet reported, as a *WriteError (nil when there are none; always nil with
// OnError set). Writes still waiting for their batch to fill are sent at once. If ctx ends first,
// Flush returns ctx.Err(); the writes stay queued and are not lost, and the Batcher stops
// hurrying them for this Flush. After Close it returns ErrClosed.
func (b *Batcher) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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
		fw.gaveUp.Store(true)
		b.nudge() // the owner forgets fw on its next pass
		return ctx.Err()
	}
	if fw.closed {
		return ErrClosed
	}
	return b.takeFailures()
}

// Close stops accepting writes (Put and Delete return ErrClosed from then on), sends everything
// outstanding, waits for it, stops the Batcher's goroutines, and returns the failures not yet
// reported, as a *WriteError (nil when there are none).
//
// If ctx ends first, Close cancels the calls in flight and the waits between retries, and
// returns a *WriteError that holds every write that was not written, each failing with ctx.Err()
// wrapped around its last error. It waits at most AbortGrace more for the calls it cancelled to
// come back; a call still out then belongs to an API that ignores its ctx, which is a bug of
// that API: its writes are reported as not written, and its goroutine ends whenever the call
// does. Calling Close again is safe: it waits for the first to finish and returns what has
// failed since.
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

// AbortGrace is how long Close waits, after its ctx has ended and it has cancelled the calls in
// flight, for those calls to come back.
const AbortGrace = time.Second

// takeFailures returns the failures not yet reported, as a *WriteError, or nil, and gives back
// the room they held.
func (b *Batcher) takeFailures() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.failures) == 0 {
		return nil
	}
	err := &WriteError{Failures: b.failures}
	b.failures = nil
	b.release(b.failRoom)
	b.failRoom = room{}
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

// nudge wakes the owner goroutine, unless a nudge is already waiting for it.
func (b *Batcher) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
