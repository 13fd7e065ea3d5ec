package main

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dynaflow-go/dynaflow"
)

// tableWriter is the write side of load and copy: a Batcher, the rejects file, and checkpoints.
// A checkpoint is a position in the input before which every item has landed or been rejected.
// It is taken without stopping the writes: note the position the reader has reached, Flush (it
// waits only for writes accepted before it), send what failed to the rejects file, and save.
type tableWriter struct {
	b    *dynaflow.Batcher
	info *tableInfo
	rej  *rejects

	mu      sync.Mutex
	seq     int64            // writes handed over so far
	pending map[string]owned // key -> the last write handed over for it, until a checkpoint covers it
	pos     any              // the reader's position: everything before it has been handed over
	posSeq  int64            // seq at pos

	// With --verify: a hash of the key of every write accepted, and of every write rejected
	// after it was accepted, to count the distinct keys that landed.
	verify         bool
	hashes, failed []uint64
}

var verifySeed = maphash.MakeSeed()

// distinct returns how many distinct keys were accepted and did not fail.
func (w *tableWriter) distinct() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	slices.Sort(w.hashes)
	slices.Sort(w.failed)
	w.hashes, w.failed = slices.Compact(w.hashes), slices.Compact(w.failed)
	n := int64(0)
	for _, h := range w.hashes {
		if _, bad := slices.BinarySearch(w.failed, h); !bad {
			n++
		}
	}
	return n
}

// owned is where a write came from, to name it in the rejects file.
type owned struct {
	seq, line int64
}

func newTableWriter(b *dynaflow.Batcher, info *tableInfo, rej *rejects, start any) *tableWriter {
	return &tableWriter{b: b, info: info, rej: rej, pending: map[string]owned{}, pos: start}
}

// put checks item and hands it to the Batcher, or sends it to the rejects file. Only a Put that
// ctx ended returns an error; the item is then not accepted.
func (w *tableWriter) put(ctx context.Context, line int64, item dynaflow.Item) error {
	if err := w.info.checkItem(item); err != nil {
		return w.rej.add(line, item, nil, err)
	}
	k := w.info.keyString(item)
	w.mu.Lock()
	w.seq++
	w.pending[k] = owned{w.seq, line} // before Put: the write may fail before Put returns
	w.mu.Unlock()
	err := w.b.Put(ctx, item)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return w.rej.add(line, item, nil, err)
	}
	if w.verify {
		w.mu.Lock()
		w.hashes = append(w.hashes, maphash.String(verifySeed, k))
		w.mu.Unlock()
	}
	return nil
}

// reached notes the reader's position: every item before it has been put or rejected.
func (w *tableWriter) reached(pos any) {
	w.mu.Lock()
	w.pos, w.posSeq = pos, w.seq
	w.mu.Unlock()
}

// settle waits until what was put before the call has landed or failed, sends the failures to
// the rejects file, and returns the position that is then safe to checkpoint, and the rejects
// file's length with it. Its error is ctx's, the Batcher's being closed, or the rejects file's.
func (w *tableWriter) settle(ctx context.Context) (pos any, rejectsLen int64, err error) {
	w.mu.Lock()
	pos, seq := w.pos, w.posSeq
	w.mu.Unlock()
	ferr := w.b.Flush(ctx)
	if err := w.reject(ferr); err != nil {
		return nil, 0, err
	}
	w.mu.Lock()
	for k, o := range w.pending {
		if o.seq <= seq {
			delete(w.pending, k)
		}
	}
	w.mu.Unlock()
	if rejectsLen, err = w.rej.sync(); err != nil {
		return nil, 0, err
	}
	return pos, rejectsLen, nil
}

// reject sends the failures in err (a *dynaflow.WriteError from Flush or Close) to the rejects
// file; any other error is returned.
func (w *tableWriter) reject(err error) error {
	var we *dynaflow.WriteError
	if !errors.As(err, &we) {
		return err
	}
	for _, f := range we.Failures {
		item := f.Request.PutRequest.Item
		k := w.info.keyString(item)
		w.mu.Lock()
		o := w.pending[k]
		if w.verify {
			w.failed = append(w.failed, maphash.String(verifySeed, k))
		}
		w.mu.Unlock()
		if err := w.rej.add(o.line, item, nil, f.Err); err != nil {
			return err
		}
	}
	return nil
}

// checkpoints calls save with a settled position every interval until ctx ends, and returns
// the first error other than ctx's.
func (w *tableWriter) checkpoints(ctx context.Context, every time.Duration, save func(pos any, rejectsLen int64) error) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pos, n, err := w.settle(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if err := save(pos, n); err != nil {
			return err
		}
	}
}

