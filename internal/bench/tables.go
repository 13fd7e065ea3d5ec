package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

// Table2 is the second table of the two-table benchmark.
const Table2 = "bench2"

// TwoTableWrites is BatcherWrites with the writes spread over two tables, every other write to
// each, in one Batcher. One op is one write.
func TwoTableWrites(b *testing.B, e *Env, maxInFlight, producers int) {
	putAll(b, e.API, maxInFlight, producers, Table2)
}

// failAPI refuses every BatchWriteItem as a table that does not exist would.
type failAPI struct{ nopAPI }

func (failAPI) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return nil, &types.ResourceNotFoundException{Message: aws.String("gone")}
}

// FailingPeakHeap sends writes writes, a fresh item each, from 8 producers through a Batcher with
// the default limits whose every write fails. With onError the failures go to OnError; without,
// a goroutine calls Flush over and over, as the README advises, which returns them. It checks
// that every write was reported failed, and returns the heap after a GC before it started and
// the highest heap seen, sampled every millisecond.
func FailingPeakHeap(writes int, onError bool) (base, peak uint64, err error) {
	ctx := context.Background()
	var reported atomic.Int64
	count := func(err error) {
		var we *dynaflow.WriteError
		if errors.As(err, &we) {
			reported.Add(int64(len(we.Failures)))
		}
	}
	return sampleHeap(func() error {
		w, err := dynaflow.New(failAPI{}).NewBatcher(ctx, Table, func(o *dynaflow.BatcherOptions) {
			if onError {
				o.OnError = count
			}
		})
		if err != nil {
			return err
		}
		stop := make(chan struct{})
		flushed := make(chan struct{})
		go func() {
			defer close(flushed)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !onError {
					count(w.Flush(ctx))
				} else {
					time.Sleep(time.Millisecond)
				}
			}
		}()
		putErr := spreadBlocks(writes, 8, putBlock, func(i int) error { return w.Put(ctx, Event(i)) })
		close(stop)
		<-flushed
		count(w.Close(ctx))
		if putErr != nil {
			return putErr
		}
		if n := reported.Load(); n != int64(writes) {
			return fmt.Errorf("%d failures reported; want %d", n, writes)
		}
		return nil
	})
}

// sampleHeap runs fn, sampling the heap every millisecond, and returns the heap after a GC
// before it, the highest heap seen, and fn's error.
func sampleHeap(fn func() error) (base, peak uint64, err error) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	runtime.GC()
	metrics.Read(sample)
	base = sample[0].Value.Uint64()
	var peakHeap atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peakHeap.Load() {
				peakHeap.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	err = fn()
	close(done)
	<-sampled
	return base, peakHeap.Load(), err
}
