package dynaflow

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/time/rate"
)

// meter caps the capacity units a Client consumes per second: a token bucket charged before a
// call by an estimate and settled after it with what DynamoDB reported. Its burst is a
// twenty-fifth of a second's units, so that no one-second window takes more than 5% above the cap
// once the bucket has been emptied, with room for a call that lands a little late. A nil meter
// caps nothing.
type meter struct {
	lim    *rate.Limiter
	burst  int
	waitMu sync.Mutex // one take waits at a time, so that a call's chunks of the bucket are contiguous

	mu     sync.Mutex
	credit float64 // units taken beyond what calls consumed, spent by the next calls first
}

// newMeter returns a meter of perSecond units, or nil for no cap.
func newMeter(perSecond float64) *meter {
	if perSecond <= 0 {
		return nil
	}
	burst := max(1, int(perSecond/25))
	return &meter{lim: rate.NewLimiter(rate.Limit(perSecond), burst), burst: burst}
}

// take waits until units can be consumed, or ctx ends. It returns what it took, to settle.
func (m *meter) take(ctx context.Context, units float64) (float64, error) {
	if m == nil {
		return 0, nil
	}
	m.mu.Lock()
	from := math.Min(m.credit, units)
	m.credit -= from
	m.mu.Unlock()
	n := int(math.Ceil(units - from))
	// A call larger than the burst waits for it in chunks. Taken one call at a time, the chunks
	// of each call follow each other, and the calls go out spaced as the rate says; interleaved,
	// a call would wait for its last chunk behind everyone's first, and the calls would bunch.
	m.waitMu.Lock()
	defer m.waitMu.Unlock()
	for left := n; left > 0; {
		k := min(left, m.burst)
		if err := m.lim.WaitN(ctx, k); err != nil {
			m.mu.Lock()
			m.credit += from + float64(n-left) // what was taken and not used
			m.mu.Unlock()
			return 0, err
		}
		left -= k
	}
	return from + float64(n), nil
}

// settle corrects what take took for a call to what the call consumed: the excess is credit
// for later calls, a shortfall is debt that makes later calls wait longer.
func (m *meter) settle(taken, consumed float64) {
	if m == nil {
		return
	}
	if d := taken - consumed; d >= 0 {
		m.mu.Lock()
		m.credit += d
		m.mu.Unlock()
		return
	}
	now := time.Now()
	for debt := int(math.Ceil(consumed - taken)); debt > 0; {
		k := min(debt, m.burst)
		m.lim.ReserveN(now, k) // not waited for: the next take waits it out
		debt -= k
	}
}

// units adds up the capacity units in a list of ConsumedCapacity.
func units(ccs []types.ConsumedCapacity) float64 {
	u := 0.0
	for _, cc := range ccs {
		u += aws.ToFloat64(cc.CapacityUnits)
	}
	return u
}

// writeEstimate is what a batch of writes will cost before DynamoDB says: per DynamoDB's rules,
// one unit per KB of each item, rounded up (a delete counted as one), once for the table and once
// more for each global secondary index it has (when DescribeTable told us).
func writeEstimate(ws []*write) float64 {
	u := 0.0
	for _, w := range ws {
		u += writeUnits(w)
	}
	return u
}

// writeUnits is writeEstimate of one write.
func writeUnits(w *write) float64 {
	kb := 1.0
	if !w.del {
		kb = math.Max(1, math.Ceil(float64(w.size)/1024))
	}
	return kb * float64(1+w.t.indexes)
}
