package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

// CSV (RFC 4180): a header of column names, each with an optional type (pk:S,sk:N,tags:SS;
// untyped is S), then one item a row. An empty cell is an absent attribute. B is base64; BOOL is
// true or false; SS, NS and BS are JSON arrays; L and M are plain JSON (see plainjson.go).

// column is one CSV column: an attribute name and its type.
type column struct {
	name, typ string
}

var csvTypes = []string{"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"}

// parseColumns reads a header, or a --columns list, into columns.
func parseColumns(fields []string) ([]column, error) {
	cols := make([]column, len(fields))
	seen := make(map[string]bool, len(fields))
	for i, f := range fields {
		name, typ, typed := strings.Cut(f, ":")
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff") // a byte order mark from spreadsheet tools
		}
		if !typed {
			typ = "S"
		}
		typ = strings.ToUpper(typ)
		if name == "" {
			return nil, fmt.Errorf("column %d has no name", i+1)
		}
		if !slices.Contains(csvTypes, typ) {
			return nil, fmt.Errorf("column %q: unknown type %q (one of %s)", name, typ, strings.Join(csvTypes, ", "))
		}
		if seen[name] {
			return nil, fmt.Errorf("column %q appears twice", name)
		}
		seen[name] = true
		cols[i] = column{name, typ}
	}
	return cols, nil
}

// headerOf writes columns as a header: untyped for S, name:TYPE otherwise.
func headerOf(cols []column) []string {
	h := make([]string, len(cols))
	for i, c := range cols {
		h[i] = c.name
		if c.typ != "S" {
			h[i] += ":" + c.typ
		}
	}
	return h
}

// csvItem turns a row into an item.
func csvItem(cols []column, row []string) (dynaflow.Item, error) {
	if len(row) != len(cols) {
		return nil, fmt.Errorf("row has %d fields; the header has %d", len(row), len(cols))
	}
	item := make(dynaflow.Item, len(cols))
	for i, cell := range row {
		if cell == "" {
			continue
		}
		v, err := csvValue(cols[i].typ, cell)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", cols[i].name, err)
		}
		item[cols[i].name] = v
	}
	return item, nil
}

func csvValue(typ, cell string) (types.AttributeValue, error) {
	switch typ {
	case "S":
		return &types.AttributeValueMemberS{Value: cell}, nil
	case "N":
		if !validNumber(cell) {
			return nil, errors.New("not a number")
		}
		return &types.AttributeValueMemberN{Value: cell}, nil
	case "B":
		b, err := base64.StdEncoding.DecodeString(cell)
		if err != nil {
			return nil, errors.New("not base64")
		}
		return &types.AttributeValueMemberB{Value: b}, nil
	case "BOOL":
		switch strings.ToLower(cell) {
		case "true":
			return &types.AttributeValueMemberBOOL{Value: true}, nil
		case "false":
			return &types.AttributeValueMemberBOOL{Value: false}, nil
		}
		return nil, errors.New("not true or false")
	case "NULL":
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case "SS", "NS", "BS":
		return decodeTagged(typ, json.RawMessage(cell))
	case "L", "M":
		d := json.NewDecoder(strings.NewReader(cell))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil || d.More() {
			return nil, fmt.Errorf("not JSON for %s", typ)
		}
		av := fromPlain(v)
		if dynaflow.TypeName(av) != typ {
			return nil, fmt.Errorf("JSON is not %s", map[string]string{"L": "an array", "M": "an object"}[typ])
		}
		return av, nil
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}

// csvRow renders an item as a row of cols, each value in its own type's spelling.
func csvRow(cols []column, item dynaflow.Item, row []string) []string {
	row = row[:0]
	for _, c := range cols {
		row = append(row, csvCell(item[c.name]))
	}
	return row
}

func csvCell(v types.AttributeValue) string {
	switch v := v.(type) {
	case nil:
		return ""
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberB:
		return base64.StdEncoding.EncodeToString(v.Value)
	case *types.AttributeValueMemberBOOL:
		if v.Value {
			return "true"
		}
		return "false"
	case *types.AttributeValueMemberNULL:
		return "true"
	case *types.AttributeValueMemberSS, *types.AttributeValueMemberNS, *types.AttributeValueMemberBS:
		// A set is a JSON array of its members, as DynamoDB JSON spells them.
		b := appendDDBValue(nil, v)
		_, arr, _ := strings.Cut(string(b[:len(b)-1]), ":")
		return arr
	}
	return string(appendPlain(nil, v))
}

// columnsOf picks columns for items: the key attributes first, then every other name in order,
// each typed by its first value.
func columnsOf(keys []string, items []dynaflow.Item) []column {
	typ := map[string]string{}
	for _, it := range items {
		for name, v := range it {
			if _, ok := typ[name]; !ok {
				typ[name] = dynaflow.TypeName(v)
			}
		}
	}
	var cols []column
	for _, k := range keys {
		if t, ok := typ[k]; ok {
			cols = append(cols, column{k, t})
			delete(typ, k)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(typ)) {
		cols = append(cols, column{name, typ[name]})
	}
	return cols
}
