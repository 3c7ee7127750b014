package sys

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestProcessAlive(t *testing.T) {
	me := os.Getpid()
	start, err := ProcStartTime(me)
	if err != nil || start == 0 {
		t.Fatalf("ProcStartTime(self) = %d, %v", start, err)
	}
	if !ProcessAlive(me, start) || !ProcessAlive(me, 0) {
		t.Fatal("this process is not alive")
	}
	if ProcessAlive(me, start+1) {
		t.Fatal("a different start time matched (PID reuse would go unnoticed)")
	}
	cmd := exec.Command("sleep", "0")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if ProcessAlive(dead, 0) {
		t.Fatalf("reaped pid %d is alive", dead)
	}

	// /proc mounted with hidepid hides other users' processes (ENOENT or
	// EACCES): a process the kernel still knows is alive, one it does not
	// know is dead.
	for _, errno := range []error{unix.ENOENT, unix.EACCES} {
		readFile = func(string) ([]byte, error) { return nil, errno }
		alive, gone := ProcessAlive(me, start), ProcessAlive(dead, 0)
		readFile = os.ReadFile
		if !alive || gone {
			t.Errorf("hidden /proc (%v): self alive = %v, reaped pid alive = %v", errno, alive, gone)
		}
	}
}

// TestFutexWaitHugeTimeout: a timeout beyond 2^31 s must not wrap into an
// invalid timespec on 32-bit ARM (it sleeps at most a day instead).
func TestFutexWaitHugeTimeout(t *testing.T) {
	var word uint32
	done := make(chan error, 1)
	go func() { done <- FutexWait(&word, 0, 100*365*24*time.Hour) }()
	time.Sleep(50 * time.Millisecond)
	word = 1
	for {
		FutexWake(&word, 1)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("FutexWait with a 100-year timeout: %v", err)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
