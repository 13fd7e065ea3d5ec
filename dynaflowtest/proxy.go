package dynaflowtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is what the proxy answers instead of forwarding a call.
type Fault int

// The faults a Proxy can inject.
const (
	Throttle    Fault = iota // 400 ProvisionedThroughputExceededException
	ServerError              // 500 InternalServerError
	Validation               // 400 ValidationException (not retryable)
	Unavailable              // 503 ServiceUnavailable
	Stall                    // no answer until Release, or the caller gives up
)

// Rule says which calls the proxy fails. A call matches when its operation is Op (any when
// empty), Skip earlier matching calls have gone through, fewer than Count calls have been failed
// (no limit when 0), the time is before Until (no limit when zero), and a random draw falls under
// Share (always when 0).
type Rule struct {
	Op    string
	Skip  int
	Count int
	Until time.Time
	Share float64
	Fault Fault

	seen, failed int
}

// Proxy is a DynamoDB-protocol HTTP proxy in front of a real server that injects faults: it
// hands back a share of BatchWriteItem writes as UnprocessedItems and of BatchGetItem keys as
// UnprocessedKeys (forwarding only the rest), fails calls by Rules, stalls them, or goes down.
// Every response carries a correct X-Amz-Crc32 header. It is safe for concurrent use.
type Proxy struct {
	URL    string
	srv    *httptest.Server
	target string
	client *http.Client

	mu          sync.Mutex
	unprocessed float64
	tableShare  map[string]float64 // per table, in place of unprocessed for BatchWriteItem
	tableCalls  map[string]int     // BatchWriteItem calls that carried writes for the table
	capacity    map[string]*bucket // write capacity enforced per table (SetWriteCapacity)
	readCap     map[string]*bucket // read capacity enforced per table (SetReadCapacity)
	rules       []*Rule
	down        bool
	release     chan struct{}
	calls       map[string]int
	forwarded   map[string]int
}

// NewProxy starts a proxy on loopback in front of the server at target.
func NewProxy(target string) *Proxy {
	p := &Proxy{
		target: strings.TrimRight(target, "/"),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 256}},
		calls:  make(map[string]int), forwarded: make(map[string]int),
		tableShare: make(map[string]float64), tableCalls: make(map[string]int), capacity: make(map[string]*bucket), readCap: make(map[string]*bucket),
		release: make(chan struct{}),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	return p
}

// Close stops the proxy, releasing stalled calls first.
func (p *Proxy) Close() {
	p.Release()
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.client.CloseIdleConnections()
}

// SetUnprocessed makes the proxy hand back each write of a BatchWriteItem, and each key of a
// BatchGetItem, as unprocessed with probability share.
func (p *Proxy) SetUnprocessed(share float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unprocessed = share
}

// SetTableUnprocessed makes the proxy hand back each write of a BatchWriteItem for table as
// unprocessed with probability share, in place of SetUnprocessed's share for that table.
func (p *Proxy) SetTableUnprocessed(table string, share float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tableShare[table] = share
}

// TableCalls returns how many BatchWriteItem calls that reached the proxy carried writes for
// table.
func (p *Proxy) TableCalls(table string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tableCalls[table]
}

// AddRule adds a fault rule; the first rule that matches a call decides it.
func (p *Proxy) AddRule(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &r)
}

// SetDown makes the proxy answer every call with 503 while down is true.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Release lets every stalled call, and every later one, through; Reset stalls again.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

// Reset removes every fault and rule and zeroes the counts; stalled calls are released.
func (p *Proxy) Reset() {
	p.Release()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unprocessed, p.rules, p.down = 0, nil, false
	clear(p.tableShare)
	clear(p.tableCalls)
	clear(p.capacity)
	clear(p.readCap)
	p.release = make(chan struct{})
	clear(p.calls)
	clear(p.forwarded)
}

// Calls returns how many calls of op (every operation when empty) reached the proxy.
func (p *Proxy) Calls(op string) int { return p.count(p.calls, op) }

// Forwarded returns how many calls of op (every operation when empty) went on to the server.
func (p *Proxy) Forwarded(op string) int { return p.count(p.forwarded, op) }

