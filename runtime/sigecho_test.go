//go:build linux

package runtime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// edgeipc run ends Run's context on the same SIGINT or SIGTERM that Run's
// own handler receives (signal.NotifyContext), and the two deliveries come
// in either order. When the context ends first, the shutdown names the
// signal from the context's cause, and the runtime's own delivery, which
// follows, is not logged as a second signal. Before, it logged "SIGINT
// ignored: already shutting down" for a single Ctrl-C (TestRunSIGINT in
// internal/cli failed so, now and then).
//
// The SIGINT goes to a child process (this test, re-executed), so that it
// can never end the test binary that runs every other test: a race run
// of CI once died of SIGINT while this test ran, which no sequence of
// this process's registrations explains; in a child, such a death fails
// this test alone, and says so.
func TestShutdownSignalAfterContext(t *testing.T) {
	if os.Getenv("EDGEIPC_TEST_SIGECHO") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestShutdownSignalAfterContext$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "EDGEIPC_TEST_SIGECHO=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestShutdownSignalAfterContext") {
			t.Fatalf("child: %v (%v)\n%s", err, cmd.ProcessState, out)
		}
		return
	}
	// While this test runs, a SIGINT to the test process must never take
	// Go's default action (exit), whatever the runtime has registered.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGINT)
	defer signal.Stop(guard)

	e := newEnv(t)
	// A child that takes a while to stop keeps the shutdown going while
	// the signal arrives.
	script := writeScript(t, e.dir, "slow.sh", "trap 'sleep 1; exit 0' TERM\nwhile :; do sleep 0.1; done\n")
	cfg, err := Parse("test.toml", []byte(execConfig("slow", script)+"stop_timeout = \"30s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	logb := &syncBuf{}
	log, _ := NewLogger(logb, "text")
	rt, err := New(cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	logb.waitFor(t, "edgeipc runtime ready", 1)
	eventually(t, "source running", func() bool { return rt.sourceStat(t, "slow").State == StateRunning })
	cancel(errors.New("interrupt signal received")) // as signal.NotifyContext does
	logb.waitFor(t, "shutting down (", 1)
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatalf("runtime did not stop; log:\n%s", logb.String())
	}
	if strings.Contains(logb.String(), "ignored: already shutting down") {
		t.Fatalf("the signal that ended the context was logged as a second one:\n%s", logb.String())
	}
	if !strings.Contains(logb.String(), "shutting down (interrupt signal received)") {
		t.Fatalf("the shutdown does not name the context's cause:\n%s", logb.String())
	}
}
