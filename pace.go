package dynaflow

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// The adaptive rate of one table, in write units per second (by writeEstimate, the units DynamoDB
// will charge). Until DynamoDB first throttles the table it sends as fast as MaxInFlight allows.
// When it throttles, the rate is cut to a share of what lands, which under a capacity limit is
// the capacity itself; then, while calls land whole and writes wait for the rate, it grows,
// slowly at first and faster the longer no throttling comes.
//
// Throttling starts a run of cuts, at most one a round trip, that ends once relief calls in a row
// land clean. A token bucket that throttles is empty: from the first call sent in the run that
// comes back, what lands is what the bucket refills, the capacity, with no burst pool in it.
//
// Not every write handed back means the table is over its capacity: a hot key, or a server that
// hands back a share of every call whatever the rate, go on handing writes back however low the
// rate goes, and cutting for them would end at a crawl. A capacity limit takes every write of
// calls sent well below the rate it lets land. So when calls sent in a run that far below the
// highest rate seen landing in it still hand writes back, their share is taken as background and
// the run's cuts are undone: only what comes back beyond it by minHandBack counts from then on,
// and calls that hand back no more than it count as clean. Once less than half of it comes back,
// it is dropped.
const (
	// cutShare is the share of the landed rate a cut sets the rate to: low enough to stop
	// throttling after an overshoot, high enough that the sawtooth averages close to capacity.
	cutShare = 0.9
	// minHandBack is how much more than the background share must come back to count.
	minHandBack = 0.05
	// lookback is how far back the landed rate and the shares handed back look: long enough to
	// hold a fair number of calls, short enough to follow a change of capacity soon.
	lookback = 250 * time.Millisecond
	// minCalls is how many calls they go by at least, however long ago they went: at a few calls
	// a second, lookback alone holds too few to judge by.
	minCalls = 12
	// maxCalls is how many they go by at most: at thousands of calls a second the last of them
	// are sample enough, and each call's work stays bounded.
	maxCalls = 256
	// bgGap is how far below the rate units land at calls must go, bgCalls how many of them it
	// takes, and bgApart how much of their writes they must hand back, to show background.
	bgGap   = 2
	bgCalls = 8
	bgApart = 0.04
	// maxRun is how many of a run's calls background goes by.
	maxRun = 64
	// relief is how many clean calls in a row after a cut end a run.
	relief = 4
	// growBase is the growth per second just after a cut; it doubles with each second without one,
	// up to growSpan, so that the rate creeps up near where it was throttled and recovers fast
	// from a deep cut.
	growBase = 0.05
	growSpan = 3 * time.Second
)

// pacer is one table's adaptive rate. Only the owner goroutine touches it.
type pacer struct {
	rate    float64   // units per second; 0: not limited yet
	next    time.Time // when the table's next call may go
	first   time.Time // when the table's first call went
	cutAt   time.Time // when the rate was last cut: a call sent before then says nothing new
	grownAt time.Time // when the rate last grew
	bound   bool      // writes waited for the rate since it last grew: the rate is in use
	held    bool      // writes waited for the rate since the last call: the next goes at the rate
	clean   int       // clean calls in a row sent since the last cut

	runAt     time.Time // when the current run of cuts began; zero outside a run
	runFrom   time.Time // when the first call sent in the run came back
	runRate   float64   // the rate before the run's first cut, or sent at when unlimited
	run       []landing // the last maxRun calls sent in the run at a known rate, oldest first
	runLanded float64   // the highest rate units were seen landing at in the run

	recent []landing // the calls that came back within lookback (or the last minCalls), oldest first
	sends  []landing // the calls sent within lookback (or the last minCalls), oldest first

	bg float64 // the background share handed back
}

// landing is one call of the table's: sent at sentAt at a rate of sentRate units a second (+Inf
// before the rate was limited; NaN when the rate did not hold it back, so that it went slower),
// with n writes that came back at at, back of them handed back and the others worth units.
type landing struct {
	at, sentAt time.Time
	sentRate   float64
	n, back    int
	units      float64
}

// ready reports whether the table may send a call now, with out calls of its in flight and room
// for window.
func (p *pacer) ready(now time.Time, out, window int) bool {
	if p.rate == 0 {
		return true
	}
	return !now.Before(p.next) && out < window
}

// window is how many calls the table may have in flight: as many as its rate keeps busy for a
// round trip of rtt with calls of callUnits, and one more, up to limit.
func (p *pacer) window(rtt time.Duration, callUnits float64, limit int) int {
	if p.rate == 0 || callUnits <= 0 {
		return limit
	}
	return min(int(math.Ceil(p.rate*rtt.Seconds()/callUnits))+1, limit)
}

