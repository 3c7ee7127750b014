//go:build linux

package control_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/edgeipc/edgeipc/runtime"
	"github.com/edgeipc/edgeipc/runtime/control"
)

// A program that asks a runtime about its rings, as `edgeipc ctl rings`
// does. The runtime is started here, with a control queue and a segment
// directory of its own, so that the example needs nothing but itself; a
// real client dials the queue of the runtime already running (Dial("")
// for $EDGEIPC_CTL_QUEUE or edgeipc.ctl).
func ExampleDial() {
	dir, err := os.MkdirTemp("", "edgeipc-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	queue := fmt.Sprintf("edgeipc.example.%d", os.Getpid())
	cfg, err := runtime.Parse("example.toml", []byte(`
[runtime]
shm_dir = "`+dir+`"
stats_interval = "0s"

[control]
queue = "`+queue+`"

[rings.imu]
slots = 64
slot_payload = 64
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rt, err := runtime.New(cfg, runtime.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), IgnoreSignals: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() { stop(); <-done }()

	// The client: Dial fails with ErrNoServer until a runtime serves the queue.
	wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var c *control.Client
	for c == nil && wait.Err() == nil {
		c, err = control.Dial(queue)
		if errors.Is(err, control.ErrNoServer) {
			time.Sleep(10 * time.Millisecond)
		} else if err != nil {
			fmt.Println(err)
			return
		}
	}
	if c == nil {
		fmt.Println("no runtime:", err)
		return
	}
	defer c.Close()

	// The runtime serves its queue before it has created its rings (a
	// second runtime must fail first): ask until they are there.
	var reply *control.Reply
	for {
		reply, err = c.Call(wait, "rings")
		if err != nil { // nothing answered (ErrNoServer), or the queue failed
			fmt.Println(err)
			return
		}
		if len(reply.Rings) > 0 || wait.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, r := range reply.Rings {
		fmt.Printf("ring %s: %d slots of %d bytes, %s\n", r.Name, r.Slots, r.SlotPayload, r.Policy)
	}
	// A refusal is a reply, not a call error: Reply.Err says why.
	reply, err = c.Call(wait, "restart", "no-such-source")
	if err == nil {
		err = reply.Err()
	}
	fmt.Println("restart no-such-source: not found:", errors.Is(err, control.ErrNotFound))
	// Output:
	// ring imu: 64 slots of 64 bytes, overwrite
	// restart no-such-source: not found: true
}
