package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
	"github.com/spf13/cobra"
)

func (a *app) copyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "copy SOURCE DEST",
		Short: "Copy every item of one table to another with the same key",
		Long: `copy scans SOURCE with --segments parallel segments and writes every item to DEST, which must
have the same key schema. --create makes DEST like SOURCE (same keys and indexes, on-demand)
when it does not exist; copy never changes, empties or deletes a table that does.

Items DEST refuses go to the rejects file. Interrupted, copy lets what it accepted land, saves
the segments' places (default: dynaflow-copy-SOURCE-DEST.checkpoint) and exits 130; --resume
continues. --max-read-units caps the reads from SOURCE, --max-write-units the writes to DEST.`,
		Example: `  dynaflow copy orders orders-staging --create --verify
  dynaflow copy orders orders-v2 --max-read-units 25% --max-write-units 500`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			a.cmd = c
			return a.copyTable(args[0], args[1])
		},
	}
	a.connFlags(c)
	a.readFlags(c)
	a.writeFlags(c)
	c.Flags().BoolVar(&a.create, "create", false, "create DEST like SOURCE (keys, indexes; on-demand) if it does not exist")
	return c
}

// copyState is the checkpoint of a copy: every item of each segment before its Start has landed
// in DEST or been rejected.
type copyState struct {
	Command       string     `json:"command"`
	Source        string     `json:"source"`
	Dest          string     `json:"dest"`
	TotalSegments int        `json:"total_segments"`
	Segments      []segState `json:"segments"`
	Rejects       string     `json:"rejects"`
	RejectsLen    int64      `json:"rejects_length"`
}

func (a *app) copyTable(source, dest string) error {
	if err := a.checkFlags(); err != nil {
		return err
	}
	if source == dest {
		return fmt.Errorf("SOURCE and DEST are both %s", source)
	}
	ckPath := a.checkpoint
	if ckPath == "" {
		ckPath = "dynaflow-copy-" + safeName(source) + "-" + safeName(dest) + ".checkpoint"
	}
	var st copyState
	found, err := loadCheckpoint(ckPath, &st)
	if err != nil {
		return err
	}
	if err := checkStart(ckPath, a.resume, found); err != nil {
		return err
	}
	if found && (st.Source != source || st.Dest != dest) {
		return fmt.Errorf("the checkpoint %s is for copying %s to %s", ckPath, st.Source, st.Dest)
	}

	api, err := a.connect(a.stop, max(a.segments, 64)+a.inFlight)
	if err != nil {
		return err
	}
	src, err := describe(a.stop, api, source)
	if err != nil {
		return err
	}
	dst, err := describe(a.stop, api, dest)
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) && a.create {
		if err := createLike(a.stop, api, src.desc, dest); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "dynaflow: created table %s like %s (on-demand)\n", dest, source)
		dst, err = describe(a.stop, api, dest)
	} else if errors.As(err, &nf) {
		return fmt.Errorf("%w (pass --create to make it like %s)", err, source)
	}
	if err != nil {
		return err
	}
	if !slices.Equal(src.keys, dst.keys) {
		return fmt.Errorf("%s's key is %v and %s's is %v: copy needs the same key schema", source, src.keys, dest, dst.keys)
	}
	maxR, err := units("max-read-units", a.maxRead, src, false)
	if err != nil {
		return err
	}
	maxW, err := units("max-write-units", a.maxWrite, dst, true)
	if err != nil {
		return err
	}
	total := a.segments
	if found {
		if a.changed("segments") && a.segments != st.TotalSegments {
			return fmt.Errorf("--resume: the interrupted copy used --segments %d; resume it with the same", st.TotalSegments)
		}
		total = st.TotalSegments
	} else {
		if total == 0 {
			total = defaultSegments(src)
		}
		st = copyState{Command: "copy", Source: source, Dest: dest, TotalSegments: total, Rejects: a.rejects}
		if st.Rejects == "" {
			st.Rejects = safeName(dest) + ".rejects.ddb"
		}
		for s := range total {
			st.Segments = append(st.Segments, segState{Segment: s})
		}
	}

	run, starts, err := remaining(st.Segments)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", ckPath, err)
	}
	rej := &rejects{path: st.Rejects, at: st.RejectsLen}
	defer rej.close()
	dyn := dynaflow.New(api, func(o *dynaflow.Options) { o.MaxReadUnits, o.MaxWriteUnits = maxR, maxW })
	m := &meter{what: "copy " + source + " " + dest, start: time.Now(), total: aws.ToInt64(src.desc.ItemCount), rejected: rej.count, client: dyn}
	pr := a.startProgress(m)
	b, err := dyn.NewBatcher(a.stop, dest, a.batcherOptions(dst, maxW))
	if err != nil {
		pr.end(false)
		return err
	}
	m.batcher.Store(b)
	w := newTableWriter(b, dst, rej, slices.Clone(st.Segments))
	w.verify = a.verify
	save := func(pos any, rejectsLen int64) error {
		s := st
		s.Segments, s.RejectsLen = pos.([]segState), rejectsLen
		return saveCheckpoint(ckPath, s)
	}
	in := a.scanInput(source)
	segs := slices.Clone(st.Segments)
	at := map[int]int{}
	for i, s := range segs {
		at[s.Segment] = i
	}
	read := func() error {
		if len(run) == 0 {
			return nil
		}
		pages := dyn.ParallelScanPages(a.stop, in, total, func(o *dynaflow.ParallelScanOptions) {
			o.Segments, o.StartKeys = run, starts
		})
		for page, err := range pages {
			if err != nil {
				return err
			}
			for _, item := range page.Output.Items {
				m.read.Add(1)
				if err := w.put(a.stop, 0, item); err != nil {
					return err
				}
			}
			s := &segs[at[page.Segment]]
			s.Start, s.Done = nil, len(page.Output.LastEvaluatedKey) == 0
			if !s.Done {
				s.Start = appendDDBItem(nil, page.Output.LastEvaluatedKey)
			}
			w.reached(slices.Clone(segs))
		}
		return nil
	}
	return a.writeRun(w, dyn, dest, ckPath, "copy", pr, save, read)
}

// createLike creates table name with src's keys and indexes, on-demand, and waits until it is
// active.
func createLike(ctx context.Context, api *dynamodb.Client, src *types.TableDescription, name string) error {
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: src.AttributeDefinitions,
		KeySchema:            src.KeySchema,
		BillingMode:          types.BillingModePayPerRequest,
	}
	for _, g := range src.GlobalSecondaryIndexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection})
	}
	for _, l := range src.LocalSecondaryIndexes {
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, types.LocalSecondaryIndex{IndexName: l.IndexName, KeySchema: l.KeySchema, Projection: l.Projection})
	}
	if _, err := api.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(api, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 200 * time.Millisecond })
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 10*time.Minute); err != nil {
		return fmt.Errorf("create table %s: waiting for it to be active: %w", name, err)
	}
	return nil
}
