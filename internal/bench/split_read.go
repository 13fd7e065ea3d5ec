package bench

import (
	"context"
	"iter"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynaflow-go/dynaflow"
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
	ctx := context.Background()
	iterSide := pprof.Labels("side", "iterator")
	pagSide := pprof.Labels("side", "paginator")
	var ei, ep *Env
	pprof.Do(ctx, iterSide, func(context.Context) { ei = NewEnv(0, pages, perPage) })
	defer ei.Close()
	pprof.Do(ctx, pagSide, func(context.Context) { ep = NewEnv(0, pages, perPage) })
	defer ep.Close()
	dyn := dynaflow.New(ei.API)

	// Each walk returns the items it read.
	var iterWalk func(context.Context) (int, error)
	var pagWalk func(context.Context) (int, error)
	seqWalk := func(seq iter.Seq2[dynaflow.Item, error]) (n int, err error) {
		for _, err := range seq {
			if err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}
	pagerWalk := func(next pager) (n int, err error) {
		for {
			items, ok, err := next()
			if err != nil || !ok {
				return n, err
			}
			for range items { // as a caller's loop would visit each item
				n++
			}
		}
	}
	if query {
		iterWalk = func(ctx context.Context) (int, error) { return seqWalk(dyn.Query(ctx, queryInput())) }
		pagWalk = func(ctx context.Context) (int, error) {
			p := dynamodb.NewQueryPaginator(ep.API, queryInput())
			return pagerWalk(pagerOf(p, func(out *dynamodb.QueryOutput) []dynaflow.Item { return out.Items }))
		}
	} else {
		iterWalk = func(ctx context.Context) (int, error) {
			return seqWalk(dyn.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(Table)}))
		}
		pagWalk = func(ctx context.Context) (int, error) {
			p := dynamodb.NewScanPaginator(ep.API, &dynamodb.ScanInput{TableName: aws.String(Table)})
			return pagerWalk(pagerOf(p, func(out *dynamodb.ScanOutput) []dynaflow.Item { return out.Items }))
		}
	}

	type side struct {
		labels     pprof.LabelSet
		walk       func(context.Context) (int, error)
		items      int
		wall, cpus time.Duration
	}
	it := &side{labels: iterSide, walk: iterWalk}
	pg := &side{labels: pagSide, walk: pagWalk}
	turn := func(s *side) {
		c, t := processCPU(), time.Now()
		// As in WritesSplit, the walks get context.Background, not the labelled context.
		pprof.Do(ctx, s.labels, func(context.Context) {
			for range walksPerTurn {
				n, err := s.walk(ctx)
				if err != nil {
					b.Fatal(err)
				}
				s.items += n
			}
		})
		s.wall += time.Since(t)
		s.cpus += processCPU() - c
	}
	b.ResetTimer()
	for i := 0; it.items < b.N || pg.items < b.N; i++ {
		if i%2 == 0 {
			turn(it)
			turn(pg)
		} else {
			turn(pg)
			turn(it)
		}
	}
	b.StopTimer()
	rate := func(s *side) float64 { return float64(s.items) / s.wall.Seconds() }
	perItem := func(s *side) float64 { return float64(s.cpus) / float64(time.Microsecond) / float64(s.items) }
	b.ReportMetric(rate(it), "iterator-items/s")
	b.ReportMetric(rate(pg), "paginator-items/s")
	b.ReportMetric(rate(it)/rate(pg), "ratio")
	b.ReportMetric(perItem(it), "iterator-cpu-µs/item")
	b.ReportMetric(perItem(pg), "paginator-cpu-µs/item")
}
