package dynaflow_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

// newClient builds a dynaflow Client from the SDK's standard configuration: credentials, region,
// and AWS_ENDPOINT_URL_DYNAMODB for a local server.
func newClient(ctx context.Context) *dynaflow.Client {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	return dynaflow.New(dynamodb.NewFromConfig(cfg))
}

func ExampleClient_Query() {
	ctx := context.Background()
	dyn := newClient(ctx)
	q := &dynamodb.QueryInput{
		TableName:                 aws.String("orders"),
		KeyConditionExpression:    aws.String("customer = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: "c-42"}},
	}
	n := 0
	for item, err := range dyn.Query(ctx, q) {
		if err != nil {
			log.Fatal(err) // "dynaflow: query orders: ...", after the SDK's and dynaflow's retries
		}
		fmt.Println(item["order_id"])
		if n++; n == 10 {
			break // the first ten orders; no further page is requested
		}
	}
}

func ExampleClient_QueryPages() {
	ctx := context.Background()
	dyn := newClient(ctx)
	q := &dynamodb.QueryInput{
		TableName:                 aws.String("orders"),
		KeyConditionExpression:    aws.String("customer = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: "c-42"}},
		Limit:                     aws.Int32(50),
	}
	// Serve one page of results, and hand the client a cursor for the next one.
	for page, err := range dyn.QueryPages(ctx, q) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(page.Items), "orders; next page starts at", page.LastEvaluatedKey)
		break
	}
}

func ExampleClient_ParallelScan() {
	ctx := context.Background()
	dyn := newClient(ctx)
	total := 0
	for _, err := range dyn.ParallelScan(ctx, &dynamodb.ScanInput{TableName: aws.String("events")}, 16) {
		if err != nil {
			log.Fatal(err) // the other segments are stopped before the error arrives
		}
		total++
	}
	fmt.Println(total, "events")
}

func ExampleClient_BatchGet() {
	ctx := context.Background()
	dyn := newClient(ctx)
	ids := func(yield func(dynaflow.Item) bool) {
		for _, id := range []string{"a", "b", "a", "c"} { // "a" is requested once
			if !yield(dynaflow.Item{"id": &types.AttributeValueMemberS{Value: id}}) {
				return
			}
		}
	}
	for item, err := range dyn.BatchGet(ctx, "users", ids, func(ka *types.KeysAndAttributes) {
		ka.ProjectionExpression = aws.String("id, email")
	}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(item["email"])
	}
}

type user struct {
	ID    string `dynamodbav:"id"`
	Email string `dynamodbav:"email"`
}

func ExampleDecode() {
	// Any sequence of items decodes; here two items stand in for dyn.Query or dyn.Scan.
	items := func(yield func(dynaflow.Item, error) bool) {
		for _, id := range []string{"u-1", "u-2"} {
			if !yield(dynaflow.Item{
				"id":    &types.AttributeValueMemberS{Value: id},
				"email": &types.AttributeValueMemberS{Value: id + "@example.com"},
			}, nil) {
				return
			}
		}
	}
	for u, err := range dynaflow.Decode[user](iter.Seq2[dynaflow.Item, error](items)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(u.ID, u.Email)
	}
	// Output:
	// u-1 u-1@example.com
	// u-2 u-2@example.com
}

func ExampleClient_NewBatcher() {
	ctx := context.Background()
	dyn := newClient(ctx)
	b, err := dyn.NewBatcher(ctx, "events", func(o *dynaflow.BatcherOptions) {
		o.FlushInterval = 50 * time.Millisecond
	})
	if err != nil {
		log.Fatal(err)
	}
	// In a request handler: hand the write over and move on.
	err = b.Put(ctx, dynaflow.Item{
		"stream": &types.AttributeValueMemberS{Value: "clicks"},
		"seq":    &types.AttributeValueMemberN{Value: "1"},
	})
	if err != nil {
		log.Print(err) // a bad item (ErrInvalidItem, ErrItemTooLarge), ctx.Err(), or ErrClosed
	}
	// At shutdown: write everything outstanding, within a deadline.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		var we *dynaflow.WriteError
		if errors.As(err, &we) {
			for _, f := range we.Failures {
				log.Printf("not written: %v", f.Err) // f.Request holds the write, to retry or park
			}
		}
	}
}

