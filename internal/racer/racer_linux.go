// Package racer is test support for the "no window" tests of named objects
// (segments, message queues, FIFOs): a child process of another user races
// every creation of an object and counts how often it could open it.
//
// The test binary re-executes itself in racer mode (each package has its
// own child mechanism) and calls Child there; the test starts that child
// with Start and ends it with the returned stop function.
package racer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// UID is the user the racer runs as (nobody on Debian).
const UID = 65534

// Child drops to uid UID with gid as its only group, prints "ready", then
// calls open as fast as it can until its stdin closes, and prints how many
// calls succeeded. It returns the process exit status.
func Child(gid int, open func() error) int {
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintln(os.Stderr, "setgroups:", err)
		return 3
	}
	if err := syscall.Setgid(gid); err != nil {
		fmt.Fprintln(os.Stderr, "setgid:", err)
		return 3
	}
	if err := syscall.Setuid(UID); err != nil {
		fmt.Fprintln(os.Stderr, "setuid:", err)
		return 3
	}
	var stop atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	fmt.Println("ready")
	got := 0
	for !stop.Load() {
		if open() == nil {
			got++
		}
	}
	fmt.Println(got)
	return 0
}

// Start starts cmd, a test binary that will call Child, and waits until it
// races. The returned function stops it and returns how many of its opens
// succeeded.
func Start(t testing.TB, cmd *exec.Cmd) (stop func() int) {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	rd := bufio.NewReader(out)
	if l, err := rd.ReadString('\n'); l != "ready\n" {
		t.Fatalf("racer: %q %v", l, err)
	}
	return func() int {
		t.Helper()
		in.Close()
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("racer: %v", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil {
			t.Fatalf("racer printed %q", l)
		}
		return n
	}
}
