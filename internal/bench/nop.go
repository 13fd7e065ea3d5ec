package bench

import (
	"context"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

// nopAPI answers every BatchWriteItem at once with everything written, and every Scan at once
// with one of a fixed set of pages, without a network or the SDK: what dynaflow costs on it is
// dynaflow's own work.
type nopAPI struct {
	dynaflow.API
	pages []*dynamodb.ScanOutput
}

func (nopAPI) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// DescribeTable answers that every table is keyed by the string "pk".
func (nopAPI) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableName:            in.TableName,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
	}}, nil
}

// Scan answers with the page after the one whose number is in the start key's "page" attribute.
func (a nopAPI) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	i := 0
	if v, ok := in.ExclusiveStartKey["page"].(*types.AttributeValueMemberN); ok {
		i, _ = strconv.Atoi(v.Value)
	}
	return a.pages[i], nil
}

// BatcherOverhead measures a Batcher's own cost per write: b.N Puts from producers goroutines
// into a Batcher with maxInFlight calls at once on an API that answers at once, then Flush. One
// op is one write; cpu-µs/write is the process's CPU time per write, on all cores.
func BatcherOverhead(b *testing.B, maxInFlight, producers int) {
	putAll(b, nopAPI{}, maxInFlight, producers)
}

// ScanOverhead measures dyn.Scan's own cost per item: the iterator reading b.N items from an API
// that answers at once with pages pages of perPage items already decoded, with no SDK and no
// network. One op is one item.
func ScanOverhead(b *testing.B, pages, perPage int) {
	api := nopAPI{}
	for p := range pages {
		out := &dynamodb.ScanOutput{Items: make([]dynaflow.Item, perPage)}
		for i := range out.Items {
			out.Items[i] = Event(p*perPage + i)
		}
		if p+1 < pages {
			out.LastEvaluatedKey = dynaflow.Item{"page": &types.AttributeValueMemberN{Value: strconv.Itoa(p + 1)}}
		}
		api.pages = append(api.pages, out)
	}
	readAll(b, itemCounter(scanWalk(api)))
}
