// Package qemuwatch turns a known qemu-user bug from a silent 30-minute
// test hang into a clear, rerunnable failure.
//
// qemu-user (7.2 in Debian bookworm, and others) emulates the clone that
// starts a child process with a plain fork of the whole, multithreaded
// emulator. Now and then the child deadlocks inside qemu between fork and
// exec, with every signal blocked; Go's os/exec then waits forever for the
// exec to happen, and so does the test. A real kernel never does this.
//
// Test binaries call Start from TestMain. It watches this process's
// children; one that is still this very program (same command line) 20 s
// after it was forked is stuck in that window. Start then prints a line
// containing Marker, kills the child and exits with status 97, and
// scripts/qemu-test.sh reruns only the packages that ended that way. A
// process that supervises its children (a runtime started by a test, whose
// exec sources are forked children) is started with
// EDGEIPC_QEMUWATCH_STUCK=kill-child instead: the watchdog kills the stuck
// child, prints the marker line, and the process goes on, as after a
// child crash; if the test still fails, the marker gets it rerun.
// Natively the watchdog does not even start (qemu answers /proc/self/exe
// with the guest program, the task directory shows the emulator: that is
// how it knows), and EDGEIPC_QEMUWATCH=off turns it off for a process whose
// CPU use a test measures.
package qemuwatch
