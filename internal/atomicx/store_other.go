//go:build !amd64

package atomicx

import "sync/atomic"

// StoreRelease: see store_amd64.go. Elsewhere sync/atomic's store is the
// cheapest release store Go offers (STLR on arm64, DMB-bracketed on arm).
func StoreRelease(addr *uint32, v uint32) { atomic.StoreUint32(addr, v) }
