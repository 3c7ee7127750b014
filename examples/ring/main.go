// Command ring is the shm library in two processes: one produces frames
// into a ring, the other consumes them and prints each frame's sequence,
// latency and loss.
//
//	go run ./examples/ring produce demo        # terminal 1
//	go run ./examples/ring consume demo        # terminal 2
//
// Either may start first. Stop them with Ctrl-C; the ring stays in
// /dev/shm (edgeipc ring rm demo removes it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// The ring both sides agree on. OpenOrCreate refuses a ring of another
// geometry, so a stale one is reported, not misread.
var ringConfig = shm.Config{Slots: 64, SlotPayload: 256}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "ring:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError string

func (u usageError) Error() string { return string(u) }

const usage = "usage: ring produce|consume [-n FRAMES] [-hz RATE] NAME"

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) < 1 {
		return usageError(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("n", 0, "frames to produce or consume (0: until Ctrl-C)")
	hz := fs.Float64("hz", 10, "frames per second (produce)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 || *hz <= 0 {
		return usageError(usage)
	}
	name := fs.Arg(0)
	switch args[0] {
	case "produce":
		return produce(ctx, name, *n, *hz, out)
	case "consume":
		return consume(ctx, name, *n, out)
	}
	return usageError(usage)
}

func produce(ctx context.Context, name string, n int, hz float64, out io.Writer) error {
	r, created, err := shm.OpenOrCreate(name, ringConfig)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := r.NewWriter() // ErrBusy if another live producer holds the ring
	if err != nil {
		return err
	}
	defer w.Close()
	fmt.Fprintf(out, "producing into %s (created: %v), %g frames/s\n", name, created, hz)
	tick := time.NewTicker(time.Duration(float64(time.Second) / hz))
	defer tick.Stop()
	for i := 0; n == 0 || i < n; i++ {
		buf, err := w.Reserve(r.SlotPayload()) // the slot itself: no copy
		if err != nil {
			return err
		}
		p := fmt.Appendf(buf[:0], "sample %d from pid %d", i, os.Getpid()) // fits: 256 bytes
		// A second Reserve before Commit keeps the same slot: this one
		// trims the frame to what was written.
		if _, err := w.Reserve(len(p)); err != nil {
			return err
		}
		if _, err := w.Commit(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func consume(ctx context.Context, name string, n int, out io.Writer) error {
	var rd *shm.Reader
	for {
		var err error
		rd, err = shm.OpenReader(name, nil, &shm.ReaderOptions{From: shm.Oldest})
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		select { // the producer has not created the ring yet
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer rd.Close()
	for i := 0; n == 0 || i < n; i++ {
		f, err := rd.Next(ctx) // sleeps on the ring's futex: no CPU while idle
		if err != nil {
			return err
		}
		lat := time.Duration(shm.Now() - f.Time)
		fmt.Fprintf(out, "seq %d  %q  latency %v  lost %d\n", f.Seq, f.Data, lat, f.Lost)
		if err := rd.Release(); err != nil {
			fmt.Fprintf(out, "seq %d was overwritten while printed: %v\n", f.Seq, err)
		}
	}
	return nil
}
