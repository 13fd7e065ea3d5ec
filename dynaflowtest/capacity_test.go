package dynaflowtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

// TestWriteCapacity puts the proxy, with a bucket of 100 write units, in front of a
// server that lands everything, and checks what it admits, hands back and refuses.
func TestWriteCapacity(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, []byte(`{}`))
	}))
	defer backend.Close()
	p := NewProxy(backend.URL)
	defer p.Close()
	p.SetWriteCapacity("t", 1, 100) // a full bucket of 100 that barely refills during the test
	api := dynamotest.NewClient(p.URL, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
	batch := func(n, size int) *dynamodb.BatchWriteItemInput {
		var reqs []types.WriteRequest
		for i := range n {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
				"pk":   &types.AttributeValueMemberS{Value: "k" + strconv.Itoa(i)},
				"body": &types.AttributeValueMemberS{Value: strings.Repeat("x", size)},
			}}})
		}
		return &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"t": reqs}}
	}
	ctx := context.Background()
	// 25 items of just under 5 KB cost 5 units each: the full bucket of 100 admits 20.
	out, err := api.BatchWriteItem(ctx, batch(25, 5*1024-20))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out.UnprocessedItems["t"]); n != 5 {
		t.Errorf("handed back %d of 25; want 5", n)
	}
	// The bucket is empty: nothing is admitted, and the call is throttled.
	_, err = api.BatchWriteItem(ctx, batch(25, 5*1024-20))
	var pte *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) {
		t.Errorf("second call = %v; want ProvisionedThroughputExceededException", err)
	}
	// Raising the capacity fills the bucket again; small items cost 1 unit each.
	p.SetWriteCapacity("t", 1000, 0)
	if out, err := api.BatchWriteItem(ctx, batch(25, 10)); err != nil || len(out.UnprocessedItems) != 0 {
		t.Errorf("after raising the capacity: %v, %d handed back; want all admitted", err, len(out.UnprocessedItems["t"]))
	}
	perSecond, refused := p.WriteCapacityUse("t")
	total := sum(perSecond)
	if total != 125 || refused != 30 {
		t.Errorf("admitted %v units (%v a second), refused %d writes; want 125 and 30", total, perSecond, refused)
	}
	// Another table has no capacity set: everything goes through.
	in := batch(25, 5*1024)
	in.RequestItems = map[string][]types.WriteRequest{"other": in.RequestItems["t"]}
	if out, err := api.BatchWriteItem(ctx, in); err != nil || len(out.UnprocessedItems) != 0 {
		t.Errorf("a table without capacity: %v", err)
	}
}

// TestReadCapacity: a Scan is answered while the table's read bucket is not in debt, and charged
// for what it returned.
func TestReadCapacity(t *testing.T) {
	page := `{"Items":[` + strings.TrimSuffix(strings.Repeat(`{"pk":{"S":"`+strings.Repeat("x", 4000)+`"}},`, 10), ",") + `],"Count":10}`
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, []byte(page))
	}))
	defer backend.Close()
	p := NewProxy(backend.URL)
	defer p.Close()
	p.SetReadCapacity("t", 1, 9) // barely refills during the test
	api := dynamotest.NewClient(p.URL, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
	ctx := context.Background()
	scan := &dynamodb.ScanInput{TableName: aws.String("t")}
	// 10 items of 4,002 bytes: 40,020 bytes, 10 units strongly consistent, 5 eventually.
	for i := range 2 {
		if _, err := api.Scan(ctx, scan); err != nil {
			t.Fatalf("scan %d: %v", i, err)
		}
	}
	var pte *types.ProvisionedThroughputExceededException
	if _, err := api.Scan(ctx, scan); !errors.As(err, &pte) {
		t.Errorf("third scan, the bucket in debt = %v; want ProvisionedThroughputExceededException", err)
	}
	perSecond, refused := p.ReadCapacityUse("t")
	total := sum(perSecond)
	if total != 10 || refused != 1 {
		t.Errorf("charged %v units, refused %d calls; want 10 and 1", total, refused)
	}
	p.SetReadCapacity("t", 1, 100)
	if _, err := api.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("t"), ConsistentRead: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	perSecond, _ = p.ReadCapacityUse("t")
	after := sum(perSecond)
	if after != total+10 {
		t.Errorf("a consistent read was charged %v; want 10", after-total)
	}
}

// sum adds up a proxy's per-second accounting.
func sum(perSecond []float64) float64 {
	t := 0.0
	for _, u := range perSecond {
		t += u
	}
	return t
}