// A struct with dynamodbav tags, written with PutValue and read back with Query and Decode: the
// README's first example.
func Example() {
	type Order struct {
		Customer string  `dynamodbav:"customer"` // the table's partition key
		ID       string  `dynamodbav:"order_id"` // its sort key
		Total    float64 `dynamodbav:"total"`
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	dyn := dynaflow.New(dynamodb.NewFromConfig(cfg))

	b, err := dyn.NewBatcher(ctx, "orders") // learns the key from DescribeTable
	if err != nil {
		log.Fatal(err)
	}
	for i := range 100 {
		if err := b.PutValue(ctx, Order{Customer: "c-42", ID: fmt.Sprintf("o-%03d", i), Total: 9.5}); err != nil {
			log.Fatal(err)
		}
	}
	if err := b.Close(ctx); err != nil { // writes everything; a *WriteError names what did not land
		log.Fatal(err)
	}

	q := &dynamodb.QueryInput{
		TableName:                 aws.String("orders"),
		KeyConditionExpression:    aws.String("customer = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: "c-42"}},
	}
	for o, err := range dynaflow.Decode[Order](dyn.Query(ctx, q)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(o.ID, o.Total)
	}
}

// One Batcher feeding two tables: writes for both share BatchWriteItem calls, and a table that
// throttles is slowed on its own.
func ExampleBatcher_PutIn() {
	ctx := context.Background()
	dyn := newClient(ctx)
	b, err := dyn.NewBatcher(ctx, "orders", func(o *dynaflow.BatcherOptions) {
		o.Tables = map[string][]string{"order_events": nil} // nil: read its key with DescribeTable
	})
	if err != nil {
		log.Fatal(err)
	}
	order := dynaflow.Item{"customer": &types.AttributeValueMemberS{Value: "c-42"}, "order_id": &types.AttributeValueMemberS{Value: "o-1"}}
	event := dynaflow.Item{"order_id": &types.AttributeValueMemberS{Value: "o-1"}, "at": &types.AttributeValueMemberN{Value: "1700000000"}}
	if err := b.Put(ctx, order); err != nil { // to "orders"
		log.Fatal(err)
	}
	if err := b.PutIn(ctx, "order_events", event); err != nil {
		log.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		var we *dynaflow.WriteError
		if errors.As(err, &we) {
			for _, f := range we.Failures {
				log.Printf("not written to %s: %v", f.Table, f.Err)
			}
		}
	}
}

func ExampleClient_ListTables() {
	ctx := context.Background()
	dyn := newClient(ctx)
	for name, err := range dyn.ListTables(ctx, nil) {
		if err != nil {
			log.Fatal(err) // "dynaflow: list tables: ..."
		}
		fmt.Println(name)
	}
}

func ExampleClient_ListTagsOfResource() {
	ctx := context.Background()
	dyn := newClient(ctx)
	in := &dynamodb.ListTagsOfResourceInput{ResourceArn: aws.String("arn:aws:dynamodb:us-east-1:123456789012:table/orders")}
	for tag, err := range dyn.ListTagsOfResource(ctx, in) {
		if err != nil {
			log.Fatal(err) // "dynaflow: list tags arn:...: ..."
		}
		fmt.Println(aws.ToString(tag.Key), aws.ToString(tag.Value))
	}
}

// Deletes go through the same Batcher as puts, in the same calls, last write per key winning.
func ExampleBatcher_DeleteIn() {
	ctx := context.Background()
	dyn := newClient(ctx)
	b, err := dyn.NewBatcher(ctx, "orders", func(o *dynaflow.BatcherOptions) {
		o.Tables = map[string][]string{"order_events": {"order_id", "at"}} // checked against DescribeTable
	})
	if err != nil {
		log.Fatal(err) // a missing table, or names that are not its key
	}
	key := dynaflow.Item{"order_id": &types.AttributeValueMemberS{Value: "o-1"}, "at": &types.AttributeValueMemberN{Value: "1700000000"}}
	if err := b.DeleteIn(ctx, "order_events", key); err != nil {
		log.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		log.Fatal(err)
	}
}

// Splitting one export over three machines: each runs its share of the segments and records
// every segment's state after each page, so that a crashed share resumes where it stopped.
func ExampleClient_ParallelScanPages() {
	ctx := context.Background()
	dyn := newClient(ctx)
	const total, machines, me = 30, 3, 1 // this is machine 1 of 0..2
	var mine []int
	for s := me; s < total; s += machines {
		mine = append(mine, s)
	}
	// From the last run's checkpoint, if any: each unfinished segment's last key (leave the
	// segments it records as done out of mine).
	saved := map[int]dynaflow.Item{}
	in := &dynamodb.ScanInput{TableName: aws.String("orders")}
	for p, err := range dyn.ParallelScanPages(ctx, in, total, func(o *dynaflow.ParallelScanOptions) {
		o.Segments, o.StartKeys = mine, saved
	}) {
		if err != nil {
			log.Fatal(err)
		}
		for _, item := range p.Output.Items {
			_ = item // write it out
		}
		saved[p.Segment] = p.Output.LastEvaluatedKey // nil: segment done; save the checkpoint now
	}
}

func ExampleWriteError() {
	err := error(&dynaflow.WriteError{Failures: []dynaflow.Failure{
		{Request: types.WriteRequest{DeleteRequest: &types.DeleteRequest{}}, Err: fmt.Errorf("dynaflow: batch write events: %w", context.DeadlineExceeded)},
	}})
	var we *dynaflow.WriteError
	fmt.Println(errors.As(err, &we), len(we.Failures), errors.Is(err, context.DeadlineExceeded))
	// Output: true 1 true
}

func ExampleItemSize() {
	item := dynaflow.Item{
		"id":   &types.AttributeValueMemberS{Value: "u-1"},                   // 2 + 3
		"tags": &types.AttributeValueMemberSS{Value: []string{"new", "vip"}}, // 4 + 6
	}
	fmt.Println(dynaflow.ItemSize(item), dynaflow.ItemSize(item) <= dynaflow.MaxItemSize)
	// Output: 15 true
}

// TypeName names an attribute value's type as DynamoDB JSON tags it.
func ExampleTypeName() {
	fmt.Println(dynaflow.TypeName(&types.AttributeValueMemberSS{Value: []string{"a"}}))
	fmt.Println(dynaflow.TypeName(&types.AttributeValueMemberN{Value: "1"}))
	// Output:
	// SS
	// N
}
