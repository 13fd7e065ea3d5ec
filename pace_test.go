package dynaflow

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The pacer's tests drive it on a fake clock against simulated servers: calls of 25 one-unit
// writes, each answered a round trip after it is sent, with writes always waiting to go.

// simServer decides how many of n writes sent at elapsed land.
type simServer func(elapsed time.Duration, n int) int

// capacityServer admits writes while a token bucket of rate(elapsed) units a second, holding up
// to burst and starting full, has a unit for each, as the capacity proxy does.
func capacityServer(rate func(time.Duration) float64, burst float64) simServer {
	tokens, last := burst, time.Duration(0)
	return func(elapsed time.Duration, n int) int {
		tokens = math.Min(burst, tokens+(elapsed-last).Seconds()*rate(elapsed))
		last = elapsed
		k := min(n, int(tokens))
		tokens -= float64(k)
		return k
	}
}

// shareServer hands back each write with probability share, whatever the rate.
func shareServer(share float64) simServer {
	r := rand.New(rand.NewPCG(1, 2))
	return func(_ time.Duration, n int) int {
		k := 0
		for range n {
			if r.Float64() >= share {
				k++
			}
		}
		return k
	}
}

// simResult is what a simulated run did: the units landed in each second, the calls made, and
// those with writes handed back.
type simResult struct {
	perSecond       []float64
	calls, throttle int
}

// simulate drives a pacer for d against srv with calls answered after rtt and at most limit in
// flight, as the owner does: a call goes when the pacer is ready, and a table held back by its
// rate marks it in use.
func simulate(srv simServer, rtt time.Duration, limit int, d time.Duration) simResult {
	var p pacer
	var res simResult
	start := time.Unix(1_000_000, 0)
	type flight struct {
		sent   time.Time
		landed int
	}
	var out []flight
	var srtt time.Duration
	for now := start; now.Before(start.Add(d)); now = now.Add(100 * time.Microsecond) {
		for len(out) > 0 && !out[0].sent.Add(rtt).After(now) {
			f := out[0]
			out = out[1:]
			srtt = smooth(srtt, now.Sub(f.sent))
			p.observe(now, f.sent, 25, 25-f.landed, float64(f.landed))
			sec := int(now.Sub(start) / time.Second)
			for len(res.perSecond) <= sec {
				res.perSecond = append(res.perSecond, 0)
			}
			res.perSecond[sec] += float64(f.landed)
			if f.landed < 25 {
				res.throttle++
			}
		}
		for len(out) < limit {
			if !p.ready(now, len(out), p.window(srtt, 25, limit)) {
				p.hold()
				break
			}
			p.charge(now, 25)
			res.calls++
			out = append(out, flight{now, srv(now.Sub(start), 25)})
		}
	}
	return res
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func TestPacerFindsCapacityAndFollowsItDown(t *testing.T) {
	const capacity = 2000.0
	rate := func(e time.Duration) float64 {
		if e >= 20*time.Second {
			return capacity / 2
		}
		return capacity
	}
	res := simulate(capacityServer(rate, capacity), 10*time.Millisecond, 8, 40*time.Second)
	// Unlimited, 8 calls of 25 every 10 ms would be 20,000 units a second: ten times capacity.
	if got := mean(res.perSecond[1:20]) / capacity; got < 0.9 || got > 1.01 {
		t.Errorf("goodput at capacity %v: %.3f of it; want 0.90 to 1.01 (per second: %v)", capacity, got, res.perSecond)
	}
	if share := float64(res.throttle) / float64(res.calls); share > 0.1 {
		t.Errorf("%d of %d calls had writes handed back (%.1f%%); want at most 10%%", res.throttle, res.calls, 100*share)
	}
	if got := mean(res.perSecond[21:40]) / (capacity / 2); got < 0.9 || got > 1.01 {
		t.Errorf("goodput after capacity halved: %.3f of it; want 0.90 to 1.01 (per second: %v)", got, res.perSecond)
	}
	if res.perSecond[21] < 0.9*capacity/2 && res.perSecond[22] < 0.9*capacity/2 {
		t.Errorf("goodput not back within 10%% of the halved capacity in the 2 s after: %v", res.perSecond[20:23])
	}
}

func TestPacerIgnoresHandBacksTheRateDoesNotCause(t *testing.T) {
	// A server that hands back 30% of every call whatever the rate: cutting for it would end at
	// a crawl. After a first dip the pacer takes it as background and sends at full speed again.
	res := simulate(shareServer(0.3), 3*time.Millisecond, 8, 20*time.Second)
	full := 8 * 25 / 0.003 * 0.7 // units landed a second at 8 calls in flight
	if got := mean(res.perSecond[15:20]) / full; got < 0.9 {
		t.Errorf("landed %.0f units a second in the last 5 s, %.2f of full speed; want at least 0.9 (per second: %v)", mean(res.perSecond[15:20]), got, res.perSecond)
	}
	if low := minOf(res.perSecond); low < full/4 {
		t.Errorf("slowest second landed %.0f units, under a quarter of full speed: %v", low, res.perSecond)
	}
}

func minOf(xs []float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = math.Min(m, x)
	}
	return m
}

