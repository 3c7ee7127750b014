package shm

// storeRelease stores v to *addr with release ordering only: earlier loads
// and stores are not reordered after it, but a later load may pass it.
// Use it where no store→load order is needed (seqlock stamps, a cursor no
// one sleeps on); sync/atomic's Store is sequentially consistent, which on
// amd64 costs a locked XCHG.
//
//go:noescape
func storeRelease(addr *uint32, v uint32)

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
