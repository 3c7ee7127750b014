package control

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/sys"
)

// queueIno returns the inode of the queue that name refers to now.
func queueIno(t *testing.T, name string) uint64 {
	t.Helper()
	fd, err := sys.MqOpen(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestCloseKeepsSuccessorsQueue: a server that was taken over (its name
// unlinked and created again by another runtime) must not unlink the
// successor's queue when it closes, whether or not /dev/mqueue is mounted
// (queues work without the mount; only listing needs it). Before the fix
// the inode check went through /dev/mqueue and, without the mount, Close
// unlinked whatever queue had the name.
func TestCloseKeepsSuccessorsQueue(t *testing.T) {
	name := testQueue(t)
	s, err := NewServer(newFake(), ServerOptions{Queue: name})
	if err != nil {
		t.Fatal(err)
	}
	// What a takeover does: unlink the name and create a new queue.
	if err := mq.Unlink(name); err != nil {
		t.Fatal(err)
	}
	succ, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer succ.Close()
	want := queueIno(t, name)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := queueIno(t, name); got != want {
		t.Fatalf("name refers to inode %d, want the successor's %d", got, want)
	}

	// A server whose queue still has its name removes it on Close.
	name2 := testQueue(t)
	s2, err := NewServer(newFake(), ServerOptions{Queue: name2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if fd, err := sys.MqOpen(name2, unix.O_RDONLY|unix.O_CLOEXEC, 0, nil); err == nil {
		unix.Close(fd)
		t.Fatalf("%s still exists after Close", name2)
	}
}
