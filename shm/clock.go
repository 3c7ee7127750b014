package shm

import _ "unsafe" // for go:linkname

// nanotime is the runtime's CLOCK_MONOTONIC reading through the vDSO: no
// system call, no allocation.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Now returns CLOCK_MONOTONIC in nanoseconds, the clock of Frame.Time.
// Compare it with Frame.Time from any process on the same machine.
func Now() int64 { return nanotime() }

// procyield executes the CPU's spin-wait hint (PAUSE on x86, YIELD on ARM)
// n times: a polling loop that uses it leaves the core's pipeline (and a
// hyperthread sibling) alone and exits without a memory-order flush.
//
//go:linkname procyield runtime.procyield
func procyield(cycles uint32)
