//go:build linux

package shm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestOverwriteModel drives a writer and a reader of an overwrite ring in
// random bursts, from bases at and around the wrap points, and checks
// every frame against a model: the reader gets exactly the frames still
// in the ring (the newest Slots-1 while a writer holds it), in order, with
// Lost counting exactly what it missed, through TryNext/Release and
// TryReadInto alike.
func TestOverwriteModel(t *testing.T) {
	testDir(t)
	bases := []uint32{0, 1<<31 - 9, ^uint32(0) - 9, 12345}
	for i, base := range bases {
		for _, slots := range []int{2, 4, 16} {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(slots)))
			name := fmt.Sprintf("model-%d-%d", i, slots)
			r := mustCreate(t, name, Config{Slots: slots, SlotPayload: 64, BaseSeq: base})
			w, _ := r.NewWriter()
			rd, _ := r.NewReader(nil)
			buf := make([]byte, 64)
			payload := make([]byte, 64)
			head, cursor := base, base // model: next frame to write, next to read
			var lost uint64
			for step := 0; step < 300; step++ {
				for range rng.IntN(3 * slots) {
					n := 1 + rng.IntN(64)
					pattern(payload[:n], head)
					if _, err := w.Write(payload[:n]); err != nil {
						t.Fatal(err)
					}
					head++
				}
				for range rng.IntN(2 * slots) {
					zeroCopy := rng.IntN(2) == 0
					var f Frame
					var err error
					if zeroCopy {
						f, err = rd.TryNext()
					} else {
						f, err = rd.TryReadInto(buf)
					}
					oldest := cursor
					if head-cursor > uint32(slots-1) {
						oldest = head - uint32(slots-1)
					}
					if oldest == head {
						if !errors.Is(err, ErrWouldBlock) {
							t.Fatalf("base %#x slots %d step %d: read with nothing new: %+v %v", base, slots, step, f, err)
						}
						continue
					}
					if err != nil || f.Seq != oldest || f.Lost != oldest-cursor || !checkPattern(f.Data, f.Seq) {
						t.Fatalf("base %#x slots %d step %d (zero-copy %v): got seq %d lost %d (%v), want seq %d lost %d",
							base, slots, step, zeroCopy, f.Seq, f.Lost, err, oldest, oldest-cursor)
					}
					if zeroCopy {
						if err := rd.Release(); err != nil {
							t.Fatal(err)
						}
					}
					lost += uint64(oldest - cursor)
					cursor = oldest + 1
				}
				if step%25 == 24 && head != base {
					// A late joiner starts at the oldest frame still in
					// the ring and has lost nothing.
					late, err := r.NewReader(&ReaderOptions{From: Oldest})
					if err != nil {
						t.Fatal(err)
					}
					want := base
					if head-base > uint32(slots-1) {
						want = head - uint32(slots-1)
					}
					f, err := late.TryReadInto(buf)
					if err != nil || f.Seq != want || f.Lost != 0 || !checkPattern(f.Data, f.Seq) {
						t.Fatalf("base %#x slots %d step %d: late joiner got seq %d lost %d (%v), want seq %d lost 0", base, slots, step, f.Seq, f.Lost, err, want)
					}
					late.Close()
				}
			}
			if rd.Stats().Lost != lost {
				t.Fatalf("base %#x slots %d: stats lost %d, model %d", base, slots, rd.Stats().Lost, lost)
			}
			rd.Close()
			w.Close()
		}
	}
}

// TestBlockModel is TestOverwriteModel for the block policy: a TryReserve
// succeeds exactly while fewer than Slots frames are unread, and the
// reader gets every frame, in order, with nothing lost.
func TestBlockModel(t *testing.T) {
	testDir(t)
	for i, base := range []uint32{0, 1<<31 - 9, ^uint32(0) - 9} {
		for _, slots := range []int{2, 8} {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(slots)))
			r := mustCreate(t, fmt.Sprintf("bmodel-%d-%d", i, slots), Config{Slots: slots, SlotPayload: 64, Policy: Block, BaseSeq: base})
			w, _ := r.NewWriter()
			rd, _ := r.NewReader(nil)
			buf := make([]byte, 64)
			head, cursor := base, base
			for step := 0; step < 300; step++ {
				for range rng.IntN(2 * slots) {
					b, err := w.TryReserve(8)
					if room := head-cursor < uint32(slots); room != (err == nil) {
						t.Fatalf("base %#x slots %d step %d: TryReserve with %d unread: %v", base, slots, step, head-cursor, err)
					}
					if err != nil {
						break
					}
					pattern(b, head)
					if _, err := w.Commit(); err != nil {
						t.Fatal(err)
					}
					head++
				}
				for range rng.IntN(2 * slots) {
					var f Frame
					var err error
					zeroCopy := rng.IntN(2) == 0
					if zeroCopy {
						f, err = rd.TryNext()
					} else {
						f, err = rd.TryReadInto(buf)
					}
					if cursor == head {
						if !errors.Is(err, ErrWouldBlock) {
							t.Fatalf("base %#x slots %d step %d: read with nothing new: %+v %v", base, slots, step, f, err)
						}
						continue
					}
					if err != nil || f.Seq != cursor || f.Lost != 0 || !checkPattern(f.Data, f.Seq) {
						t.Fatalf("base %#x slots %d step %d: got seq %d lost %d (%v), want seq %d", base, slots, step, f.Seq, f.Lost, err, cursor)
					}
					if zeroCopy {
						if err := rd.Release(); err != nil {
							t.Fatal(err)
						}
					}
					cursor++
				}
			}
			rd.Close()
			w.Close()
		}
	}
}
