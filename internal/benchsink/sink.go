// Package benchsink is a DynamoDB-protocol HTTP server for benchmarks: it answers BatchWriteItem,
// Query, Scan, BatchGetItem and DescribeTable as DynamoDB would, with the X-Amz-Crc32 header,
// after a configurable delay, and with synthetic pages for Query and Scan, so that what a
// benchmark measures is the client. It stores nothing. It is not part of dynaflow's API.
package benchsink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sink is a running benchmark server.
type Sink struct {
	URL string
	srv *httptest.Server

	delay     atomic.Int64 // nanoseconds before each answer
	pages     int          // pages in a full Query or Scan
	pageItems []byte       // the JSON of one page's items
	perPage   int
	pageUnits float64 // the read units of a page, strongly consistent, by DynamoDB's rules

	mu      sync.Mutex
	stalled chan struct{} // non-nil while stalled; closed on Release

	writes atomic.Int64 // write requests received in BatchWriteItem calls
	calls  atomic.Int64
	conns  atomic.Int64 // connections accepted
}

// New starts a sink whose Query and Scan have pages pages of perPage items each.
func New(pages, perPage int) *Sink {
	return NewSized(pages, perPage, 64)
}

// NewSized is New with items whose body attribute holds bodyBytes bytes. Its pages report the
// read units they cost, as DynamoDB does, when the request asks for ReturnConsumedCapacity.
func NewSized(pages, perPage, bodyBytes int) *Sink {
	s := &Sink{pages: pages, perPage: perPage}
	var items []string
	size := 0
	for i := range perPage {
		sk := strconv.Itoa(i)
		items = append(items, fmt.Sprintf(`{"pk":{"S":"p"},"sk":{"N":"%s"},"kind":{"S":"click"},"body":{"S":"%s"},"at":{"N":"1700000000000"}}`, sk, strings.Repeat("x", bodyBytes)))
		// Names and values by DynamoDB's rules: a number is about one byte per two digits, plus one.
		size += len("pk") + 1 + len("sk") + (len(sk)+1)/2 + 1 + len("kind") + len("click") + len("body") + bodyBytes + len("at") + (13+1)/2 + 1
	}
	s.pageUnits = max(1, float64((size+4095)/4096))
	s.pageItems = []byte("[" + strings.Join(items, ",") + "]")
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// Close stops the sink.
func (s *Sink) Close() {
	s.Release()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// SetDelay makes every answer wait d.
func (s *Sink) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Stall holds every BatchWriteItem answer until Release.
func (s *Sink) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stalled == nil {
		s.stalled = make(chan struct{})
	}
}

// Release lets stalled calls through.
func (s *Sink) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stalled != nil {
		close(s.stalled)
		s.stalled = nil
	}
}

// Writes returns the number of writes received in BatchWriteItem calls.
func (s *Sink) Writes() int64 { return s.writes.Load() }

// Conns returns the number of connections the sink has accepted.
func (s *Sink) Conns() int64 { return s.conns.Load() }

// Calls returns the number of calls received.
func (s *Sink) Calls() int64 { return s.calls.Load() }

// Pages returns how many pages a full Query or Scan has.
func (s *Sink) Pages() int { return s.pages }

// PerPage returns how many items a page has.
func (s *Sink) PerPage() int { return s.perPage }

var writeOK = []byte(`{"UnprocessedItems":{}}`)

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	target := r.Header.Get("X-Amz-Target")
	switch target[strings.LastIndexByte(target, '.')+1:] {
	case "BatchWriteItem":
		s.mu.Lock()
		stalled := s.stalled
		s.mu.Unlock()
		if stalled != nil {
			select {
			case <-stalled:
			case <-r.Context().Done():
				return
			}
		}
		// Count the writes without decoding the body: each is a PutRequest or DeleteRequest.
		s.writes.Add(int64(bytes.Count(body, []byte(`"PutRequest"`)) + bytes.Count(body, []byte(`"DeleteRequest"`))))
		reply(w, 200, writeOK)
	case "Query", "Scan":
		reply(w, 200, s.page(body))
	case "BatchGetItem":
		reply(w, 200, batchGet(body))
	case "DescribeTable":
		reply(w, 200, []byte(`{"Table":{"TableName":"bench","TableStatus":"ACTIVE",`+
			`"KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],`+
			`"AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}]}}`))
	default:
		reply(w, 400, []byte(`{"__type":"com.amazonaws.dynamodb.v20120810#UnknownOperationException"}`))
	}
}

// page answers a Query or Scan: page n of the request's segment, where n comes from the
// ExclusiveStartKey {"i": {"N": "n"}}. A segment of TotalSegments has its share of the pages.
func (s *Sink) page(body []byte) []byte {
	var in struct {
		ExclusiveStartKey struct {
			I struct{ N string } `json:"i"`
		}
		Segment, TotalSegments int
		TableName              string
		ReturnConsumedCapacity string
		ConsistentRead         bool
	}
	json.Unmarshal(body, &in)
	n, _ := strconv.Atoi(in.ExclusiveStartKey.I.N)
	pages := s.pages
	if in.TotalSegments > 1 {
		pages = s.pages / in.TotalSegments
		if in.Segment < s.pages%in.TotalSegments {
			pages++
		}
	}
	var b bytes.Buffer
	b.Grow(len(s.pageItems) + 100)
	if pages == 0 {
		return []byte(`{"Count":0,"Items":[],"ScannedCount":0}`)
	}
	fmt.Fprintf(&b, `{"Count":%d,"ScannedCount":%d,`, s.perPage, s.perPage)
	if in.ReturnConsumedCapacity == "TOTAL" || in.ReturnConsumedCapacity == "INDEXES" {
		units := s.pageUnits
		if !in.ConsistentRead {
			units /= 2
		}
		fmt.Fprintf(&b, `"ConsumedCapacity":{"TableName":%q,"CapacityUnits":%g},`, in.TableName, units)
	}
	b.WriteString(`"Items":`)
	b.Write(s.pageItems)
	if n+1 < pages {
		fmt.Fprintf(&b, `,"LastEvaluatedKey":{"i":{"N":"%d"}}`, n+1)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// batchGet answers a BatchGetItem with one item per key: the key itself.
func batchGet(body []byte) []byte {
	var in struct {
		RequestItems map[string]struct{ Keys []json.RawMessage }
	}
	json.Unmarshal(body, &in)
	out := map[string]map[string][]json.RawMessage{"Responses": {}}
	for table, ka := range in.RequestItems {
		out["Responses"][table] = ka.Keys
	}
	b, _ := json.Marshal(out)
	return b
}

// reply answers with body and its CRC-32, which the SDK checks.
func reply(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/x-amz-json-1.0"}
	h["X-Amz-Crc32"] = []string{strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10)}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}
