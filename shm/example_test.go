//go:build linux

package shm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// One writer publishes a frame in place; a reader waits for it and looks
// at it without copying. In real use the two sides are different
// processes: the reader would call shm.OpenReader with the ring's name.
func Example() {
	dir, err := os.MkdirTemp("", "shm-example") // a private segment directory; leave Dir empty for /dev/shm
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	r, err := shm.Create("hello", shm.Config{Slots: 8, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: dir}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Remove()
	defer r.Close()
	w, err := r.NewWriter()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	rd, err := r.NewReader(&shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rd.Close()

	buf, _ := w.Reserve(5) // the slot's own bytes: fill them, then commit
	copy(buf, "hello")
	w.CommitWith(7, 0) // type 7, flags 0, stamped with CLOCK_MONOTONIC

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := rd.Next(ctx) // zero-copy: f.Data is the slot until Release
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("frame %d, type %d, %q, stamped %t\n", f.Seq, f.Type, f.Data, f.Time > 0 && f.Time <= shm.Now())
	if err := rd.Release(); err != nil {
		fmt.Println("overwritten while held:", err)
	}
	// Output: frame 0, type 7, "hello", stamped true
}

// Under the overwrite policy the writer never waits: a reader that fell
// behind is told how many frames it lost and resumes at the oldest frame
// still in the ring (Slots-1 of them while a writer holds the ring).
func ExampleReader_TryReadInto() {
	dir, err := os.MkdirTemp("", "shm-example") // a private segment directory; leave Dir empty for /dev/shm
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	r, err := shm.Create("lossy", shm.Config{Slots: 4, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: dir}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Remove()
	defer r.Close()
	rd, _ := r.NewReader(nil) // joins at the newest frame: the next one written
	defer rd.Close()
	w, _ := r.NewWriter()
	defer w.Close()
	for i := range 10 {
		w.Write([]byte{'a' + byte(i)})
	}

	buf := make([]byte, r.SlotPayload())
	for {
		f, err := rd.TryReadInto(buf)
		if errors.Is(err, shm.ErrWouldBlock) {
			break // nothing new; Next/ReadInto would wait instead
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("frame %d %q, lost %d before it\n", f.Seq, f.Data, f.Lost)
	}
	fmt.Printf("lost in all: %d\n", rd.Stats().Lost)
	// Output:
	// frame 7 "h", lost 7 before it
	// frame 8 "i", lost 0 before it
	// frame 9 "j", lost 0 before it
	// lost in all: 7
}

// Under the block policy the writer waits for the slowest live reader
// instead of overwriting: TryReserve says ErrWouldBlock, Reserve and
// ReserveContext wait.
func ExampleWriter_TryReserve() {
	dir, err := os.MkdirTemp("", "shm-example") // a private segment directory; leave Dir empty for /dev/shm
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	r, err := shm.Create("block", shm.Config{Slots: 2, SlotPayload: 64, Policy: shm.Block, Segment: shm.SegmentOptions{Dir: dir}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Remove()
	defer r.Close()
	rd, _ := r.NewReader(nil)
	defer rd.Close()
	w, _ := r.NewWriter()
	defer w.Close()

	for i := 0; ; i++ {
		if _, err := w.TryReserve(8); errors.Is(err, shm.ErrWouldBlock) {
			fmt.Printf("full after %d frames\n", i)
			break
		}
		w.Commit()
	}
	buf := make([]byte, 64)
	f, _ := rd.TryReadInto(buf) // the reader frees a slot...
	_, err = w.TryReserve(8)    // ...and the writer may go on
	fmt.Printf("read frame %d; reserve now: %v\n", f.Seq, err)
	// Output:
	// full after 2 frames
	// read frame 0; reserve now: <nil>
}

// A named counting semaphore in shared memory, usable by unrelated
// processes; Wait sleeps on a futex.
func ExampleSemaphore() {
	dir, err := os.MkdirTemp("", "shm-example") // a private segment directory; leave Dir empty for /dev/shm
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	opts := &shm.SegmentOptions{Dir: dir}
	s, err := shm.CreateSemaphore("sem", 1, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.RemoveSemaphore("sem", opts)
	defer s.Close()

	fmt.Println("first TryWait:", s.TryWait())
	fmt.Println("second TryWait:", s.TryWait())
	s.Post()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("Wait after Post:", s.Wait(ctx), "value", s.Value())
	// Output:
	// first TryWait: <nil>
	// second TryWait: shm: operation would block
	// Wait after Post: <nil> value 0
}

// A ring with no name: a sealed memfd whose descriptor is handed to
// another process (here: opened again from its file, as a child would
// from an inherited fd).
func ExampleCreateMemfd() {
	r, err := shm.CreateMemfd("camera", shm.Config{Slots: 4, SlotPayload: 64})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	f, err := r.File() // e.g. exec.Cmd.ExtraFiles = []*os.File{f}: fd 3 in the child
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()

	peer, err := shm.OpenFile(f, "camera")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer peer.Close()
	w, _ := r.NewWriter()
	defer w.Close()
	rd, _ := peer.NewReader(&shm.ReaderOptions{From: shm.Oldest})
	defer rd.Close()
	w.Write([]byte("frame through an fd"))
	frame, _ := rd.TryReadInto(make([]byte, 64))
	fmt.Printf("%s (%d slots)\n", frame.Data, peer.Slots())
	// Output: frame through an fd (4 slots)
}

// A consumer that starts before its producer waits for the ring to be
// created, without polling (OpenReaderContext watches the directory).
func ExampleOpenReaderContext() {
	dir, err := os.MkdirTemp("", "shm-example") // a private segment directory; leave Dir empty for /dev/shm
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	opts := &shm.SegmentOptions{Dir: dir}

	done := make(chan struct{})
	produced := make(chan struct{})
	go func() { // the producer, late; in real life another process
		defer close(produced)
		time.Sleep(50 * time.Millisecond)
		r, err := shm.Create("late", shm.Config{Slots: 8, SlotPayload: 64, Segment: *opts})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer r.Close()
		w, _ := r.NewWriter()
		defer w.Close()
		w.Write([]byte("first"))
		<-done
	}()
	defer func() { close(done); <-produced }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := shm.OpenReaderContext(ctx, "late", opts, &shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		fmt.Println(err) // ctx's error if nobody created the ring in time
		return
	}
	defer rd.Close()
	f, err := rd.Next(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", f.Data)
	rd.Release()
	// Output: first
}
