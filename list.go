package dynaflow

import (
	"context"
	"errors"
	"iter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ListTables returns the names of the account's tables in the region, page after page, following
// LastEvaluatedTableName. It behaves as Query does: it starts at in.ExclusiveStartTableName (nil
// in means the first table), never modifies in, stops all requests on break, retries throttled
// pages, and yields an error once, as "dynaflow: list tables: ...", to end the sequence.
// in.Limit is the number of names per page.
func (c *Client) ListTables(ctx context.Context, in *dynamodb.ListTablesInput) iter.Seq2[string, error] {
	var req dynamodb.ListTablesInput
	if in != nil {
		req = *in
	}
	fetch := func(ctx context.Context, start *string) ([]string, *string, bool, error) {
		r := req
		r.ExclusiveStartTableName = start
		out, err := c.api.ListTables(ctx, &r)
		if err != nil {
			return nil, nil, false, err
		}
		return out.TableNames, out.LastEvaluatedTableName, aws.ToString(out.LastEvaluatedTableName) != "", nil
	}
	return flatten(func(yield func([]string, error) bool) {
		walk(ctx, c.opts.Retry, "list tables", req.ExclusiveStartTableName, fetch, yield)
	}, same)
}

// ListTagsOfResource returns the tags of the resource whose ARN in names, page after page,
// following NextToken. It behaves as ListTables does; errors read "dynaflow: list tags ARN: ...".
func (c *Client) ListTagsOfResource(ctx context.Context, in *dynamodb.ListTagsOfResourceInput) iter.Seq2[types.Tag, error] {
	if in == nil {
		return errSeq[types.Tag](errors.New("dynaflow: list tags: nil *dynamodb.ListTagsOfResourceInput"))
	}
	arn := aws.ToString(in.ResourceArn)
	if arn == "" {
		return errSeq[types.Tag](errors.New("dynaflow: list tags: ResourceArn is empty"))
	}
	req := *in
	fetch := func(ctx context.Context, start *string) ([]types.Tag, *string, bool, error) {
		r := req
		r.NextToken = start
		out, err := c.api.ListTagsOfResource(ctx, &r)
		if err != nil {
			return nil, nil, false, err
		}
		return out.Tags, out.NextToken, aws.ToString(out.NextToken) != "", nil
	}
	return flatten(func(yield func([]types.Tag, error) bool) {
		walk(ctx, c.opts.Retry, "list tags "+arn, req.NextToken, fetch, yield)
	}, same)
}

// same returns a page that is its own list of items.
func same[T any](page []T) []T { return page }
