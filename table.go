package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// table is one table a Batcher writes to: its name and key, which Put and Delete read, and the
// state the owner goroutine keeps for it.
type table struct {
	name    string
	keys    []keyAttr // hash key first; fixed once NewBatcher returns
	indexes int       // global secondary indexes, when DescribeTable told us

	// The owner's alone. states holds the keyState of each key of the table with writes
	// outstanding, by canonical key. Writes wait in fresh, or in retry once a backoff has ended; retry goes
	// first. strikes counts the round trips in a row in which DynamoDB throttled the table or
	// handed all its writes back. While it is above zero the table sends nothing until
	// pausedUntil, and then one call at a time, until a call lands some of its writes.
	states       map[itemKey]*keyState
	fresh, retry []*keyState
	pausedUntil  time.Time
	strikes      int
	struckAt     time.Time // when strikes last grew: a call sent before then says nothing new
	out          int       // calls in flight that carry writes for the table
	pace         pacer     // the adaptive rate
}

// held reports whether the table may send nothing now.
func (t *table) held(now time.Time) bool {
	return t.strikes > 0 && (now.Before(t.pausedUntil) || t.out > 0)
}

// keyAttr is one key attribute of a table: its name and, when DescribeTable told us, its type.
type keyAttr struct {
	name string
	typ  types.ScalarAttributeType // "" when unknown
}

// resolveTable returns the table named name with its key. It asks DescribeTable for the key
// schema, retrying throttling under r, and checks the names given (when any) against it: names
// that are not exactly the table's key would make distinct items look like one key, and the
// Batcher would keep only the last of them. Only when DescribeTable is refused for lack of
// permission does it trust the names unchecked.
func resolveTable(ctx context.Context, api API, r Retry, name string, names []string) (*table, error) {
	if name == "" {
		return nil, errors.New("dynaflow: new batcher: empty table name")
	}
	if len(names) > 2 {
		return nil, fmt.Errorf("dynaflow: new batcher: table %s: %d key attributes given; a DynamoDB key has one or two", name, len(names))
	}
	for i, n := range names {
		if n == "" {
			return nil, fmt.Errorf("dynaflow: new batcher: table %s: empty key attribute name", name)
		}
		if i == 1 && n == names[0] {
			return nil, fmt.Errorf("dynaflow: new batcher: table %s: key attribute %q given twice", name, n)
		}
	}
	out, err := withRetry(ctx, r, func(ctx context.Context) (*dynamodb.DescribeTableOutput, error) {
		return api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	})
	if err != nil {
		var api smithy.APIError
		if len(names) > 0 && errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException" {
			t := &table{name: name}
			for _, n := range names {
				t.keys = append(t.keys, keyAttr{name: n})
			}
			return t, nil
		}
		return nil, fmt.Errorf("dynaflow: new batcher: describe table %s: %w", name, err)
	}
	keys, err := keySchema(out.Table)
	if err != nil {
		return nil, fmt.Errorf("dynaflow: new batcher: describe table %s: %w", name, err)
	}
	if len(names) > 0 {
		real := make([]string, len(keys))
		for i, k := range keys {
			real[i] = k.name
		}
		given := slices.Clone(names)
		slices.Sort(given)
		sorted := slices.Clone(real)
		slices.Sort(sorted)
		if !slices.Equal(given, sorted) {
			return nil, fmt.Errorf("dynaflow: new batcher: table %s: key attributes given as %s, but the table's key is %s",
				name, strings.Join(names, ", "), strings.Join(real, ", "))
		}
	}
	return &table{name: name, keys: keys, indexes: len(out.Table.GlobalSecondaryIndexes)}, nil
}

