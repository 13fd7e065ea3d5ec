package dynaflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow/internal/ddbnum"
)

// keyPart returns the canonical form of one key attribute value: its type letter and its value,
// a number in canonical form. It fails for a value that cannot be a key: not S, N or B, or an
// empty string or binary. A string key costs no allocation.
func keyPart(v types.AttributeValue) (byte, string, error) {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		if v.Value == "" {
			return 0, "", errors.New("is an empty string")
		}
		return 'S', v.Value, nil
	case *types.AttributeValueMemberB:
		if len(v.Value) == 0 {
			return 0, "", errors.New("is an empty binary")
		}
		return 'B', string(v.Value), nil
	case *types.AttributeValueMemberN:
		n, err := ddbnum.Canonical(v.Value)
		return 'N', n, err
	case nil:
		return 0, "", errors.New("is nil")
	default:
		return 0, "", fmt.Errorf("has type %s; a key must be S, N or B", TypeName(v))
	}
}

// appendKeyValue appends a self-delimiting canonical encoding of one key attribute value: the
// type letter, the length, and the canonical value.
func appendKeyValue(dst []byte, v types.AttributeValue) ([]byte, error) {
	tag, raw, err := keyPart(v)
	if err != nil {
		return dst, err
	}
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(raw)))
	return append(dst, raw...), nil
}

// itemKey is the canonical key of a Batcher's write: the type and canonical value of its
// partition key and, when the table has one, its sort key. Two writes have equal itemKeys
// exactly when they name the same item.
type itemKey struct {
	t1, t2 byte
	v1, v2 string
}

// keyString returns the canonical encoding of a whole key given as a map (BatchGet's keys): its
// attributes in name order, so that two maps that name the same item encode the same.
func keyString(key Item) (string, error) {
	names := make([]string, 0, len(key))
	for name := range key {
		names = append(names, name)
	}
	sort.Strings(names)
	var b []byte
	for _, name := range names {
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		var err error
		if b, err = appendKeyValue(b, key[name]); err != nil {
			return "", fmt.Errorf("key attribute %q %w", name, err)
		}
	}
	return string(b), nil
}

// typeName returns DynamoDB's name for the type of an attribute value: S, N, B, SS, NS, BS, M, L,
// NULL or BOOL.
func TypeName(v types.AttributeValue) string {
	switch v.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	case *types.AttributeValueMemberM:
		return "M"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case nil:
		return "nil"
	default:
		return fmt.Sprintf("%T", v)
	}
}
