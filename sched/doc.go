// Package sched sets real-time scheduling policy and priority, CPU affinity
// and memory locking for latency-sensitive sensor loops, and provides
// periodic timers that count overruns.
//
// It needs CAP_SYS_NICE for SCHED_FIFO/SCHED_RR and CAP_IPC_LOCK (or a large
// enough RLIMIT_MEMLOCK) for mlockall; without them the calls return errors
// that say which capability or limit is missing.
package sched
