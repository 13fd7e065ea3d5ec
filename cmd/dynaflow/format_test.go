package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

func S(s string) types.AttributeValue  { return &types.AttributeValueMemberS{Value: s} }
func N(s string) types.AttributeValue  { return &types.AttributeValueMemberN{Value: s} }
func B(b []byte) types.AttributeValue  { return &types.AttributeValueMemberB{Value: b} }
func BOOL(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }
func L(vs ...types.AttributeValue) types.AttributeValue {
	return &types.AttributeValueMemberL{Value: append([]types.AttributeValue{}, vs...)}
}
func M(m dynaflow.Item) types.AttributeValue { return &types.AttributeValueMemberM{Value: m} }

var NULL types.AttributeValue = &types.AttributeValueMemberNULL{Value: true}

// allTypes is an item with every attribute type, empty strings, binaries, lists and maps outside
// the key, 38-digit numbers and nesting.
func allTypes(pk string, sk int) dynaflow.Item {
	return dynaflow.Item{
		"pk":     S(pk),
		"sk":     N(strconv.Itoa(sk)),
		"s":      S("héllo \"quoted\" \\ <tag> & \t\n"),
		"empty":  S(""),
		"n38":    N("12345678901234567890123456789012345678"),
		"nfrac":  N("-3.14159"),
		"b":      B([]byte{0, 1, 2, 255}),
		"emptyb": B([]byte{}),
		"t":      BOOL(true),
		"f":      BOOL(false),
		"null":   NULL,
		"l":      L(S("a"), N("1"), L(), M(dynaflow.Item{}), BOOL(false), NULL),
		"m":      M(dynaflow.Item{"nested": M(dynaflow.Item{"deep": L(BOOL(false), N("0.5"))}), "x": N("7")}),
		"ss":     &types.AttributeValueMemberSS{Value: []string{"a", "b", "c d"}},
		"ns":     &types.AttributeValueMemberNS{Value: []string{"1", "2.5", "-10"}},
		"bs":     &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}},
	}
}

// canon is an item as one string, with set members sorted (DynamoDB keeps no order in sets), so
// that two items compare equal exactly when they hold the same values of the same types.
func canon(item dynaflow.Item) string {
	return string(appendDDBItem(nil, sortSets(item)))
}

func sortSets(item dynaflow.Item) dynaflow.Item {
	out := dynaflow.Item{}
	for k, v := range item {
		out[k] = sortValue(v)
	}
	return out
}

func sortValue(v types.AttributeValue) types.AttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberSS:
		return &types.AttributeValueMemberSS{Value: slices.Sorted(slices.Values(v.Value))}
	case *types.AttributeValueMemberNS:
		return &types.AttributeValueMemberNS{Value: slices.Sorted(slices.Values(v.Value))}
	case *types.AttributeValueMemberBS:
		bs := slices.Clone(v.Value)
		slices.SortFunc(bs, bytes.Compare)
		return &types.AttributeValueMemberBS{Value: bs}
	case *types.AttributeValueMemberL:
		l := make([]types.AttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = sortValue(e)
		}
		return &types.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberM:
		return &types.AttributeValueMemberM{Value: sortSets(v.Value)}
	}
	return v
}

