package dynaflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// canonicalNumber returns the canonical form of a DynamoDB number, so that numbers equal in value
// have equal forms: "1", "1.0", "+1", "10e-1" and "1E0" all become "1e0"; zero is "0". It returns
// an error for a string that is not a number.
func canonicalNumber(s string) (string, error) {
	orig := s
	if s == "" {
		return "", errors.New("empty number")
	}
	neg := false
	switch s[0] {
	case '-':
		neg, s = true, s[1:]
	case '+':
		s = s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e := s[i+1:]
		eneg := false
		if e != "" && (e[0] == '-' || e[0] == '+') {
			eneg, e = e[0] == '-', e[1:]
		}
		if e == "" {
			return "", fmt.Errorf("number %q has an empty exponent", orig)
		}
		for _, c := range e {
			if c < '0' || c > '9' {
				return "", fmt.Errorf("number %q has a bad exponent", orig)
			}
			if exp > 100000 {
				return "", fmt.Errorf("number %q is out of range", orig)
			}
			exp = exp*10 + int(c-'0')
		}
		if eneg {
			exp = -exp
		}
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	if intPart == "" && frac == "" {
		return "", fmt.Errorf("number %q has no digits", orig)
	}
	var digits []byte
	for _, part := range [2]string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return "", fmt.Errorf("number %q is not a decimal number", orig)
			}
		}
	}
	digits = append(append(digits, intPart...), frac...)
	// The value is 0.digits × 10^(exp+len(intPart)).
	exp += len(intPart)
	lead := 0
	for lead < len(digits) && digits[lead] == '0' {
		lead++
	}
	digits = digits[lead:]
	exp -= lead
	digits = []byte(strings.TrimRight(string(digits), "0"))
	if len(digits) == 0 {
		return "0", nil
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	b.Write(digits)
	b.WriteByte('e')
	fmt.Fprint(&b, exp)
	return b.String(), nil
}

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
		n, err := canonicalNumber(v.Value)
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