func (p *Proxy) count(m map[string]int, op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if op != "" {
		return m[op]
	}
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// decide counts the call and returns the fault to inject, if any.
func (p *Proxy) decide(op string) (fault Fault, inject bool, share float64, release chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[op]++
	if p.down {
		return Unavailable, true, 0, nil
	}
	for _, r := range p.rules {
		if r.Op != "" && r.Op != op {
			continue
		}
		if !r.Until.IsZero() && !time.Now().Before(r.Until) {
			continue
		}
		if r.Count > 0 && r.failed >= r.Count {
			continue
		}
		r.seen++
		if r.seen <= r.Skip {
			continue
		}
		if r.Share > 0 && rand.Float64() >= r.Share {
			continue
		}
		r.failed++
		return r.Fault, true, 0, p.release
	}
	p.forwarded[op]++
	return 0, false, p.unprocessed, nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndexByte(target, '.')+1:]
	fault, inject, share, release := p.decide(op)
	if inject {
		switch fault {
		case Stall:
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			p.mu.Lock()
			p.forwarded[op]++
			p.mu.Unlock()
		case Throttle:
			writeError(w, 400, "ProvisionedThroughputExceededException", "injected: throughput exceeded")
			return
		case ServerError:
			writeError(w, 500, "InternalServerError", "injected: internal server error")
			return
		case Validation:
			writeError(w, 400, "ValidationException", "injected: validation error")
			return
		case Unavailable:
			writeError(w, 503, "ServiceUnavailable", "injected: service unavailable")
			return
		}
	}
	var reads *bucket // the read capacity this Query or Scan is charged to, after its answer
	if op == "Query" || op == "Scan" {
		var ok bool
		if reads, ok = p.readAllowed(body); !ok {
			writeError(w, 400, "ProvisionedThroughputExceededException", "proxy: the table's read capacity is used up")
			return
		}
	}
	var withheld map[string]json.RawMessage // table -> what is handed back unprocessed
	if op == "BatchWriteItem" {
		var overCapacity bool
		body, withheld, overCapacity, err = p.withholdWrites(body, share)
		if err != nil {
			writeError(w, 400, "SerializationException", "proxy: "+err.Error())
			return
		}
		if overCapacity {
			writeError(w, 400, "ProvisionedThroughputExceededException", "proxy: the table's write capacity is used up")
			return
		}
	} else if share > 0 {
		switch op {
		case "BatchGetItem":
			body, withheld, err = withholdKeys(body, share)
		}
		if err != nil {
			writeError(w, 400, "SerializationException", "proxy: "+err.Error())
			return
		}
	}
	var status int
	var respBody []byte
	if body == nil {
		// Everything was withheld: answer without asking the server, as DynamoDB may.
		status, respBody = 200, []byte(`{}`)
	} else {
		status, respBody, err = p.forward(r, body)
		if err != nil {
			writeError(w, 503, "ServiceUnavailable", "proxy: "+err.Error())
			return
		}
	}
	if len(withheld) > 0 && status == 200 {
		field := "UnprocessedItems"
		if op == "BatchGetItem" {
			field = "UnprocessedKeys"
		}
		if respBody, err = merge(respBody, field, op, withheld); err != nil {
			writeError(w, 500, "InternalServerError", "proxy: "+err.Error())
			return
		}
	}
	if reads != nil && status == 200 {
		p.chargeRead(reads, body, respBody)
	}
	writeBody(w, status, respBody)
}

// forward sends the call on to the server and returns its answer.
func (p *Proxy) forward(r *http.Request, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Accept-Encoding", "Connection":
			continue
		}
		req.Header[k] = v
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// withholdWrites removes a share of the writes from a BatchWriteItem body (share, or the table's
// own share), and the writes its table's capacity does not admit, and counts the call for each
// table it carries. It returns the new body (nil when nothing is left to send), the writes it
// removed, by table, and whether nothing was admitted for want of capacity.
func (p *Proxy) withholdWrites(body []byte, share float64) ([]byte, map[string]json.RawMessage, bool, error) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, nil, false, err
	}
	var items map[string][]json.RawMessage
	if err := json.Unmarshal(in["RequestItems"], &items); err != nil {
		return nil, nil, false, err
	}
	withheld := make(map[string]json.RawMessage)
	kept := make(map[string][]json.RawMessage)
	shares := make(map[string]float64, len(items))
	p.mu.Lock()
	for table := range items {
		p.tableCalls[table]++
		shares[table] = share
		if s, ok := p.tableShare[table]; ok {
			shares[table] = s
		}
	}
	p.mu.Unlock()
	refused := false // a write was handed back for want of capacity
	now := time.Now()
	for table, reqs := range items {
		var keep, back []json.RawMessage
		short := false // the table's capacity refused a write
		for _, r := range reqs {
			if rand.Float64() < shares[table] {
				back = append(back, r)
				continue
			}
			if !p.admit(table, r, now) {
				back, short = append(back, r), true
				continue
			}
			keep = append(keep, r)
		}
		p.countCall(table, short)
		refused = refused || short
		if len(back) > 0 {
			withheld[table], _ = json.Marshal(back)
		}
		if len(keep) > 0 {
			kept[table] = keep
		}
	}
	if len(kept) == 0 {
		return nil, withheld, refused, nil
	}
	if len(withheld) == 0 {
		return body, nil, false, nil
	}
	in["RequestItems"], _ = json.Marshal(kept)
	out, err := json.Marshal(in)
	return out, withheld, false, err
}

