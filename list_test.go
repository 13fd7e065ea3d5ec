package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
)

func tableNames(n int) []string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("t%02d", i))
	}
	return names
}

func TestListTables(t *testing.T) {
	f := newFake(0)
	f.tables = tableNames(10)
	c := New(f, fastRetry)
	in := &dynamodb.ListTablesInput{Limit: aws.Int32(3)}
	for range 2 { // re-walkable, input untouched
		got := slices.Collect(func(yield func(string) bool) {
			for name, err := range c.ListTables(context.Background(), in) {
				if err != nil {
					t.Fatal(err)
				}
				yield(name)
			}
		})
		if diff := cmp.Diff(f.tables, got); diff != "" {
			t.Errorf("tables (-want +got):\n%s", diff)
		}
	}
	if in.ExclusiveStartTableName != nil {
		t.Errorf("the caller's input was modified")
	}
	if c := f.count("ListTables"); c != 8 {
		t.Errorf("ListTables calls = %d; want 4 pages, twice", c)
	}
	// nil input: every table, default page size.
	n := 0
	for _, err := range c.ListTables(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 10 {
		t.Errorf("ListTables(nil) yielded %d; want 10", n)
	}
}

func TestListTablesBreakRetryAndError(t *testing.T) {
	f := newFake(0)
	f.tables = tableNames(10)
	c := New(f, fastRetry)
	for range c.ListTables(context.Background(), nil) {
		break
	}
	if n := f.count("ListTables"); n != 1 {
		t.Errorf("calls after a break on the first name = %d; want 1", n)
	}

	f = newFake(0)
	f.tables = tableNames(10)
	f.script("ListTables", nil, errThrottle, errThrottle) // the second page is throttled twice
	got := 0
	for _, err := range New(f, fastRetry).ListTables(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != 10 {
		t.Errorf("names through throttling = %d; want 10", got)
	}

	f = newFake(0)
	f.tables = tableNames(10)
	f.script("ListTables", nil, errValidation)
	var errs, names int
	for _, err := range New(f, fastRetry).ListTables(context.Background(), nil) {
		if err != nil {
			errs++
			if !strings.HasPrefix(err.Error(), "dynaflow: list tables: ") || !errors.As(err, new(interface{ ErrorCode() string })) {
				t.Errorf("err = %v", err)
			}
			continue
		}
		names++
	}
	if errs != 1 || names != 3 {
		t.Errorf("%d names, %d errors; want the first page's 3 names, then one error", names, errs)
	}
}

func TestListTagsOfResource(t *testing.T) {
	f := newFake(0)
	for i := range 7 {
		f.tags = append(f.tags, types.Tag{Key: aws.String("k" + strconv.Itoa(i)), Value: aws.String("v")})
	}
	in := &dynamodb.ListTagsOfResourceInput{ResourceArn: aws.String("arn:aws:dynamodb:us-east-1:1:table/t")}
	var keys []string
	for tag, err := range New(f).ListTagsOfResource(context.Background(), in) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, aws.ToString(tag.Key))
	}
	if len(keys) != 7 || f.count("ListTagsOfResource") != 3 || in.NextToken != nil {
		t.Errorf("tags %v in %d calls; want 7 in 3, the input untouched", keys, f.count("ListTagsOfResource"))
	}
	f.script("ListTagsOfResource", errNotFound)
	for _, err := range New(f).ListTagsOfResource(context.Background(), in) {
		if err == nil || !strings.HasPrefix(err.Error(), "dynaflow: list tags arn:aws:dynamodb:us-east-1:1:table/t: ") {
			t.Errorf("err = %v; want one naming the operation and the ARN", err)
		}
	}
	for _, bad := range []*dynamodb.ListTagsOfResourceInput{nil, {}} {
		n := 0
		for _, err := range New(f).ListTagsOfResource(context.Background(), bad) {
			n++
			if err == nil {
				t.Errorf("ListTagsOfResource(%v) yielded a tag", bad)
			}
		}
		if n != 1 {
			t.Errorf("ListTagsOfResource(%v): %d yields; want one error", bad, n)
		}
	}
}

