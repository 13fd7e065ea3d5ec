package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// MaxBatchGetKeys is the most keys DynamoDB accepts in one BatchGetItem request.
const MaxBatchGetKeys = 100

// BatchGet reads the items of table with the given keys, in BatchGetItem requests of at most 100
// keys, and yields them in no particular order. Keys that name no item simply do not appear.
//
// keys is consumed lazily, 100 keys at a time, so it may be far larger than memory would hold
// as items. A key that comes again is sent only once (DynamoDB rejects a request that holds a key
// twice); keys compare canonically, numbers by value, so {"id": N("1")} and {"id": N("1.0")} are
// the same key. To do that BatchGet remembers every key it has sent during one walk.
//
// optFns set the other fields of each request's KeysAndAttributes: ProjectionExpression,
// ExpressionAttributeNames, ConsistentRead. Keys that DynamoDB hands back in UnprocessedKeys are
// requested again after a full-jitter backoff; the attempt count starts again whenever a request
// makes progress, and after Retry.MaxAttempts requests in a row that return nothing the sequence
// ends with an error. Throttled requests are retried as in Query. An error is yielded once, as
// "dynaflow: batch get TABLE: ...", and ends the sequence.
func (c *Client) BatchGet(ctx context.Context, table string, keys iter.Seq[Item], optFns ...func(*types.KeysAndAttributes)) iter.Seq2[Item, error] {
	var proto types.KeysAndAttributes
	for _, fn := range optFns {
		fn(&proto)
	}
	proto.Keys = nil
	if table == "" {
		return errSeq[Item](errors.New("dynaflow: batch get: table name is empty"))
	}
	return func(yield func(Item, error) bool) {
		seen := make(map[string]struct{})
		chunk := make([]Item, 0, MaxBatchGetKeys)
		for key := range keys {
			if len(key) == 0 {
				yield(nil, fmt.Errorf("dynaflow: batch get %s: a key is nil or empty", table))
				return
			}
			k, err := keyString(key)
			if err != nil {
				yield(nil, fmt.Errorf("dynaflow: batch get %s: %w", table, err))
				return
			}
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			chunk = append(chunk, key)
			if len(chunk) == MaxBatchGetKeys {
				if !c.getChunk(ctx, table, &proto, chunk, yield) {
					return
				}
				chunk = make([]Item, 0, MaxBatchGetKeys)
			}
		}
		if len(chunk) > 0 {
			c.getChunk(ctx, table, &proto, chunk, yield)
		}
	}
}

// getChunk reads the items of up to 100 distinct keys, asking again for the keys that come back
// unprocessed, and yields them. It reports whether the walk should go on.
func (c *Client) getChunk(ctx context.Context, table string, proto *types.KeysAndAttributes, keys []Item, yield func(Item, error) bool) bool {
	r := c.opts.Retry
	fail := func(err error) bool {
		yield(nil, fmt.Errorf("dynaflow: batch get %s: %w", table, err))
		return false
	}
	for idle := 0; len(keys) > 0; {
		ka := *proto
		ka.Keys = keys
		in := &dynamodb.BatchGetItemInput{
			RequestItems:           map[string]types.KeysAndAttributes{table: ka},
			ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes,
		}
		out, err := withRetry(ctx, r, func(ctx context.Context) (*dynamodb.BatchGetItemOutput, error) {
			var out *dynamodb.BatchGetItemOutput
			err := c.read(ctx, func() (items []Item, cc []types.ConsumedCapacity, err error) {
				if out, err = c.api.BatchGetItem(ctx, in); err != nil {
					return nil, nil, err
				}
				return out.Responses[table], out.ConsumedCapacity, nil
			})
			return out, err
		})
		if err != nil {
			return fail(err)
		}
		got := out.Responses[table]
		for _, item := range got {
			if !yield(item, nil) {
				return false
			}
		}
		left := out.UnprocessedKeys[table].Keys
		if len(left) == 0 {
			return true
		}
		if len(got) > 0 || len(left) < len(keys) {
			idle = 0 // progress: the attempt count starts again
		}
		idle++
		if idle >= r.MaxAttempts {
			return fail(fmt.Errorf("%d keys still unprocessed after %d requests in a row that returned none of them: %w", len(left), idle, ErrUnprocessed))
		}
		if err := sleep(ctx, r.backoff(idle)); err != nil {
			return fail(fmt.Errorf("%w (%d keys waiting to be requested again)", err, len(left)))
		}
		keys = left
	}
	return true
}
