package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	Item  map[string]json.RawMessage `json:"Item"`
	Error string                     `json:"error,omitempty"`
	Line  int64                      `json:"line,omitempty"`
	Raw   *string                    `json:"raw,omitempty"`
}

// decodeDDBLine reads one line: the {"Item":{...}} shape or a bare typed item.
func decodeDDBLine(line []byte) (dynaflow.Item, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(line, &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", jsonErr(err))
	}
	if top == nil {
		return nil, errors.New("not a JSON object")
	}
	if raw, ok := top["Item"]; ok && onlyLineFields(top) {
		var attrs map[string]json.RawMessage
		if err := json.Unmarshal(raw, &attrs); err != nil || attrs == nil {
			return nil, errors.New(`"Item" is not a JSON object`)
		}
		return decodeDDBItem(attrs)
	}
	if _, ok := top["raw"]; ok {
		return nil, errors.New(`a rejected line that did not parse ("raw"): fix it into an "Item" to load it`)
	}
	return decodeDDBItem(top)
}

// onlyLineFields reports whether top holds nothing but the fields of ddbLine.
func onlyLineFields(top map[string]json.RawMessage) bool {
	for k := range top {
		switch k {
		case "Item", "error", "line":
		default:
			return false
		}
	}
	return true
}

func decodeDDBItem(attrs map[string]json.RawMessage) (dynaflow.Item, error) {
	item := make(dynaflow.Item, len(attrs))
	for name, raw := range attrs {
		v, err := decodeDDBValue(raw)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		item[name] = v
	}
	return item, nil
}

// decodeDDBValue reads one typed value.
func decodeDDBValue(raw json.RawMessage) (types.AttributeValue, error) {
	var tv map[string]json.RawMessage
	if err := json.Unmarshal(raw, &tv); err != nil || len(tv) != 1 {
		return nil, errors.New(`not a typed value such as {"S":"..."}`)
	}
	for tag, body := range tv {
		return decodeTagged(tag, body)
	}
	panic("unreachable")
}

func decodeTagged(tag string, body json.RawMessage) (types.AttributeValue, error) {
	bad := func(what string) error { return fmt.Errorf("%s value is not %s", tag, what) }
	switch tag {
	case "S":
		var s string
		if json.Unmarshal(body, &s) != nil {
			return nil, bad("a string")
		}
		return &types.AttributeValueMemberS{Value: s}, nil
	case "N":
		s, err := numberString(body)
		if err != nil {
			return nil, bad("a number")
		}
		return &types.AttributeValueMemberN{Value: s}, nil
	case "B":
		var b []byte
		if json.Unmarshal(body, &b) != nil || b == nil {
			return nil, bad("base64")
		}
		return &types.AttributeValueMemberB{Value: b}, nil
	case "BOOL":
		var v bool
		if json.Unmarshal(body, &v) != nil || isNull(body) {
			return nil, bad("true or false")
		}
		return &types.AttributeValueMemberBOOL{Value: v}, nil
	case "NULL":
		var v bool
		if json.Unmarshal(body, &v) != nil || !v {
			return nil, bad("true")
		}
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case "SS":
		var ss []string
		if json.Unmarshal(body, &ss) != nil || len(ss) == 0 {
			return nil, bad("a non-empty list of strings")
		}
		return &types.AttributeValueMemberSS{Value: ss}, nil
	case "NS":
		var raws []json.RawMessage
		if json.Unmarshal(body, &raws) != nil || len(raws) == 0 {
			return nil, bad("a non-empty list of numbers")
		}
		ns := make([]string, len(raws))
		for i, r := range raws {
			s, err := numberString(r)
			if err != nil {
				return nil, bad("a non-empty list of numbers")
			}
			ns[i] = s
		}
		return &types.AttributeValueMemberNS{Value: ns}, nil
	case "BS":
		var bs [][]byte
		if json.Unmarshal(body, &bs) != nil || len(bs) == 0 {
			return nil, bad("a non-empty list of base64 strings")
		}
		return &types.AttributeValueMemberBS{Value: bs}, nil
	case "L":
		var raws []json.RawMessage
		if json.Unmarshal(body, &raws) != nil || raws == nil {
			return nil, bad("a list")
		}
		l := make([]types.AttributeValue, len(raws))
		for i, r := range raws {
			v, err := decodeDDBValue(r)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			l[i] = v
		}
		return &types.AttributeValueMemberL{Value: l}, nil
	case "M":
		var attrs map[string]json.RawMessage
		if json.Unmarshal(body, &attrs) != nil || attrs == nil {
			return nil, bad("an object")
		}
		m, err := decodeDDBItem(attrs)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	}
	return nil, fmt.Errorf("unknown type %q", tag)
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

func isNull(b json.RawMessage) bool { return string(bytes.TrimSpace(b)) == "null" }

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
	for i, name := range slices.Sorted(maps.Keys(item)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ':')
		b = appendDDBValue(b, item[name])
	}
	return append(b, '}')
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
