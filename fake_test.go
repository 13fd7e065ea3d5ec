package dynaflow

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/dynaflow-go/dynaflow/internal/leakcheck"
)

// fakeAPI is an in-memory API for unit tests. Query and Scan page through items (pageSize per
// page, or the request's Limit); keys are {"i": N(index)}. BatchWriteItem and BatchGetItem work
// on store, keyed by the canonical encoding of the "pk" attribute (and "sk" when present). Hooks
// and scripted errors let a test shape each answer.
type fakeAPI struct {
	mu       sync.Mutex
	items    []Item
	pageSize int
	empty    bool // put an empty page (with a LastEvaluatedKey) before each real one
	calls    map[string]int
	errs     map[string][]error // popped one per call; a nil entry lets the call through

	tables []string    // what ListTables lists, pageSize (or Limit) a page
	tags   []types.Tag // what ListTagsOfResource lists, pageSize a page

	store     map[string]Item
	writeLog  []string // "put KEY" or "delete KEY", in the order they were applied
	sent      map[string]int
	inflight  map[string]bool
	violation string // the first breach of the Batcher's promises seen

	// Optional hooks, called outside mu before the default behaviour; a hook that returns a
	// non-nil output or error decides the call.
	writeHook func(ctx context.Context, in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error)
	getHook   func(ctx context.Context, in *dynamodb.BatchGetItemInput) (*dynamodb.BatchGetItemOutput, error)
	describe  *dynamodb.DescribeTableOutput
	scanHook  func(ctx context.Context, in *dynamodb.ScanInput)
	lastGets  []*dynamodb.BatchGetItemInput
}

func newFake(n int) *fakeAPI {
	f := &fakeAPI{pageSize: 3, calls: map[string]int{}, errs: map[string][]error{}, store: map[string]Item{}, sent: map[string]int{}, inflight: map[string]bool{}}
	for i := range n {
		f.items = append(f.items, Item{"pk": &types.AttributeValueMemberS{Value: "p"}, "n": &types.AttributeValueMemberN{Value: strconv.Itoa(i)}})
	}
	return f
}

func (f *fakeAPI) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// script queues errors for the next calls of op.
func (f *fakeAPI) script(op string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[op] = append(f.errs[op], errs...)
}

// begin counts a call and pops its scripted error.
func (f *fakeAPI) begin(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if q := f.errs[op]; len(q) > 0 {
		f.errs[op] = q[1:]
		return q[0]
	}
	return nil
}

func idx(key Item) int {
	if key == nil {
		return 0
	}
	n, _ := strconv.Atoi(key["i"].(*types.AttributeValueMemberN).Value)
	return n
}

func idxKey(i int) Item { return Item{"i": &types.AttributeValueMemberN{Value: strconv.Itoa(i)}} }

// page returns the items of list from start, and the next start (-1 at the end).
func (f *fakeAPI) page(list []Item, start int, limit *int32) ([]Item, int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.pageSize
	if limit != nil {
		n = int(*limit)
	}
	if f.empty && start%2 == 0 && start/2 < len(list) {
		// Encode "the empty page before position start/2" as even starts; real pages as odd.
		return nil, start + 1, true
	}
	pos := start
	if f.empty {
		pos = start / 2
	}
	end := min(pos+n, len(list))
	out := list[pos:end]
	if end >= len(list) {
		return out, -1, true
	}
	if f.empty {
		return out, end * 2, true
	}
	return out, end, true
}

