//go:build linux

package sched_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/edgeipc/edgeipc/sched"
)

// A sensor loop at 100 Hz. The Ticker keeps the period without drift and
// tells the loop how many periods it missed while it was busy.
func ExampleTicker() {
	t, err := sched.NewTicker(10 * time.Millisecond)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	samples := 0
	for samples < 5 {
		missed, err := t.Wait(ctx) // parks in the netpoller until the next period
		if err != nil {
			fmt.Println(err)
			return
		}
		if missed > 0 {
			log.Printf("sensor loop fell %d periods behind", missed)
		}
		samples++ // read the sensor and publish the sample here
	}
	fmt.Println(samples, "samples")
	// Output: 5 samples
}

// A sensor loop that polls fast while its sensor is busy and slowly while
// it is idle. Reset may come from another goroutine (a configuration
// reload) while the loop waits.
func ExampleTicker_Reset() {
	t, err := sched.NewTicker(10 * time.Millisecond)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	// The sensor went idle: poll it once a second, starting a second
	// from now.
	if err := t.Reset(time.Second); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("polling every", t.Period())
	// Output: polling every 1s
}

// Real-time priority for the goroutine that runs the sensor loop, and the
// normal policy where the process may not have it (no CAP_SYS_NICE, or an
// RLIMIT_RTPRIO below 50). SetThread wires the goroutine to its thread for
// good, so call it from the goroutine that runs the loop.
func ExampleSetThread() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sched.SetThread(sched.FIFO, 50); errors.Is(err, sched.ErrPermission) {
			log.Printf("sensor loop runs without real-time priority: %v", err) // the error names what is missing
		} else if err != nil {
			log.Print(err)
			return
		}
		// the sensor loop: wait for the period, read, publish
	}()
	<-done
}