// hold records that the table has writes waiting that its rate holds back: the rate is in use,
// and the next call goes at it.
func (p *pacer) hold() {
	p.bound, p.held = true, true
}

// charge charges a call of units sent at now: the next one waits its share of the rate.
func (p *pacer) charge(now time.Time, units float64) {
	if p.first.IsZero() {
		p.first = now
	}
	rate := math.NaN() // not known: the table sent slower than its rate
	switch {
	case p.rate == 0:
		rate = math.Inf(1) // as fast as MaxInFlight allows
	case p.held:
		rate = p.rate
	}
	p.held = false
	p.sends = trim(append(p.sends, landing{at: now, sentRate: rate, units: units}), now)
	if p.rate == 0 {
		return
	}
	p.next = later(now, p.next).Add(time.Duration(units / p.rate * float64(time.Second)))
}

// observe learns from a call sent at sentAt that came back at now with n of the table's writes,
// of which back were handed back unprocessed or throttled, and the others landed or failed; the
// writes that landed are worth units.
func (p *pacer) observe(now, sentAt time.Time, n, back int, units float64) {
	l := landing{at: now, sentAt: sentAt, sentRate: math.NaN(), n: n, back: back, units: units}
	// sends is in time order: at thousands of calls a second a scan per call would cost more
	// than the rest of the Batcher's work together.
	if i, ok := slices.BinarySearchFunc(p.sends, sentAt, func(s landing, t time.Time) int { return s.at.Compare(t) }); ok {
		l.sentRate = p.sends[i].sentRate
	}
	p.recent = trim(append(p.recent, l), now)
	if !p.runAt.IsZero() && !sentAt.Before(p.runAt) && !math.IsNaN(l.sentRate) && !math.IsInf(l.sentRate, 1) {
		if len(p.run) == maxRun {
			p.run = append(p.run[:0], p.run[1:]...)
		}
		p.run = append(p.run, l)
	}
	if !p.runAt.IsZero() && p.runFrom.IsZero() && !sentAt.Before(p.runAt) {
		p.runFrom = now // the server has had calls sent since the bucket ran dry from here on
	}
	if p.bg > 0 && shareOf(p.recent) < p.bg/2 {
		p.bg = 0 // less comes back than the background: it was the rate's doing after all
	}
	if sentAt.Before(p.cutAt) {
		return // sent at the old rate
	}
	share, calls := 0.0, 0 // the share handed back of the recent calls sent at the current rate, and how many
	if back > 0 {
		sent, backs := 0, 0
		for _, l := range p.recent {
			if !l.sentAt.Before(p.cutAt) {
				sent += l.n
				backs += l.back
				calls++
			}
		}
		share = float64(backs) / float64(sent)
	}
	switch {
	// Against a background, one call that hands back more says little: the recent calls must
	// too, and there must be minCalls of them since the last cut. Without that, whole calls
	// throttled at random (a hot partition) each cut the rate again, faster than it grows back.
	case back > 0 && (p.bg == 0 || calls >= minCalls && share >= p.bg+minHandBack && shareOf(p.recent) >= p.bg+minHandBack):
		p.throttled(now, share)
	case float64(back) > p.bg*float64(n):
		p.clean = 0
	default:
		p.clean++
		if !p.bound || p.rate == 0 {
			return
		}
		since := min(now.Sub(p.cutAt), growSpan).Seconds()
		step := min(now.Sub(p.grownAt), growSpan).Seconds()
		f := 1 + growBase*math.Exp2(since)*step
		p.rate *= f
		if wait := p.next.Sub(now); wait > 0 {
			p.next = now.Add(time.Duration(float64(wait) / f)) // the wait left, at the new rate
		}
		p.grownAt, p.bound = now, false
	}
}

// throttled answers a call sent at the current rate that handed back share or more of the
// table's writes, counting the background: it starts a run or goes on with it, and cuts the rate
// unless the run shows the share to be background.
func (p *pacer) throttled(now time.Time, share float64) {
	if p.clean >= relief || p.runAt.IsZero() { // the last cut held: a new run
		p.runAt, p.runFrom, p.runRate = now, time.Time{}, p.rate
		p.run, p.runLanded = p.run[:0], 0
		if p.rate == 0 { // unlimited so far: the rate it was sending at
			if sent, span := sum(p.sends, now, p.first); span > 0 {
				p.runRate = sent / span
			}
		}
	}
	p.clean = 0
	if bg, ok := p.background(); ok {
		p.bg, p.rate, p.runAt = bg, p.runRate, time.Time{}
		return
	}
	p.cut(now, share)
}

