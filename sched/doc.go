// Package sched sets real-time scheduling policy and priority, CPU affinity
// and memory locking for latency-sensitive sensor loops, and provides
// periodic timers that count overruns.
//
// Linux schedules threads, not processes: a policy, priority or affinity
// set by SetThread or SetAffinity belongs to the calling OS thread alone.
// Both wire the calling goroutine to its thread for the rest of the
// goroutine's life (runtime.LockOSThread), so no other goroutine runs with
// the setting and the thread exits with the goroutine (or, for the main
// thread, which Go never exits, is parked for good). Set them from the
// goroutine that runs the sensor loop. A process that goroutine starts
// (os/exec forks from the calling thread) inherits the thread's policy,
// priority and affinity: start helpers from another goroutine.
//
// A Ticker's Wait on a real-time thread sleeps in the kernel (ppoll on
// that thread), so the timer's expiry wakes the thread at its priority.
// Elsewhere it parks in the netpoller, from which a thread of normal
// priority wakes it: over 2,000 waits for a 1 ms ticker beside four busy
// processes on a 2-CPU x86 VM, a SCHED_FIFO goroutine missed 156 to 180
// ticks waiting there, and 0 to 6 sleeping in the kernel. Once awake, its
// goroutine still needs one of Go's GOMAXPROCS Ps to run. When other
// goroutines of the process keep every P busy, it waits for one of them to
// be preempted (10 ms or more): beside GOMAXPROCS busy goroutines the same
// loop missed 52-62% of its ticks (94% while it waited in the
// netpoller). Keep GOMAXPROCS above the number of goroutines that keep a
// CPU busy (and at most the number of CPUs), or run heavy processing in
// another process.
//
// A Ticker's wait comes in the three forms of the project's other waits:
// Wait(ctx), WaitDeadline(t) and TryWait (ErrWouldBlock while no tick is
// due); each returns the periods missed since the last tick taken, and
// none allocates. Reset(period) changes the period, as time.Ticker.Reset
// does, from any goroutine and also while another waits: the next tick
// falls one new period later. Ticks due and not taken are dropped then;
// Stats, which Reset does not clear, counts them as overruns.
//
// It needs CAP_SYS_NICE (or an RLIMIT_RTPRIO at least the priority) for
// SCHED_FIFO/SCHED_RR, CAP_SYS_NICE (or an RLIMIT_NICE of 20 minus the
// thread's nice value) to leave SCHED_IDLE, and CAP_IPC_LOCK (or an unlimited RLIMIT_MEMLOCK)
// for mlockall; without them the calls return errors wrapping
// ErrPermission that say which capability or limit is missing. Like a
// policy, a capability belongs to a thread (capset changes one): the
// kernel checks the calling thread's, and the errors describe that
// thread. A capability counts only in the host's user namespace (not in a
// rootless container), and a seccomp filter (systemd RestrictRealtime=yes) or a cpu
// cgroup without real-time runtime refuses real-time policies all the
// same: the errors say so. SetAffinity needs no privilege; a filter that
// refuses it (systemd SystemCallFilter=~@resources) makes an
// ErrPermission too.
//
// A sensor loop at 100 Hz that publishes each sample into a shm ring, run
// as a goroutine of its own (go sensorLoop(ctx, w, read)):
//
//	func sensorLoop(ctx context.Context, w *shm.Writer, read func() []byte) error {
//		// Real-time priority for this goroutine's thread; without
//		// CAP_SYS_NICE (ErrPermission) the loop runs at normal priority.
//		if err := sched.SetThread(sched.FIFO, 50); err != nil && !errors.Is(err, sched.ErrPermission) {
//			return err
//		}
//		t, err := sched.NewTicker(10 * time.Millisecond)
//		if err != nil {
//			return err
//		}
//		defer t.Close()
//		for {
//			missed, err := t.Wait(ctx) // ctx.Err() once ctx is done
//			if err != nil {
//				return err
//			}
//			if missed > 0 {
//				log.Printf("sensor loop fell %d periods behind", missed)
//			}
//			if _, err := w.WriteFrame(1, 0, read()); err != nil {
//				return err
//			}
//		}
//	}
//
// example_test.go has runnable versions: ExampleTicker,
// ExampleTicker_Reset and ExampleSetThread.
package sched
