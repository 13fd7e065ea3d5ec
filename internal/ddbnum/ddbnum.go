// Package ddbnum puts DynamoDB numbers in a canonical form, for the library's keys and the
// command line's alike: two numbers are one key value exactly when their forms are equal.
package ddbnum

import (
	"errors"
	"fmt"
	"strings"
)

// Canonical returns the canonical form of a DynamoDB number, so that numbers equal in value
// have equal forms: "1", "1.0", "+1", "10e-1" and "1E0" all become "1e0"; zero is "0". It returns
// an error for a string that is not a number.
func Canonical(s string) (string, error) {
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
