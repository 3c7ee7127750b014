//go:build !amd64 && !386

package shm

import "sync/atomic"

// On weakly ordered CPUs (ARM) the seqlock needs store→store ordering after
// the writer marks a slot busy, and load→load ordering before a reader
// re-checks the slot stamp. Go has no fence primitive; an atomic store
// followed by an atomic load (STLR;LDAR on arm64, DMB-bracketed on arm) is
// ordered before every later access and after every earlier one, which is
// the barrier the seqlock needs. p is memory private to the caller, so the
// store costs no cache-line traffic.

func storeFence(p *uint32) {
	atomic.StoreUint32(p, 0)
	atomic.LoadUint32(p)
}

func loadFence(p *uint32) {
	atomic.StoreUint32(p, 0)
	atomic.LoadUint32(p)
}
