package dynaflow

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// noThrottleRetries is the option on the Batcher's BatchWriteItem calls that keeps the SDK from
// retrying throttling itself: the Batcher must see a throttle at once to slow its rate, and it
// retries the writes under its own backoff. 5xx and network errors keep the SDK's retries.
func noThrottleRetries(o *dynamodb.Options) {
	switch r := o.Retryer.(type) {
	case nil:
	case aws.RetryerV2:
		o.Retryer = noThrottleV2{r}
	default:
		o.Retryer = noThrottle{r}
	}
}

// noThrottle is a retryer that does not retry throttling.
type noThrottle struct{ aws.Retryer }

func (r noThrottle) IsErrorRetryable(err error) bool {
	return !isThrottle(err) && r.Retryer.IsErrorRetryable(err)
}

// noThrottleV2 is noThrottle for a retryer with GetAttemptToken.
type noThrottleV2 struct{ aws.RetryerV2 }

func (r noThrottleV2) IsErrorRetryable(err error) bool {
	return !isThrottle(err) && r.RetryerV2.IsErrorRetryable(err)
}

// isThrottle reports whether err is DynamoDB saying "slow down".
func isThrottle(err error) bool {
	_, throttled := classify(err)
	return throttled
}
