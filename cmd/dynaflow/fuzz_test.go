package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dynaflow-go/dynaflow"
)

// FuzzSources reads arbitrary input in each format: no panic, every record's end within the
// input and never going back, a record with an error has no item, and an item read from ddb
// or CSV is read back the same from what the export writes for it.
func FuzzSources(f *testing.F) {
	for _, seed := range []string{
		`{"Item":{"pk":{"S":"a"},"n":{"N":"1.50"},"l":{"L":[{"NULL":true},{"BS":["AA=="]}]}}}` + "\n",
		`{"pk":"a","n":1,"m":{"x":[1,"y",null,true]}}` + "\n",
		"pk,n:N,b:B,ss:SS,m:M\na,1,AA==,\"[\"\"x\"\"]\",\"{\"\"k\"\":{\"\"S\"\":\"\"v\"\"}}\"\nb\"x,2\n\"c,3\n",
		"pk\n\"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, format := range []string{formatDDB, formatJSON, formatCSV} {
			no := false
			src, _, _, err := openSource(bytes.NewReader(in), format, &no, 0, 0, nil)
			if err != nil {
				continue // a CSV header that does not parse
			}
			last := int64(0)
			for range 10_000 {
				rec, err := src.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", format, err)
				}
				if rec.end < last || rec.end > int64(len(in)) {
					t.Fatalf("%s: a record ends at %d, after one at %d, in %d bytes", format, rec.end, last, len(in))
				}
				last = rec.end
				if rec.err != nil && rec.item != nil {
					t.Fatalf("%s: a record with an error and an item", format)
				}
				if format == formatJSON || rec.item == nil {
					continue
				}
				var back dynaflow.Item
				if cs, ok := src.(*csvSource); ok {
					back, err = csvItem(cs.cols, csvRow(cs.cols, rec.item, nil))
				} else {
					back, err = decodeDDBLine(appendDDBLine(nil, rec.item))
				}
				if err != nil {
					t.Fatalf("%s: the export of an item read does not read back: %v", format, err)
				}
				if d := cmp.Diff(canon(rec.item), canon(back)); d != "" {
					t.Fatalf("%s: an item read and exported reads back different:\n%s", format, d)
				}
			}
		}
	})
}