// admit reports whether table's capacity, if it has one, admits the write r.
func (p *Proxy) admit(table string, r json.RawMessage, now time.Time) bool {
	p.mu.Lock()
	b := p.capacity[table]
	p.mu.Unlock()
	if b == nil {
		return true
	}
	cost := writeCost(r) // parsed outside the lock
	p.mu.Lock()
	defer p.mu.Unlock()
	return b.take(cost, now)
}

// withholdKeys removes a share of the keys from a BatchGetItem body, as withholdWrites does.
// What it returns per table is the table's KeysAndAttributes with only the removed keys.
func withholdKeys(body []byte, share float64) ([]byte, map[string]json.RawMessage, error) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, nil, err
	}
	var items map[string]map[string]json.RawMessage
	if err := json.Unmarshal(in["RequestItems"], &items); err != nil {
		return nil, nil, err
	}
	withheld := make(map[string]json.RawMessage)
	kept := make(map[string]map[string]json.RawMessage)
	for table, ka := range items {
		var keys, keep, back []json.RawMessage
		if err := json.Unmarshal(ka["Keys"], &keys); err != nil {
			return nil, nil, err
		}
		for _, k := range keys {
			if rand.Float64() < share {
				back = append(back, k)
			} else {
				keep = append(keep, k)
			}
		}
		if len(back) > 0 {
			w := make(map[string]json.RawMessage, len(ka))
			for f, v := range ka {
				w[f] = v
			}
			w["Keys"], _ = json.Marshal(back)
			withheld[table], _ = json.Marshal(w)
		}
		if len(keep) > 0 {
			ka["Keys"], _ = json.Marshal(keep)
			kept[table] = ka
		}
	}
	if len(kept) == 0 {
		return nil, withheld, nil
	}
	if len(withheld) == 0 {
		return body, nil, nil
	}
	in["RequestItems"], _ = json.Marshal(kept)
	out, err := json.Marshal(in)
	return out, withheld, err
}

// merge adds the withheld writes or keys to the server's answer under field.
func merge(resp []byte, field, op string, withheld map[string]json.RawMessage) ([]byte, error) {
	var out map[string]json.RawMessage
	if err := json.Unmarshal(resp, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = make(map[string]json.RawMessage)
	}
	have := make(map[string]json.RawMessage)
	if raw, ok := out[field]; ok && len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &have); err != nil {
			return nil, err
		}
	}
	for table, w := range withheld {
		if prev, ok := have[table]; ok {
			// The server left some unprocessed too: join the lists.
			joined, err := join(op, prev, w)
			if err != nil {
				return nil, err
			}
			have[table] = joined
		} else {
			have[table] = w
		}
	}
	var err error
	if out[field], err = json.Marshal(have); err != nil {
		return nil, err
	}
	if op == "BatchGetItem" {
		if _, ok := out["Responses"]; !ok {
			out["Responses"] = json.RawMessage(`{}`)
		}
	}
	return json.Marshal(out)
}

// join joins two lists of writes, or two KeysAndAttributes, of one table.
func join(op string, a, b json.RawMessage) (json.RawMessage, error) {
	if op == "BatchWriteItem" {
		var x, y []json.RawMessage
		if err := json.Unmarshal(a, &x); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &y); err != nil {
			return nil, err
		}
		return json.Marshal(append(x, y...))
	}
	var x, y map[string]json.RawMessage
	if err := json.Unmarshal(a, &x); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return nil, err
	}
	var kx, ky []json.RawMessage
	json.Unmarshal(x["Keys"], &kx)
	json.Unmarshal(y["Keys"], &ky)
	x["Keys"], _ = json.Marshal(append(kx, ky...))
	return json.Marshal(x)
}

// writeError answers with a DynamoDB error.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	body := fmt.Sprintf(`{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":%q}`, code, msg)
	writeBody(w, status, []byte(body))
}

// writeBody answers with body and its CRC-32, which the SDK checks.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