// keySchema returns a table's key attributes, hash key first, with their types.
func keySchema(d *types.TableDescription) ([]keyAttr, error) {
	if d == nil || len(d.KeySchema) == 0 {
		return nil, errors.New("no key schema in the answer")
	}
	typeOf := make(map[string]types.ScalarAttributeType)
	for _, a := range d.AttributeDefinitions {
		typeOf[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	var keys []keyAttr
	for _, ks := range d.KeySchema {
		name := aws.ToString(ks.AttributeName)
		k := keyAttr{name: name, typ: typeOf[name]}
		if ks.KeyType == types.KeyTypeHash {
			keys = append([]keyAttr{k}, keys...)
		} else {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// key checks the key attributes of item and returns its canonical key. With only true, item
// must hold nothing but the key.
func (t *table) key(item Item, op string, only bool) (itemKey, error) {
	var vals [2]types.AttributeValue
	var found [2]bool
	for i, k := range t.keys {
		vals[i], found[i] = item[k.name]
	}
	key, err := t.keyOf(vals, found, op)
	if err != nil {
		return itemKey{}, err
	}
	if only && len(item) != len(t.keys) {
		for name := range item {
			if !t.isKey(name) {
				return itemKey{}, fmt.Errorf("%w: %s table %s: attribute %q is not part of the key", ErrInvalidItem, opTo(op), t.name, name)
			}
		}
	}
	return key, nil
}

// keyOf checks the values of the key attributes, vals[i] for t.keys[i] (found[i] when the item
// has it), and returns their canonical key.
func (t *table) keyOf(vals [2]types.AttributeValue, found [2]bool, op string) (itemKey, error) {
	var key itemKey
	for i, k := range t.keys {
		if !found[i] {
			return itemKey{}, fmt.Errorf("%w: %s table %s: key attribute %q is missing", ErrInvalidItem, opTo(op), t.name, k.name)
		}
		typ, canon, err := keyPart(vals[i])
		if err != nil || k.typ != "" && string(k.typ) != string(typ) || typ != 'N' && len(canon) > keyLimit(i) {
			return itemKey{}, t.keyErr(i, vals[i], op)
		}
		if i == 0 {
			key.t1, key.v1 = typ, canon
		} else {
			key.t2, key.v2 = typ, canon
		}
	}
	return key, nil
}

// keyErr returns what is wrong with v as the value of key attribute i, which keyOf refused.
func (t *table) keyErr(i int, v types.AttributeValue, op string) error {
	k := t.keys[i]
	if k.typ != "" && TypeName(v) != string(k.typ) {
		return fmt.Errorf("%w: %s table %s: key attribute %q has type %s; the table's is %s", ErrInvalidItem, opTo(op), t.name, k.name, TypeName(v), k.typ)
	}
	if _, _, err := keyPart(v); err != nil {
		return fmt.Errorf("%w: %s table %s: key attribute %q %v", ErrInvalidItem, opTo(op), t.name, k.name, err)
	}
	return fmt.Errorf("%w: %s table %s: key attribute %q is %d bytes, over DynamoDB's limit of %d bytes", ErrInvalidItem, opTo(op), t.name, k.name, keyBytes(v), keyLimit(i))
}

// isKey reports whether name is a key attribute of t.
func (t *table) isKey(name string) bool {
	for _, k := range t.keys {
		if k.name == name {
			return true
		}
	}
	return false
}

// requestKey returns the canonical key of a write request DynamoDB handed back.
func (t *table) requestKey(r types.WriteRequest) (itemKey, bool) {
	var item Item
	switch {
	case r.PutRequest != nil:
		item = r.PutRequest.Item
	case r.DeleteRequest != nil:
		item = r.DeleteRequest.Key
	}
	k, err := t.key(item, "", false)
	return k, err == nil
}

// keyLimit is DynamoDB's limit on the size of key attribute i: 2048 bytes for the partition key,
// 1024 for the sort key.
func keyLimit(i int) int {
	if i == 0 {
		return 2048
	}
	return 1024
}

// keyBytes is the size of a string or binary key value.
func keyBytes(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	}
	return 0
}

// opTo names an operation with its preposition, for error messages.
func opTo(op string) string {
	if op == "delete" {
		return "delete from"
	}
	return op + " to"
}
