// Package runtime is the edgeipc daemon as a library: it owns rings,
// supervises sources (child processes over pipes, FIFOs, synthetic
// generators), runs sinks, serves the control plane over POSIX message
// queues and handles signals (HUP reload, USR1 stats, TERM/INT drain and
// exit). `edgeipc run` is a thin wrapper around it. It is Linux only: on
// other systems the package builds (its configuration functions work), but
// New and Run return an error wrapping shm.ErrNotSupported.
//
// To embed it: Load (or Parse) a configuration (docs/config.md), New, then
// Run until the context is cancelled. Example, in example_test.go, runs one
// with a synthetic source and reads a frame back from its ring.
package runtime
