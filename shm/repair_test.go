//go:build linux

package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() { children["sem-waiter"] = childSemWaiter }

// childSemWaiter waits on the semaphore EDGEIPC_SEM until it is killed.
func childSemWaiter() int {
	s, err := OpenSemaphore(os.Getenv("EDGEIPC_SEM"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer s.Close()
	if err := s.Wait(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child wait:", err)
		return 1
	}
	return 0
}

// TestSemaphoreRepairsDeadWaiterCount: a waiter killed while asleep leaves
// its count in the waiter word, and every Post would then make a wake
// system call for nobody. Once Posts have woken nobody for staleCheckEvery
// (and at least staleWakes times) Post takes the count back, and a live
// waiter is still woken by the next Post.
func TestSemaphoreRepairsDeadWaiterCount(t *testing.T) {
	testDir(t)
	s, err := CreateSemaphore("repair", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := child(t, "sem-waiter", "EDGEIPC_SEM=repair")
	startChild(t, cmd)
	waitUntil(t, "the child to wait", func() bool { return atomic.LoadUint32(&s.h.Waiters) == 1 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if n := atomic.LoadUint32(&s.h.Waiters); n != 1 {
		t.Fatalf("waiters = %d after the waiter was killed, want the 1 it left", n)
	}
	start := time.Now()
	for atomic.LoadUint32(&s.h.Waiters) != 0 {
		if time.Since(start) > scale(10*time.Second) {
			t.Fatalf("waiters still %d after wakes reached nobody for %v", s.h.Waiters, time.Since(start))
		}
		if err := s.Post(); err != nil {
			t.Fatal(err)
		}
		if err := s.TryWait(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait(context.Background()) }()
	waitUntil(t, "the waiter sleeps", func() bool { return atomic.LoadUint32(&s.h.Waiters) == 1 })
	s.Post()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(scale(5 * time.Second)):
		t.Fatal("a live waiter was not woken after the repair")
	}
	if n := atomic.LoadUint32(&s.h.Waiters); n != 0 {
		t.Fatalf("waiters = %d after the waiter left", n)
	}
}

// TestEventfdOneWaiter: an Eventfd has one read deadline and a signal
// wakes one waiter, so a second concurrent waiter, or a second Reader with
// the same Notifier, is refused instead of stealing or losing wake-ups.
func TestEventfdOneWaiter(t *testing.T) {
	testDir(t)
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	done := make(chan error, 1)
	go func() { done <- ev.WaitDeadline(time.Now().Add(scale(10 * time.Second))) }()
	time.Sleep(20 * time.Millisecond)
	if err := ev.WaitDeadline(time.Now().Add(time.Second)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second concurrent Wait = %v, want ErrInvalid", err)
	}
	ev.Signal()
	if err := <-done; err != nil {
		t.Fatalf("first waiter: %v", err)
	}

	r := mustCreate(t, "onenotifier", Config{Slots: 4, SlotPayload: 64})
	a, err := r.NewReader(&ReaderOptions{Notifier: ev})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.NewReader(&ReaderOptions{Notifier: ev}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second Reader with the same Notifier: %v, want ErrInvalid", err)
	}
	a.Close()
	b, err := r.NewReader(&ReaderOptions{Notifier: ev})
	if err != nil {
		t.Fatalf("Notifier free again after Close: %v", err)
	}
	b.Close()
}

// TestEventfdTryWaitBesideWait: TryWait from other goroutines, while one
// waits, shares no buffer with the waiter (under -race this reported a
// data race on the eventfd's read buffer).
func TestEventfdTryWaitBesideWait(t *testing.T) {
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ev.Signal()
				ev.TryWait()
			}
		}()
	}
	for i := 0; i < 500; i++ {
		if err := ev.WaitDeadline(time.Now().Add(time.Millisecond)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestEventfdFromFileRefusesOtherFiles(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EventfdFromFile(f); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EventfdFromFile(/dev/null) = %v, want ErrInvalid", err)
	}
	ev, _ := NewEventfd()
	defer ev.Close()
	g, _ := ev.File()
	ev2, err := EventfdFromFile(g)
	if err != nil {
		t.Fatalf("EventfdFromFile of a real eventfd: %v", err)
	}
	ev2.Close()
}

// TestEventfdFromFileRefusalLeavesFlags: a refused descriptor keeps its
// file status flags. Before, EventfdFromFile set O_NONBLOCK first and then
// refused it: a pipe handed to it by mistake stayed non-blocking for its
// other holders, whose blocking reads then failed with EAGAIN.
func TestEventfdFromFileRefusalLeavesFlags(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	dup, err := unix.FcntlInt(uintptr(p[0]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EventfdFromFile(os.NewFile(uintptr(dup), "pipe")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EventfdFromFile(pipe) = %v, want ErrInvalid", err)
	}
	fl, err := unix.FcntlInt(uintptr(p[0]), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("the refused pipe's description is O_NONBLOCK now (flags %#o)", fl)
	}
}

// TestEventfdFromFileWithoutProc: without /proc (a bare container) the kind
// of a descriptor is found from the kernel: other files and other
// anonymous inodes are refused, an eventfd is accepted and keeps its count.
func TestEventfdFromFileWithoutProc(t *testing.T) {
	old := fdLinkDir
	fdLinkDir = "/nonexistent-proc/"
	defer func() { fdLinkDir = old }()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if _, err := EventfdFromFile(pw); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EventfdFromFile(pipe) without /proc = %v, want ErrInvalid", err)
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EventfdFromFile(os.NewFile(uintptr(tfd), "timerfd")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EventfdFromFile(timerfd) without /proc = %v, want ErrInvalid", err)
	}
	ev, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	ev.Signal()
	g, err := ev.File()
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := EventfdFromFile(g)
	if err != nil {
		t.Fatalf("EventfdFromFile of a real eventfd without /proc: %v", err)
	}
	defer ev2.Close()
	var buf [8]byte
	if n, err := unix.Read(int(ev2.f.Fd()), buf[:]); err != nil || n != 8 || buf[0] != 1 {
		t.Fatalf("the eventfd's count after the check: %v %d %v, want 1", buf, n, err)
	}
}