func (f *fakeAPI) Query(ctx context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if err := f.begin("Query"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	items, next, _ := f.page(f.items, idx(in.ExclusiveStartKey), in.Limit)
	out := &dynamodb.QueryOutput{Items: items, Count: int32(len(items))}
	if next >= 0 {
		out.LastEvaluatedKey = idxKey(next)
	}
	return out, nil
}

func (f *fakeAPI) Scan(ctx context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if f.scanHook != nil {
		f.scanHook(ctx, in)
	}
	if err := f.begin("Scan"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	list := f.items
	if in.TotalSegments != nil {
		var seg []Item
		for i, it := range f.items {
			if i%int(*in.TotalSegments) == int(*in.Segment) {
				seg = append(seg, it)
			}
		}
		list = seg
	}
	items, next, _ := f.page(list, idx(in.ExclusiveStartKey), in.Limit)
	out := &dynamodb.ScanOutput{Items: items, Count: int32(len(items))}
	if next >= 0 {
		out.LastEvaluatedKey = idxKey(next)
	}
	return out, nil
}

// fakeKey is the store's key of an item or key: pk, and sk when present.
func fakeKey(item Item) string {
	k, err := appendKeyValue(nil, item["pk"])
	if err != nil {
		return "invalid"
	}
	if sk, ok := item["sk"]; ok {
		k, _ = appendKeyValue(k, sk)
	}
	return string(k)
}

// tableKey is the store's key of an item in table: fakeKey for the table "orders", which most
// tests use, and the table's name before it for any other.
func tableKey(table string, item Item) string {
	if table == "orders" {
		return fakeKey(item)
	}
	return table + "|" + fakeKey(item)
}

func (f *fakeAPI) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if err := f.begin("BatchWriteItem"); err != nil {
		return nil, err
	}
	var keys []string
	f.mu.Lock()
	total := 0
	for table, reqs := range in.RequestItems {
		total += len(reqs)
		seen := map[string]bool{}
		for _, r := range reqs {
			k := tableKey(table, writeItem(r))
			if seen[k] {
				f.breach("a key twice in one request")
			}
			if f.inflight[k] {
				f.breach("two writes to one key in flight at once")
			}
			seen[k] = true
			f.inflight[k] = true
			f.sent[k]++
			keys = append(keys, k)
		}
	}
	if total > MaxBatchWriteRequests {
		f.breach(fmt.Sprintf("%d writes in one request", total))
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		for _, k := range keys {
			delete(f.inflight, k)
		}
		f.mu.Unlock()
	}()
	if f.writeHook != nil {
		out, err := f.writeHook(ctx, in)
		if out != nil || err != nil {
			if out != nil {
				f.apply(in, out.UnprocessedItems)
			}
			return out, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.apply(in, nil)
	out := &dynamodb.BatchWriteItemOutput{}
	if in.ReturnConsumedCapacity == types.ReturnConsumedCapacityIndexes {
		for table, reqs := range in.RequestItems { // one unit a write, as for items under 1 KB
			out.ConsumedCapacity = append(out.ConsumedCapacity, types.ConsumedCapacity{TableName: aws.String(table), CapacityUnits: aws.Float64(float64(len(reqs)))})
		}
	}
	return out, nil
}

func (f *fakeAPI) breach(what string) {
	if f.violation == "" {
		f.violation = what
	}
}

// apply writes what in holds, but for what comes back unprocessed.
func (f *fakeAPI) apply(in *dynamodb.BatchWriteItemInput, unprocessed map[string][]types.WriteRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	skip := map[string]bool{}
	for table, reqs := range unprocessed {
		for _, r := range reqs {
			skip[tableKey(table, writeItem(r))] = true
		}
	}
	for table, reqs := range in.RequestItems {
		for _, r := range reqs {
			k := tableKey(table, writeItem(r))
			if skip[k] {
				continue
			}
			if r.PutRequest != nil {
				f.store[k] = r.PutRequest.Item
				f.writeLog = append(f.writeLog, "put "+k)
			} else {
				delete(f.store, k)
				f.writeLog = append(f.writeLog, "delete "+k)
			}
		}
	}
}

func writeItem(r types.WriteRequest) Item {
	if r.PutRequest != nil {
		return r.PutRequest.Item
	}
	return r.DeleteRequest.Key
}

func (f *fakeAPI) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	if err := f.begin("BatchGetItem"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.lastGets = append(f.lastGets, in)
	f.mu.Unlock()
	if f.getHook != nil {
		if out, err := f.getHook(ctx, in); out != nil || err != nil {
			return out, err
		}
	}
	out := &dynamodb.BatchGetItemOutput{Responses: map[string][]Item{}}
	f.mu.Lock()
	defer f.mu.Unlock()
	for table, ka := range in.RequestItems {
		seen := map[string]bool{}
		for _, k := range ka.Keys {
			ks, _ := keyString(k)
			if seen[ks] {
				return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "Provided list of item keys contains duplicates"}
			}
			seen[ks] = true
			if it, ok := f.store[fakeKey(k)]; ok {
				out.Responses[table] = append(out.Responses[table], it)
			}
		}
	}
	return out, nil
}

func (f *fakeAPI) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if err := f.begin("DescribeTable"); err != nil {
		return nil, err
	}
	if f.describe != nil {
		return f.describe, nil
	}
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableName:            in.TableName,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
	}}, nil
}

func (f *fakeAPI) ListTables(ctx context.Context, in *dynamodb.ListTablesInput, _ ...func(*dynamodb.Options)) (*dynamodb.ListTablesOutput, error) {
	if err := f.begin("ListTables"); err != nil {
		return nil, err
	}
	start := 0
	if s := aws.ToString(in.ExclusiveStartTableName); s != "" {
		start = sort.SearchStrings(f.tables, s) + 1
	}
	n := f.pageSize
	if in.Limit != nil {
		n = int(*in.Limit)
	}
	end := min(start+n, len(f.tables))
	out := &dynamodb.ListTablesOutput{TableNames: f.tables[start:end]}
	if end < len(f.tables) {
		out.LastEvaluatedTableName = aws.String(f.tables[end-1])
	}
	return out, nil
}

func (f *fakeAPI) ListTagsOfResource(ctx context.Context, in *dynamodb.ListTagsOfResourceInput, _ ...func(*dynamodb.Options)) (*dynamodb.ListTagsOfResourceOutput, error) {
	if err := f.begin("ListTagsOfResource"); err != nil {
		return nil, err
	}
	start, _ := strconv.Atoi(aws.ToString(in.NextToken))
	end := min(start+f.pageSize, len(f.tags))
	out := &dynamodb.ListTagsOfResourceOutput{Tags: f.tags[start:end]}
	if end < len(f.tags) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

// storeKeys returns the store's keys, sorted.
func (f *fakeAPI) storeKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.store {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Errors shaped like the SDK's.
var (
	errThrottle   = &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
	errNotFound   = &types.ResourceNotFoundException{Message: aws.String("no such table")}
	errValidation = &smithy.GenericAPIError{Code: "ValidationException", Message: "bad request"}
	errServer     = &types.InternalServerError{Message: aws.String("oops")}
)

// fastRetry makes backoffs short, for unit tests.
func fastRetry(o *Options) {
	o.Retry = Retry{MaxAttempts: 10, Base: time.Millisecond, Max: 5 * time.Millisecond}
}

// checkNoLeaks fails t if a goroutine running dynaflow's own (non-test) code is still alive.
func checkNoLeaks(t testing.TB) {
	t.Helper()
	leakcheck.Check(t, "github.com/dynaflow-go/dynaflow.")
}
