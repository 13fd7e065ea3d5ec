package dynaflowtest

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"sync"
	"time"
	"unicode/utf8"
)

// bucket is a table's write capacity: a token bucket in write units that refills at rate per
// second up to burst.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
	start               time.Time
	admitted            []float64 // units admitted in each second since start
	refused             int       // writes handed back for want of capacity
	calls, throttled    int       // calls with writes for the table, and those with any refused
}

// take admits a write of cost units if the bucket holds them.
func (b *bucket) take(cost float64, now time.Time) bool {
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < cost {
		b.refused++
		return false
	}
	b.tokens -= cost
	sec := int(now.Sub(b.start) / time.Second)
	for len(b.admitted) <= sec {
		b.admitted = append(b.admitted, 0)
	}
	b.admitted[sec] += cost
	return true
}

// charge takes cost units from the bucket even past empty (a read is charged after it is
// answered, so the table may go into debt), and counts them.
func (b *bucket) charge(cost float64, now time.Time) {
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= cost
	sec := int(now.Sub(b.start) / time.Second)
	for len(b.admitted) <= sec {
		b.admitted = append(b.admitted, 0)
	}
	b.admitted[sec] += cost
}

// allows reports whether the bucket holds any capacity at all now.
func (b *bucket) allows(now time.Time) bool {
	return math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate) > 0
}

// SetReadCapacity makes the proxy enforce a read capacity on table's Query and Scan calls, as
// DynamoDB does: a token bucket of unitsPerSecond read units a second holding at most burst
// (unitsPerSecond when 0). A call is answered only while the bucket is not in debt, else it fails
// with 400 ProvisionedThroughputExceededException; an answered call is charged what DynamoDB
// would charge for the items it returns: 1 unit per 4 KB, rounded up over the page, half when
// not ConsistentRead.
func (p *Proxy) SetReadCapacity(table string, unitsPerSecond, burst float64) {
	setBucket(&p.mu, p.readCap, table, unitsPerSecond, burst)
}

// ReadCapacityUse returns what table's read capacity charged in each whole second since
// SetReadCapacity was first called for it, and the calls it refused.
func (p *Proxy) ReadCapacityUse(table string) (perSecond []float64, refused int) {
	return use(&p.mu, p.readCap, table)
}

// readAllowed reports whether the Query or Scan in body may be answered, and the bucket to
// charge it to (nil when its table has no read capacity set).
func (p *Proxy) readAllowed(body []byte) (*bucket, bool) {
	var in struct{ TableName string }
	json.Unmarshal(body, &in)
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.readCap[in.TableName]
	if b == nil {
		return nil, true
	}
	if !b.allows(time.Now()) {
		b.refused++
		return nil, false
	}
	return b, true
}

