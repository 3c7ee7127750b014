package sys

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	// Within a tick counts as the same process (time namespaces whose
	// offsets are not whole ticks); two ticks apart is another one.
	if !ProcessAlive(me, start+1) || !ProcessAlive(me, start-1) {
		t.Fatal("a start time one tick off did not match")
	}
	if ProcessAlive(me, start+2) || ProcessAlive(me, start-2) {
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

func TestParseBootOffset(t *testing.T) {
	for in, want := range map[string]uint32{
		"monotonic 0 0\nboottime 0 0\n":                                   0,
		"monotonic           0         0\nboottime      1000         0\n": 100000,
		"boottime 5 5000000\n":                                            500, // 5.005 s: 500.5 ticks, rounded down
		"boottime -2 0\n":                                                 uint32(0xffffffff - 199),
		"boottime -1 500000000\n":                                         uint32(0xffffffff - 49), // -0.5 s
		"boottime -1 999999999\n":                                         uint32(0xffffffff),      // -1 ns: -1 tick
		"":                                                                0,
		"boottime x 0\n":                                                  0,
	} {
		if got := parseBootOffset([]byte(in)); got != want {
			t.Errorf("parseBootOffset(%q) = %d, want %d", in, got, want)
		}
	}
}

// init sets up the child of TestStartTimeAcrossTimeNamespace: the offsets
// of a new time namespace, which the process enters by exec. Namespaces
// belong to threads: unshare, the write to /proc/self/timens_offsets (the
// main thread's) and the exec must all run on the main thread, which only
// init is sure to run on. (In a test function the goroutine can move to
// another thread between them, and the child then ran with no offset.)
func init() {
	if os.Getenv("EDGEIPC_TIMENS_CHILD") != "setup" {
		return
	}
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		fmt.Printf("unshare: %v\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile("/proc/self/timens_offsets", []byte("boottime 1000 5000000\n"), 0); err != nil {
		fmt.Printf("timens_offsets: %v\n", err)
		os.Exit(1)
	}
	os.Setenv("EDGEIPC_TIMENS_CHILD", "1")
	err := unix.Exec(os.Args[0], os.Args, os.Environ())
	fmt.Printf("exec: %v\n", err)
	os.Exit(1)
}

// TestStartTimeAcrossTimeNamespace: the kernel adds the reader's boottime
// offset to the start times in /proc/PID/stat. A holder in a time
// namespace (unshare --time, a CRIU-restored container) stored a start its
// observers outside did not read, and the other way round: each took the
// other's live holders for dead processes whose PID had been reused. The
// child here runs in a time namespace with a boottime offset of 1000.005 s
// (not a whole tick, as CRIU sets them), reads this process's start time
// and its own, and both sides must agree on both processes.
func TestStartTimeAcrossTimeNamespace(t *testing.T) {
	switch os.Getenv("EDGEIPC_TIMENS_CHILD") {
	case "1":
		parent, _ := strconv.Atoi(os.Getenv("EDGEIPC_TIMENS_PARENT"))
		pstart, _ := strconv.ParseUint(os.Getenv("EDGEIPC_TIMENS_PARENT_START"), 10, 32)
		ps, err := ProcStartTime(parent)
		fmt.Printf("offset=%d parent_start=%d parent_alive=%v self_start=%d err=%v\n",
			bootOffsetTicks(), ps, ProcessAlive(parent, uint32(pstart)), SelfStartTime(), err)
		var b [1]byte
		os.Stdin.Read(b[:]) // stay alive until the parent has looked
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("creating a time namespace needs root (CAP_SYS_ADMIN); make test runs as root in CI")
	}
	me := os.Getpid()
	myStart, err := ProcStartTime(me)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestStartTimeAcrossTimeNamespace$")
	child.Env = append(os.Environ(), "EDGEIPC_TIMENS_CHILD=setup", "EDGEIPC_TIMENS_PARENT="+strconv.Itoa(me),
		"EDGEIPC_TIMENS_PARENT_START="+strconv.FormatUint(uint64(myStart), 10))
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v (%q)", err, line)
	}
	var off, parentStart, selfStart uint32
	var parentAlive bool
	var cerr string
	if _, err := fmt.Sscanf(line, "offset=%d parent_start=%d parent_alive=%t self_start=%d err=%s", &off, &parentStart, &parentAlive, &selfStart, &cerr); err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	if off != 100000 {
		t.Fatalf("child's boottime offset: %d ticks, want 100000 (1000.005 s rounded down): the test did not run it in a time namespace", off)
	}
	if d := parentStart - myStart; (d != 0 && d != 1 && d != ^uint32(0)) || !parentAlive {
		t.Errorf("in a time namespace this process's start reads %d (alive: %v), outside %d", parentStart, parentAlive, myStart)
	}
	// The child's start as the child stored it, checked from outside.
	pid := child.Process.Pid
	if !ProcessAlive(pid, selfStart) {
		got, _ := ProcStartTime(pid)
		t.Errorf("the child (in a time namespace) stored start %d; from outside it reads %d: taken for dead", selfStart, got)
	}
}
