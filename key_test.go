package dynaflow

import (
	"math/big"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestCanonicalNumber(t *testing.T) {
	same := [][]string{
		{"1", "1.0", "+1", "1e0", "1E0", "10e-1", "0.1e1", "001.000", ".1e1"},
		{"0", "0.0", "-0", "+0.000", "0e10", ".0"},
		{"-12.5", "-125e-1", "-0.125E2", "-012.50"},
		{"123456789012345678901234567890123456789", "1.23456789012345678901234567890123456789e38"},
	}
	for _, group := range same {
		want, err := canonicalNumber(group[0])
		if err != nil {
			t.Fatalf("canonicalNumber(%q): %v", group[0], err)
		}
		for _, s := range group[1:] {
			got, err := canonicalNumber(s)
			if err != nil || got != want {
				t.Errorf("canonicalNumber(%q) = %q, %v; want %q like %q", s, got, err, want, group[0])
			}
		}
	}
	different := [][2]string{{"1", "-1"}, {"1", "10"}, {"0.1", "1"}, {"12", "21"}, {"1", "1.0000000001"}}
	for _, d := range different {
		a, _ := canonicalNumber(d[0])
		b, _ := canonicalNumber(d[1])
		if a == b {
			t.Errorf("%q and %q have the same form %q", d[0], d[1], a)
		}
	}
	for _, bad := range []string{"", "-", "1e", "e5", "1.2.3", "0x10", "one", "1e+", " 1", "1_000", "."} {
		if got, err := canonicalNumber(bad); err == nil {
			t.Errorf("canonicalNumber(%q) = %q; want an error", bad, got)
		}
	}
}

// FuzzCanonicalNumber checks that two numbers get the same canonical form exactly when they are
// equal in value, with math/big as the judge.
func FuzzCanonicalNumber(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b string) {
		ca, errA := canonicalNumber(a)
		cb, errB := canonicalNumber(b)
		ra, okA, judgeA := ratOf(a)
		rb, okB, judgeB := ratOf(b)
		if !judgeA || !judgeB {
			return
		}
		if (errA == nil) != okA || (errB == nil) != okB {
			t.Fatalf("canonicalNumber(%q) err %v, (%q) err %v; big.Rat parses: %v, %v", a, errA, b, errB, okA, okB)
		}
		if !okA || !okB {
			return
		}
		if (ca == cb) != (ra.Cmp(rb) == 0) {
			t.Fatalf("%q → %q and %q → %q, but equal in value: %v", a, ca, b, cb, ra.Cmp(rb) == 0)
		}
	})
}

// ratOf parses a decimal number as DynamoDB writes them: valid reports whether s is one. Inputs
// that are long or have long exponents are not judged (judge is false), to keep math/big fast.
func ratOf(s string) (r *big.Rat, valid, judge bool) {
	if len(s) > 60 {
		return nil, false, false
	}
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 || body == "" {
		return nil, false, true
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(body), "e")
	if hasExp {
		e := strings.TrimLeft(exp, "+-")
		if len(exp)-len(e) > 1 || e == "" || strings.Trim(e, "0123456789") != "" {
			return nil, false, true
		}
		if len(strings.TrimLeft(e, "0")) > 3 {
			return nil, false, false
		}
	}
	i, frac, _ := strings.Cut(mant, ".")
	if i+frac == "" || strings.Trim(i+frac, "0123456789") != "" || strings.Count(mant, ".") > 1 {
		return nil, false, true
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok, ok
}

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
// canonicalNumber, and that no two different string keys share an encoding.
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
		ca, errCA := canonicalNumber(a)
		cb, errCB := canonicalNumber(b)
		if (errNA == nil) != (errCA == nil) || (errNB == nil) != (errCB == nil) {
			t.Fatalf("keyString and canonicalNumber disagree on validity of %q or %q", a, b)
		}
		if errNA == nil && errNB == nil && (na == nb) != (ca == cb) {
			t.Fatalf("number keys %q, %q: encodings equal %v, canonical equal %v", a, b, na == nb, ca == cb)
		}
	})
}
