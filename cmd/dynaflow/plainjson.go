package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

// Plain JSON lines: strings are S, numbers N with their digits as written (never through
// float64), booleans BOOL, null NULL, arrays L, objects M. Written back, sets become arrays and
// binaries base64 strings, so a json export loses those types: use ddb to keep them.

// decodeJSONLine reads one line holding a plain JSON object.
func decodeJSONLine(line []byte) (dynaflow.Item, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", jsonErr(err))
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	if d.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	return fromPlainMap(m), nil
}

func fromPlainMap(m map[string]any) dynaflow.Item {
	item := make(dynaflow.Item, len(m))
	for k, v := range m {
		item[k] = fromPlain(v)
	}
	return item
}

// fromPlain converts a value decoded with UseNumber.
func fromPlain(v any) types.AttributeValue {
	switch v := v.(type) {
	case string:
		return &types.AttributeValueMemberS{Value: v}
	case json.Number:
		return &types.AttributeValueMemberN{Value: v.String()}
	case bool:
		return &types.AttributeValueMemberBOOL{Value: v}
	case []any:
		l := make([]types.AttributeValue, len(v))
		for i, e := range v {
			l[i] = fromPlain(e)
		}
		return &types.AttributeValueMemberL{Value: l}
	case map[string]any:
		return &types.AttributeValueMemberM{Value: fromPlainMap(v)}
	}
	return &types.AttributeValueMemberNULL{Value: true}
}

// appendJSONLine writes item as a plain JSON object and a newline, attributes in name order.
func appendJSONLine(b []byte, item dynaflow.Item) []byte {
	return append(appendPlainMap(b, item), '\n')
}

func appendPlainMap(b []byte, m dynaflow.Item) []byte {
	b = append(b, '{')
	var buf [32]string
	for i, name := range sortedNames(m, buf[:0]) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ':')
		b = appendPlain(b, m[name])
	}
	return append(b, '}')
}

func appendPlain(b []byte, v types.AttributeValue) []byte {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return appendString(b, v.Value)
	case *types.AttributeValueMemberN:
		return appendNumber(b, v.Value)
	case *types.AttributeValueMemberB:
		return appendBase64(b, v.Value)
	case *types.AttributeValueMemberBOOL:
		return strconv.AppendBool(b, v.Value)
	case *types.AttributeValueMemberSS:
		return appendList(b, len(v.Value), func(b []byte, i int) []byte { return appendString(b, v.Value[i]) })
	case *types.AttributeValueMemberNS:
		return appendList(b, len(v.Value), func(b []byte, i int) []byte { return appendNumber(b, v.Value[i]) })
	case *types.AttributeValueMemberBS:
		return appendList(b, len(v.Value), func(b []byte, i int) []byte { return appendBase64(b, v.Value[i]) })
	case *types.AttributeValueMemberL:
		return appendList(b, len(v.Value), func(b []byte, i int) []byte { return appendPlain(b, v.Value[i]) })
	case *types.AttributeValueMemberM:
		return appendPlainMap(b, v.Value)
	}
	return append(b, "null"...)
}

func appendList(b []byte, n int, elem func([]byte, int) []byte) []byte {
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, i)
	}
	return append(b, ']')
}

// appendNumber writes a DynamoDB number as a JSON number, its digits as stored. DynamoDB spells
// numbers as JSON does, except that it allows a leading "+" and "5." or ".5"; those are
// normalized to stay valid JSON.
func appendNumber(b []byte, n string) []byte {
	if json.Valid([]byte(n)) {
		return append(b, n...)
	}
	s := n
	if s != "" && s[0] == '+' {
		s = s[1:]
	}
	neg := s != "" && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if s != "" && s[0] == '.' {
		s = "0" + s
	}
	if i := bytes.IndexByte([]byte(s), '.'); i >= 0 && (i == len(s)-1 || s[i+1] == 'e' || s[i+1] == 'E') {
		s = s[:i] + s[i+1:]
	}
	if neg {
		s = "-" + s
	}
	if !json.Valid([]byte(s)) {
		return appendString(b, n) // not a number at all; keep it as text rather than write bad JSON
	}
	return append(b, s...)
}
