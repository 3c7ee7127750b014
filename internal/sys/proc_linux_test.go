package sys

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/testenv"
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

// procState returns the state letter of pid's main thread, or 0.
func procState(pid int) byte {
	b, err := os.ReadFile(statPath(pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// TestProcessAliveMainThreadExited: a C holder (a ring writer or reader
// written from docs/abi.md) whose main thread calls pthread_exit while
// its other threads go on shows state Z in /proc, like a zombie; it was
// taken for dead, so that another process could take its writer lease or
// evict it as a reader while it still used the ring. A real zombie (a
// process that has exited, not reaped yet) must still count as dead.
func TestProcessAliveMainThreadExited(t *testing.T) {
	cc := testenv.Tool(t, "cc", "install gcc to test a holder whose main thread exits")
	dir := t.TempDir()
	src := filepath.Join(dir, "mainexit.c")
	prog := filepath.Join(dir, "mainexit")
	if err := os.WriteFile(src, []byte(`#include <pthread.h>
#include <unistd.h>
static void *worker(void *a) { char c; (void)a; while (read(0, &c, 1) > 0) {} return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, worker, 0); pthread_exit(0); }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-o", prog, src, "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}
	cmd := exec.Command(prog)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	pid := cmd.Process.Pid
	start, err := ProcStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	waitState := func(want byte, what string) {
		t.Helper()
		for i := 0; procState(pid) != want; i++ {
			if i == 1000 {
				t.Fatalf("pid %d: state %q after 10 s, want %q (%s)", pid, procState(pid), want, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitState('Z', "its main thread exits")
	if !ProcessAlive(pid, start) {
		t.Errorf("pid %d, whose main thread exited and whose worker thread runs, counts as dead", pid)
	}
	// The worker ends at EOF: the process exits, a zombie until reaped.
	stdin.Close()
	for i := 0; ProcessAlive(pid, start); i++ {
		if i == 1000 {
			t.Fatalf("pid %d: still alive 10 s after its last thread was told to exit (state %q)", pid, procState(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := procState(pid); s != 'Z' {
		t.Errorf("pid %d: state %q before it is reaped, want Z: the test did not check a zombie", pid, s)
	}
}