// background reports whether the last calls sent in the run at a known rate show a share handed
// back that the rate does not cause, and the share. Each call's rate less the share it handed
// back is the rate that would land at that rate; the bgCalls sent fastest say what lands at the
// top, which under a capacity limit is the capacity. When bgCalls or more calls went at rates
// bgGap times or more below that, where a capacity limit would take them whole, and yet handed
// back bgApart or more of their writes, it is background.
func (p *pacer) background() (float64, bool) {
	if len(p.run) < 2*bgCalls {
		return 0, false
	}
	byRate := slices.SortedFunc(slices.Values(p.run), func(a, b landing) int { return cmp.Compare(b.sentRate, a.sentRate) })
	top := p.runLanded
	for _, l := range byRate[:bgCalls] {
		top += (1 - shareOf([]landing{l})) * l.sentRate / bgCalls
	}
	var slow []landing
	for _, l := range byRate {
		if l.sentRate*bgGap <= top {
			slow = append(slow, l)
		}
	}
	if len(slow) < bgCalls {
		return 0, false
	}
	// The slow calls' share, which the rate cannot explain. A lower estimate (the recent calls'
	// share, where that says less) would leave the share's own ups and downs above it, and each
	// would count as the rate's doing.
	s := shareOf(slow)
	return s, s >= bgApart
}

// shareOf returns the share of the writes in ls that were handed back.
func shareOf(ls []landing) float64 {
	n, back := 0, 0
	for _, l := range ls {
		n += l.n
		back += l.back
	}
	if n == 0 {
		return 0
	}
	return float64(back) / float64(n)
}

// cut sets the rate to cutShare of what lands, unless it is lower already, and starts a new
// round trip.
//
// A run's first cut comes with the first call handed back, when all there is to go by is what
// was sent and landed lately, a burst pool drained in it included: it takes the lower of the
// units sent less the share handed back and the units landed, but never goes below half the rate
// sent at, or half the rate set when that is higher (the sends measured may be from before a
// background verdict restored it), so that a stray measure (a server slow to start answers a few
// old calls with next to nothing) cannot crash the rate. Once a call sent in the run has come
// back, later cuts go by the units landed since.
//
// When nothing landed there is nothing to go by: the rate stays, and the table's pause (see
// judge) holds it back until writes land again.
func (p *pacer) cut(now time.Time, share float64) {
	var r float64
	if !p.runFrom.IsZero() && now.After(p.runFrom) {
		landed, span, calls := p.landedSince(p.runFrom, now)
		if span >= lookback || calls >= 3*minCalls { // fewer make too much of a stray call
			p.runLanded = max(p.runLanded, landed)
		}
		r = cutShare * landed
	} else if sent, span := sum(p.sends, now, p.first); span > 0 {
		landed := (1 - share) * sent / span
		if u, span := sum(p.recent, now, p.first); span > 0 {
			landed = min(landed, u/span)
		}
		if landed > 0 {
			r = max(cutShare*landed, max(sent/span, p.rate)/2)
		}
	}
	if r == 0 {
		return
	}
	p.cutAt, p.grownAt = now, now
	if p.rate == 0 || r < p.rate {
		p.rate = r
	}
}

// landedSince returns the rate at which units landed in the recent calls that came back after
// from, and the span and the number of calls it goes by.
func (p *pacer) landedSince(from, now time.Time) (float64, time.Duration, int) {
	start, i := from, 0
	for i < len(p.recent) && !p.recent[i].at.After(from) {
		i++
	}
	if i == 0 && len(p.recent) > 0 { // the window begins after from: its first call's units landed at its start
		start, i = p.recent[0].at, 1
	}
	u := 0.0
	for _, l := range p.recent[i:] {
		u += l.units
	}
	if !now.After(start) {
		return 0, 0, 0
	}
	return u / now.Sub(start).Seconds(), now.Sub(start), len(p.recent) - i
}

// sum returns the units of ls after its first entry and the seconds from that entry to now: a rate
// without the bias of counting the units the first entry brought at the span's start. With one
// entry, it counts from first.
func sum(ls []landing, now, first time.Time) (units, seconds float64) {
	if len(ls) == 0 {
		return 0, 0
	}
	if len(ls) == 1 {
		return ls[0].units, now.Sub(first).Seconds()
	}
	for _, l := range ls[1:] {
		units += l.units
	}
	return units, now.Sub(ls[0].at).Seconds()
}

// trim drops the entries of ls older than lookback, but keeps the last minCalls, and keeps no
// more than the last maxCalls.
func trim(ls []landing, now time.Time) []landing {
	old := 0
	for old < len(ls)-minCalls && (now.Sub(ls[old].at) > lookback || len(ls)-old > maxCalls) {
		old++
	}
	return ls[old:]
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
