package dynaflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// padded returns an item with key pk (pad it to a fixed width for equal sizes) and an attribute
// of n bytes.
func padded(pk string, n int) Item { return putItem(pk, "pad", strings.Repeat("p", n)) }

// inLine waits until n Put or Delete calls wait in b's line.
func inLine(t *testing.T, b *Batcher, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d calls in line", n), func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.line) == n
	})
}

// TestBatcherRoomInOrder: calls that wait for room get it in the order they came, whichever
// limit they wait on, and a large write is let in before the small ones that came after it.
func TestBatcherRoomInOrder(t *testing.T) {
	for _, bytesLimit := range []bool{false, true} {
		t.Run(fmt.Sprintf("bytes=%v", bytesLimit), func(t *testing.T) {
			f, release := blockingFake()
			size := ItemSize(padded("k00", 1000))
			b := newTestBatcher(t, f, func(o *BatcherOptions) {
				o.MaxInFlight = 1
				if bytesLimit {
					o.MaxBufferedBytes = 4 * size
				} else {
					o.MaxBuffered = 4
				}
			})
			ctx := context.Background()
			for i := range 4 {
				if err := b.Put(ctx, padded(fmt.Sprintf("k%02d", i), 1000)); err != nil {
					t.Fatal(err)
				}
			}
			// The first to wait is as large as the byte limit allows; twenty small ones
			// follow it, one at a time, so that the order they came in is known.
			want := []string{"big"}
			errs := make(chan error, 21)
			go func() { errs <- b.Put(ctx, padded("big", 4*size-ItemSize(padded("big", 0)))) }()
			inLine(t, b, 1)
			for i := range 20 {
				k := fmt.Sprintf("c%02d", i)
				want = append(want, k)
				go func() { errs <- b.Put(ctx, padded(k, 1000)) }()
				inLine(t, b, i+2)
			}
			close(release)
			for range 21 {
				if err := <-errs; err != nil {
					t.Errorf("waiting Put = %v", err)
				}
			}
			mustFlush(t, b)
			f.mu.Lock()
			log := append([]string(nil), f.writeLog...)
			f.mu.Unlock()
			got := log[min(4, len(log)):] // the fake's log names each key in its own encoding
			if len(got) != len(want) {
				t.Fatalf("written after the first four: %q; want %d writes", got, len(want))
			}
			for i := range want {
				if !strings.Contains(got[i], want[i]) {
					t.Fatalf("written after the first four, in order: %q; want %q", got, want)
				}
			}
		})
	}
}

// TestBatcherRoomNoJumping: a call that would fit waits behind one that does not; when the one
// in front gives up (its ctx ends), the one behind is let in at once.
func TestBatcherRoomNoJumping(t *testing.T) {
	f, release := blockingFake()
	size := ItemSize(padded("k0", 1000))
	b := newTestBatcher(t, f, func(o *BatcherOptions) { o.MaxBufferedBytes = 10 * size })
	ctx := context.Background()
	for i := range 9 {
		if err := b.Put(ctx, padded(fmt.Sprintf("k%d", i), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	bigCtx, cancel := context.WithCancel(ctx)
	big := make(chan error, 1)
	go func() { big <- b.Put(bigCtx, padded("bg", 2000)) }() // does not fit: 9 + 2 > 10
	inLine(t, b, 1)
	small := make(chan error, 1)
	go func() { small <- b.Put(ctx, padded("sm", 1000)) }() // would fit, but waits behind big
	inLine(t, b, 2)
	if s := b.Stats(); s.Puts != 9 {
		t.Fatalf("accepted %d writes while two wait; want 9", s.Puts)
	}
	cancel()
	if err := <-big; !errors.Is(err, context.Canceled) {
		t.Errorf("Put whose ctx ended in line = %v; want context.Canceled", err)
	}
	select {
	case err := <-small:
		if err != nil {
			t.Errorf("Put behind it = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Put behind a call that gave up was not let in")
	}
	if s := b.Stats(); s.Puts != 10 || s.Buffered != 10 {
		t.Errorf("stats = %+v; want 10 accepted and buffered", s)
	}
	close(release)
	mustFlush(t, b)
	keys := f.storeKeys()
	if len(keys) != 10 || strings.Contains(strings.Join(keys, " "), "bg") {
		t.Errorf("stored %q; want the nine and sm, not bg", keys)
	}
}
