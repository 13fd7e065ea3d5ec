package ddbnum

import (
	"math/big"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	same := [][]string{
		{"1", "1.0", "+1", "1e0", "1E0", "10e-1", "0.1e1", "001.000", ".1e1"},
		{"0", "0.0", "-0", "+0.000", "0e10", ".0"},
		{"-12.5", "-125e-1", "-0.125E2", "-012.50"},
		{"123456789012345678901234567890123456789", "1.23456789012345678901234567890123456789e38"},
	}
	for _, group := range same {
		want, err := Canonical(group[0])
		if err != nil {
			t.Fatalf("Canonical(%q): %v", group[0], err)
		}
		for _, s := range group[1:] {
			got, err := Canonical(s)
			if err != nil || got != want {
				t.Errorf("Canonical(%q) = %q, %v; want %q like %q", s, got, err, want, group[0])
			}
		}
	}
	different := [][2]string{{"1", "-1"}, {"1", "10"}, {"0.1", "1"}, {"12", "21"}, {"1", "1.0000000001"}}
	for _, d := range different {
		a, _ := Canonical(d[0])
		b, _ := Canonical(d[1])
		if a == b {
			t.Errorf("%q and %q have the same form %q", d[0], d[1], a)
		}
	}
	for _, bad := range []string{"", "-", "1e", "e5", "1.2.3", "0x10", "one", "1e+", " 1", "1_000", "."} {
		if got, err := Canonical(bad); err == nil {
			t.Errorf("Canonical(%q) = %q; want an error", bad, got)
		}
	}
}

// FuzzCanonical checks that two numbers get the same canonical form exactly when they are
// equal in value, with math/big as the judge.
func FuzzCanonical(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b string) {
		ca, errA := Canonical(a)
		cb, errB := Canonical(b)
		ra, okA, judgeA := ratOf(a)
		rb, okB, judgeB := ratOf(b)
		if !judgeA || !judgeB {
			return
		}
		if (errA == nil) != okA || (errB == nil) != okB {
			t.Fatalf("Canonical(%q) err %v, (%q) err %v; big.Rat parses: %v, %v", a, errA, b, errB, okA, okB)
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
