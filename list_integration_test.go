package dynaflow

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
)

func TestIntegrationListTables(t *testing.T) {
	e := integration(t, "")
	second := e.secondTable(t)
	before := e.proxy.Calls("ListTables")
	var names []string
	for name, err := range e.dyn.ListTables(context.Background(), &dynamodb.ListTablesInput{Limit: aws.Int32(1)}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if !slices.Contains(names, e.table) || !slices.Contains(names, second) {
		t.Errorf("ListTables did not list the test's tables %s and %s", e.table, second)
	}
	if calls := e.proxy.Calls("ListTables") - before; calls < len(names) {
		t.Errorf("%d names in %d calls with Limit 1; want a page a name", len(names), calls)
	}
	// Each once (DynamoDB lists in name order; moto in creation order, so order is not checked).
	sorted := slices.Sorted(slices.Values(names))
	if len(slices.Compact(sorted)) != len(names) {
		t.Errorf("names are not each listed once: %v", names)
	}
	before = e.proxy.Calls("ListTables")
	for range e.dyn.ListTables(context.Background(), &dynamodb.ListTablesInput{Limit: aws.Int32(1)}) {
		break
	}
	if calls := e.proxy.Calls("ListTables") - before; calls != 1 {
		t.Errorf("calls after a break on the first name = %d; want 1", calls)
	}
}

func TestIntegrationListTagsOfResource(t *testing.T) {
	e := integration(t, "")
	ctx := context.Background()
	d, err := e.direct.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(e.table)})
	if err != nil {
		t.Fatal(err)
	}
	arn := d.Table.TableArn
	var tags []types.Tag
	for i := range 3 {
		tags = append(tags, types.Tag{Key: aws.String("k" + strconv.Itoa(i)), Value: aws.String("v" + strconv.Itoa(i))})
	}
	if _, err := e.direct.TagResource(ctx, &dynamodb.TagResourceInput{ResourceArn: arn, Tags: tags}); err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && (api.ErrorCode() == "UnknownOperationException" || api.ErrorCode() == "UnrecognizedClientException") {
			t.Skipf("%s does not support tagging: %v", e.backend, err)
		}
		t.Fatal(err)
	}
	got := map[string]string{}
	for tag, err := range e.dyn.ListTagsOfResource(ctx, &dynamodb.ListTagsOfResourceInput{ResourceArn: arn}) {
		if err != nil {
			t.Fatal(err)
		}
		got[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	if diff := cmp.Diff(map[string]string{"k0": "v0", "k1": "v1", "k2": "v2"}, got); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	missing := strings.Replace(aws.ToString(arn), e.table, "missing-"+e.table, 1)
	for _, err := range e.dyn.ListTagsOfResource(ctx, &dynamodb.ListTagsOfResourceInput{ResourceArn: aws.String(missing)}) {
		if err == nil {
			// moto lists no tags for an unknown table rather than failing; nothing to check then.
			continue
		}
		if !strings.HasPrefix(err.Error(), "dynaflow: list tags "+missing+": ") {
			t.Errorf("err = %v; want it to name the operation and the ARN", err)
		}
	}
}

// scanRecorded runs a parallel scan of e's table page by page as a resuming caller would, stopping
// after stop pages (never when negative), and returns the sks seen and each segment's state.
func (e *env) scanRecorded(t *testing.T, segments, stop int, optFns ...func(*ParallelScanOptions)) (sks []int, state map[int]Item, done map[int]bool) {
	t.Helper()
	state, done = map[int]Item{}, map[int]bool{}
	pages := 0
	for p, err := range e.dyn.ParallelScanPages(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.table), Limit: aws.Int32(7)}, segments, optFns...) {
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Output.Items {
			n, _ := strconv.Atoi(it["sk"].(*types.AttributeValueMemberN).Value)
			sks = append(sks, n)
		}
		state[p.Segment], done[p.Segment] = p.Output.LastEvaluatedKey, p.Output.LastEvaluatedKey == nil
		if pages++; pages == stop {
			break
		}
	}
	return sks, state, done
}

func TestIntegrationParallelScanResumeAndSplit(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	e.seedRange(t, 300)
	want := upTo(300)

	// Broken after some pages, then resumed from the recorded states.
	first, state, done := e.scanRecorded(t, 4, 10)
	var rest []int
	keys := map[int]Item{}
	for s := range 4 {
		if !done[s] {
			rest = append(rest, s)
			if state[s] != nil {
				keys[s] = state[s]
			}
		}
	}
	more, _, _ := e.scanRecorded(t, 4, -1, func(o *ParallelScanOptions) { o.Segments, o.StartKeys = rest, keys })
	all := append(first, more...)
	slices.Sort(all)
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("broken and resumed: each item once (-want +got):\n%s", diff)
	}

	// Split over two "processes".
	a, _, _ := e.scanRecorded(t, 4, -1, func(o *ParallelScanOptions) { o.Segments = []int{0, 3} })
	b, _, _ := e.scanRecorded(t, 4, -1, func(o *ParallelScanOptions) { o.Segments = []int{1, 2} })
	all = append(a, b...)
	slices.Sort(all)
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("split over two calls: each item once (-want +got):\n%s", diff)
	}
	checkNoLeaks(t)
}

type reading struct {
	Sensor string  `dynamodbav:"pk"`
	Seq    int     `dynamodbav:"sk"`
	Value  float64 `dynamodbav:"value"`
	Note   string  `dynamodbav:"note,omitempty"`
}

func TestIntegrationPutValueRoundTrip(t *testing.T) {
	e := integration(t, types.ScalarAttributeTypeN)
	b := e.batcher(t)
	want := []reading{{"p", 1, 20.5, "first"}, {"p", 2, -3.25, ""}, {"p", 3, 1e-7, "last"}} // e.query reads pk "p"
	for _, r := range want {
		if err := b.PutValue(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	closeOK(t, b)
	var got []reading
	for r, err := range Decode[reading](e.dyn.Query(context.Background(), e.query(2))) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestIntegrationReadErrorsBeforeSending(t *testing.T) {
	e := integration(t, "")
	before := e.proxy.Calls("")
	for name, seq := range map[string]func(func(Item, error) bool){
		"query": e.dyn.Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String("")}),
		"scan":  e.dyn.Scan(context.Background(), &dynamodb.ScanInput{}),
		"get":   e.dyn.BatchGet(context.Background(), e.table, slices.Values([]Item{{"pk": &types.AttributeValueMemberL{}}})),
	} {
		n := 0
		for _, err := range seq {
			n++
			if err == nil || strings.Count(err.Error(), "\n") > 0 || !strings.HasPrefix(err.Error(), "dynaflow: ") {
				t.Errorf("%s: err = %q; want one short line", name, err)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d yields; want one error", name, n)
		}
	}
	if calls := e.proxy.Calls("") - before; calls != 0 {
		t.Errorf("%d calls reached the server; want none", calls)
	}
}
