//go:build linux

package mq

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/racer"
	"github.com/edgeipc/edgeipc/internal/sys"
)

// childOpenRacer races opens of queue name as another user (racer.Child)
// whose only group is $RACE_GID.
func childOpenRacer(name string) int {
	gid, _ := strconv.Atoi(os.Getenv("RACE_GID"))
	return racer.Child(gid, func() error {
		fd, err := sys.MqOpen(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
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
	stop := racer.Start(t, cmd)
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
	if n := stop(); n != 0 {
		t.Fatalf("a process outside group 4242 opened the queue %d times during 1000 creations", n)
	}
}
