package dynaflow

import (
	"math"
	"time"
)

// The adaptive rate of one table, in write units per second (by writeEstimate, the units DynamoDB
// will charge). Until DynamoDB first throttles the table it sends as fast as MaxInFlight allows.
// When it throttles, the rate is cut to a share of what lands at the rate it has been sending
// (the units sent lately less the share handed back), which under a capacity limit is the
// capacity itself; then, while calls land whole and writes wait for
// the rate, it grows, slowly at first and faster the longer no throttling comes.
//
// Not every write handed back means the table is over its capacity: a hot key, or a server that
// hands back a share of every call whatever the rate, go on handing writes back however low the
// rate goes. Cutting for those would end at a crawl. Under a capacity limit the share handed back
// falls as the rate is cut; so a share that stays as high as it was through three cuts in a row
// (or that goes on for maxRun) is taken as background: only what comes back beyond it by minHandBack
// counts, and calls that hand back no more than it count as clean. It fades once less comes back.
const (
	// cutShare is the share of the recent landed rate a cut sets the rate to: low enough to stop
	// throttling after an overshoot, high enough that the sawtooth averages close to capacity.
	cutShare = 0.9
	// minHandBack is how much more than the background share must come back to count.
	minHandBack = 0.05
	// lookback is how far back the landed rate a cut goes by looks: long enough to hold a fair
	// number of calls, short enough that a drained burst leaves it soon.
	lookback = 250 * time.Millisecond
	// maxRun is how long throttling may go on, no cut followed by relief calls that land clean,
	// before the share handed back is taken as background. A capacity limit stops it sooner: once
	// the burst that inflated the landed rate has left lookback, one cut goes below capacity.
	maxRun = 500 * time.Millisecond
	// relief is how many clean calls in a row after a cut end a run.
	relief = 4
	// bgSpan is how long a background share takes to fade to a third.
	bgSpan = 5 * time.Second
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
	runAt   time.Time // when the current run of cuts began
	runCuts int       // cuts in the run
	runMax  float64   // the highest share handed back in the run
	clean   int       // clean calls in a row sent since the last cut

	recent []landing // the calls that came back within lookback, oldest first
	sends  []landing // the calls sent within lookback (at and units), oldest first

	bg   float64   // the background share handed back
	bgAt time.Time // when bg last faded
}

// landing is what one call that came back at a time, sent at sentAt, did for the table: n writes,
// back of them handed back, the others worth units.
type landing struct {
	at, sentAt time.Time
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

// charge charges a call of units sent at now: the next one waits its share of the rate.
func (p *pacer) charge(now time.Time, units float64) {
	if p.first.IsZero() {
		p.first = now
	}
	p.sends = append(p.sends, landing{at: now, units: units})
	if p.rate == 0 {
		return
	}
	p.next = later(now, p.next).Add(time.Duration(units / p.rate * float64(time.Second)))
}

// observe learns from a call sent at sentAt that came back at now with n of the table's writes,
// of which back were handed back unprocessed or throttled, and the others landed or failed; the
// writes that landed are worth units.
func (p *pacer) observe(now, sentAt time.Time, n, back int, units float64) {
	p.recent = trim(append(p.recent, landing{now, sentAt, n, back, units}), now)
	p.sends = trim(p.sends, now)
	if sentAt.Before(p.cutAt) {
		return // sent at the old rate
	}
	// The share handed back of the recent calls sent at the current rate.
	sent, backs := 0, 0
	for _, l := range p.recent {
		if !l.sentAt.Before(p.cutAt) {
			sent += l.n
			backs += l.back
		}
	}
	share := float64(backs) / float64(sent)
	if p.bg > 0 {
		if p.bg = max(share, p.bg*math.Exp(-now.Sub(p.bgAt).Seconds()/bgSpan.Seconds())); p.bg < 0.01 {
			p.bg = 0
		}
		p.bgAt = now
	}
	switch {
	case back > 0 && (p.bg == 0 || share >= p.bg+minHandBack):
		newRun := p.clean >= relief || p.runAt.IsZero()
		p.clean = 0
		if newRun {
			p.runAt, p.runCuts, p.runMax = now, 0, 0 // the last cut held: a new run
		}
		p.runMax = max(p.runMax, share)
		if now.Sub(p.runAt) > maxRun || p.runCuts >= 3 && share >= 0.8*p.runMax {
			p.bg, p.bgAt = share, now // the cuts did not lower it: not the rate's doing
			p.runAt = time.Time{}
			return
		}
		if p.cut(now, share) {
			p.runCuts++
		}
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

// cut sets the rate to cutShare of what lands at the rate sent within lookback, of which share
// comes back, unless it is lower already, and starts a new round trip; it reports whether it did. When all comes back there
// is nothing to go by: the rate stays, and the table's pause (see judge) holds it back until
// writes land again.
func (p *pacer) cut(now time.Time, share float64) bool {
	u := 0.0
	for _, l := range p.sends {
		u += l.units
	}
	if share >= 1 || u == 0 {
		return false
	}
	if r := cutShare * (1 - share) * u / min(now.Sub(p.first), lookback).Seconds(); p.rate == 0 || r < p.rate {
		p.rate = r
	}
	p.cutAt, p.grownAt = now, now
	return true
}

// trim drops the entries of ls older than lookback.
func trim(ls []landing, now time.Time) []landing {
	old := 0
	for old < len(ls) && now.Sub(ls[old].at) > lookback {
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