// scanState runs a parallel scan page by page, recording each segment's state after each page as
// a caller that resumes would, and stops after stopAfter pages (never when negative). It returns
// the items seen and the states.
func scanState(t *testing.T, c *Client, segments, stopAfter int, optFns ...func(*ParallelScanOptions)) ([]int, map[int]Item, map[int]bool) {
	t.Helper()
	var got []int
	state, done := map[int]Item{}, map[int]bool{}
	pages := 0
	for p, err := range c.ParallelScanPages(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t"), Limit: aws.Int32(2)}, segments, optFns...) {
		if err != nil {
			t.Fatal(err)
		}
		if p.TotalSegments != segments {
			t.Fatalf("page says %d segments; want %d", p.TotalSegments, segments)
		}
		for _, it := range p.Output.Items {
			n, _ := strconv.Atoi(it["n"].(*types.AttributeValueMemberN).Value)
			got = append(got, n)
		}
		state[p.Segment] = p.Output.LastEvaluatedKey
		done[p.Segment] = p.Output.LastEvaluatedKey == nil
		pages++
		if pages == stopAfter {
			break
		}
	}
	return got, state, done
}

func TestParallelScanResumes(t *testing.T) {
	f := newFake(100)
	c := New(f)
	got, state, done := scanState(t, c, 4, 9)
	var rest []int
	var keys = map[int]Item{}
	for s := range 4 {
		if !done[s] {
			rest = append(rest, s)
			if state[s] != nil {
				keys[s] = state[s]
			}
		}
	}
	more, _, _ := scanState(t, c, 4, -1, func(o *ParallelScanOptions) { o.Segments, o.StartKeys = rest, keys })
	all := append(got, more...)
	slices.Sort(all)
	if diff := cmp.Diff(upTo(100), all); diff != "" {
		t.Errorf("items over both runs, each once (-want +got):\n%s", diff)
	}
	checkNoLeaks(t)
}

func TestParallelScanSplitsOverProcesses(t *testing.T) {
	f := newFake(100)
	c := New(f)
	a, _, _ := scanState(t, c, 5, -1, func(o *ParallelScanOptions) { o.Segments = []int{0, 2, 4} })
	b, _, _ := scanState(t, c, 5, -1, func(o *ParallelScanOptions) { o.Segments = []int{1, 3} })
	all := append(a, b...)
	slices.Sort(all)
	if diff := cmp.Diff(upTo(100), all); diff != "" {
		t.Errorf("items over both shares, each once (-want +got):\n%s", diff)
	}
	if len(a) != 60 || len(b) != 40 {
		t.Errorf("shares of %d and %d items; want 60 and 40", len(a), len(b))
	}
}

func TestParallelScanBadOptions(t *testing.T) {
	f := newFake(10)
	for _, tt := range []struct {
		opts ParallelScanOptions
		want string
	}{
		{ParallelScanOptions{Segments: []int{4}}, "segment 4 is out of range"},
		{ParallelScanOptions{Segments: []int{-1}}, "segment -1 is out of range"},
		{ParallelScanOptions{Segments: []int{1, 1}}, "segment 1 is given twice"},
		{ParallelScanOptions{Segments: []int{0}, StartKeys: map[int]Item{2: idxKey(1)}}, "start key is given for segment 2"},
	} {
		n := 0
		for _, err := range New(f).ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("t")}, 4, func(o *ParallelScanOptions) { *o = tt.opts }) {
			n++
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "parallel scan t") {
				t.Errorf("%+v: err = %v; want %q", tt.opts, err, tt.want)
			}
		}
		if n != 1 {
			t.Errorf("%+v: %d yields; want one error", tt.opts, n)
		}
	}
	if c := f.count("Scan"); c != 0 {
		t.Errorf("%d Scan calls; want none before the options are checked", c)
	}
}

