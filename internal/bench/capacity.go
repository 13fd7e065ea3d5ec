package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/dynaflowtest"
	"github.com/dynaflow-go/dynaflow/internal/benchsink"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

// Senders for CapacityWrites.
const (
	Adaptive = "adaptive"     // a Batcher, no cap: it must find the capacity itself
	Capped   = "capped"       // a Batcher with MaxWriteUnits at 90% of the capacity
	Fixed16  = "fixed16"      // a Batcher with FixedInFlight and MaxInFlight 16
	SDK      = "sdk-adaptive" // 16 goroutines on the raw SDK with its adaptive retry mode
)

// CapacityResult is what the capacity proxy saw of one run: its own accounting, never the
// sender's.
type CapacityResult struct {
	Windows          []float64 // units admitted a second in each window of about 1 s, sliding by 100 ms
	Calls, Throttled int       // calls, and those with any write handed back
	Took             time.Duration
}

// kbItem is the i'th item of about 1 KB: one write unit.
func kbItem(i int) dynaflow.Item {
	return dynaflow.Item{
		"pk":   &types.AttributeValueMemberS{Value: "kb-" + strconv.Itoa(i)},
		"body": &types.AttributeValueMemberS{Value: strings.Repeat("x", 950)},
	}
}

// CapacityWrites writes writes items of 1 KB with sender through a capacity proxy enforcing
// capacity write units a second (starting with a second's burst) in front of a sink answering
// after 10 ms. When halveAt is not zero the capacity halves that long after the start.
func CapacityWrites(writes int, capacity float64, sender string, halveAt time.Duration) (CapacityResult, error) {
	sink := benchsink.New(1, 1)
	sink.SetDelay(10 * time.Millisecond)
	defer sink.Close()
	p := dynaflowtest.NewProxy(sink.URL)
	defer p.Close()
	p.SetWriteCapacity(Table, capacity, 0)

	var res CapacityResult
	stop := make(chan struct{})
	var polled sync.WaitGroup
	polled.Add(1)
	go func() { // the cumulative admitted units every 100 ms, for sliding windows
		defer polled.Done()
		var cum []float64
		var at []time.Time
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				// Each window is ten polls wide, over the time the polls really took: a poll that
				// runs late must not make a window of 1.05 s count as one of 1 s.
				for i := 10; i < len(cum); i++ {
					res.Windows = append(res.Windows, (cum[i]-cum[i-10])/at[i].Sub(at[i-10]).Seconds())
				}
				return
			case <-tick.C:
				per, _ := p.WriteCapacityUse(Table)
				s := 0.0
				for _, u := range per {
					s += u
				}
				cum, at = append(cum, s), append(at, time.Now())
			}
		}
	}()
	var halve *time.Timer
	if halveAt > 0 {
		halve = time.AfterFunc(halveAt, func() { p.SetWriteCapacity(Table, capacity/2, 0) })
	}
	start := time.Now()
	err := send(p.URL, writes, capacity, sender)
	res.Took = time.Since(start)
	if halve != nil {
		halve.Stop()
	}
	close(stop)
	polled.Wait()
	res.Calls, res.Throttled = p.WriteCapacityCalls(Table)
	return res, err
}

func send(url string, writes int, capacity float64, sender string) error {
	ctx := context.Background()
	if sender == SDK {
		api := dynamotest.NewClient(url, func(o *dynamodb.Options) { o.Retryer = retry.NewAdaptiveMode() })
		return spreadBlocks(writes/25, 16, 1, func(i int) error {
			reqs := make([]types.WriteRequest, 25)
			for j := range reqs {
				reqs[j] = types.WriteRequest{PutRequest: &types.PutRequest{Item: kbItem(i*25 + j)}}
			}
			for len(reqs) > 0 {
				out, err := api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{Table: reqs}})
				if err != nil {
					continue // throttled past the SDK's own retries: send again
				}
				reqs = out.UnprocessedItems[Table]
			}
			return nil
		})
	}
	dyn := dynaflow.New(dynamotest.NewClient(url), func(o *dynaflow.Options) {
		if sender == Capped {
			o.MaxWriteUnits = 0.9 * capacity
		}
	})
	b, err := dyn.NewBatcher(ctx, Table, func(o *dynaflow.BatcherOptions) {
		o.KeyAttributes = []string{"pk"}
		o.Retry = dynaflow.Retry{MaxAttempts: 1000}
		if sender == Fixed16 {
			o.MaxInFlight, o.FixedInFlight = 16, true
		}
	})
	if err != nil {
		return err
	}
	for i := range writes {
		if err := b.Put(ctx, kbItem(i)); err != nil {
			return err
		}
	}
	if err := b.Close(ctx); err != nil {
		return err
	}
	if s := b.Stats(); s.Written != int64(writes) {
		return fmt.Errorf("%s: %d of %d written", sender, s.Written, writes)
	}
	return nil
}

// CappedScan reads the sink's Scan table with ParallelScan over 16 segments and MaxReadUnits
// at capacity, through a proxy that counts the read units it answers, for d at least (the scan
// repeats). It returns the units charged in each whole second.
func CappedScan(capacity float64, d time.Duration) ([]float64, error) {
	// Answering at once, with pages of 100 items of about 1 KB (13 read units a page): the cap,
	// not the sink or the cores, bounds the rate.
	sink := benchsink.NewSized(200, 100, 1000)
	defer sink.Close()
	p := dynaflowtest.NewProxy(sink.URL)
	defer p.Close()
	p.SetReadCapacity(Table, 1e9, 0) // never refuses: it only counts
	dyn := dynaflow.New(dynamotest.NewClient(p.URL), func(o *dynaflow.Options) { o.MaxReadUnits = capacity })
	ctx := context.Background()
	for start := time.Now(); time.Since(start) < d; {
		for _, err := range dyn.ParallelScan(ctx, &dynamodb.ScanInput{TableName: aws.String(Table)}, 16) {
			if err != nil {
				return nil, err
			}
		}
	}
	per, _ := p.ReadCapacityUse(Table)
	return per, nil
}
