//go:build !amd64

package shm

import "sync/atomic"

// storeRelease: see store_amd64.go. Elsewhere sync/atomic's store is the
// cheapest release store Go offers (STLR on arm64, DMB-bracketed on arm).
func storeRelease(addr *uint32, v uint32) { atomic.StoreUint32(addr, v) }

// ntFence: see store_amd64.go. On ARM storeFence after the odd stamp is
// already a full barrier (DMB), and ARM has no weaker streaming stores
// that could pass it.
func ntFence() {}
