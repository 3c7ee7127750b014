//go:build linux

package sched

import (
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
	"github.com/edgeipc/edgeipc/internal/testenv"
)

// TestMain fails the run on a descriptor a test left open (a ticker's
// timerfd).
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

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
	// A policy this package does not know (4 is unused, 6 is
	// SCHED_DEADLINE, which sched_setscheduler cannot set, -1 would
	// have passed the kernel garbage flag bits) is refused by name, not
	// left to a bare "sched_setscheduler: invalid argument".
	for _, p := range []Policy{4, 6, -1, FIFO | resetOnFork} {
		if err := SetThread(p, 0); err == nil || !strings.Contains(err.Error(), "unknown policy") {
			t.Errorf("SetThread(%v, 0) = %v, want unknown policy", p, err)
		}
	}
	err := SetThread(FIFO, 10)
	// Root is not enough (containers drop CAP_SYS_NICE from root); the
	// capability or an RLIMIT_RTPRIO of 10 is.
	capable, cerr := sys.HasCapability(unix.CAP_SYS_NICE)
	if cerr != nil {
		t.Fatal(cerr)
	}
	capable = capable && !inUserNamespace() // the scheduler checks the host's namespace
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

// TestRealtimeRefusedByCgroup: with CONFIG_RT_GROUP_SCHED a thread in a
// cpu cgroup without real-time runtime (cpu.rt_runtime_us 0, what a new
// cgroup v1 group gets) is refused SCHED_FIFO even with CAP_SYS_NICE. The
// error must say so and name the cgroup, not ask for the capability it has.
func TestRealtimeRefusedByCgroup(t *testing.T) {
	const root = "/sys/fs/cgroup/cpu"
	if _, err := os.Stat(root + "/cpu.rt_runtime_us"); err != nil {
		t.Skipf("no cgroup v1 cpu controller with real-time group scheduling at %s (%v)", root, err)
	}
	if capable, _ := sys.HasCapability(unix.CAP_SYS_NICE); !capable || inUserNamespace() {
		t.Skip("needs CAP_SYS_NICE in the initial user namespace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := strconv.Itoa(unix.Gettid())
	orig, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	back := "" // the thread's cpu cgroup, to return to
	for _, l := range strings.Split(string(orig), "\n") {
		if p := strings.SplitN(l, ":", 3); len(p) == 3 && slices.Contains(strings.Split(p[1], ","), "cpu") {
			back = root + p[2]
		}
	}
	if back == "" {
		t.Skipf("thread in no v1 cpu cgroup: %q", orig)
	}
	dir := root + "/edgeipc-sched-test-" + strconv.Itoa(os.Getpid())
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cpu cgroup: %v", err)
	}
	defer os.Remove(dir)
	if b, err := os.ReadFile(dir + "/cpu.rt_runtime_us"); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Skipf("a new cgroup has real-time runtime %q (%v)", b, err)
	}
	if err := os.WriteFile(dir+"/tasks", []byte(tid), 0); err != nil {
		t.Skipf("cannot move this thread into %s: %v", dir, err)
	}
	err = SetThread(FIFO, 10)
	if err := os.WriteFile(back+"/tasks", []byte(tid), 0); err != nil {
		t.Fatalf("moving the thread back to %s: %v", back, err)
	}
	if err == nil {
		SetThread(Other, 0)
		t.Fatal("SCHED_FIFO granted in a cgroup without real-time runtime")
	}
	name := strings.TrimPrefix(dir, root)
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "rt_runtime_us") || !strings.Contains(err.Error(), name) {
		t.Fatalf("refused by its cgroup %s: %v; want ErrPermission naming the cgroup and cpu.rt_runtime_us", name, err)
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

// Waits under one long-lived cancellable context allocate nothing (each
// registered its own cancellation: four allocations a tick), and a
// cancellation still ends a Wait in progress.
func TestTickerWaitContext(t *testing.T) {
	tk, err := NewTicker(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(50, func() {
		if _, err := tk.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per Wait under one context, want 0", n)
	}

	slow, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	for i := 0; i < 3; i++ { // a new context each time: registered anew
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := slow.Wait(ctx); done <- err }()
		time.Sleep(10 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("wait %d cancelled: %v, want context.Canceled", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("wait %d still blocked 10 s after its context was cancelled", i)
		}
	}
}

// TestSettingsStayWithTheirGoroutine: Linux schedules threads, and a
// goroutine that sets a policy or an affinity without holding its thread
// (LockOSThread) left that thread, policy and all, in Go's pool when it
// exited: other goroutines then ran in SCHED_BATCH or on one CPU. Now the
// setting goroutine keeps its thread, and the thread exits with it.
func TestSettingsStayWithTheirGoroutine(t *testing.T) {
	cpus, err := Affinity()
	if err != nil {
		t.Fatal(err)
	}
	tids := make(chan int, 1)
	go func() {
		if err := SetThread(Batch, 0); err != nil {
			t.Error(err)
		}
		tid := unix.Gettid() // SetThread wired the goroutine to this thread
		if len(cpus) > 1 {
			if err := SetAffinity(cpus[0]); err != nil {
				t.Error(err)
			}
		}
		tids <- tid
	}()
	tid := <-tids
	// The goroutine exits; its thread, if it goes back to the pool, is
	// left as it was set.
	var leaked []string
	for i := 0; i < 200; i++ {
		leaked = leaked[:0]
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			id, _ := strconv.Atoi(e.Name())
			if id == os.Getpid() {
				// The main thread: when the goroutine ran there (in this
				// run or an earlier one of -count), Go, which never exits
				// the main thread, parked it for good instead, settings
				// and all; it runs no other goroutine again.
				continue
			}
			if p, err := sys.SchedGetscheduler(id); err == nil && p&^resetOnFork == sys.SchedBatch {
				leaked = append(leaked, e.Name()+" in batch")
			}
			var set unix.CPUSet
			if len(cpus) > 1 && unix.SchedGetaffinity(id, &set) == nil && set.Count() == 1 {
				leaked = append(leaked, e.Name()+" on one CPU")
			}
		}
		if len(leaked) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond) // the thread is on its way out
	}
	t.Fatalf("threads %v still set after the goroutine that set thread %d exited", leaked, tid)
}

// TestAffinityMissingCPU: the kernel pins a thread to the CPUs of the mask
// that exist, are online and are in its cpuset, and drops the others
// without a word; SetAffinity(0, 1023) succeeded with the thread on CPU 0
// alone. Now it is refused, names the missing CPU, and changes nothing.
func TestAffinityMissingCPU(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := Affinity()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(orig, 1023) {
		t.Skip("this machine has a CPU 1023")
	}
	defer SetAffinity(orig...)
	err = SetAffinity(orig[0], 1023)
	if err == nil || !strings.Contains(err.Error(), "1023") || !strings.Contains(err.Error(), "online") {
		t.Errorf("SetAffinity(%d, 1023) = %v, want an error naming CPU 1023", orig[0], err)
	}
	if got, _ := Affinity(); !slices.Equal(got, orig) {
		t.Errorf("affinity %v after the refusal, want %v as before", got, orig)
	}
	// A CPU that exists is no error; one that does not, alone, still is.
	if err := SetAffinity(orig[0]); err != nil {
		t.Error(err)
	}
	if err := SetAffinity(1023); err == nil || !strings.Contains(err.Error(), "1023") {
		t.Errorf("SetAffinity(1023) = %v", err)
	}
}

// TestTickerClose: Close ends a Wait in progress, and a Wait after Close
// fails at once, both with ErrClosed (it was internal/poll's "use of
// closed file", which no exported error matched).
func TestTickerClose(t *testing.T) {
	tk, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := tk.Wait(context.Background()); done <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := tk.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Wait ended by Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait still blocked 10 s after Close")
	}
	if _, err := tk.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after Close: %v, want ErrClosed", err)
	}
	if err := tk.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

