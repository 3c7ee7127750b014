package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain makes the test binary the producer when asked: the test runs
// the two sides as two processes, as the README does in two terminals.
func TestMain(m *testing.M) {
	if args := os.Getenv("EXAMPLE_RING_ARGS"); args != "" {
		if err := run(context.Background(), strings.Fields(args), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestProduceConsume(t *testing.T) {
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	name := fmt.Sprintf("demo-%d", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The consumer starts first and waits for the ring to appear.
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"consume", "-n", "20", name}, &out) }()

	producer := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	producer.Env = append(os.Environ(), "EXAMPLE_RING_ARGS=produce -n 20 -hz 200 "+name)
	producer.Stderr = os.Stderr
	if err := producer.Run(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 20 {
		t.Fatalf("consumer printed %d lines, want 20:\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf("seq %d  \"sample %d from pid %d\"", i, i, producer.Process.Pid)) || !strings.HasSuffix(l, "lost 0") {
			t.Fatalf("line %d: %q", i, l)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"produce"}, {"fly", "x"}, {"produce", "-hz", "0", "x"}} {
		if _, ok := run(context.Background(), args, &bytes.Buffer{}).(usageError); !ok {
			t.Errorf("%q: want a usage error", args)
		}
	}
}
