package control

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/sys"
)

// probeLock does what a probe (mq.Locked: a client or a starting runtime
// testing whether the queue is served) does, but holds the queue's lock
// for hold before it lets go, as a probe preempted on a busy machine
// does. It returns once the lock is taken.
func probeLock(t *testing.T, name string, hold time.Duration) {
	t.Helper()
	fd, err := sys.MqOpen(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		t.Fatalf("probe: flock: %v", err)
	}
	released := make(chan struct{})
	time.AfterFunc(hold, func() { unix.Close(fd); close(released) })
	t.Cleanup(func() { <-released })
}

// TestLockOwnWaitsOutProbe: a runtime takes its new queue's lock even if
// a probe holds it at that moment (a client, or a second runtime, that
// opened the queue as soon as it appeared). Before the fix NewServer tried
// once, logged "cannot lock" and served without the lock for its whole
// life: a runtime started later took its queue over while it was busy
// with a long stop.
func TestLockOwnWaitsOutProbe(t *testing.T) {
	name := testQueue(t)
	q, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	probeLock(t, name, 50*time.Millisecond)
	if ok, err := lockOwn(q); err != nil || !ok {
		t.Fatalf("lockOwn with a probe holding the lock for 50ms: %v, %v", ok, err)
	}
	if locked, err := mq.Locked(name); err != nil || !locked {
		t.Fatalf("the queue's lock is not held after lockOwn: %v, %v", locked, err)
	}
}

// TestTakeoverWhileProbed: a stale queue (its runtime died) whose lock a
// probe holds for a moment is still taken over. Before the fix the
// starting runtime tested the lock once and refused to start ("another
// runtime is serving ... it holds the queue's lock").
func TestTakeoverWhileProbed(t *testing.T) {
	name := testQueue(t)
	stale, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	stale.Close()
	probeLock(t, name, 50*time.Millisecond)
	s, err := NewServer(newFake(), ServerOptions{Queue: name, TakeoverTimeout: 200 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatalf("NewServer on a stale queue a probe held for 50ms: %v", err)
	}
	defer s.Close()
	if locked, err := mq.Locked(name); err != nil || !locked {
		t.Fatalf("the new queue's lock is not held: %v, %v", locked, err)
	}
}
