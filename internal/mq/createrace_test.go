//go:build linux

package mq

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

	"github.com/edgeipc/edgeipc/internal/sys"
)

// childOpenRacer drops to uid 65534 with the single group $RACE_GID, then
// opens queue name read-only as fast as it can until stdin closes, and
// prints how many opens succeeded.
func childOpenRacer(name string) int {
	gid, _ := strconv.Atoi(os.Getenv("RACE_GID"))
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintln(os.Stderr, "setgroups:", err)
		return 3
	}
	if err := syscall.Setgid(gid); err != nil {
		fmt.Fprintln(os.Stderr, "setgid:", err)
		return 3
	}
	if err := syscall.Setuid(65534); err != nil {
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
		if fd, err := sys.MqOpen(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil); err == nil {
			unix.Close(fd)
			got++
		}
	}
	fmt.Println(got)
	return 0
}

// TestCreateNoGroupWindow: a queue created 0660 for a group is never open
// to the creator's own primary group, not even between mq_open and the
// fchown to the configured group. A process of another user whose only
// group is the creator's (root's gid 0 here) races every creation; before
// the fix it won and kept a descriptor to a queue it was never meant to
// read (for the control queue: other users' requests).
func TestCreateNoGroupWindow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the racer as another uid")
	}
	old := syscall.Umask(0o002) // a common umask: 0660 is not narrowed at creation
	defer syscall.Umask(old)
	name := qname(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=open-racer", childNameEnv+"="+name, "RACE_GID="+strconv.Itoa(os.Getegid()))
	cmd.Stderr = os.Stderr
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
	defer cmd.Wait()
	defer in.Close()
	rd := bufio.NewReader(out)
	if l, err := rd.ReadString('\n'); l != "ready\n" {
		t.Fatalf("racer: %q %v", l, err)
	}
	for i := 0; i < 1000; i++ {
		q, err := Create(name, Options{MaxMsg: 2, MsgSize: 64, Mode: 0o660, Group: 4242, Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		q.Close()
		if err := Unlink(name); err != nil {
			t.Fatal(err)
		}
	}
	in.Close()
	l, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("racer: %v", err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(l)); n != 0 {
		t.Fatalf("a process outside group 4242 opened the queue %d times during 1000 creations", n)
	}
}