func TestEmptyTableNames(t *testing.T) {
	f := newFake(3)
	c := New(f)
	empty := aws.String("")
	for name, tt := range map[string]struct {
		seq  iter.Seq2[Item, error]
		want string
	}{
		"Query nil":          {c.Query(context.Background(), &dynamodb.QueryInput{}), "dynaflow: query: TableName is empty"},
		"Query empty":        {c.Query(context.Background(), &dynamodb.QueryInput{TableName: empty}), "dynaflow: query: TableName is empty"},
		"Scan":               {c.Scan(context.Background(), &dynamodb.ScanInput{}), "dynaflow: scan: TableName is empty"},
		"ParallelScan":       {c.ParallelScan(context.Background(), &dynamodb.ScanInput{TableName: empty}, 2), "dynaflow: parallel scan: TableName is empty"},
		"BatchGet":           {c.BatchGet(context.Background(), "", keysOf(sKey("a"))), "dynaflow: batch get: table name is empty"},
		"BatchGet nil key":   {c.BatchGet(context.Background(), "t", keysOf(nil)), "dynaflow: batch get t: a key is nil or empty"},
		"BatchGet empty key": {c.BatchGet(context.Background(), "t", keysOf(Item{})), "dynaflow: batch get t: a key is nil or empty"},
		"BatchGet map key":   {c.BatchGet(context.Background(), "t", keysOf(Item{"pk": &types.AttributeValueMemberM{}})), `dynaflow: batch get t: key attribute "pk" has type M`},
	} {
		n := 0
		for _, err := range tt.seq {
			n++
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("%s: err = %v; want %q", name, err, tt.want)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d yields; want one error", name, n)
		}
	}
	for _, op := range []string{"Query", "Scan", "BatchGetItem"} {
		if n := f.count(op); n != 0 {
			t.Errorf("%d %s calls; want none", n, op)
		}
	}
}

type purchase struct {
	Customer string   `dynamodbav:"pk"`
	ID       int      `dynamodbav:"sk"`
	Total    float64  `dynamodbav:"total"`
	Tags     []string `dynamodbav:"tags,stringset,omitempty"`
}

func TestDecodeNamesTheAttribute(t *testing.T) {
	items := slices.Values([]Item{{"pk": &types.AttributeValueMemberS{Value: "c"}, "sk": &types.AttributeValueMemberS{Value: "not a number"}}})
	for _, err := range Decode[purchase](func(yield func(Item, error) bool) {
		for it := range items {
			yield(it, nil)
		}
	}) {
		if err == nil || !strings.Contains(err.Error(), "dynaflow.purchase") || !strings.Contains(err.Error(), `attribute "sk"`) || strings.Contains(err.Error(), "not a number") {
			t.Errorf("err = %v; want the Go type and the attribute named", err)
		}
	}
}

func TestPutValue(t *testing.T) {
	f := newFake(0)
	f.describe = schema("sk")
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.KeyAttributes = nil })
	ctx := context.Background()
	if err := b.PutValue(ctx, purchase{Customer: "c", ID: 7, Total: 9.5, Tags: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, b)
	f.mu.Lock()
	got := f.store[fakeKey(Item{"pk": &types.AttributeValueMemberS{Value: "c"}, "sk": &types.AttributeValueMemberN{Value: "7"}})]
	f.mu.Unlock()
	if got == nil || got["total"].(*types.AttributeValueMemberN).Value != "9.5" {
		t.Errorf("stored %v", got)
	}
	for _, bad := range []any{42, make(chan int)} {
		err := b.PutValue(ctx, bad)
		if !errors.Is(err, ErrInvalidItem) || !strings.Contains(err.Error(), fmt.Sprintf("%T", bad)) {
			t.Errorf("PutValue(%T) = %v; want ErrInvalidItem naming the type", bad, err)
		}
	}
	if err := b.PutValue(ctx, struct{ X string }{"no key"}); !errors.Is(err, ErrInvalidItem) || !strings.Contains(err.Error(), `"pk" is missing`) {
		t.Errorf("PutValue without the key = %v; want Put's check", err)
	}
	if err := b.PutValueIn(ctx, "elsewhere", purchase{Customer: "c"}); !errors.Is(err, ErrUnknownTable) {
		t.Errorf("PutValueIn to an unknown table = %v", err)
	}
}

func TestPutWithDoneContext(t *testing.T) {
	b := newTestBatcher(t, newFake(0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Put(ctx, putItem("a")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a done ctx = %v; want context.Canceled", err)
	}
	if s := b.Stats(); s.Puts != 0 {
		t.Errorf("stats = %+v; want nothing accepted", s)
	}
}
