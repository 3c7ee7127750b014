//go:build linux

package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// TestSpinningReadHonoursDeadlineOnForgedSlot: the slot under the cursor
// carries the stamp of the awaited frame but another sequence number (shared
// memory may hold anything; an honest writer stores seq before the stamp).
// A reader that polls before sleeping must neither take it nor stop waiting
// for it early and poll again for ever: every wait form ends at its deadline.
func TestSpinningReadHonoursDeadlineOnForgedSlot(t *testing.T) {
	for _, spin := range []int{500, -1} {
		for _, form := range []string{"Next", "NextDeadline", "ReadInto", "ReadIntoDeadline"} {
			t.Run(fmt.Sprintf("spin=%d/%s", spin, form), func(t *testing.T) {
				testDir(t)
				r := mustCreate(t, "forged", Config{Slots: 8, SlotPayload: 64})
				w, _ := r.NewWriter()
				rd, _ := r.NewReader(&ReaderOptions{Spin: spin})
				buf := make([]byte, 64)
				for i := 0; i < 3; i++ {
					w.Write([]byte("x"))
					if _, err := rd.TryReadInto(buf); err != nil {
						t.Fatal(err)
					}
				}
				w.Close()
				sh, _ := r.slot(3)
				sh.Seq = 3 + 8 // right slot, wrong frame
				atomic.StoreUint32(&sh.Stamp, 3<<1)
				const d = 50 * time.Millisecond
				done := make(chan error, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), d)
					defer cancel()
					var err error
					switch form {
					case "Next":
						_, err = rd.Next(ctx)
					case "NextDeadline":
						_, err = rd.NextDeadline(time.Now().Add(d))
					case "ReadInto":
						_, err = rd.ReadInto(ctx, buf)
					case "ReadIntoDeadline":
						_, err = rd.ReadIntoDeadline(time.Now().Add(d), buf)
					}
					done <- err
				}()
				select {
				case err := <-done:
					if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("%v, want the deadline's error", err)
					}
				case <-time.After(d + scale(3*time.Second)):
					rd.Close() // stops the loop
					<-done
					t.Fatalf("still reading %v after a %v deadline", d+scale(3*time.Second), d)
				}
			})
		}
	}
}
