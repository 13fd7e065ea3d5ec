package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/internal/ddbnum"
)

// connect builds the SDK client from the SDK's standard chain (profile, region, environment,
// IAM role) plus --endpoint. For an endpoint on loopback it fills in what a local server does not
// check: a region, and placeholder credentials when none are configured, saying so once.
func (a *app) connect(ctx context.Context, conns int) (*dynamodb.Client, error) {
	endpoint := a.endpoint
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_DYNAMODB")
	}
	local := isLoopback(endpoint)
	// A connection per call in flight, kept idle between calls rather than closed and reopened.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = conns + 16
		t.MaxIdleConnsPerHost = conns + 16
		a.transport = t
	})
	opts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if a.region != "" {
		opts = append(opts, config.WithRegion(a.region))
	}
	if a.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(a.profile))
	}
	if endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(endpoint))
	}
	if local {
		// No instance role to ask on a developer's machine; asking would take seconds.
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if !local {
			return nil, errors.New("no AWS region: pass --region, or set AWS_REGION or a profile's region")
		}
		cfg.Region = "us-east-1"
	}
	if local {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cfg.Credentials.Retrieve(cctx)
		cancel()
		if err != nil {
			// DynamoDB Local accepts access keys of letters and digits only.
			cfg.Credentials = credentials.NewStaticCredentialsProvider("dynaflowlocal", "dynaflowlocal", "")
			fmt.Fprintf(a.stderr, "dynaflow: no AWS credentials configured; using placeholder credentials for the local endpoint %s\n", endpoint)
		}
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, checksumWhereMissing)
	}), nil
}

// isLoopback reports whether endpoint is a URL whose host is on this machine.
func isLoopback(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tableInfo is what the commands need from DescribeTable.
type tableInfo struct {
	desc    *types.TableDescription
	keys    []keyAttr
	indexes int // secondary indexes, each written once more per item
}

// keyAttr is one key attribute of a table.
type keyAttr struct {
	name string
	typ  string // S, N or B
}

func (t *tableInfo) keyNames() []string {
	names := make([]string, len(t.keys))
	for i, k := range t.keys {
		names[i] = k.name
	}
	return names
}

// describe reads a table's description; a missing table is an error naming it.
func describe(ctx context.Context, api *dynamodb.Client, table string) (*tableInfo, error) {
	out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("table %s does not exist: %w", table, err)
	}
	if err != nil {
		return nil, fmt.Errorf("describe table %s: %w", table, err)
	}
	d := out.Table
	info := &tableInfo{desc: d, indexes: len(d.GlobalSecondaryIndexes) + len(d.LocalSecondaryIndexes)}
	attrTypes := map[string]string{}
	for _, ad := range d.AttributeDefinitions {
		attrTypes[aws.ToString(ad.AttributeName)] = string(ad.AttributeType)
	}
	for _, role := range []types.KeyType{types.KeyTypeHash, types.KeyTypeRange} {
		for _, ks := range d.KeySchema {
			if ks.KeyType == role {
				name := aws.ToString(ks.AttributeName)
				info.keys = append(info.keys, keyAttr{name: name, typ: attrTypes[name]})
			}
		}
	}
	if len(info.keys) == 0 {
		return nil, fmt.Errorf("describe table %s: no key schema in the answer", table)
	}
	return info, nil
}

// checkItem refuses what DynamoDB would: a missing, mistyped or empty key attribute, or an item
// over 400 KB. Messages name the attribute, never its value.
func (t *tableInfo) checkItem(item dynaflow.Item) error {
	for i, k := range t.keys {
		v, ok := item[k.name]
		if !ok {
			return fmt.Errorf("no key attribute %q", k.name)
		}
		if got := dynaflow.TypeName(v); got != k.typ {
			return fmt.Errorf("key attribute %q is %s; the table's key is %s", k.name, got, k.typ)
		}
		n := 0
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n = len(v.Value)
		case *types.AttributeValueMemberB:
			n = len(v.Value)
		default:
			continue // a number's 38 digits are always within the limits
		}
		// DynamoDB's limits on key values: a partition key 2048 bytes, a sort key 1024.
		if limit := []int{2048, 1024}[i]; n == 0 || n > limit {
			what := "an empty " + map[string]string{"S": "string", "B": "binary"}[k.typ]
			if n > 0 {
				what = fmt.Sprintf("%d bytes, over DynamoDB's limit of %d for a %s key", n, limit, []string{"partition", "sort"}[i])
			}
			return fmt.Errorf("key attribute %q is %s", k.name, what)
		}
	}
	if n := dynaflow.ItemSize(item); n > dynaflow.MaxItemSize {
		return fmt.Errorf("item is %d bytes, over DynamoDB's limit of %d (400 KB)", n, dynaflow.MaxItemSize)
	}
	return nil
}

// writeUnits estimates what writing item costs by DynamoDB's rules: a unit per KB, rounded up,
// once for the table and once more for each secondary index (an upper bound: an index costs
// only when the item has its key).
func (t *tableInfo) writeUnits(item dynaflow.Item) float64 {
	kb := math.Max(1, math.Ceil(float64(dynaflow.ItemSize(item))/1024))
	return kb * float64(1+t.indexes)
}

// keyString is the key of item in the table, as a string that two items share only when they
// have the same key: each key value, length first, and a number by its value, as DynamoDB and
// the Batcher take it ("1", "1.0" and "10e-1" are one key).
func (t *tableInfo) keyString(item dynaflow.Item) string {
	var b []byte
	for _, k := range t.keys {
		var v string
		switch a := item[k.name].(type) {
		case *types.AttributeValueMemberS:
			v = a.Value
		case *types.AttributeValueMemberN:
			v = a.Value
			if c, err := ddbnum.Canonical(a.Value); err == nil {
				v = c
			}
		case *types.AttributeValueMemberB:
			v = string(a.Value)
		}
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		b = append(b, v...)
	}
	return string(b)
}

// units reads a --max-*-units value: a number, or a percentage of the table's provisioned
// capacity, or of its on-demand maximum. "" is no cap.
func units(flag, value string, t *tableInfo, write bool) (float64, error) {
	if value == "" {
		return 0, nil
	}
	if p, ok := strings.CutSuffix(value, "%"); ok {
		pct, err := strconv.ParseFloat(p, 64)
		if err != nil || pct <= 0 || pct > 100 {
			return 0, fmt.Errorf("--%s %s: a percentage must be over 0 and at most 100", flag, value)
		}
		table := aws.ToString(t.desc.TableName)
		var capacity int64
		if pt := t.desc.ProvisionedThroughput; pt != nil && !onDemand(t.desc) {
			capacity = aws.ToInt64(pt.ReadCapacityUnits)
			if write {
				capacity = aws.ToInt64(pt.WriteCapacityUnits)
			}
		} else if od := t.desc.OnDemandThroughput; od != nil {
			capacity = aws.ToInt64(od.MaxReadRequestUnits)
			if write {
				capacity = aws.ToInt64(od.MaxWriteRequestUnits)
			}
		}
		if capacity <= 0 {
			return 0, fmt.Errorf("--%s %s: table %s is on-demand without a maximum, so a percentage means nothing: give a number of units per second", flag, value, table)
		}
		return pct / 100 * float64(capacity), nil
	}
	n, err := strconv.ParseFloat(value, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, fmt.Errorf("--%s %s: it must be a positive number of units per second, or a percentage such as 50%%", flag, value)
	}
	return n, nil
}

func onDemand(d *types.TableDescription) bool {
	return d.BillingModeSummary != nil && d.BillingModeSummary.BillingMode == types.BillingModePayPerRequest
}
