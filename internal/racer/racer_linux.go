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

	"golang.org/x/sys/unix"
)

// UID is the user the racer runs as (nobody on Debian).
const UID = 65534

// Child drops to uid UID with gid as its only group, prints "ready", then
// calls open as fast as it can until its stdin closes, and prints how many
// calls succeeded. It returns the process exit status.
func Child(gid int, open func() error) int {
	if !Become(gid) {
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

// Become drops this (root) process to uid UID with gid as its only group,
// saying on stderr what failed.
func Become(gid int) bool { return BecomeUser(UID, gid, nil) }

// BecomeUser drops this (root) process to uid and gid with the
// supplementary groups groups, saying on stderr what failed. Tests that
// act as another user (a client, a service user) call it in a child.
func BecomeUser(uid, gid int, groups []int) bool {
	if err := syscall.Setgroups(groups); err != nil {
		fmt.Fprintln(os.Stderr, "setgroups:", err)
		return false
	}
	if err := syscall.Setgid(gid); err != nil {
		fmt.Fprintln(os.Stderr, "setgid:", err)
		return false
	}
	if err := syscall.Setuid(uid); err != nil {
		fmt.Fprintln(os.Stderr, "setuid:", err)
		return false
	}
	return true
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

// OpenPath is an open function for Child: it opens the file at path
// read-only (never following a symlink, never blocking on a FIFO) and
// closes it again.
func OpenPath(path string) func() error {
	return func() error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
}

// Dir returns a new directory, removed when the test ends, that the racer's
// user may search (mode 0755): it must reach the objects created in it.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "edgeipc-race-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