func TestDDBRoundTripsEveryType(t *testing.T) {
	item := allTypes("p", 1)
	line := appendDDBLine(nil, item)
	if !bytes.HasPrefix(line, []byte(`{"Item":{`)) || !bytes.HasSuffix(line, []byte("}\n")) {
		t.Fatalf("line is not in DynamoDB's export shape: %s", line)
	}
	got, err := decodeDDBLine(bytes.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if canon(got) != canon(item) {
		t.Errorf("round trip changed the item:\n got %s\nwant %s", canon(got), canon(item))
	}
	// A bare typed item reads the same.
	bare, err := decodeDDBLine(appendDDBItem(nil, item))
	if err != nil || canon(bare) != canon(item) {
		t.Errorf("bare item: %v, %s", err, canon(bare))
	}
}

func TestDDBRejectsBadValues(t *testing.T) {
	for _, line := range []string{
		`not json`,
		`[1,2]`,
		`{"Item":{"pk":{"S":1}}}`,
		`{"Item":{"pk":{"N":"1x"}}}`,
		`{"Item":{"pk":{"SS":[]}}}`,
		`{"Item":{"pk":{"X":"a"}}}`,
		`{"Item":{"pk":{"S":"a","N":"1"}}}`,
		`{"Item":{"pk":{"B":"***"}}}`,
		`{"Item":{"pk":{"NULL":false}}}`,
		`{"raw":"x","error":"e","line":3}`,
	} {
		if item, err := decodeDDBLine([]byte(line)); err == nil {
			t.Errorf("%s: decoded as %v; want an error", line, item)
		}
	}
}

func TestRejectLineLoadsAgain(t *testing.T) {
	r := &rejects{path: t.TempDir() + "/r.ddb"}
	item := allTypes("p", 2)
	if err := r.add(17, item, nil, io.ErrUnexpectedEOF); err != nil {
		t.Fatal(err)
	}
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	src, format, _, err := openSource(mustOpen(t, r.path), "", nil, 0, 0, nil)
	if err != nil || format != formatDDB {
		t.Fatalf("format %q, %v", format, err)
	}
	rec, err := src.next()
	if err != nil || rec.err != nil || canon(rec.item) != canon(item) {
		t.Fatalf("reading the reject back: %v %v %s", err, rec.err, canon(rec.item))
	}
}

func TestPlainJSONKeepsDigits(t *testing.T) {
	item, err := decodeJSONLine([]byte(`{"pk":"a","n":12345678901234567890123456789012345678,"f":1.50,"e":-2e-7,"t":true,"z":null,"l":[1,"x",{"k":false}],"m":{"a":{"b":[]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := dynaflow.Item{
		"pk": S("a"), "n": N("12345678901234567890123456789012345678"), "f": N("1.50"), "e": N("-2e-7"),
		"t": BOOL(true), "z": NULL, "l": L(N("1"), S("x"), M(dynaflow.Item{"k": BOOL(false)})),
		"m": M(dynaflow.Item{"a": M(dynaflow.Item{"b": L()})}),
	}
	if canon(item) != canon(want) {
		t.Errorf("got  %s\nwant %s", canon(item), canon(want))
	}
	back, err := decodeJSONLine(appendJSONLine(nil, item))
	if err != nil || canon(back) != canon(want) {
		t.Errorf("json round trip: %v %s", err, canon(back))
	}
	// Sets and binaries are written as arrays and base64: lossy, as documented.
	lossy := string(appendJSONLine(nil, dynaflow.Item{"ss": &types.AttributeValueMemberSS{Value: []string{"a"}}, "b": B([]byte{1}), "n": N("+.5")}))
	if lossy != `{"b":"AQ==","n":0.5,"ss":["a"]}`+"\n" {
		t.Errorf("lossy json: %s", lossy)
	}
}

func TestCSVRoundTripsItsTypes(t *testing.T) {
	cols, err := parseColumns(strings.Split("pk,sk:N,b:B,t:BOOL,z:NULL,ss:SS,ns:NS,bs:BS,l:L,m:M", ","))
	if err != nil {
		t.Fatal(err)
	}
	item := allTypes("p", 3)
	for _, k := range []string{"s", "empty", "emptyb", "n38", "nfrac", "f", "null"} {
		delete(item, k)
	}
	item["z"], item["t"] = NULL, BOOL(true)
	row := csvRow(cols, item, nil)
	got, err := csvItem(cols, row)
	if err != nil {
		t.Fatal(err)
	}
	if canon(got) != canon(item) {
		t.Errorf("csv round trip:\n got %s\nwant %s", canon(got), canon(item))
	}
	if _, err := parseColumns([]string{"pk", "pk:N"}); err == nil {
		t.Error("a column given twice was accepted")
	}
	if _, err := parseColumns([]string{"pk:DATE"}); err == nil || !strings.Contains(err.Error(), `"DATE"`) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := csvItem(cols[:2], []string{"a", "x"}); err == nil || !strings.Contains(err.Error(), `"sk"`) {
		t.Errorf("a bad number: %v; want an error naming the column", err)
	}
}

// readCSV reads every record of in, a CSV file with its header.
func readCSV(t *testing.T, in string) []record {
	t.Helper()
	src, err := newCSVSource(strings.NewReader(in), nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	for {
		rec, err := src.next()
		if err == io.EOF {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

func TestCSVSourceLinesAndOffsets(t *testing.T) {
	in := "pk,n:N\na,1\n\"b\nc\",2\nd,x\n"
	var lines []int64
	var errs int
	var end int64
	for _, rec := range readCSV(t, in) {
		lines = append(lines, rec.line)
		if rec.err != nil {
			errs++
		}
		end = rec.end
	}
	if !slices.Equal(lines, []int64{2, 3, 5}) || errs != 1 || end != int64(len(in)) {
		t.Errorf("lines %v, %d errors, end %d; want [2 3 5], 1, %d", lines, errs, end, len(in))
	}
}

// TestCSVRejectsKeepTheRowAsWritten: a row that does not parse, or does not make an item, is
// kept as it was in the input, line end aside, for the rejects file.
func TestCSVRejectsKeepTheRowAsWritten(t *testing.T) {
	var raws []string
	for _, rec := range readCSV(t, "pk,n:N\r\na,1\r\nb\"x,2\r\n\"c\nd\",x\r\ne,3\r\n\"f,4\n") {
		if (rec.err != nil) != (rec.raw != nil) {
			t.Errorf("line %d: error %v with raw %q", rec.line, rec.err, rec.raw)
		}
		if rec.raw != nil {
			raws = append(raws, string(rec.raw))
		}
	}
	want := []string{"b\"x,2", "\"c\nd\",x", "\"f,4"}
	if !slices.Equal(raws, want) {
		t.Errorf("rows kept %q; want %q", raws, want)
	}
}

func TestSourceDetectsFormatAndGzip(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"Item":{"pk":{"S":"a"}}}` + "\n"))
	zw.Close()
	for name, c := range map[string]struct {
		data   []byte
		format string
	}{
		"ddb export, gzip":                 {gz.Bytes(), formatDDB},
		"bare typed":                       {[]byte(`{"pk":{"S":"a"},"n":{"N":"1"}}` + "\n"), formatDDB},
		"plain json":                       {[]byte(`{"pk":"a","n":1}` + "\n"), formatJSON},
		"plain json typed-looking but not": {[]byte(`{"pk":{"S":1}}` + "\n"), formatJSON},
	} {
		src, format, _, err := openSource(bytes.NewReader(c.data), "", nil, 0, 0, nil)
		if err != nil || format != c.format {
			t.Errorf("%s: format %q, %v; want %q", name, format, err, c.format)
			continue
		}
		if rec, err := src.next(); err != nil || rec.err != nil || rec.item["pk"] == nil {
			t.Errorf("%s: first record %+v, %v", name, rec, err)
		}
	}
}

func TestReadLineCapsLongLines(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	br := bufio.NewReaderSize(strings.NewReader(long+"\nok\n"), 4096)
	_, n, tooLong, err := readLine(br)
	if !tooLong || err != nil || n != int64(len(long)+1) {
		t.Fatalf("tooLong %v, n %d, err %v", tooLong, n, err)
	}
	line, _, tooLong, _ := readLine(br)
	if tooLong || string(line) != "ok" {
		t.Errorf("next line %q, tooLong %v", line, tooLong)
	}
}

func TestValidNumber(t *testing.T) {
	for s, want := range map[string]bool{"1": true, "-1.5": true, "+2": true, ".5": true, "5.": true, "1e10": true, "1E-3": true,
		"": false, "-": false, ".": false, "1e": false, "0x10": false, "1.2.3": false, "NaN": false, "1 ": false} {
		if got := validNumber(s); got != want {
			t.Errorf("validNumber(%q) = %v; want %v", s, got, want)
		}
	}
}

func TestKeyStringTellsKeysApart(t *testing.T) {
	info := &tableInfo{keys: []keyAttr{{"pk", "S"}, {"sk", "S"}}}
	a := info.keyString(dynaflow.Item{"pk": S("ab"), "sk": S("c")})
	b := info.keyString(dynaflow.Item{"pk": S("a"), "sk": S("bc")})
	c := info.keyString(dynaflow.Item{"pk": S("ab"), "sk": S("c"), "other": S("x")})
	if a == b || a != c {
		t.Errorf("keyString: %q %q %q", a, b, c)
	}
	num := &tableInfo{keys: []keyAttr{{"pk", "S"}, {"sk", "N"}}}
	one := num.keyString(dynaflow.Item{"pk": S("a"), "sk": N("1")})
	for _, same := range []string{"1.0", "+1", "10e-1", "0.1E1", "1.000000000000000000000000000000000000"} {
		if k := num.keyString(dynaflow.Item{"pk": S("a"), "sk": N(same)}); k != one {
			t.Errorf("keyString of sk %s is %q, of sk 1 %q: one number, one key", same, k, one)
		}
	}
	for _, other := range []string{"2", "1.00000000000000000000000000000000000001", "-1", "1e1", "1e999999999"} {
		if num.keyString(dynaflow.Item{"pk": S("a"), "sk": N(other)}) == one {
			t.Errorf("keyString of sk %s is that of sk 1", other)
		}
	}
}

func TestUnitsFlag(t *testing.T) {
	prov := &tableInfo{desc: &types.TableDescription{TableName: ptr("t"), ProvisionedThroughput: &types.ProvisionedThroughputDescription{ReadCapacityUnits: ptr[int64](400), WriteCapacityUnits: ptr[int64](200)}}}
	onDemand := &tableInfo{desc: &types.TableDescription{TableName: ptr("t"), BillingModeSummary: &types.BillingModeSummary{BillingMode: types.BillingModePayPerRequest}}}
	if u, err := units("max-write-units", "50%", prov, true); err != nil || u != 100 {
		t.Errorf("50%% of 200 WCU: %v, %v", u, err)
	}
	if u, err := units("max-read-units", "25%", prov, false); err != nil || u != 100 {
		t.Errorf("25%% of 400 RCU: %v, %v", u, err)
	}
	if _, err := units("max-write-units", "50%", onDemand, true); err == nil || !strings.Contains(err.Error(), "number") {
		t.Errorf("a percentage of an on-demand table without a maximum: %v", err)
	}
	onDemand.desc.OnDemandThroughput = &types.OnDemandThroughput{MaxWriteRequestUnits: ptr[int64](1000)}
	if u, err := units("max-write-units", "10%", onDemand, true); err != nil || u != 100 {
		t.Errorf("10%% of an on-demand maximum of 1000: %v, %v", u, err)
	}
	for _, bad := range []string{"0", "-5", "x", "150%", "0%"} {
		if _, err := units("max-write-units", bad, prov, true); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func mustOpen(t *testing.T, path string) io.Reader {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

func TestCheckItemKeyLimits(t *testing.T) {
	info := &tableInfo{keys: []keyAttr{{"pk", "S"}, {"sk", "B"}}}
	for _, c := range []struct {
		item dynaflow.Item
		want string
	}{
		{dynaflow.Item{"pk": S("a"), "sk": B([]byte{1})}, ""},
		{dynaflow.Item{"pk": S(""), "sk": B([]byte{1})}, `"pk" is an empty string`},
		{dynaflow.Item{"pk": S("a"), "sk": B(nil)}, `"sk" is an empty binary`},
		{dynaflow.Item{"pk": S(strings.Repeat("k", 2049)), "sk": B([]byte{1})}, "limit of 2048 for a partition key"},
		{dynaflow.Item{"pk": S(strings.Repeat("k", 2048)), "sk": B(make([]byte, 1025))}, "limit of 1024 for a sort key"},
		{dynaflow.Item{"pk": N("1"), "sk": B([]byte{1})}, `"pk" is N`},
		{dynaflow.Item{"sk": B([]byte{1})}, `"pk"`},
	} {
		err := info.checkItem(c.item)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("checkItem: %v; want %q", err, c.want)
		}
	}
}
