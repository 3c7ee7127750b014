package cli

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRunConfigFIFOInterrupt: `edgeipc run -c F` where F is a FIFO that
// nobody writes blocks in open(2); Ctrl-C (which ends the command's
// context) did not stop it, and only SIGKILL or SIGQUIT did. It now exits
// with 130 as for any interrupt.
func TestRunConfigFIFOInterrupt(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "config.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The background open stays blocked once the command has returned:
	// open the write end at the end so that it finishes.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _, _ := runRunCLI(t, ctx, "run", "-c", fifo)
		done <- code
	}()
	time.Sleep(100 * time.Millisecond) // into the open, most likely: the test holds either way
	cancel()
	select {
	case code := <-done:
		if code != ExitInterrupted {
			t.Errorf("run -c FIFO, interrupted: exit %d, want %d", code, ExitInterrupted)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run -c on a FIFO nobody writes did not stop 10 s after its interrupt")
	}
}
