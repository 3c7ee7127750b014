package sched

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadSleep returns where thread tid of this process sleeps in the
// kernel (/proc's wchan), once it has slept at the same place three times
// in a row, or "" if it did not within 10 s ("0" where the kernel does not
// say).
func threadSleep(tid int) string {
	dir := "/proc/self/task/" + strconv.Itoa(tid) + "/"
	last, same := "", 0
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		st, err1 := os.ReadFile(dir + "stat")
		wc, err2 := os.ReadFile(dir + "wchan")
		if err1 != nil || err2 != nil {
			return "(unreadable: " + errors.Join(err1, err2).Error() + ")"
		}
		// state is the field after the parenthesised command name
		state := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))[0]
		w := strings.TrimSpace(string(wc))
		if state != "S" || w == "" {
			last, same = "", 0
			continue
		}
		if w == last {
			if same++; same == 2 {
				return w
			}
		} else {
			last, same = w, 0
		}
	}
	return ""
}

// TestRealtimeTickerWaitsInKernel: a goroutine on a real-time thread
// parked in the netpoller while it waited for a tick, and a thread of
// normal priority (the one in epoll_wait, then Go's scheduler) had to run
// to wake it: over 2,000 waits for a 1 ms ticker beside four busy
// processes on this 2-CPU VM a SCHED_FIFO goroutine missed 156 to 180
// ticks that way, and 0 to 6 with the thread asleep in the kernel. Now its thread
// sleeps in ppoll (wchan: a poll function, where it was futex_do_wait,
// a parked Go thread), and contexts, deadlines, Close, Reset, the overrun
// count and zero allocations hold there as in the netpoller.
func TestRealtimeTickerWaitsInKernel(t *testing.T) {
	if err := SetThread(FIFO, 10); errors.Is(err, ErrPermission) {
		t.Skipf("no real-time priority for this test: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	// The test's goroutine keeps this thread (SetThread wired it) and
	// leaves it in the normal policy.
	defer SetThread(Other, 0)
	tid := unix.Gettid()
	tk, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	ctx, cancel := context.WithCancel(context.Background())
	where := make(chan string, 1)
	go func() { // the test's own goroutines are not real-time: look from here
		w := threadSleep(tid)
		cancel()
		where <- w
	}()
	if _, err := tk.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait ended by its context: %v, want context.Canceled", err)
	}
	w := <-where
	if w == "" {
		t.Fatal("the real-time thread did not sleep within 10 s")
	}
	// Where the kernel does not say (wchan 0), the rest is still checked.
	if w != "0" && !strings.Contains(w, "poll") {
		t.Fatalf("the real-time thread waits for its tick in %s, not in ppoll", w)
	}

	if _, err := tk.WaitDeadline(time.Now().Add(20 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("WaitDeadline past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if _, err := tk.Wait(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past its context's deadline: %v, want context.DeadlineExceeded", err)
	}
	dcancel()

	fast, err := NewTicker(2 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	bg := context.Background()
	if _, err := fast.Wait(bg); err != nil {
		t.Fatal(err)
	}
	ticks0, over0 := fast.Stats()
	time.Sleep(20 * time.Millisecond) // about 10 periods
	missed, err := fast.Wait(bg)
	if ticks, over := fast.Stats(); err != nil || missed < 3 || over-over0 != missed || ticks-ticks0 != missed+1 {
		t.Errorf("Wait after sleeping 10 periods: missed %d, %v; stats from %d/%d to %d/%d ticks/overruns", missed, err, ticks0, over0, ticks, over)
	}
	lctx, lcancel := context.WithCancel(bg)
	defer lcancel()
	if n := testing.AllocsPerRun(20, func() {
		if _, err := fast.Wait(lctx); err != nil {
			t.Fatal(err)
		}
		if _, err := fast.WaitDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per Wait and WaitDeadline on a real-time thread, want 0", n)
	}

	// A Reset from another goroutine ends a wait in the kernel at the
	// new schedule's first tick.
	slow, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	reset := make(chan error, 1)
	go func() {
		if w := threadSleep(tid); w != "0" && !strings.Contains(w, "poll") {
			t.Errorf("the real-time thread waits in %q, not in ppoll", w)
		}
		reset <- slow.Reset(time.Millisecond)
	}()
	if _, err := slow.WaitDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Errorf("WaitDeadline on an hour's ticker Reset to 1 ms: %v", err)
	}
	if err := <-reset; err != nil {
		t.Error(err)
	}

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		if w := threadSleep(tid); w != "0" && !strings.Contains(w, "poll") {
			t.Errorf("the real-time thread waits in %q, not in ppoll", w)
		}
		tk.Close()
	}()
	if _, err := tk.Wait(bg); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait ended by Close: %v, want ErrClosed", err)
	}
	<-closed
	if w == "0" {
		t.Skip("all but where the thread sleeps checked: this kernel does not say (wchan 0)")
	}
}
