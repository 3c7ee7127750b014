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
// goroutine that runs the sensor loop.
//
// A Ticker's wait comes in the three forms of the project's other waits:
// Wait(ctx), WaitDeadline(t) and TryWait (ErrWouldBlock while no tick is
// due); each returns the periods missed since the last tick taken, and
// none allocates.
//
// It needs CAP_SYS_NICE for SCHED_FIFO/SCHED_RR and CAP_IPC_LOCK (or a large
// enough RLIMIT_MEMLOCK) for mlockall; without them the calls return errors
// that say which capability or limit is missing.
package sched
