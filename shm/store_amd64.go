package shm

// ntFence is MFENCE: every earlier store, the slot's odd stamp included,
// is globally visible before any later one, non-temporal stores included.
// x86 orders ordinary stores among themselves, but not non-temporal
// (streaming) stores after an ordinary one (Intel SDM vol. 3, 8.2.2), and
// Go's copy of 1 MiB or more writes with VMOVNTDQ: without the fence the
// payload of a large frame could become visible before the stamp that
// tells readers it is being written.
//
//go:noescape
func ntFence()
