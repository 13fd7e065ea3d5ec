package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

// DynamoDB JSON, the lossless format: every value is an object with one type tag ({"S":"a"},
// {"N":"12.50"}, {"SS":[...]}, ...). Numbers stay the strings DynamoDB stores, binaries are
// base64, so every type round-trips exactly.

// ddbLine is the shape of one line of a ddb file: DynamoDB's export to S3 writes {"Item":{...}};
// a rejects file adds "error" and "line", and "raw" for a line that did not parse.
type ddbLine struct {
	Item  map[string]*ddbValue `json:"Item"`
	Error string               `json:"error"`
	Line  int64                `json:"line"`
	Raw   *string              `json:"raw"`
}

// ddbValue is one typed value as encoding/json decodes it: exactly one field must be set.
type ddbValue struct {
	S    *string
	N    json.RawMessage
	B    []byte
	BOOL *bool
	NULL *bool
	SS   []string
	NS   []json.RawMessage
	BS   [][]byte
	L    []*ddbValue
	M    map[string]*ddbValue
}

// decodeDDBLine reads one line: the {"Item":{...}} shape or a bare typed item.
func decodeDDBLine(line []byte) (dynaflow.Item, error) {
	var top ddbLine
	if err := json.Unmarshal(line, &top); err != nil {
		if _, ok := err.(*json.UnmarshalTypeError); !ok {
			return nil, fmt.Errorf("not DynamoDB JSON: %w", jsonErr(err))
		}
		top = ddbLine{} // not our shape; maybe a bare item with an attribute named like a field
	}
	if top.Item != nil {
		return ddbItem(top.Item)
	}
	if top.Raw != nil {
		return nil, errors.New(`a rejected line that did not parse ("raw"): fix it into an "Item" to load it`)
	}
	var bare map[string]*ddbValue
	if err := json.Unmarshal(line, &bare); err != nil || bare == nil {
		return nil, errors.New(`not an item: want {"Item":{"name":{"S":"..."},...}} or {"name":{"S":"..."},...}`)
	}
	return ddbItem(bare)
}

func ddbItem(attrs map[string]*ddbValue) (dynaflow.Item, error) {
	item := make(dynaflow.Item, len(attrs))
	for name, raw := range attrs {
		v, err := raw.value()
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		item[name] = v
	}
	return item, nil
}

// value converts a decoded typed value, checking it has exactly one type.
func (d *ddbValue) value() (types.AttributeValue, error) {
	if d == nil {
		return nil, errors.New(`not a typed value such as {"S":"..."}`)
	}
	var v types.AttributeValue
	n := 0
	set := func(av types.AttributeValue) { v = av; n++ }
	if d.S != nil {
		set(&types.AttributeValueMemberS{Value: *d.S})
	}
	if d.N != nil {
		s, err := numberString(d.N)
		if err != nil {
			return nil, errors.New("N value is not a number")
		}
		set(&types.AttributeValueMemberN{Value: s})
	}
	if d.B != nil {
		set(&types.AttributeValueMemberB{Value: d.B})
	}
	if d.BOOL != nil {
		set(&types.AttributeValueMemberBOOL{Value: *d.BOOL})
	}
	if d.NULL != nil {
		if !*d.NULL {
			return nil, errors.New("NULL value is not true")
		}
		set(&types.AttributeValueMemberNULL{Value: true})
	}
	if d.SS != nil {
		if len(d.SS) == 0 {
			return nil, errors.New("SS value is not a non-empty list of strings")
		}
		set(&types.AttributeValueMemberSS{Value: d.SS})
	}
	if d.NS != nil {
		if len(d.NS) == 0 {
			return nil, errors.New("NS value is not a non-empty list of numbers")
		}
		ns := make([]string, len(d.NS))
		for i, r := range d.NS {
			s, err := numberString(r)
			if err != nil {
				return nil, errors.New("NS value is not a non-empty list of numbers")
			}
			ns[i] = s
		}
		set(&types.AttributeValueMemberNS{Value: ns})
	}
	if d.BS != nil {
		if len(d.BS) == 0 {
			return nil, errors.New("BS value is not a non-empty list of base64 strings")
		}
		set(&types.AttributeValueMemberBS{Value: d.BS})
	}
	if d.L != nil {
		l := make([]types.AttributeValue, len(d.L))
		for i, e := range d.L {
			ev, err := e.value()
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			l[i] = ev
		}
		set(&types.AttributeValueMemberL{Value: l})
	}
	if d.M != nil {
		m, err := ddbItem(d.M)
		if err != nil {
			return nil, err
		}
		set(&types.AttributeValueMemberM{Value: m})
	}
	if n != 1 {
		return nil, errors.New(`not a typed value with one type, such as {"S":"..."}`)
	}
	return v, nil
}

