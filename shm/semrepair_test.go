//go:build linux

package shm

import (
	"context"
	"testing"
	"time"
)

// TestSemaphoreRepairSparesLiveWaiters: in a healthy process (nobody
// died), a burst of Posts whose units another consumer takes while a
// waiter is between counting itself and entering the kernel wakes nobody
// 64 times in a row. Post took that for a dead waiter's count and reset
// the waiter word, and the live waiter then slept uncounted: later Posts
// made no wake, and it slept until its sleep bound (10 s) with units
// waiting. Under load (three consumers, one producer) that stalled a
// healthy semaphore every few seconds. A run of idle wakes must last
// staleCheckEvery before it counts as stale, and a repair never takes the
// counts of this process's own waiters.
func TestSemaphoreRepairSparesLiveWaiters(t *testing.T) {
	testDir(t)
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(time.Hour)) // only a wake may end the sleep
	defer func() { testHookBeforeFutexWait = nil }()
	s, err := CreateSemaphore("spare", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	burst := make(chan struct{})
	testHookBeforeFutexWait = func() {
		// The waiter is counted and about to sleep: a burst of posts,
		// each unit taken at once by another consumer.
		testHookBeforeFutexWait = nil
		for i := 0; i < 2*staleWakes; i++ {
			if err := s.Post(); err != nil {
				t.Error(err)
			}
			if err := s.TryWait(); err != nil {
				t.Error(err)
			}
		}
		close(burst)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Wait(ctx) }()
	<-burst
	waitUntil(t, "the waiter to sleep", func() bool { return s.Value() == 0 })
	time.Sleep(10 * time.Millisecond) // into the kernel
	if err := s.Post(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(scale(5 * time.Second)):
		t.Fatalf("a live waiter was not woken by Post (waiters word %d: its count was reset as stale)", s.h.Waiters)
	}
}

// TestSemaphoreCloseWaitsForSlowWaiter: Close wakes this process's waiters
// and waits for them to leave before it unmaps the semaphore. It gave up
// after 200 ms, and a waiter that had not reached the kernel by then (a
// goroutine not run for that long: a loaded board, qemu) went to sleep on
// the unmapped word, where no wake reaches it, and returned ErrClosed only
// at its sleep bound (10 s); a unit it had taken and gave back on its way
// out went to the unmapped word, lost to the other processes.
func TestSemaphoreCloseWaitsForSlowWaiter(t *testing.T) {
	testDir(t)
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(time.Hour))
	defer func() { testHookBeforeFutexWait = nil }()
	s, err := CreateSemaphore("slowclose", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	closing := make(chan struct{})
	testHookBeforeFutexWait = func() {
		testHookBeforeFutexWait = nil
		close(closing)
		time.Sleep(500 * time.Millisecond) // not run while Close wakes
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait(context.Background()) }()
	<-closing
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-done:
		if err != ErrClosed {
			t.Fatalf("Wait = %v, want ErrClosed", err)
		}
	case <-time.After(scale(10 * time.Second)):
		t.Fatal("a waiter that reached the kernel after Close began was never woken")
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
