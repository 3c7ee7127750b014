//go:build amd64 || 386

package shm

// On x86 (TSO) stores are not reordered with stores, nor loads with loads:
// the seqlock needs no extra ordering beyond the atomics around it.

func storeFence(*uint32) {}
func loadFence(*uint32)  {}
