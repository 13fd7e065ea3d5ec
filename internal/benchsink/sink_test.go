package benchsink_test

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/internal/benchsink"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

func newSink(t *testing.T, pages, perPage int) (*benchsink.Sink, *dynamodb.Client) {
	t.Helper()
	s := benchsink.New(pages, perPage)
	t.Cleanup(s.Close)
	return s, dynamotest.NewClient(s.URL)
}

func puts(n int) []types.WriteRequest {
	var rs []types.WriteRequest
	for i := range n {
		rs = append(rs, types.WriteRequest{PutRequest: &types.PutRequest{Item: dynaflow.Item{
			"pk": &types.AttributeValueMemberS{Value: "k" + strconv.Itoa(i)}}}})
	}
	return rs
}

// TestSinkAnswersEveryOperation drives the SDK's client through each operation the sink
// answers, and dynaflow's readers through its pages. (The SDK checks X-Amz-Crc32 only as it
// closes a body and does not fail the call on a mismatch; TestSinkChecksum checks the header.)
func TestSinkAnswersEveryOperation(t *testing.T) {
	ctx := context.Background()
	s, api := newSink(t, 7, 4)

	out, err := api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"bench": puts(25)}})
	if err != nil {
		t.Fatalf("BatchWriteItem: %v", err)
	}
	if len(out.UnprocessedItems) != 0 || s.Writes() != 25 {
		t.Errorf("BatchWriteItem: %d unprocessed tables, sink counted %d writes; want 0 and 25", len(out.UnprocessedItems), s.Writes())
	}

	dyn := dynaflow.New(api)
	count := func(seq func(func(dynaflow.Item, error) bool)) int {
		n := 0
		for _, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	q := &dynamodb.QueryInput{TableName: aws.String("bench"), KeyConditionExpression: aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "p"}}}
	if n := count(dyn.Query(ctx, q)); n != 7*4 {
		t.Errorf("Query read %d items; want 28 (7 pages of 4)", n)
	}
	scan := &dynamodb.ScanInput{TableName: aws.String("bench")}
	if n := count(dyn.Scan(ctx, scan)); n != 7*4 {
		t.Errorf("Scan read %d items; want 28", n)
	}
	// Three segments share the seven pages: 3, 2 and 2.
	if n := count(dyn.ParallelScan(ctx, scan, 3)); n != 7*4 {
		t.Errorf("ParallelScan(3) read %d items; want 28", n)
	}

	keys := []map[string]types.AttributeValue{
		{"pk": &types.AttributeValueMemberS{Value: "a"}},
		{"pk": &types.AttributeValueMemberS{Value: "b"}},
	}
	got, err := api.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{"bench": {Keys: keys}}})
	if err != nil {
		t.Fatalf("BatchGetItem: %v", err)
	}
	if items := got.Responses["bench"]; len(items) != 2 || items[0]["pk"].(*types.AttributeValueMemberS).Value != "a" {
		t.Errorf("BatchGetItem answered %v; want the two keys back", items)
	}

	desc, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("bench")})
	if err != nil {
		t.Fatalf("DescribeTable: %v", err)
	}
	if ks := desc.Table.KeySchema; len(ks) != 1 || aws.ToString(ks[0].AttributeName) != "pk" || ks[0].KeyType != types.KeyTypeHash {
		t.Errorf("DescribeTable key schema = %+v; want pk HASH", ks)
	}

	var apiErr smithy.APIError
	_, err = api.ListTables(ctx, &dynamodb.ListTablesInput{})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnknownOperationException" {
		t.Errorf("an operation the sink does not answer = %v; want UnknownOperationException", err)
	}
}

// TestSinkChecksum checks the X-Amz-Crc32 header itself, on a raw HTTP answer.
func TestSinkChecksum(t *testing.T) {
	s, _ := newSink(t, 2, 3)
	req, err := http.NewRequest("POST", s.URL, bytes.NewReader([]byte(`{"TableName":"bench"}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.Scan")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10); resp.Header.Get("X-Amz-Crc32") != want || len(body) == 0 {
		t.Errorf("X-Amz-Crc32 = %q for a %d-byte body; want %s", resp.Header.Get("X-Amz-Crc32"), len(body), want)
	}
	if !bytes.Contains(body, []byte(`"LastEvaluatedKey":{"i":{"N":"1"}}`)) {
		t.Errorf("the first of two pages = %s; want a LastEvaluatedKey naming page 1", body)
	}
}

// TestSinkDelayAndStall: every answer waits at least the delay; a stalled BatchWriteItem waits
// for Release.
func TestSinkDelayAndStall(t *testing.T) {
	ctx := context.Background()
	s, api := newSink(t, 1, 1)
	s.SetDelay(30 * time.Millisecond)
	start := time.Now()
	if _, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("bench")}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Errorf("an answer with a 30ms delay came after %v", took)
	}
	s.SetDelay(0)

	s.Stall()
	calls := s.Calls()
	done := make(chan error, 1)
	go func() {
		_, err := api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"bench": puts(1)}})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.Calls() == calls {
		if time.Now().After(deadline) {
			t.Fatal("the call never reached the sink")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("a stalled BatchWriteItem returned before Release: %v", err)
	default:
	}
	s.Release()
	if err := <-done; err != nil {
		t.Fatalf("BatchWriteItem after Release: %v", err)
	}
	if s.Writes() != 1 {
		t.Errorf("sink counted %d writes; want 1", s.Writes())
	}
}
