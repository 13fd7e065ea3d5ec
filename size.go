package dynaflow

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// MaxItemSize is DynamoDB's limit on the size of one item: 400 KB, counted as 409,600 bytes.
const MaxItemSize = 400 * 1024

// ItemSize returns the size of item by DynamoDB's rules: for each attribute, the UTF-8 length of
// its name plus the size of its value. Strings and binaries count their bytes; a number counts
// one byte per two significant digits, plus one; booleans and nulls one byte; lists and maps three
// bytes plus their elements, each element one byte more; sets the sum of their members. It is
// what DynamoDB checks against MaxItemSize.
func ItemSize(item Item) int {
	var w walked
	w.walk(item, nil)
	return w.size
}

// walked is what one walk over an item finds.
type walked struct {
	size int // by DynamoDB's rules
	// badName and bad name an attribute whose value the SDK cannot send (a nil value at any depth,
	// or an empty set) and say what is wrong with it; "" when every value is good.
	badName, bad string
	vals         [2]types.AttributeValue // the values of the key attributes asked for
	found        [2]bool                 // found[i]: the item has key attribute i
}

// walk walks item once into r, which must be zero: it adds up the item's size, checks its values
// and picks out the values of the key attributes keys (at most two; none for nil). Put walks an
// item only this once.
func (r *walked) walk(item Item, keys []keyAttr) {
	for name, v := range item {
		for i := range keys {
			if name == keys[i].name {
				r.vals[i], r.found[i] = v, true
			}
		}
		n, why := valueSize(v)
		if why != "" && r.bad == "" {
			r.badName, r.bad = name, why
		}
		r.size += len(name) + n
	}
}

// valueSize returns the size of one attribute value by DynamoDB's rules, and what is wrong with
// it when the SDK cannot send it ("" when nothing is).
func valueSize(v types.AttributeValue) (int, string) {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value), ""
	case *types.AttributeValueMemberB:
		return len(v.Value), ""
	case *types.AttributeValueMemberN:
		return numberSize(v.Value), ""
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1, ""
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n, emptySet(len(v.Value))
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n, emptySet(len(v.Value))
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n, emptySet(len(v.Value))
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			s, bad := valueSize(e)
			if bad != "" {
				return 0, "holds a list element that " + bad
			}
			n += 1 + s
		}
		return n, ""
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			s, bad := valueSize(e)
			if bad != "" {
				return 0, fmt.Sprintf("holds a map entry %q that %s", k, bad)
			}
			n += 1 + len(k) + s
		}
		return n, ""
	case nil:
		return 0, "is nil"
	}
	return 0, fmt.Sprintf("has an unknown value type %T", v)
}

// emptySet is what is wrong with a set of n members: DynamoDB has no empty sets.
func emptySet(n int) string {
	if n == 0 {
		return "is an empty set"
	}
	return ""
}

// numberSize returns the size of a number: one byte per two significant digits, plus one. It
// never fails: a string that is not a number is counted by its length, and DynamoDB will reject
// it with a ValidationException naming it.
func numberSize(s string) int {
	sig, start, seen := 0, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 'e' || c == 'E' {
			break
		}
		if c < '0' || c > '9' {
			continue
		}
		seen++
		if c != '0' {
			start = true
		}
		if start {
			sig++
		}
	}
	if seen == 0 {
		return len(s)
	}
	// Trailing zeros after the last non-zero digit are not significant either; counting them
	// overestimates by at most a few bytes, the safe side of the limit.
	return (sig+1)/2 + 1
}
