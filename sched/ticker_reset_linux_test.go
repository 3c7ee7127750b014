package sched

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// timerOf returns how the ticker's timerfd is armed: its interval and the
// time left until its next expiration.
func timerOf(t *testing.T, tk *Ticker) (interval, next time.Duration) {
	t.Helper()
	var cur unix.ItimerSpec
	var err error
	if cerr := tk.rc.Control(func(fd uintptr) { err = unix.TimerfdGettime(int(fd), &cur) }); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(cur.Interval.Nano()), time.Duration(cur.Value.Nano())
}

// waitParked returns once a goroutine waits in a Ticker's Wait in the
// netpoller (its stack says "IO wait"), or fails after 10 s.
func waitParked(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, "sched.(*Ticker).Wait") {
				return
			}
		}
	}
	t.Fatal("no goroutine parked in Ticker.Wait within 10 s")
}

// TestTickerReset: Reset changes the period and starts the schedule again
// one new period from now, as time.Ticker.Reset does; it refuses what
// NewTicker refuses and leaves the ticker as it was then; ticks due and
// not taken are dropped and counted as overruns, and Stats goes on from
// where it was; and it allocates nothing.
func TestTickerReset(t *testing.T) {
	tk, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	bad := []time.Duration{0, -time.Second}
	if strconv.IntSize == 32 {
		bad = append(bad, (1<<32+5)*time.Second) // cut to 5 s by a 32-bit timespec
	}
	for _, p := range bad {
		if err := tk.Reset(p); err == nil || !strings.Contains(err.Error(), "period") {
			t.Errorf("Reset(%v) = %v, want an error about the period, as NewTicker's", p, err)
		}
		if _, err := NewTicker(p); err == nil {
			t.Errorf("NewTicker(%v) accepted what Reset refuses", p)
		}
		if got := tk.Period(); got != time.Hour {
			t.Errorf("Period %v after Reset(%v) failed, want 1h as before", got, p)
		}
		if iv, _ := timerOf(t, tk); iv != time.Hour {
			t.Errorf("timer interval %v after Reset(%v) failed, want 1h as before", iv, p)
		}
	}

	// The next tick is one new period after Reset.
	const period = 50 * time.Millisecond
	start := time.Now()
	if err := tk.Reset(period); err != nil {
		t.Fatal(err)
	}
	iv, next := timerOf(t, tk)
	since := time.Since(start)
	if iv != period || next > period || next < period-since {
		t.Fatalf("after Reset(%v) the timer has interval %v and its next tick in %v, want %v and within %v of %v", period, iv, next, period, since, period)
	}
	if got := tk.Period(); got != period {
		t.Fatalf("Period %v after Reset(%v)", got, period)
	}
	if _, err := tk.WaitDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("WaitDeadline for the first tick after Reset(%v): %v", period, err)
	}

	// Ticks due when Reset comes are dropped, and counted as ticks and
	// overruns; the ticks waits returned stay as they were.
	fast, err := NewTicker(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	if _, err := fast.WaitDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	ticks0, over0 := fast.Stats()
	time.Sleep(20 * time.Millisecond) // about 20 periods due
	if err := fast.Reset(time.Hour); err != nil {
		t.Fatal(err)
	}
	ticks1, over1 := fast.Stats()
	if ticks1-ticks0 < 10 || ticks1-ticks0 != over1-over0 {
		t.Fatalf("Stats went from %d ticks, %d overruns to %d, %d over a Reset 20 periods later; want the due ticks counted as ticks and overruns, at least 10", ticks0, over0, ticks1, over1)
	}
	if _, err := fast.TryWait(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryWait after Reset(1h) dropped the due ticks: %v, want ErrWouldBlock", err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := fast.Reset(time.Hour); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per Reset, want 0", n)
	}

	fast.Close()
	if err := fast.Reset(time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Errorf("Reset after Close: %v, want ErrClosed", err)
	}
}

// TestTickerResetBesideWait: a Reset from another goroutine while a Wait is
// parked on an hour's tick makes the Wait return at the new schedule's
// first tick; Period, Stats and Reset from other goroutines while the
// ticker's goroutine waits are no data race (go test -race).
func TestTickerResetBesideWait(t *testing.T) {
	tk, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	done := make(chan error, 1)
	go func() { _, err := tk.Wait(context.Background()); done <- err }()
	waitParked(t)
	if err := tk.Reset(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait ended by a Reset to 1 ms: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait still blocked 10 s after a Reset to 1 ms")
	}

	const waits = 50
	go func() {
		for i := 0; i < waits; i++ {
			if _, err := tk.WaitDeadline(time.Now().Add(10 * time.Second)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := 100 * time.Microsecond; ; p = 300*time.Microsecond - p { // 100 µs, 200 µs, 100 µs, ...
				select {
				case <-stop:
					return
				default:
				}
				if err := tk.Reset(p); err != nil {
					t.Error(err)
					return
				}
				if got := tk.Period(); got != 100*time.Microsecond && got != 200*time.Microsecond {
					t.Errorf("Period %v, want 100 µs or 200 µs", got)
				}
				if ticks, overruns := tk.Stats(); overruns > ticks {
					t.Errorf("Stats: %d overruns of %d ticks", overruns, ticks)
				}
				time.Sleep(2 * time.Millisecond) // ticks fall due between Resets
			}
		}()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WaitDeadline beside Resets: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("50 waits for ticks of 100-200 µs beside Resets still not done after 30 s")
	}
	close(stop)
	wg.Wait()
	if ticks, overruns := tk.Stats(); ticks-overruns != waits+1 {
		t.Errorf("Stats: %d ticks, %d overruns after %d waits returned a tick, want ticks-overruns = %d", ticks, overruns, waits+1, waits+1)
	}
}
