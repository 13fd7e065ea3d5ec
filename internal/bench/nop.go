package bench

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynaflow-go/dynaflow"
)

// nopAPI answers every BatchWriteItem at once with everything written, without a network or
// the SDK: what a Batcher on it costs is the Batcher's own work.
type nopAPI struct{ dynaflow.API }

func (nopAPI) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// BatcherOverhead measures a Batcher's own cost per write: b.N Puts from producers goroutines
// into a Batcher with maxInFlight calls at once on an API that answers at once, then Flush. One
// op is one write; cpu-µs/write is the process's CPU time per write, on all cores.
func BatcherOverhead(b *testing.B, maxInFlight, producers int) {
	putAll(b, nopAPI{}, maxInFlight, producers)
}
