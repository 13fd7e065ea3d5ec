package dynaflow

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Retry says how dynaflow retries what DynamoDB asks it to retry: throttled or failed pages, keys
// returned in UnprocessedKeys, and writes returned in UnprocessedItems. It works on top of the
// SDK's own retryer, which retries each HTTP call a few times before dynaflow sees an error.
//
// The wait before attempt n+1 is chosen at random between zero and min(Max, Base·2^n)
// ("full jitter", as in the AWS Architecture Blog's "Exponential Backoff And Jitter").
type Retry struct {
	MaxAttempts int           // attempts per page or write, the first included; default 10
	Base        time.Duration // first backoff ceiling; default 25ms
	Max         time.Duration // largest single wait; default 5s
}

// Defaults of Retry.
const (
	DefaultMaxAttempts = 10
	DefaultRetryBase   = 25 * time.Millisecond
	DefaultRetryMax    = 5 * time.Second
)

// withDefaults returns r with every zero field set to its default.
func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.Base <= 0 {
		r.Base = DefaultRetryBase
	}
	if r.Max <= 0 {
		r.Max = DefaultRetryMax
	}
	return r
}

// backoff returns a full-jitter wait before the retry that follows attempt number attempt
// (1 for the first attempt).
func (r Retry) backoff(attempt int) time.Duration {
	n := attempt - 1
	if n < 0 {
		n = 0
	}
	ceiling := r.Max
	// Cap the exponent so that the shift cannot overflow; beyond 2^30·Base the ceiling is Max anyway.
	if n < 31 {
		if c := r.Base << n; c > 0 && c < ceiling {
			ceiling = c
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// sleep waits for d or until ctx ends, whichever comes first, and returns ctx.Err() in the latter
// case.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// throttleCodes are the error codes with which DynamoDB says "slow down".
var throttleCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"ThrottlingException":                    true,
	"RequestLimitExceeded":                   true,
	"Throttling":                             true,
	"TooManyRequestsException":               true,
}

// serverCodes are the error codes of transient server-side failures.
var serverCodes = map[string]bool{
	"InternalServerError": true,
	"InternalFailure":     true,
	"ServiceUnavailable":  true,
}

// classify tells whether err is worth retrying and whether it was throttling. A context error is
// never retryable: the caller has given up.
func classify(err error) (retryable, throttled bool) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false, false
	}
	// The SDK's client-side retry quota ran dry: that only happens under sustained throttling.
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return true, true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		if throttleCodes[code] {
			return true, true
		}
		if serverCodes[code] {
			return true, false
		}
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		status := resp.HTTPStatusCode()
		switch {
		case status == 429:
			return true, true
		case status >= 500:
			return true, false
		}
		return false, false
	}
	if api != nil {
		// A modelled error with a 4xx status (validation, missing table, access denied).
		return false, false
	}
	// Connection refused or reset, a timeout, a response cut short: the request may be sent again.
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		return true, false
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true, false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true, false
	}
	return false, false
}

// throttleReasons returns DynamoDB's reasons for throttling err, as " (throttling reasons:
// TableWriteProvisionedThroughputExceeded on arn:...)", or "" when it gave none. They name
// resources and limits, never item data.
func throttleReasons(err error) string {
	var reasons []types.ThrottlingReason
	var ptee *types.ProvisionedThroughputExceededException
	var te *types.ThrottlingException
	var rle *types.RequestLimitExceeded
	switch {
	case errors.As(err, &ptee):
		reasons = ptee.ThrottlingReasons
	case errors.As(err, &te):
		reasons = te.ThrottlingReasons
	case errors.As(err, &rle):
		reasons = rle.ThrottlingReasons
	}
	if len(reasons) == 0 {
		return ""
	}
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = aws.ToString(r.Reason)
		if r.Resource != nil {
			parts[i] += " on " + *r.Resource
		}
	}
	return " (throttling reasons: " + strings.Join(parts, ", ") + ")"
}