// TestTickerLongPeriod: a period whose seconds do not fit the timespec of
// a 32-bit target (time32 timerfd_settime) was cut to its low 32 bits:
// 2^32+5 s ticked every 5 s on arm. Now it is refused there; on 64-bit
// targets the timer is armed for the whole period.
func TestTickerLongPeriod(t *testing.T) {
	period := (1<<32 + 5) * time.Second
	tk, err := NewTicker(period)
	if err != nil {
		if strconv.IntSize == 32 && strings.Contains(err.Error(), "period") {
			return
		}
		t.Fatalf("NewTicker(%v): %v", period, err)
	}
	defer tk.Close()
	var cur unix.ItimerSpec
	fd, err := tk.f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var gerr error
	fd.Control(func(fd uintptr) { gerr = unix.TimerfdGettime(int(fd), &cur) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	if got := time.Duration(cur.Interval.Nano()); got != period {
		t.Fatalf("timer armed with interval %v, want %v", got, period)
	}
}

// TestTickerTryWaitAndDeadline: TryWait takes a tick that is due and says
// ErrWouldBlock while none is; WaitDeadline waits for a tick, or gives up
// at its deadline with os.ErrDeadlineExceeded; both allocate nothing and
// say ErrClosed once the ticker is closed.
func TestTickerTryWaitAndDeadline(t *testing.T) {
	slow, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.TryWait(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryWait with the next tick an hour away: %v, want ErrWouldBlock", err)
	}
	if _, err := slow.WaitDeadline(time.Now().Add(20 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WaitDeadline past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if _, err := slow.TryWait(); !errors.Is(err, ErrWouldBlock) {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per TryWait, want 0", n)
	}
	slow.Close()
	if _, err := slow.TryWait(); !errors.Is(err, ErrClosed) {
		t.Errorf("TryWait after Close: %v, want ErrClosed", err)
	}
	if _, err := slow.WaitDeadline(time.Now().Add(time.Second)); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitDeadline after Close: %v, want ErrClosed", err)
	}

	fast, err := NewTicker(5 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	time.Sleep(30 * time.Millisecond) // about 6 ticks due
	missed, err := fast.TryWait()
	if ticks, overruns := fast.Stats(); err != nil || ticks < 1 || ticks != missed+1 || overruns != missed {
		t.Fatalf("TryWait with ticks due: missed %d, %v; stats %d ticks, %d overruns", missed, err, ticks, overruns)
	}
	if _, err := fast.WaitDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("WaitDeadline for a 5 ms tick: %v", err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if _, err := fast.WaitDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per WaitDeadline, want 0", n)
	}
}

// TestTickerCountsMatchTime: the ticks a ticker counts are the periods
// that passed, within generous bounds. The timerfd's count is a uint64 in
// host byte order; it was decoded as little-endian, so on a big-endian
// target (linux/mips, mips64, ppc64, s390x, which Go builds this package
// for) one tick counted as 2^56 and every Wait said 2^56-1 periods missed.
func TestTickerCountsMatchTime(t *testing.T) {
	const period = 2 * time.Millisecond
	start := time.Now()
	tk, err := NewTicker(period)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	var missed uint64
	for i := 0; i < 5; i++ {
		m, err := tk.WaitDeadline(time.Now().Add(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		missed += m
	}
	elapsed := time.Since(start)
	ticks, overruns := tk.Stats()
	if most := uint64(elapsed/period) + 1; ticks < 5 || ticks > most || overruns != missed || ticks != 5+missed {
		t.Fatalf("after 5 waits in %v (at most %d periods of %v): %d ticks, %d overruns, Wait said %d missed",
			elapsed, most, period, ticks, overruns, missed)
	}
}

// TestTickerStatsFromAnotherGoroutine: a sensor loop waits on its ticker
// while a metrics goroutine reports the overruns. Stats read the counters
// the waiting goroutine writes without synchronisation: a data race (the
// race detector fails this test without the fix, and a 32-bit target could
// read a torn count).
func TestTickerStatsFromAnotherGoroutine(t *testing.T) {
	tk, err := NewTicker(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			if _, err := tk.WaitDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var last uint64
	for {
		select {
		case <-done:
			if ticks, _ := tk.Stats(); ticks < 20 {
				t.Fatalf("%d ticks after 20 waits", ticks)
			}
			return
		default:
		}
		ticks, overruns := tk.Stats()
		if ticks < last || overruns > ticks {
			t.Fatalf("Stats went from %d ticks to %d ticks, %d overruns", last, ticks, overruns)
		}
		last = ticks
		time.Sleep(100 * time.Microsecond)
	}
}

// TestTickerStatsOverrunsNeverExceedTicks: a read's overruns were counted
// before its ticks, so a Stats between the two additions saw the overruns
// without the ticks: a ticker taken late for the first time said, for a
// moment, 23 overruns of 0 ticks, against Stats's documentation. A
// goroutine reads Stats without pause while ticker after ticker is taken
// late once; each take is a chance to land between the two additions, and
// with them in the old order this test caught it within its time budget.
func TestTickerStatsOverrunsNeverExceedTicks(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2: Stats must run while a wait counts (go test -cpu 2)")
	}
	var (
		cur  atomic.Pointer[Ticker]
		stop atomic.Bool
		bad  atomic.Pointer[[2]uint64]
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for !stop.Load() {
			if tk := cur.Load(); tk != nil {
				if ticks, overruns := tk.Stats(); overruns > ticks {
					bad.Store(&[2]uint64{ticks, overruns})
					return
				}
			}
		}
	}()
	defer func() { stop.Store(true); <-done }()
	takes := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end) && bad.Load() == nil; {
		tk, err := NewTicker(time.Microsecond)
		if err != nil {
			t.Fatal(err)
		}
		cur.Store(tk)
		for {
			// Some periods pass while TryWait gets going: its first take
			// has overruns, and no ticks have been counted before it.
			if _, err := tk.TryWait(); err == nil {
				break
			} else if !errors.Is(err, ErrWouldBlock) {
				t.Fatal(err)
			}
		}
		takes++
		cur.Store(nil)
		tk.Close()
	}
	if b := bad.Load(); b != nil {
		t.Fatalf("Stats said %d overruns of %d ticks (within %d takes)", b[1], b[0], takes)
	}
	t.Logf("%d late takes, Stats never said more overruns than ticks", takes)
}

// TestAffinityOutsideCpuset: a CPU that is online but outside the thread's
// cpuset cgroup is refused, and the error says which cpuset and which CPUs
// it allows; it said only "not online or not in this process's cpuset",
// with the online CPUs, which include the refused one.
func TestAffinityOutsideCpuset(t *testing.T) {
	const root = "/sys/fs/cgroup/cpuset"
	if _, err := os.Stat(root + "/cpuset.effective_cpus"); err != nil {
		t.Skipf("no cgroup v1 cpuset controller at %s (%v)", root, err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := Affinity()
	if err != nil {
		t.Fatal(err)
	}
	if len(orig) < 2 {
		t.Skipf("this thread may run on %v: needs two CPUs", orig)
	}
	defer SetAffinity(orig...)
	tid := strconv.Itoa(unix.Gettid())
	cg, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	back := ""
	for _, l := range strings.Split(string(cg), "\n") {
		if p := strings.SplitN(l, ":", 3); len(p) == 3 && slices.Contains(strings.Split(p[1], ","), "cpuset") {
			back = root + p[2]
		}
	}
	if back == "" {
		t.Skipf("thread in no v1 cpuset cgroup: %q", cg)
	}
	mems, err := os.ReadFile(back + "/cpuset.effective_mems")
	if err != nil {
		t.Fatal(err)
	}
	dir := root + "/edgeipc-sched-test-" + strconv.Itoa(os.Getpid())
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cpuset cgroup: %v", err)
	}
	defer os.Remove(dir)
	if err := os.WriteFile(dir+"/cpuset.cpus", []byte(strconv.Itoa(orig[0])), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/cpuset.mems", mems, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/tasks", []byte(tid), 0); err != nil {
		t.Skipf("cannot move this thread into %s: %v", dir, err)
	}
	errBoth := SetAffinity(orig[0], orig[1])
	errOne := SetAffinity(orig[1])
	if err := os.WriteFile(back+"/tasks", []byte(tid), 0); err != nil {
		t.Fatalf("moving the thread back to %s: %v", back, err)
	}
	want := strings.TrimPrefix(dir, root) + " allows " + strconv.Itoa(orig[0])
	for _, err := range []error{errBoth, errOne} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CPU %d outside the cpuset: %v, want an error saying %q", orig[1], err, want)
		}
	}
}

// TestForgottenTickerReleasesDescriptors: a Ticker dropped without Close
// gives its descriptors back once it is collected, as the os.File that
// holds its timerfd does; the eventfd it waits on beside the timerfd on a
// real-time thread stayed open for the life of the process.
func TestForgottenTickerReleasesDescriptors(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := count()
	func() {
		for i := 0; i < 4; i++ {
			tk, err := NewTicker(time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tk.TryWait(); !errors.Is(err, ErrWouldBlock) {
				t.Fatal(err)
			}
		}
	}()
	n := count()
	for i := 0; i < 200 && n > before; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		n = count()
	}
	if n > before {
		t.Fatalf("%d descriptors open after 4 tickers were dropped and collected, %d before", n, before)
	}
}
