// Package runtime is the edgeipc daemon as a library: it owns rings,
// supervises sources (child processes over pipes, FIFOs, synthetic
// generators), runs sinks, serves the control plane over POSIX message
// queues and handles signals (HUP reload, USR1 stats, TERM/INT drain and
// exit). `edgeipc run` is a thin wrapper around it. It is Linux only: on
// other systems the package builds (its configuration functions work), but
// New and Run return an error wrapping shm.ErrNotSupported.
package runtime
