//go:build linux

package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/edgeipc/edgeipc/runtime"
	"github.com/edgeipc/edgeipc/shm"
)

// The runtime embedded in a program: one ring fed by a synthetic source,
// read back as any other process would read it. The segments go to a
// private directory and the control plane is off, so that the example
// needs nothing but itself; a real program reads its file with
// runtime.Load (docs/config.md) and stops the runtime by cancelling ctx.
func Example() {
	dir, err := os.MkdirTemp("", "edgeipc-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	cfg, err := runtime.Parse("example.toml", []byte(`
[runtime]
shm_dir = "`+dir+`"
stats_interval = "0s"

[control]
enabled = false

[rings.imu]
slots = 64
slot_payload = 64

[[sources]]
name = "imu"
kind = "synthetic"
ring = "imu"
rate_hz = 100
size = 16
type = 1
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rt, err := runtime.New(cfg, runtime.Options{
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		IgnoreSignals: true, // this program's signals stay its own
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()

	// A reader, here or in another process, waits for the ring to appear.
	wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd *shm.Reader
	for rd == nil && wait.Err() == nil {
		rd, err = shm.OpenReader("imu", &shm.SegmentOptions{Dir: dir}, nil)
		if errors.Is(err, os.ErrNotExist) {
			time.Sleep(10 * time.Millisecond)
		} else if err != nil {
			fmt.Println(err)
			break
		}
	}
	if rd != nil {
		f, err := rd.Next(wait)
		if err == nil {
			fmt.Printf("frame of type %d, %d bytes\n", f.Type, len(f.Data))
		} else {
			fmt.Println(err)
		}
		rd.Close()
	}

	stop()
	fmt.Println("runtime stopped:", <-done)
	// Output:
	// frame of type 1, 16 bytes
	// runtime stopped: <nil>
}
