//go:build !amd64

package shm

// ntFence: see store_amd64.go. On ARM storeFence after the odd stamp is
// already a full barrier (DMB), and ARM has no weaker streaming stores
// that could pass it.
func ntFence() {}