func TestPacerWindowFollowsRate(t *testing.T) {
	p := pacer{}
	if got := p.window(10*time.Millisecond, 25, 8); got != 8 {
		t.Errorf("unlimited window = %d; want MaxInFlight 8", got)
	}
	p.rate = 2000 // 80 calls of 25 a second: 0.8 of a call per 10 ms round trip
	if got := p.window(10*time.Millisecond, 25, 8); got != 2 {
		t.Errorf("window at 2000 units/s, 10 ms, 25-unit calls = %d; want 2", got)
	}
	if got := p.window(time.Second, 25, 8); got != 8 {
		t.Errorf("window at a 1 s round trip = %d; want the limit 8", got)
	}
}

func TestPacerSpacesCalls(t *testing.T) {
	p := pacer{rate: 100}
	now := time.Unix(1_000_000, 0)
	p.charge(now, 25)
	if p.ready(now.Add(249*time.Millisecond), 0, 8) {
		t.Error("ready 249 ms after a 25-unit call at 100 units/s; want 250 ms")
	}
	if !p.ready(now.Add(250*time.Millisecond), 0, 8) {
		t.Error("not ready 250 ms after a 25-unit call at 100 units/s")
	}
	if p.ready(now.Add(time.Second), 2, 2) {
		t.Error("ready with its window full")
	}
}

func TestPacerFindsSmallCapacity(t *testing.T) {
	// 300 units a second is 12 calls of 25: a lookback of 250 ms holds three of them, and one
	// call empties the bucket's burst.
	const capacity = 300.0
	res := simulate(capacityServer(func(time.Duration) float64 { return capacity }, capacity/10), 12*time.Millisecond, 16, 30*time.Second)
	if got := mean(res.perSecond[2:30]) / capacity; got < 0.85 || got > 1.01 {
		t.Errorf("goodput at capacity %v: %.3f of it; want 0.85 to 1.01 (per second: %v)", capacity, got, res.perSecond)
	}
	if share := float64(res.throttle) / float64(res.calls); share > 0.2 {
		t.Errorf("%d of %d calls had writes handed back (%.1f%%); want at most 20%% (per second: %v)", res.throttle, res.calls, 100*share, res.perSecond)
	}
}

func TestPacerAcrossCapacitiesAndRoundTrips(t *testing.T) {
	// From 150 units a second (six calls) to 5,000, a burst pool of a fifth of a second or a whole
	// one, and round trips of 5 to 100 ms, with 16 calls allowed in flight: 16 calls of 25 units
	// every round trip is more than every capacity here. At low capacities a call is a large
	// share of a second, so each probe above capacity costs a larger share of the calls.
	for _, c := range []struct {
		capacity    float64
		maxThrottle float64
	}{{150, 0.35}, {300, 0.2}, {1000, 0.15}, {2000, 0.12}, {5000, 0.1}} {
		for _, burst := range []float64{0.2, 1} {
			for _, rtt := range []time.Duration{5 * time.Millisecond, 12 * time.Millisecond, 40 * time.Millisecond} {
				res := simulate(capacityServer(func(time.Duration) float64 { return c.capacity }, c.capacity*burst), rtt, 16, 20*time.Second)
				name := fmt.Sprintf("capacity %v, burst %v s, round trip %v", c.capacity, burst, rtt)
				if got := mean(res.perSecond[2:20]) / c.capacity; got < 0.85 || got > 1.02 {
					t.Errorf("%s: goodput %.3f of capacity; want 0.85 to 1.02 (per second: %v)", name, got, res.perSecond)
				}
				if share := float64(res.throttle) / float64(res.calls); share > c.maxThrottle {
					t.Errorf("%s: %.1f%% of calls had writes handed back; want at most %.0f%%", name, 100*share, 100*c.maxThrottle)
				}
			}
		}
	}
}

