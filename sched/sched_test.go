//go:build linux

package sched

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

func TestAffinityRoundTrip(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := Affinity()
	if err != nil || len(orig) == 0 {
		t.Fatalf("Affinity: %v %v", orig, err)
	}
	defer SetAffinity(orig...)
	if err := SetAffinity(orig[0]); err != nil {
		t.Fatal(err)
	}
	got, _ := Affinity()
	if len(got) != 1 || got[0] != orig[0] {
		t.Fatalf("affinity %v, want [%d]", got, orig[0])
	}
	if err := SetAffinity(); err == nil {
		t.Fatal("empty CPU list accepted")
	}
}

func TestRealtimePolicy(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := SetThread(FIFO, 0); err == nil {
		t.Fatal("FIFO priority 0 accepted")
	}
	if err := SetThread(Other, 5); err == nil {
		t.Fatal("priority for SCHED_OTHER accepted")
	}
	err := SetThread(FIFO, 10)
	// Root is not enough (containers drop CAP_SYS_NICE from root); the
	// capability or an RLIMIT_RTPRIO of 10 is.
	capable, cerr := sys.HasCapability(unix.CAP_SYS_NICE)
	if cerr != nil {
		t.Fatal(cerr)
	}
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_RTPRIO, &rl)
	if !capable && rl.Cur < 10 {
		if !errors.Is(err, ErrPermission) {
			t.Fatalf("unprivileged FIFO: %v, want ErrPermission naming CAP_SYS_NICE", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("FIFO with CAP_SYS_NICE or RLIMIT_RTPRIO %d: %v", rl.Cur, err)
	}
	defer SetThread(Other, 0)
	p, prio, err := Thread()
	if err != nil || p != FIFO || prio != 10 {
		t.Fatalf("Thread() = %v %d %v, want fifo 10", p, prio, err)
	}
}

func TestTickerOverruns(t *testing.T) {
	tk, err := NewTicker(5 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// The first Wait may itself have overrun (a slow start, qemu).
	ticks0, over0 := tk.Stats()
	time.Sleep(40 * time.Millisecond) // miss about 8 periods
	missed, err := tk.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if missed < 3 {
		t.Fatalf("missed %d periods after sleeping 8, want >= 3", missed)
	}
	ticks, over := tk.Stats()
	if over-over0 != missed || ticks-ticks0 != missed+1 {
		t.Fatalf("stats went from ticks %d overruns %d to ticks %d overruns %d; Wait said %d missed",
			ticks0, over0, ticks, over, missed)
	}
	short, c2 := context.WithCancel(context.Background())
	c2()
	if _, err := tk.Wait(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

// TestTickerWaitDeadline: a Wait that outlives its context's deadline
// returns context.DeadlineExceeded, also when the fd's deadline (the same
// instant) fires before the context's own timer.
func TestTickerWaitDeadline(t *testing.T) {
	tk, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := tk.Wait(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("wait %d past its context's deadline: %v (%T), want context.DeadlineExceeded", i, err, err)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, s := range []string{"other", "fifo", "rr", "batch", "idle"} {
		p, err := ParsePolicy(s)
		if err != nil || p.String() != s {
			t.Errorf("%s: %v %v", s, p, err)
		}
	}
	if _, err := ParsePolicy("deadline"); err == nil {
		t.Error("unknown policy accepted")
	}
}

func TestPolicyNumbersAreLinuxs(t *testing.T) {
	for p, want := range map[Policy]int{Other: sys.SchedOther, FIFO: sys.SchedFIFO, RR: sys.SchedRR, Batch: sys.SchedBatch, Idle: sys.SchedIdle} {
		if int(p) != want {
			t.Errorf("%v = %d, Linux says %d", p, int(p), want)
		}
		if back, err := ParsePolicy(p.String()); err != nil || back != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), back, err)
		}
	}
}

func TestAffinityRange(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range []int{-1, 1024, 2047} {
		if err := SetAffinity(c); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("SetAffinity(%d) = %v, want out of range", c, err)
		}
	}
}
