package bench

import (
	"math"
	"testing"
)

// walksPerTurn is how many full walks ReadsSplit gives each side at a turn: about 50 ms at
// 0 ms delay over 20 pages of 100 items.
const walksPerTurn = 5

// ReadsSplit measures dyn.Query or dyn.Scan (query false) against the SDK's paginator in turns of
// walksPerTurn full walks over pages pages of perPage items, the two taking turns at going first,
// each side against a sink of its own answering at once, until each has read at least b.N items.
// It reports each side's items/s and CPU per item (the process's, during that side's turns) and
// the ratio of the rates. As in WritesSplit, every goroutine of a side carries the pprof label
// side=iterator or side=paginator.
func ReadsSplit(b *testing.B, query bool, pages, perPage int) {
	var countIt, countPg counter
	it := &side{name: "iterator", step: func(int) (int, error) { return walks(countIt) }}
	pg := &side{name: "paginator", step: func(int) (int, error) { return walks(countPg) }}

	var ei, ep *Env
	it.do(func() { ei = NewEnv(0, pages, perPage) })
	defer ei.Close()
	pg.do(func() { ep = NewEnv(0, pages, perPage) })
	defer ep.Close()
	if query {
		countIt, countPg = itemCounter(queryWalk(ei.API)), pageCounter(queryPager(ep.API))
	} else {
		countIt, countPg = itemCounter(scanWalk(ei.API)), pageCounter(scanPager(ep.API))
	}

	takeTurns(b, it, pg, func() bool { return it.ops < b.N || pg.ops < b.N }, "item")
}

// walks makes walksPerTurn full walks with count and returns the items they visited.
func walks(count counter) (int, error) {
	n := 0
	for range walksPerTurn {
		c, err := count(math.MaxInt)
		if n += c; err != nil {
			return n, err
		}
	}
	return n, nil
}