func TestPacerCapacityWithBackground(t *testing.T) {
	// A capacity limit and, of the writes it admits, a share handed back whatever the rate (a hot
	// key): the pacer finds the capacity and takes the rest as background, rather than cutting
	// for it down to a crawl.
	for _, capacity := range []float64{300, 2000} {
		for _, share := range []float64{0.05, 0.1, 0.3} {
			cs, ss := capacityServer(func(time.Duration) float64 { return capacity }, capacity/2), shareServer(share)
			srv := func(e time.Duration, n int) int { return ss(e, cs(e, n)) }
			res := simulate(srv, 10*time.Millisecond, 16, 20*time.Second)
			full := capacity * (1 - share) // what can land
			if got := mean(res.perSecond[2:20]) / full; got < 0.7 {
				t.Errorf("capacity %v, background %v: goodput %.3f of what can land; want at least 0.7 (per second: %v)", capacity, share, got, res.perSecond)
			}
		}
	}
}

// At thousands of calls a second the pacer's history stays bounded, so that each call's work
// does: 20,000 calls in two seconds, a tenth of them handing writes back.
func TestPacerHistoryIsBounded(t *testing.T) {
	var p pacer
	now := time.Unix(1_000_000, 0)
	for i := range 20_000 {
		now = now.Add(100 * time.Microsecond)
		p.charge(now, 25)
		back := 0
		if i%10 == 0 {
			back = 5
		}
		p.observe(now.Add(50*time.Microsecond), now, 25, back, float64(25-back))
		if len(p.recent) > 256 || len(p.sends) > 256 || len(p.run) > 64 {
			t.Fatalf("after %d calls the pacer keeps %d landings, %d sends and %d run calls; want at most 256, 256 and 64",
				i+1, len(p.recent), len(p.sends), len(p.run))
		}
	}
	if p.rate == 0 {
		t.Fatal("a tenth of the calls handed writes back, and the rate was never limited")
	}
}

// faultServer hands back every write of a tenth of the calls, at random, and 30% of the writes
// of the others, whatever the rate: a table with a hot partition, or the fault proxy of the
// integration tests.
func faultServer(seed uint64) simServer {
	r := rand.New(rand.NewPCG(seed, 2))
	return func(_ time.Duration, n int) int {
		if r.Float64() < 0.1 {
			return 0
		}
		k := 0
		for range n {
			if r.Float64() >= 0.3 {
				k++
			}
		}
		return k
	}
}

// Whole calls throttled at random over a background share say nothing about the rate: the
// pacer must not cut for each of them faster than it grows back. Thirty seeded runs, round trips
// of 3 to 30 ms: in nearly all, the writes land at more than half of full speed.
func TestPacerRidesOutRandomThrottlesOverBackground(t *testing.T) {
	crawls, runs := 0, 0
	for _, rtt := range []time.Duration{3 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond} {
		for seed := range uint64(6) {
			res := simulate(faultServer(seed), rtt, 8, 20*time.Second)
			full := 8 * 25 / rtt.Seconds() * 0.63 // 63% of the writes land, at 8 calls in flight
			runs++
			if g := mean(res.perSecond) / full; g < 0.5 {
				crawls++
				t.Logf("round trip %v, seed %d: %.2f of full speed (per second: %v)", rtt, seed, g, res.perSecond)
			}
		}
	}
	if crawls > 2 {
		t.Errorf("%d of %d runs landed under half of full speed; want at most 2", crawls, runs)
	}
}
