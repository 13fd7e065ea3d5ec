package dynaflow

import (
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow/internal/ddbnum"
)

func TestItemSize(t *testing.T) {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	tests := []struct {
		name string
		item Item
		want int
	}{
		{"string", Item{"id": s("abc")}, 2 + 3},
		{"utf-8", Item{"naïve": s("日本")}, 6 + 6},
		{"binary", Item{"b": &types.AttributeValueMemberB{Value: []byte{1, 2, 3, 4}}}, 1 + 4},
		{"number", Item{"n": n("12345")}, 1 + 4},
		{"number zeros", Item{"n": n("0.0001")}, 1 + 2},
		{"bool and null", Item{"t": &types.AttributeValueMemberBOOL{Value: true}, "z": &types.AttributeValueMemberNULL{Value: true}}, 2 + 2},
		{"list", Item{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("ab"), n("1")}}}, 1 + 3 + (1 + 2) + (1 + 2)},
		{"map", Item{"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": s("v")}}}, 1 + 3 + (1 + 1 + 1)},
		{"string set", Item{"ss": &types.AttributeValueMemberSS{Value: []string{"a", "bc"}}}, 2 + 3},
		{"number set", Item{"ns": &types.AttributeValueMemberNS{Value: []string{"1", "22"}}}, 2 + 2 + 2},
		{"binary set", Item{"bs": &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}}}, 2 + 3},
	}
	for _, tt := range tests {
		if got := ItemSize(tt.item); got != tt.want {
			t.Errorf("%s: ItemSize = %d; want %d", tt.name, got, tt.want)
		}
	}
}

// FuzzItemSize checks ItemSize against the rule for strings, on items built from the input, and
// that it never fails on nested values.
func FuzzItemSize(f *testing.F) {
	f.Fuzz(func(t *testing.T, name, value string, depth uint8) {
		if !utf8.ValidString(name) || !utf8.ValidString(value) {
			return
		}
		item := Item{name: &types.AttributeValueMemberS{Value: value}}
		if got, want := ItemSize(item), len(name)+len(value); got != want {
			t.Fatalf("ItemSize = %d; want %d", got, want)
		}
		var v types.AttributeValue = &types.AttributeValueMemberS{Value: value}
		want := len(value)
		for i := 0; i < int(depth%16); i++ {
			if i%2 == 0 {
				v = &types.AttributeValueMemberL{Value: []types.AttributeValue{v}}
				want += 3 + 1
			} else {
				v = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{name: v}}
				want += 3 + 1 + len(name)
			}
		}
		if got := ItemSize(Item{name: v}); got != len(name)+want {
			t.Fatalf("nested ItemSize = %d; want %d", got, len(name)+want)
		}
	})
}

// FuzzKeyString checks that canonical keys of single-attribute number keys agree with
// ddbnum.Canonical, and that no two different string keys share an encoding.
func FuzzKeyString(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, errA := keyString(Item{"k": &types.AttributeValueMemberS{Value: a}})
		kb, errB := keyString(Item{"k": &types.AttributeValueMemberS{Value: b}})
		if (errA != nil) != (a == "") || (errB != nil) != (b == "") {
			t.Fatalf("keyString errors %v, %v for %q, %q", errA, errB, a, b)
		}
		if errA == nil && errB == nil && (ka == kb) != (a == b) {
			t.Fatalf("keys %q and %q: encodings equal = %v", a, b, ka == kb)
		}
		// Two-attribute keys: the length prefix keeps ("ab","c") apart from ("a","bc").
		k1, _ := keyString(Item{"x": &types.AttributeValueMemberS{Value: a + "x"}, "y": &types.AttributeValueMemberS{Value: b + "y"}})
		k2, _ := keyString(Item{"x": &types.AttributeValueMemberS{Value: a + "xy"}, "y": &types.AttributeValueMemberS{Value: b}})
		if b != "" && k1 == k2 {
			t.Fatalf("composite keys collide for %q, %q", a, b)
		}
		na, errNA := keyString(Item{"k": &types.AttributeValueMemberN{Value: a}})
		nb, errNB := keyString(Item{"k": &types.AttributeValueMemberN{Value: b}})
		ca, errCA := ddbnum.Canonical(a)
		cb, errCB := ddbnum.Canonical(b)
		if (errNA == nil) != (errCA == nil) || (errNB == nil) != (errCB == nil) {
			t.Fatalf("keyString and ddbnum.Canonical disagree on validity of %q or %q", a, b)
		}
		if errNA == nil && errNB == nil && (na == nb) != (ca == cb) {
			t.Fatalf("number keys %q, %q: encodings equal %v, canonical equal %v", a, b, na == nb, ca == cb)
		}
	})
}
