package bench

import (
	"context"
	"flag"
	"fmt"
	"time"
)

// childCfg is what the peer process is told on its command line.
type childCfg struct {
	caseName string
	size     int
	dir      string
	name     string // object name (ring prefix, queue prefix, fifo path)
	addr     string // socket address for unix/tcp cases
	iters    int
	duration time.Duration
	timeout  time.Duration
	cpu      int
	deadline time.Time
}

// DefineChildFlags declares the flags of the hidden peer subcommand.
func DefineChildFlags(fs *flag.FlagSet) {
	fs.String("case", "", "case to serve")
	fs.Int("size", 64, "payload size")
	fs.String("dir", "", "segment directory")
	fs.String("name", "", "object name")
	fs.String("addr", "", "socket address")
	fs.Int("iters", 0, "frames to stream (0: use -duration)")
	fs.Duration("duration", DefaultDuration, "how long to stream")
	fs.Duration("timeout", time.Minute, "give up after this long")
	fs.Int("cpu", -1, "CPU to pin to (-1: none)")
}

// RunChild is the peer side of a case, started by Run through the hidden
// "bench-child" subcommand with flags from DefineChildFlags.
func RunChild(ctx context.Context, fs *flag.FlagSet) error {
	get := func(n string) flag.Getter { return fs.Lookup(n).Value.(flag.Getter) }
	c := &childCfg{
		caseName: get("case").Get().(string),
		size:     get("size").Get().(int),
		dir:      get("dir").Get().(string),
		name:     get("name").Get().(string),
		addr:     get("addr").Get().(string),
		iters:    get("iters").Get().(int),
		duration: get("duration").Get().(time.Duration),
		timeout:  get("timeout").Get().(time.Duration),
		cpu:      get("cpu").Get().(int),
	}
	c.deadline = time.Now().Add(c.timeout)
	def := findCase(c.caseName)
	if def == nil || def.child == nil {
		return fmt.Errorf("bench-child: no peer for case %q", c.caseName)
	}
	if c.cpu >= 0 {
		if err := pinProcess(c.cpu); err != nil {
			return fmt.Errorf("bench-child: pin to CPU %d: %w", c.cpu, err)
		}
	}
	ctx, cancel := context.WithDeadline(ctx, c.deadline)
	defer cancel()
	if err := def.child(ctx, c); err != nil {
		return fmt.Errorf("bench-child %s: %w", c.caseName, err)
	}
	return nil
}
