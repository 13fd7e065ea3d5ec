package dynaflow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

func TestNoThrottleRetries(t *testing.T) {
	for _, base := range []aws.Retryer{retry.NewStandard(), retry.NewAdaptiveMode(), aws.NopRetryer{}} {
		o := dynamodb.Options{Retryer: base}
		noThrottleRetries(&o)
		if _, v2 := base.(aws.RetryerV2); v2 {
			if _, ok := o.Retryer.(aws.RetryerV2); !ok {
				t.Errorf("%T wrapped as %T, which lost GetAttemptToken", base, o.Retryer)
			}
		}
		throttles := []error{
			&types.ProvisionedThroughputExceededException{Message: aws.String("x")},
			&types.ThrottlingException{Message: aws.String("x")},
			&types.RequestLimitExceeded{Message: aws.String("x")},
		}
		for _, err := range throttles {
			if o.Retryer.IsErrorRetryable(err) {
				t.Errorf("%T: %T is retryable; want the Batcher to see it at once", base, err)
			}
		}
		server := &smithy.GenericAPIError{Code: "InternalServerError", Message: "x"}
		if got, want := o.Retryer.IsErrorRetryable(server), base.IsErrorRetryable(server); got != want {
			t.Errorf("%T: InternalServerError retryable = %v; want the SDK's own answer %v", base, got, want)
		}
		if o.Retryer.MaxAttempts() != base.MaxAttempts() {
			t.Errorf("%T: MaxAttempts %d; want %d", base, o.Retryer.MaxAttempts(), base.MaxAttempts())
		}
	}
	var o dynamodb.Options
	noThrottleRetries(&o) // no retryer: nothing to wrap
	if o.Retryer != nil {
		t.Errorf("nil retryer became %T", o.Retryer)
	}
}

func TestBatcherKeepsThrottlingReasons(t *testing.T) {
	f := newFake(0)
	resource := "arn:aws:dynamodb:us-east-1:111122223333:table/t"
	throttle := &types.ProvisionedThroughputExceededException{
		Message:           aws.String("slow down"),
		ThrottlingReasons: []types.ThrottlingReason{{Reason: aws.String("TableWriteProvisionedThroughputExceeded"), Resource: aws.String(resource)}},
	}
	f.writeHook = func(context.Context, *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		return nil, throttle
	}
	b := newTestBatcher(t, f, func(o *BatcherOptions) {
		o.Retry = Retry{MaxAttempts: 2, Base: time.Millisecond, Max: time.Millisecond}
	})
	if err := b.Put(context.Background(), putItem("k")); err != nil {
		t.Fatal(err)
	}
	err := b.Close(context.Background())
	var got *types.ProvisionedThroughputExceededException
	if !errors.As(err, &got) || len(got.ThrottlingReasons) != 1 || aws.ToString(got.ThrottlingReasons[0].Resource) != resource {
		t.Fatalf("Close = %v; want it to wrap the exception with its ThrottlingReasons", err)
	}
	if !strings.Contains(err.Error(), "TableWriteProvisionedThroughputExceeded on "+resource) {
		t.Errorf("Close = %q; want the message to name the reason and resource", err)
	}
}