// finish ends a run: it waits for the writes to land, sends failures to the rejects file and
// closes the Batcher. It waits until hard ends, or until grace after stop ends (an interrupt,
// before or during the wait). landed reports whether everything handed over has landed or been
// rejected; then pos, the position reached, and rejectsLen are safe to checkpoint.
func (w *tableWriter) finish(hard, stop context.Context, grace time.Duration) (pos any, rejectsLen int64, landed bool, err error) {
	ctx, cancel := context.WithCancel(hard)
	defer cancel()
	go func() {
		select {
		case <-stop.Done():
		case <-ctx.Done():
			return
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ctx.Done():
		}
	}()
	pos, _, serr := w.settle(ctx)
	landed = serr == nil
	if serr != nil && ctx.Err() == nil {
		err = serr
	}
	// Close with a context that has ended gives up on what is left at once: those writes did not
	// land, and the checkpoint saved before them keeps them for --resume.
	cerr := w.b.Close(ctx)
	if landed {
		if rerr := w.reject(cerr); rerr != nil && err == nil {
			err = rerr
		}
	}
	if rejectsLen, serr = w.rej.sync(); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("writes: %w", err)
	}
	return pos, rejectsLen, landed, nil
}

// batcherOptions configure the Batcher of load and copy. With a cap, the Batcher holds about two
// seconds of writes at the cap, so that after an interrupt what it accepted lands within a few
// seconds, and checkpoints trail the reading by no more than that.
func (a *app) batcherOptions(info *tableInfo, maxWriteUnits float64) func(*dynaflow.BatcherOptions) {
	return func(o *dynaflow.BatcherOptions) {
		o.MaxInFlight = a.inFlight
		o.KeyAttributes = info.keyNames()
		if maxWriteUnits > 0 {
			o.MaxBuffered = int(min(dynaflow.DefaultMaxBuffered, max(2*maxWriteUnits, float64(dynaflow.MaxBatchWriteRequests*a.inFlight))))
		}
	}
}

// writeRun runs read, the loop that puts the input through w, while a goroutine saves a
// checkpoint every --checkpoint-every, and then ends the run: it lets the writes land (see
// finish), saves the checkpoint when the run stopped early, and otherwise verifies (--verify),
// removes the checkpoint and reports. what names the command ("load", "copy") in messages.
func (a *app) writeRun(w *tableWriter, dyn *dynaflow.Client, table, ckPath, what string, pr *progress, save func(pos any, rejectsLen int64) error, read func() error) error {
	ckCtx, stopCk := context.WithCancel(a.hard)
	var ckErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ckErr = w.checkpoints(ckCtx, a.checkpointEvery, save)
	}()
	readErr := read()
	stopCk()
	wg.Wait()

	stoppedEarly := a.stop.Err() != nil // reading ended before the input did
	pos, rejectsLen, landed, werr := w.finish(a.hard, a.stop, a.landGrace)
	// Interrupted: stopped reading, or stopped waiting for the writes. An interrupt that came
	// after the input was read, while everything still landed, leaves nothing to resume.
	interrupted := stoppedEarly || !landed && a.stop.Err() != nil
	if err := errors.Join(ckErr, werr); err != nil {
		pr.end(interrupted)
		return err
	}
	if landed && (stoppedEarly || readErr != nil) {
		if err := save(pos, rejectsLen); err != nil {
			readErr = errors.Join(readErr, err)
		}
	}
	if interrupted {
		pr.end(true)
		if landed {
			return fmt.Errorf("%w: the checkpoint %s holds the place; run the same command with --resume to continue", errInterrupted, ckPath)
		}
		return fmt.Errorf("%w before everything accepted had landed; the checkpoint %s holds the last place where it had; run the same command with --resume to continue", errInterrupted, ckPath)
	}
	if readErr != nil {
		pr.end(false)
		return fmt.Errorf("%w; the checkpoint %s holds the place where it stopped: --resume continues", readErr, ckPath)
	}
	var notes []string
	if a.verify {
		note, err := a.verifyCount(dyn, table, w.distinct(), "distinct keys this "+what+" wrote")
		notes = append(notes, note)
		if err != nil {
			pr.end(false, notes...)
			return err
		}
	}
	if err := os.Remove(ckPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		notes = append(notes, "could not remove the checkpoint: "+err.Error())
	}
	return a.finishRejects(pr, w.rej, notes)
}