// chargeRead charges b for the items of a Query or Scan answer.
func (p *Proxy) chargeRead(b *bucket, req, resp []byte) {
	var in struct{ ConsistentRead bool }
	json.Unmarshal(req, &in)
	var out struct{ Items []map[string]json.RawMessage }
	json.Unmarshal(resp, &out)
	size := 0
	for _, item := range out.Items {
		for name, v := range item {
			size += len(name) + valueSize(v)
		}
	}
	units := math.Max(1, math.Ceil(float64(size)/4096))
	if !in.ConsistentRead {
		units /= 2
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b.charge(units, time.Now())
}

// setBucket sets the bucket of table in m to rate and burst, full; mu guards m.
func setBucket(mu *sync.Mutex, m map[string]*bucket, table string, rate, burst float64) {
	if burst <= 0 {
		burst = rate
	}
	now := time.Now()
	mu.Lock()
	defer mu.Unlock()
	if b := m[table]; b != nil {
		b.rate, b.burst, b.tokens, b.last = rate, burst, burst, now
		return
	}
	m[table] = &bucket{rate: rate, burst: burst, tokens: burst, last: now, start: now}
}

// use returns the accounting of table's bucket in m; mu guards m.
func use(mu *sync.Mutex, m map[string]*bucket, table string) ([]float64, int) {
	mu.Lock()
	defer mu.Unlock()
	b := m[table]
	if b == nil {
		return nil, 0
	}
	return append([]float64(nil), b.admitted...), b.refused
}

// SetWriteCapacity makes the proxy enforce a write capacity on table, as DynamoDB does: a token
// bucket of unitsPerSecond write units a second holding at most burst (unitsPerSecond when 0).
// Each write of a BatchWriteItem is admitted while the bucket holds its cost (1 unit per KB of
// item, rounded up; 1 for a delete) and handed back as unprocessed once it does not; a call of
// which nothing is admitted fails with 400 ProvisionedThroughputExceededException. It may be
// called again while calls run, to change the capacity; the bucket then starts full.
func (p *Proxy) SetWriteCapacity(table string, unitsPerSecond, burst float64) {
	setBucket(&p.mu, p.capacity, table, unitsPerSecond, burst)
}

// WriteCapacityUse returns what the proxy's capacity on table admitted: write units in each
// whole second since SetWriteCapacity was first called for it, and the writes it handed back.
// It is the ground truth for tests of rate limits: it never asks the client.
func (p *Proxy) WriteCapacityUse(table string) (perSecond []float64, refused int) {
	return use(&p.mu, p.capacity, table)
}

// WriteCapacityCalls returns how many BatchWriteItem calls carried writes for table since
// SetWriteCapacity was first called for it, and how many of those had any write handed back
// for want of capacity.
func (p *Proxy) WriteCapacityCalls(table string) (calls, throttled int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.capacity[table]; b != nil {
		return b.calls, b.throttled
	}
	return 0, 0
}

// countCall counts a BatchWriteItem call with writes for table, throttled when the table's
// capacity refused any of them.
func (p *Proxy) countCall(table string, throttled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.capacity[table]; b != nil {
		b.calls++
		b.throttled += b2i(throttled)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeCost is what DynamoDB charges for one write request in JSON: 1 write unit per KB of the
// item, rounded up, for a put; 1 for a delete (the old item's size is not known here).
func writeCost(raw json.RawMessage) float64 {
	var r struct {
		PutRequest *struct{ Item map[string]json.RawMessage }
	}
	if json.Unmarshal(raw, &r) != nil || r.PutRequest == nil {
		return 1
	}
	size := 0
	for name, v := range r.PutRequest.Item {
		size += len(name) + valueSize(v)
	}
	return math.Max(1, math.Ceil(float64(size)/1024))
}

// valueSize is the size of one attribute value in DynamoDB JSON, by DynamoDB's rules.
func valueSize(raw json.RawMessage) int {
	var v map[string]json.RawMessage
	if json.Unmarshal(raw, &v) != nil {
		return 0
	}
	for typ, x := range v {
		switch typ {
		case "S":
			var s string
			json.Unmarshal(x, &s)
			return len(s)
		case "N":
			var s string
			json.Unmarshal(x, &s)
			return (utf8.RuneCountInString(s)+1)/2 + 1
		case "B":
			var s string
			json.Unmarshal(x, &s)
			return base64.StdEncoding.DecodedLen(len(s))
		case "BOOL", "NULL":
			return 1
		case "SS", "NS", "BS":
			var ss []string
			json.Unmarshal(x, &ss)
			n := 0
			for _, s := range ss {
				n += len(s)
			}
			return n
		case "L":
			var l []json.RawMessage
			json.Unmarshal(x, &l)
			n := 3
			for _, e := range l {
				n += 1 + valueSize(e)
			}
			return n
		case "M":
			var m map[string]json.RawMessage
			json.Unmarshal(x, &m)
			n := 3
			for k, e := range m {
				n += 1 + len(k) + valueSize(e)
			}
			return n
		}
	}
	return 0
}
