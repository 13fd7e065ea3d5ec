// Command firehose is dynaflow's demo: an HTTP handler that takes events and hands each to a
// Batcher, driven by a crowd of producers standing in for clients. At the end it closes the
// Batcher, reads every stream back with dyn.Query, and prints what was written, how fast, and
// what was retried or failed.
//
// It runs against the server in DYNAMODB_ENDPOINT or AWS_ENDPOINT_URL_DYNAMODB, or else starts a
// local one (dynalite or moto, as the tests do) and stops it at the end: `make demo`.
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
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

func main() {
	events := flag.Int("events", 20000, "events to send")
	producers := flag.Int("producers", 32, "concurrent producers (stand-ins for HTTP clients)")
	streams := flag.Int("streams", 8, "event streams (partition keys)")
	unprocessed := flag.Float64("unprocessed", 0.2, "share of writes the fault proxy hands back unprocessed (0 for none)")
	flag.Parse()
	if err := run(*events, *producers, *streams, *unprocessed); err != nil {
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

func run(events, producers, streams int, unprocessed float64) error {
	ctx := context.Background()
	srv, err := dynamotest.FromEnv(ctx)
	if err != nil {
		return fmt.Errorf("no DynamoDB-protocol server: %w\n%s", err, dynamotest.HowToGetOne)
	}
	defer srv.Stop()
	fmt.Printf("server: %s at %s\n", srv.Backend, srv.Endpoint)

	endpoint := srv.Endpoint
	if unprocessed > 0 {
		// A fault proxy plays DynamoDB under load: it hands back a share of every batch.
		proxy := dynamotest.NewProxy(srv.Endpoint)
		defer proxy.Close()
		proxy.SetUnprocessed(unprocessed)
		endpoint = proxy.URL
		fmt.Printf("fault proxy: %.0f%% of writes handed back as UnprocessedItems\n", unprocessed*100)
	}
	api := dynamotest.NewClient(endpoint)
	table := dynamotest.TableName("firehose")
	if err := dynamotest.CreateTable(ctx, api, table,
		dynamotest.Key{Name: "stream", Type: types.ScalarAttributeTypeS},
		&dynamotest.Key{Name: "seq", Type: types.ScalarAttributeTypeN}); err != nil {
		return err
	}

	dyn := dynaflow.New(api)
	var reported atomic.Int64
	b, err := dyn.NewBatcher(ctx, table, func(o *dynaflow.BatcherOptions) {
		o.MaxInFlight = 16
		o.FlushInterval = 20 * time.Millisecond
		o.OnError = func(err error) {
			var we *dynaflow.WriteError
			if errors.As(err, &we) {
				reported.Add(int64(len(we.Failures)))
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