// decodeDDBValue reads one typed value.
func decodeDDBValue(raw json.RawMessage) (types.AttributeValue, error) {
	var d ddbValue
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, errors.New(`not a typed value such as {"S":"..."}`)
	}
	return d.value()
}

// numberString accepts a number as DynamoDB JSON spells it, a string ("12.5"), and also a bare
// JSON number, keeping its digits as written.
func numberString(body json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(body, &s) == nil {
		if !validNumber(s) {
			return "", errors.New("not a number")
		}
		return s, nil
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if d.Decode(&n) != nil {
		return "", errors.New("not a number")
	}
	return n.String(), nil
}

// validNumber reports whether s is a decimal number: an optional sign, digits with an optional
// fraction (".5" and "5." included), an optional exponent. The server checks range and precision.
func validNumber(s string) bool {
	i, digits := 0, 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && isDigit(s[i]); i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && isDigit(s[i]); i++ {
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// jsonErr shortens a JSON syntax error to its message; it never holds the input.
func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s at byte %d", se.Error(), se.Offset)
	}
	return err
}

// appendDDBLine writes item as one {"Item":{...}} line, attributes in name order, with a newline.
func appendDDBLine(b []byte, item dynaflow.Item) []byte {
	b = append(b, `{"Item":`...)
	b = appendDDBItem(b, item)
	return append(b, "}\n"...)
}

func appendDDBItem(b []byte, item dynaflow.Item) []byte {
	b = append(b, '{')
	var buf [32]string
	for i, name := range sortedNames(item, buf[:0]) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ':')
		b = appendDDBValue(b, item[name])
	}
	return append(b, '}')
}

// sortedNames returns item's attribute names in order, in names (whose array holds most items'
// names without allocating): files then come out the same for the same items.
func sortedNames(item dynaflow.Item, names []string) []string {
	for name := range item {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func appendDDBValue(b []byte, v types.AttributeValue) []byte {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		b = append(b, `{"S":`...)
		b = appendString(b, v.Value)
	case *types.AttributeValueMemberN:
		b = append(b, `{"N":`...)
		b = appendString(b, v.Value)
	case *types.AttributeValueMemberB:
		b = append(b, `{"B":`...)
		b = appendBase64(b, v.Value)
	case *types.AttributeValueMemberBOOL:
		b = append(b, `{"BOOL":`...)
		b = strconv.AppendBool(b, v.Value)
	case *types.AttributeValueMemberNULL:
		b = append(b, `{"NULL":true`...)
	case *types.AttributeValueMemberSS:
		b = append(b, `{"SS":[`...)
		for i, s := range v.Value {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	case *types.AttributeValueMemberNS:
		b = append(b, `{"NS":[`...)
		for i, s := range v.Value {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	case *types.AttributeValueMemberBS:
		b = append(b, `{"BS":[`...)
		for i, s := range v.Value {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendBase64(b, s)
		}
		b = append(b, ']')
	case *types.AttributeValueMemberL:
		b = append(b, `{"L":[`...)
		for i, e := range v.Value {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendDDBValue(b, e)
		}
		b = append(b, ']')
	case *types.AttributeValueMemberM:
		b = append(b, `{"M":`...)
		b = appendDDBItem(b, v.Value)
	default:
		// Items come from DynamoDB or from our readers, which make only the types above.
		b = append(b, `{"NULL":true`...)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendBase64(b []byte, p []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, p)
	return append(b, '"')
}

// decodeTagged reads body as a value of type tag, such as a CSV cell for an SS column.
func decodeTagged(tag string, body json.RawMessage) (types.AttributeValue, error) {
	return decodeDDBValue(json.RawMessage(`{"` + tag + `":` + string(body) + `}`))
}
