// Command firehose is dynaflow's demo: an HTTP handler that takes events and hands each to a
// Batcher, driven by a crowd of producers standing in for clients. At the end it closes the
// Batcher, reads every stream back with dyn.Query, and prints what was written, how fast, and
// what was retried or failed.
//
// Its client comes from the SDK's standard configuration, as any service's would; for a local
// server it sets the endpoint, a region and placeholder credentials, as the README shows.
// `make demo` starts a local server (with a fault proxy in front that hands back a fifth of the
// writes) and runs it with AWS_ENDPOINT_URL_DYNAMODB pointing there.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

func main() {
	events := flag.Int("events", 20000, "events to send")
	producers := flag.Int("producers", 32, "concurrent producers (stand-ins for HTTP clients)")
	streams := flag.Int("streams", 8, "event streams (partition keys)")
	endpoint := flag.String("endpoint", os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"), "DynamoDB endpoint; empty: the SDK's default for the region")
	flag.Parse()
	if err := run(*events, *producers, *streams, *endpoint); err != nil {
		log.Fatal(err)
	}
}

// event is what clients post.
type event struct {
	Stream string `json:"stream"`
	Seq    int    `json:"seq"`
	Kind   string `json:"kind"`
	At     int64  `json:"at"`
}

// handler takes an event and hands it to the Batcher; it answers 202 as soon as the Batcher has
// accepted it, 400 for an event the table would refuse, and 503 when the Batcher is full for
// longer than the request may wait.
func handler(b *dynaflow.Batcher) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		item := dynaflow.Item{
			"stream": &types.AttributeValueMemberS{Value: ev.Stream},
			"seq":    &types.AttributeValueMemberN{Value: strconv.Itoa(ev.Seq)},
			"kind":   &types.AttributeValueMemberS{Value: ev.Kind},
			"at":     &types.AttributeValueMemberN{Value: strconv.FormatInt(ev.At, 10)},
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		switch err := b.Put(ctx, item); {
		case err == nil:
			w.WriteHeader(http.StatusAccepted)
		case errors.Is(err, dynaflow.ErrInvalidItem), errors.Is(err, dynaflow.ErrItemTooLarge):
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
}

// newAPI returns a DynamoDB client from the SDK's standard configuration. For a local server it
// also sets the endpoint, and a region and placeholder credentials unless the environment has
// them: a local server accepts any, and without them the SDK would look for an instance role.
func newAPI(ctx context.Context, endpoint string) (*dynamodb.Client, error) {
	var opts []func(*config.LoadOptions) error
	if endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(endpoint))
		if os.Getenv("AWS_REGION") == "" {
			opts = append(opts, config.WithRegion("us-east-1"))
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg), nil
}

func run(events, producers, streams int, endpoint string) error {
	ctx := context.Background()
	api, err := newAPI(ctx, endpoint)
	if err != nil {
		return err
	}
	table := fmt.Sprintf("firehose-%d", time.Now().UnixNano())
	_, err = api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("stream"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("seq"), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("stream"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("seq"), KeyType: types.KeyTypeRange},
		},
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	defer api.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	if err := dynamodb.NewTableExistsWaiter(api).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, time.Minute); err != nil {
		return err
	}
	fmt.Printf("table: %s\n", table)

	dyn := dynaflow.New(api)
	var reported atomic.Int64
	var firstFailure atomic.Value // string: the first failure's table and error, never its item
	b, err := dyn.NewBatcher(ctx, table, func(o *dynaflow.BatcherOptions) {
		o.MaxInFlight = 16
		o.FlushInterval = 20 * time.Millisecond
		o.OnError = func(err error) {
			var we *dynaflow.WriteError
			if errors.As(err, &we) {
				reported.Add(int64(len(we.Failures)))
				if len(we.Failures) > 0 {
					f := we.Failures[0]
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s: %v", f.Table, f.Err))
				}
			}
		}
	})
	if err != nil {
		return err
	}

	h := handler(b)
	start := time.Now()
	var next atomic.Int64
	var rejected, busy atomic.Int64
	var wg sync.WaitGroup
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= events {
					return
				}
				body, _ := json.Marshal(event{Stream: "s" + strconv.Itoa(i%streams), Seq: i / streams, Kind: "click", At: time.Now().UnixMilli()})
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(string(body))))
				switch rec.Code {
				case http.StatusAccepted:
				case http.StatusServiceUnavailable:
					busy.Add(1)
					rejected.Add(1)
				default:
					rejected.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(start)

	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	closeErr := b.Close(closeCtx)
	elapsed := time.Since(start)
	st := b.Stats()

	// Read every stream back.
	read := 0
	for s := range streams {
		q := &dynamodb.QueryInput{
			TableName:                 aws.String(table),
			KeyConditionExpression:    aws.String("#s = :s"),
			ExpressionAttributeNames:  map[string]string{"#s": "stream"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: "s" + strconv.Itoa(s)}},
		}
		for _, err := range dyn.Query(ctx, q) {
			if err != nil {
				return err
			}
			read++
		}
	}

	fmt.Printf("events posted:     %d by %d producers\n", events, producers)
	fmt.Printf("refused:           %d (%d answered 503: the Batcher stayed full for the request's 2s)\n", rejected.Load(), busy.Load())
	fmt.Printf("accepted in:       %v\n", accepted.Round(time.Millisecond))
	fmt.Printf("written:           %d in %v, %.0f writes/s\n", st.Written, elapsed.Round(time.Millisecond), float64(st.Written)/elapsed.Seconds())
	fmt.Printf("requests:          %d BatchWriteItem calls (%.1f writes per call)\n", st.Requests, float64(st.Written+st.Failed)/float64(max(st.Requests, 1)))
	fmt.Printf("retried:           %d writes handed back unprocessed and sent again\n", st.Retried)
	fmt.Printf("throttled calls:   %d\n", st.Throttled)
	fmt.Printf("failed:            %d (OnError saw %d)\n", st.Failed, reported.Load())
	if f, ok := firstFailure.Load().(string); ok {
		fmt.Printf("first failure:     %s\n", f)
	}
	fmt.Printf("read back:         %d items with dyn.Query\n", read)
	if closeErr != nil {
		return fmt.Errorf("close: %w", closeErr)
	}
	if read != events-int(rejected.Load()) {
		fmt.Fprintf(os.Stderr, "read back %d items; expected %d\n", read, events-int(rejected.Load()))
		os.Exit(1)
	}
	return nil
}
