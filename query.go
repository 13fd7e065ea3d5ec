package dynaflow

import (
	"context"
	"errors"
	"iter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Query returns the items that in selects, page after page, in the order DynamoDB returns them.
//
// The sequence starts at in.ExclusiveStartKey (the table's start when nil) and ends after the
// last page; ranging over it again runs the query again from the same start. in is never
// modified. in.Limit keeps DynamoDB's meaning, the number of items evaluated per page (before
// any filter): to take the first N items, break out of the loop after N. Breaking stops all
// requests at once.
//
// A page that fails with throttling or a server error after the SDK's own retries is retried
// under the Client's Retry. Any other error, or the last one, is yielded once, as
// "dynaflow: query TABLE: ...", wrapping the SDK's error so that errors.As finds its types; the
// sequence ends there.
func (c *Client) Query(ctx context.Context, in *dynamodb.QueryInput) iter.Seq2[Item, error] {
	return flatten(c.QueryPages(ctx, in), func(out *dynamodb.QueryOutput) []Item { return out.Items })
}

// QueryPages is Query a page at a time: it yields each *dynamodb.QueryOutput whole, empty pages
// included, so that the caller sees LastEvaluatedKey (to resume later by setting it as
// ExclusiveStartKey), Count, ScannedCount and ConsumedCapacity.
func (c *Client) QueryPages(ctx context.Context, in *dynamodb.QueryInput) iter.Seq2[*dynamodb.QueryOutput, error] {
	if in == nil {
		return errSeq[*dynamodb.QueryOutput](errors.New("dynaflow: query: nil *dynamodb.QueryInput"))
	}
	table := aws.ToString(in.TableName)
	if table == "" {
		return errSeq[*dynamodb.QueryOutput](errors.New("dynaflow: query: TableName is empty"))
	}
	req := *in // a copy: each page sets its own ExclusiveStartKey, never the caller's
	req.ReturnConsumedCapacity = consumedDefault(req.ReturnConsumedCapacity)
	fetch := func(ctx context.Context, start Item) (*dynamodb.QueryOutput, Item, bool, error) {
		r := req
		r.ExclusiveStartKey = start
		r.Limit = c.pageLimit(r.Limit, aws.ToBool(r.ConsistentRead))
		var out *dynamodb.QueryOutput
		err := c.read(ctx, func() (items []Item, cc []types.ConsumedCapacity, err error) {
			if out, err = c.api.Query(ctx, &r); err != nil {
				return nil, nil, err
			}
			return out.Items, consumedOne(out.ConsumedCapacity), nil
		})
		if err != nil {
			return nil, nil, false, err
		}
		return out, out.LastEvaluatedKey, len(out.LastEvaluatedKey) > 0, nil
	}
	return func(yield func(*dynamodb.QueryOutput, error) bool) {
		walk(ctx, c.opts.Retry, "query "+table, req.ExclusiveStartKey, fetch, yield)
	}
}
